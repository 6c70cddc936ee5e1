"""`segstream replay run.mcap --publish ENDPOINT`: a recorded run's messages, published again.

For testing subscribers (a robot's, a dashboard's) without cameras, models
or a GPU: the frame, status and end-of-stream messages go out in their
recorded order, spaced as they were recorded (or at once with `fast`).
"""

from __future__ import annotations

import logging
import threading
import time

from ..stream.publisher import Publisher
from ..stream.recorded import MESSAGES_TOPIC, iter_recording, message_of, recorded_sources

log = logging.getLogger(__name__)

JOIN_POLL_S = 0.05


def replay(path: str, publisher: Publisher, fast: bool = False, wait_s: float = 0.0,
           stop: threading.Event | None = None) -> int:
    """Publish the recording's messages; returns how many. With `wait_s`, first
    wait up to that long for a subscriber to join (ZeroMQ drops what is
    published before one has), then give it a moment to finish joining."""
    recorded_sources(path)  # a readable segstream recording, or a one-line error before anything
    stop = stop or threading.Event()
    deadline = time.monotonic() + wait_s
    while wait_s and not publisher.joined() and time.monotonic() < deadline and not stop.is_set():
        stop.wait(JOIN_POLL_S)
    count = 0
    first: tuple[int, float] | None = None  # (first log time, monotonic clock then)
    for item in iter_recording(path, [MESSAGES_TOPIC]):
        if stop.is_set():
            break
        if not fast:
            if first is None:
                first = (item.log_time_ns, time.monotonic())
            delay = (item.log_time_ns - first[0]) / 1e9 - (time.monotonic() - first[1])
            if delay > 0 and stop.wait(delay):
                break
        publisher.publish(message_of(item, path))
        count += 1
    return count
