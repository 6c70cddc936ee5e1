"""Python subscriber client for segstream's wire format."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import zmq

from .endpoints import parse_endpoint
from .errors import PublishError
from .security import secure_client
from .wire import decode, topic_for


class Subscriber:
    """Receives and decodes segstream messages.

    `sources` restricts to some source ids (ZeroMQ topic filtering happens on
    the publisher side for TCP); None receives every source. With
    `curve_server_key` (the publisher's NAME.key) and `curve_secret` (this
    client's NAME.key_secret) the connection is CURVE-encrypted (stream.security).
    """

    def __init__(
        self,
        endpoint: str,
        sources: Iterable[str] | None = None,
        hwm: int = 1000,
        curve_server_key: str | None = None,
        curve_secret: str | None = None,
    ) -> None:
        address, bind = parse_endpoint(endpoint, default_bind=False)
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.RCVHWM, hwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        if curve_server_key or curve_secret:
            if not (curve_server_key and curve_secret):
                self.close()
                raise PublishError("CURVE needs both the publisher's public key and this subscriber's secret key")
            try:
                secure_client(self._sock, curve_server_key, curve_secret)
            except PublishError:
                self.close()
                raise
        for source in sources or [""]:
            self._sock.setsockopt(zmq.SUBSCRIBE, topic_for(source).encode() if source else b"")
        try:
            self._sock.bind(address) if bind else self._sock.connect(address)
        except zmq.ZMQError as err:
            self.close()
            raise PublishError(f"cannot {'bind' if bind else 'connect to'} {address}: {err.strerror}") from None

    def recv(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Next message, or None after `timeout` seconds. Raises WireError on a malformed message."""
        if timeout is not None and not self._sock.poll(int(timeout * 1000)):
            return None
        return decode(self._sock.recv_multipart())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self.recv()  # type: ignore[misc]

    def close(self) -> None:
        if not self._sock.closed:
            self._sock.close()
            self._ctx.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
