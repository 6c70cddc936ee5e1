"""`--show`: a window with the annotated frames as they leave the pipeline.

The pipeline only hands each source's newest frame over (a reference, no
copy, no drawing); a thread of the window's own draws, tiles and shows it,
so a slow screen skips frames instead of slowing the run. `q`, Esc or
closing the window ends the run as Ctrl-C does.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from ..stream.errors import ConfigError
from ..stream.types import Detections, Frame
from .draw import Trails, annotate, legend_entries
from .sinks import Sink

log = logging.getLogger(__name__)

WINDOW = "segstream"
MAX_WINDOW = (1600, 900)  # the mosaic is scaled down to fit this (width, height)
QUIT_KEYS = {ord("q"), ord("Q"), 27}  # Esc
REFRESH_MS = 15


def check_display(environ: dict[str, str] | None = None) -> None:
    """Fail in one line, before anything starts, when no window can open: Qt
    would otherwise abort the whole process at the first frame."""
    env = os.environ if environ is None else environ
    if env.get("WAYLAND_DISPLAY"):
        return
    display = env.get("DISPLAY", "")
    if not display:
        raise ConfigError("--show needs a display, and DISPLAY is not set (a server or SSH session without X "
                          "forwarding); use --save FILE.mp4 or --record FILE.mcap instead")
    host, _, number = display.rpartition(":")
    number = number.split(".")[0]
    if not number.isdigit():
        raise ConfigError(f"--show: DISPLAY={display} is not a display name like :0")
    if host in ("", "unix"):
        if Path(f"/tmp/.X11-unix/X{number}").exists():
            return
    else:
        try:
            socket.create_connection((host, 6000 + int(number)), timeout=2).close()
            return
        except OSError:
            pass
    raise ConfigError(f"--show: no X display answers at DISPLAY={display}; start one or use --save FILE.mp4")


def tile(images: Sequence[np.ndarray], max_size: tuple[int, int] = MAX_WINDOW) -> np.ndarray:
    """Images side by side in a near-square grid, each cell the size of the
    largest image scaled to fit (aspect kept, black bars), the whole scaled
    down to `max_size`."""
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    cell_h = max(im.shape[0] for im in images)
    cell_w = max(im.shape[1] for im in images)
    scale = min(1.0, max_size[0] / (cols * cell_w), max_size[1] / (rows * cell_h))
    cell_w, cell_h = max(1, int(cell_w * scale)), max(1, int(cell_h * scale))
    out = np.zeros((rows * cell_h, cols * cell_w, 3), np.uint8)
    for i, im in enumerate(images):
        s = min(cell_w / im.shape[1], cell_h / im.shape[0])
        w, h = max(1, int(im.shape[1] * s)), max(1, int(im.shape[0] * s))
        r, c = divmod(i, cols)
        y, x = r * cell_h + (cell_h - h) // 2, c * cell_w + (cell_w - w) // 2
        out[y:y + h, x:x + w] = cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) if (w, h) != im.shape[1::-1] else im
    return out


class ShowSink(Sink):
    """Keeps each source's newest frame for the window thread (see the module docstring)."""

    def __init__(self, source_ids: Sequence[str], class_names: Sequence[str], trails: int = 0,
                 on_quit: Callable[[], None] | None = None) -> None:
        self.source_ids = list(source_ids)
        self.class_names = class_names
        self.on_quit = on_quit
        self._trails = {sid: Trails(trails) for sid in source_ids} if trails else {}
        self._latest: dict[str, tuple[Frame, Detections, np.ndarray | None, Any, Any]] = {}
        self._shown: dict[str, np.ndarray] = {}
        self._cond = threading.Condition()
        self._closing = False
        self.shown = 0  # frames drawn into the window
        os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false;default.warning=false")  # Qt's thread notes
        self._thread = threading.Thread(target=self._loop, name="show", daemon=True)
        self._thread.start()

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any], labels: np.ndarray | None = None) -> None:
        trails = self._trails.get(frame.source_id)
        paths = trails.update(dets) if trails is not None else None  # every frame: whole trails when frames are skipped
        with self._cond:
            self._latest[frame.source_id] = (frame, dets, labels, paths, message)
            self._cond.notify()

    def _loop(self) -> None:
        opened = False
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._latest or self._closing, timeout=REFRESH_MS / 1000)
                    if self._closing:
                        return
                    latest, self._latest = self._latest, {}
                for sid, (frame, dets, labels, paths, message) in latest.items():
                    legend = legend_entries(labels, message) if labels is not None else None  # here: off the pipeline
                    self._shown[sid] = annotate(frame.image, dets, self.class_names, labels=labels, trails=paths,
                                                legend=legend)
                    self.shown += 1
                if self._shown:
                    cv2.imshow(WINDOW, tile([self._shown[s] for s in self.source_ids if s in self._shown]))
                    opened = True
                key = cv2.waitKey(REFRESH_MS) if opened else -1
                closed = opened and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1
                if (key & 0xFF) in QUIT_KEYS or closed:
                    log.info("window closed: stopping")
                    if self.on_quit is not None:
                        self.on_quit()
                    return
        except cv2.error as err:  # the display went away
            log.warning("--show: the window failed (%s); the run goes on without it", err)
        finally:
            if opened:
                cv2.destroyAllWindows()
                cv2.waitKey(1)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
