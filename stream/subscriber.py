"""Python subscriber client for segstream's wire format."""

from __future__ import annotations

import collections
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

    With `latest=True`, a consumer slower than the publisher (a robot's control
    loop) gets each source's newest frame instead of working through a backlog
    that only grows older: `recv` reads what has arrived and skips the frames
    that a newer frame of the same source has superseded (counted in
    `skipped`). Status and end-of-stream messages are never skipped and keep
    their order.

    What one message may cost is bounded: ZeroMQ drops the connection of a
    publisher that sends a message over `max_message_bytes` (it reconnects),
    and the decoders refuse a frame over `max_pixels` (`stream.wire`) before
    allocating it.
    """

    def __init__(
        self,
        endpoint: str,
        sources: Iterable[str] | None = None,
        hwm: int = 1000,
        curve_server_key: str | None = None,
        curve_secret: str | None = None,
        latest: bool = False,
        max_message_bytes: int = 16 << 20,
    ) -> None:
        self.latest = latest
        self.hwm = hwm
        self.skipped = 0
        self._pending: collections.deque[dict[str, Any]] = collections.deque()
        address, bind = parse_endpoint(endpoint, default_bind=False)
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.RCVHWM, hwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
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
        if not self._pending:
            if timeout is not None and not self._sock.poll(int(timeout * 1000)):
                return None
            self._pending.append(decode(self._sock.recv_multipart()))
        if self.latest:
            self._keep_newest()
        return self._pending.popleft()

    def _keep_newest(self) -> None:
        """Read what has arrived (at most a high-water mark's worth, so a fast
        publisher cannot keep this loop going) and drop superseded frames."""
        for _ in range(self.hwm):
            try:
                self._pending.append(decode(self._sock.recv_multipart(zmq.NOBLOCK)))
            except zmq.Again:
                break
        newest = {m["source"]: i for i, m in enumerate(self._pending) if m["type"] == "frame"}
        kept = [m for i, m in enumerate(self._pending) if m["type"] != "frame" or newest[m["source"]] == i]
        self.skipped += len(self._pending) - len(kept)
        self._pending = collections.deque(kept)

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
