"""CPU time of each stage's threads while a pipeline runs (Linux), for the benchmarks."""

from __future__ import annotations

import os
import threading
from pathlib import Path


class ThreadCpu:
    """CPU seconds (user + system) of each named Python thread, sampled from
    /proc/self/task while the pipeline runs; threads of one name are added up."""

    # The pipeline's threads: capture (decoding and, since 0.1, preparing), infer, and
    # output (postprocess, track, publish); a thread per stage before that.
    STAGES = ("capture", "preprocess", "infer", "postprocess", "track", "publish", "output")

    def __init__(self, period_s: float = 0.2) -> None:
        self.period_s, self._latest = period_s, {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> ThreadCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(self.period_s):
            for th in threading.enumerate():
                try:
                    fields = Path(f"/proc/self/task/{th.native_id}/stat").read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                self._latest[th.native_id] = (th.name, (int(fields[11]) + int(fields[12])) / self._tick)

    def per_stage(self) -> dict[str, float]:
        """Seconds per thread name ("capture-vtest" counts as capture); 0 for threads the code has not."""
        out = dict.fromkeys(self.STAGES, 0.0)
        for name, seconds in self._latest.values():
            stage = name.split("-")[0]
            if stage in out:
                out[stage] += seconds
        return out
