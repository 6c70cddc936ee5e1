"""ZeroMQ endpoint strings with CZMQ's bind/connect prefixes.

`@tcp://*:5555` binds, `>tcp://host:5555` connects; without a prefix a
publisher binds and a subscriber connects, which is the common layout (one
segstream process, many consumers).
"""

from __future__ import annotations

from .errors import PublishError

TRANSPORTS = ("tcp://", "ipc://", "inproc://")


def parse_endpoint(spec: str, default_bind: bool) -> tuple[str, bool]:
    """Return (address, bind)."""
    bind = default_bind
    if spec[:1] in "@>":
        bind = spec[0] == "@"
        spec = spec[1:]
    if not spec.startswith(TRANSPORTS):
        raise PublishError(f"bad ZeroMQ endpoint {spec!r}: expected e.g. tcp://127.0.0.1:5555 or ipc:///tmp/segstream")
    return spec, bind
