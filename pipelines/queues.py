"""Bounded hand-off queues between stage threads, with an explicit overflow policy.

- `block`: the producer waits (back-pressure). Used for files, which must
  never drop a frame, and between all stages after capture.
- `latest`: the producer replaces its own queued item, if any (counted in
  `dropped`), then waits like `block`. Used where a live source enters the
  pipeline: a slow stage makes it skip frames instead of falling behind, and
  it never displaces the frames of another source sharing the queue.

Every wait polls an abort event, so a failed stage never leaves another
thread blocked forever.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

POLL_S = 0.05


class Aborted(Exception):
    """The pipeline is being torn down after a failure; the stage should exit."""


class END:
    """Sentinel: no more items will follow."""


class EMPTY:
    """Returned by `get(timeout)` when nothing arrived in time."""


class StageQueue:
    def __init__(self, maxsize: int, abort: threading.Event, name: str = "") -> None:
        self.maxsize = maxsize
        self.name = name
        self.dropped = 0
        self._items: collections.deque[Any] = collections.deque()
        self._abort = abort
        self._cond = threading.Condition()

    def put(self, item: Any, policy: str = "block", key: Any = None) -> int:
        """Append `item`; `key` identifies the producer for the `latest` policy.
        Returns how many queued items it replaced."""
        stale: list[Any] = []
        with self._cond:
            if policy == "latest":
                stale = [queued for queued in self._items if getattr(queued, "key", None) == key]
                for queued in stale:
                    self._items.remove(queued)
                    self.dropped += 1
            while len(self._items) >= self.maxsize:
                if self._abort.is_set():
                    raise Aborted
                self._cond.wait(POLL_S)
            self._items.append(item)
            self._cond.notify_all()
        return len(stale)

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item; `EMPTY` if `timeout` seconds pass without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._abort.is_set():
                    raise Aborted
                if deadline is not None and time.monotonic() >= deadline:
                    return EMPTY
                self._cond.wait(POLL_S)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def __len__(self) -> int:
        return len(self._items)
