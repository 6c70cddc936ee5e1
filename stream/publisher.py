"""ZeroMQ PUB publisher: one topic per source, bounded memory, never blocks."""

from __future__ import annotations

import logging
from typing import Any, Mapping

import zmq

from .endpoints import parse_endpoint
from .errors import PublishError
from .wire import encode

log = logging.getLogger(__name__)


class Publisher:
    """Publishes wire messages on a PUB socket.

    `hwm` bounds the messages queued per subscriber: a slow or absent
    subscriber makes ZeroMQ drop messages for it (counted in `dropped`
    where the socket reports it) instead of growing memory or blocking the
    pipeline. `linger_ms` is how long `close()` waits to flush queued
    messages (the end-of-stream message included).
    """

    def __init__(self, endpoint: str, hwm: int = 64, linger_ms: int = 1000) -> None:
        address, bind = parse_endpoint(endpoint, default_bind=True)
        self.endpoint = address
        self.sent = 0
        self.dropped = 0
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.setsockopt(zmq.LINGER, linger_ms)
        try:
            if bind:
                self._sock.bind(address)
            else:
                self._sock.connect(address)
        except zmq.ZMQError as err:
            self._sock.close(linger=0)
            self._ctx.term()
            verb = "bind" if bind else "connect to"
            raise PublishError(f"cannot {verb} {address}: {err.strerror}; pick a free port or another endpoint") from None
        log.info("publishing on %s (%s)", address, "bind" if bind else "connect")

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
            self._ctx.term()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
