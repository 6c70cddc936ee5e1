"""ZeroMQ PUB publisher: one topic per source, bounded memory, never blocks."""

from __future__ import annotations

import logging
from typing import Any, Mapping

import zmq

from .endpoints import parse_endpoint
from .errors import PublishError
from .security import secure_server
from .wire import encode

log = logging.getLogger(__name__)


class Publisher:
    """Publishes wire messages on an XPUB socket (a PUB socket that also tells
    who subscribes: `joined()`, so each new subscriber can be told every
    source's state before its first frame).

    `hwm` bounds the messages queued per subscriber: a slow or absent
    subscriber makes ZeroMQ drop messages for it (counted in `dropped`
    where the socket reports it) instead of growing memory or blocking the
    pipeline. `linger_ms` is how long `close()` waits to flush queued
    messages (the end-of-stream message included).
    """

    def __init__(
        self,
        endpoint: str,
        hwm: int = 64,
        linger_ms: int = 1000,
        curve_secret: str | None = None,
        curve_clients: str | None = None,
        socket_type: int = zmq.XPUB,
    ) -> None:
        address, bind = parse_endpoint(endpoint, default_bind=True)
        self.endpoint = address
        self.sent = 0
        self.dropped = 0
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(socket_type)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        if socket_type == zmq.XPUB:
            # Every subscription, not only a topic's first: each new subscriber counts. (A forwarder's
            # XPUB passes them on to the workers' publishers the same way.)
            self._sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        self._sock.setsockopt(zmq.LINGER, linger_ms)
        self._auth = None
        if curve_secret or curve_clients:
            if not (curve_secret and curve_clients):
                self.close()
                raise PublishError("CURVE needs both the publisher's secret key and the allowed-clients folder")
            try:
                self._auth = secure_server(self._ctx, self._sock, curve_secret, curve_clients)
            except PublishError:
                self.close()
                raise
        try:
            if bind:
                self._sock.bind(address)
            else:
                self._sock.connect(address)
        except zmq.ZMQError as err:
            self._sock.close(linger=0)
            self.close()
            verb = "bind" if bind else "connect to"
            raise PublishError(f"cannot {verb} {address}: {err.strerror}; pick a free port or another endpoint") from None
        log.info("publishing on %s (%s)", address, "bind" if bind else "connect")

    @property
    def socket(self) -> zmq.Socket:
        return self._sock

    def joined(self) -> int:
        """How many subscriptions arrived since the last call (never blocks).
        (A forwarder's socket is read by its proxy instead; nobody calls this there.)"""
        if self._sock.type != zmq.XPUB or self._sock.closed:
            return 0
        count = 0
        while True:
            try:
                event = self._sock.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                return count
            count += event[:1] == b"\x01"  # 1: subscribe, 0: unsubscribe

    def publish(self, message: Mapping[str, Any]) -> bool:
        """Send without blocking; returns False (and counts a drop) if ZeroMQ refused it."""
        try:
            self._sock.send_multipart(encode(message), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if not self._sock.closed:
            self._sock.close()
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if not self._ctx.closed:
            self._ctx.term()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
