"""ZeroMQ CURVE encryption and authentication for the publisher and its subscribers.

Uses pyzmq's own certificate files and ZAP authenticator (`zmq.auth`), never
hand-rolled crypto: `segstream keys DIR` writes `NAME.key` (public, give it
out) and `NAME.key_secret` (keep it). The publisher runs as CURVE server with
its secret certificate and accepts only clients whose public certificates
sit in an allowed-clients folder; everything on the wire is encrypted. A
subscriber needs the server's public key and its own secret certificate; an
unknown client is refused at the handshake and receives nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from .errors import PublishError

log = logging.getLogger(__name__)


def create_keys(folder: str | Path, name: str, force: bool = False) -> tuple[Path, Path]:
    """Write NAME.key and NAME.key_secret into `folder`; returns (public, secret)
    paths. An existing pair is kept unless `force`: replacing a secret key
    locks out every peer that trusts it. The secret key is readable by its
    owner only from the moment it exists (0600), never world-readable for a
    while."""
    folder = Path(folder)
    existing = [p for p in (folder / f"{name}.key", folder / f"{name}.key_secret") if p.exists()]
    if existing and not force:
        raise PublishError(f"{existing[-1]} exists: replacing it locks out everyone who trusts it; "
                           "give another --name, or --force to replace it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        previous = os.umask(0o077)  # files are created 0600 (the CLI runs this before any thread starts)
        try:
            public, secret = zmq.auth.create_certificates(folder, name)
        finally:
            os.umask(previous)
    except OSError as err:
        raise PublishError(f"cannot write keys to {folder}: {err.strerror}") from None
    Path(public).chmod(0o644)  # the public key is meant to be handed out
    return Path(public), Path(secret)


def _load(path: str | Path, need_secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as err:
        raise PublishError(f"cannot read CURVE key {path}: {err}; create keys with `segstream keys DIR`") from None
    if need_secret and secret is None:
        raise PublishError(f"{path} holds no secret key: give the NAME.key_secret file, not NAME.key")
    return public, secret


def secure_server(ctx: zmq.Context, sock: zmq.Socket, secret_file: str | Path, clients_dir: str | Path) -> ThreadAuthenticator:
    """Make `sock` a CURVE server that admits only the public keys found in
    `clients_dir`. Returns the running authenticator; stop it after the socket closes."""
    if not Path(clients_dir).is_dir():
        raise PublishError(f"allowed-clients folder not found: {clients_dir} (put each subscriber's NAME.key there)")
    public, secret = _load(secret_file, need_secret=True)
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(clients_dir))
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    log.info("CURVE on: clients allowed from %s", clients_dir)
    return auth


def secure_client(sock: zmq.Socket, server_key_file: str | Path, secret_file: str | Path) -> None:
    """Make `sock` a CURVE client of the server whose public key is in `server_key_file`."""
    server_public, _ = _load(server_key_file, need_secret=False)
    public, secret = _load(secret_file, need_secret=True)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server_public
