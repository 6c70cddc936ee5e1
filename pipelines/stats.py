"""What a run measures: frames, per-stage and end-to-end latency (mean, max and
a histogram for Prometheus), drops, reconnects, track ids and batch sizes,
and the summary table `segstream run` prints at the end."""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from dataclasses import dataclass, field

STAGES = ("capture", "preprocess", "infer", "postprocess", "track", "publish")
# Upper bounds (ms) of the latency histogram buckets kept per stage (the last bucket is +Inf).
LATENCY_BUCKETS_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)


@dataclass
class StageStats:
    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))  # per bucket, not cumulative
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, ms: float) -> None:
        with self._lock:  # several capture or infer threads may report at once
            self.count += 1
            self.total_ms += ms
            self.max_ms = max(self.max_ms, ms)
            self.buckets[bisect.bisect_left(LATENCY_BUCKETS_MS, ms)] += 1

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0

    def copy(self) -> StageStats:
        with self._lock:
            return StageStats(self.count, self.total_ms, self.max_ms, list(self.buckets))

    def merge(self, other: StageStats) -> None:
        """Add another process's figures (a worker's, `pipelines.workers`)."""
        with self._lock:
            self.count += other.count
            self.total_ms += other.total_ms
            self.max_ms = max(self.max_ms, other.max_ms)
            self.buckets = [a + b for a, b in zip(self.buckets, other.buckets)]

    def __getstate__(self) -> dict:
        """Picklable (a worker sends its figures to the main process): without the lock."""
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def snapshot(self) -> tuple[list[int], float]:
        """(per-bucket counts, total ms), consistent with each other."""
        with self._lock:
            return list(self.buckets), self.total_ms


@dataclass
class RunStats:
    frames: int = 0
    seconds: float = 0.0
    stages: dict[str, StageStats] = field(default_factory=lambda: {s: StageStats() for s in STAGES})
    end_to_end: StageStats = field(default_factory=StageStats)  # capture to publish, every frame
    dropped: dict[str, int] = field(default_factory=dict)
    reconnects: dict[str, int] = field(default_factory=dict)
    track_ids: dict[str, set[int]] = field(default_factory=dict)
    track_classes: dict[str, dict[int, str]] = field(default_factory=dict)  # per source: track id -> class name
    setup: list[str] = field(default_factory=list)  # what ran: models, runtime, tracker (one line each)
    in_flight: int = 1  # frames in inference at once: its times overlap
    batch_sizes: dict[int, int] = field(default_factory=dict)  # frames per inference call -> calls
    interrupted: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def merge(self, other: RunStats) -> None:
        """Add a worker process's statistics; frames and time are the caller's to set."""
        for name, stage in other.stages.items():
            self.stages.setdefault(name, StageStats()).merge(stage)
        self.end_to_end.merge(other.end_to_end)
        for mine, theirs in ((self.dropped, other.dropped), (self.reconnects, other.reconnects),
                             (self.batch_sizes, other.batch_sizes)):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value
        for source, ids in other.track_ids.items():
            self.track_ids.setdefault(source, set()).update(ids)
        for source, classes in other.track_classes.items():
            self.track_classes.setdefault(source, {}).update(classes)
        self.setup = self.setup or list(other.setup)  # the workers run the same models
        self.in_flight = max(self.in_flight, other.in_flight)
        self.interrupted = self.interrupted or other.interrupted

    @property
    def tracks(self) -> int:
        return sum(len(ids) for ids in self.track_ids.values())

    def table(self) -> str:
        lines = [*self.setup,
                 f"frames {self.frames}  time {self.seconds:.1f} s  FPS {self.fps:.1f}  tracks {self.tracks}"
                 + ("  (interrupted)" if self.interrupted else "")]
        for source in sorted(self.track_ids):
            per_class = Counter(self.track_classes.get(source, {}).values())
            classes = ", ".join(f"{name} {n}" for name, n in sorted(per_class.items(), key=lambda kv: (-kv[1], kv[0])))
            lines.append(f"  {source}: {len(self.track_ids[source])} tracks" + (f" ({classes})" if classes else ""))
        parallel = f"; inference takes {self.in_flight} frames at once" if self.in_flight > 1 else ""
        lines.append(f"time per frame in each stage (the stages work on different frames at once{parallel}, "
                     "so these overlap: FPS counts frames out)")
        lines.append(f"{'stage':<12}{'frames':>8}{'mean ms':>10}{'max ms':>10}")
        for name, s in self.stages.items():
            lines.append(f"{name:<12}{s.count:>8}{s.mean_ms:>10.2f}{s.max_ms:>10.2f}")
        drops = ", ".join(f"{k} {v}" for k, v in self.dropped.items() if v) or "none"
        lines.append(f"dropped: {drops}")
        if self.batch_sizes:
            calls = sum(self.batch_sizes.values())
            mean = sum(k * v for k, v in self.batch_sizes.items()) / calls
            lines.append(f"inference calls: {calls}, {mean:.2f} frames per call")
        if self.reconnects:
            lines.append("reconnects: " + ", ".join(f"{k} {v}" for k, v in self.reconnects.items()))
        return "\n".join(lines)
