"""`--view [HOST:]PORT`: the run, live, in a browser.

One page lists every source with its annotated picture and, beside it, FPS,
latency, track count, per-class counts and the source's state. The picture
is pulled: the page asks for the next frame (`/frame/<source>.jpg?after=N`)
once the last one has arrived, and the server answers with the newest frame
it has, drawn and encoded then, once for all watchers of that frame. So
frames are only encoded while someone is watching, and only as fast as they
take them; the pipeline hands over references and never waits. A browser
that vanishes costs nothing: no request, no work, no memory held.

Loopback unless an address is given: the picture is the camera's.
"""

from __future__ import annotations

import collections
import html
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from ..stream.errors import ConfigError
from ..stream.types import Detections, Frame
from .draw import Trails, annotate, legend_entries
from .sinks import Sink

log = logging.getLogger(__name__)

WAIT_S = 2.0  # a frame request waits this long for a newer frame, then gets the current one
MAX_CLIENTS = 32  # requests served at once; more are told to come back
JPEG_QUALITY = 80
MAX_WIDTH = 1280  # pictures are scaled down to this width before encoding
SOCKET_TIMEOUT_S = 10.0  # a browser that stops reading is dropped after this


def parse_view(value: str) -> tuple[str, int]:
    """`PORT` or `HOST:PORT` (`[::1]:PORT` for IPv6) -> (host, port); loopback by default."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: give PORT or HOST:PORT, e.g. 8080 or 0.0.0.0:8080")
    return host or "127.0.0.1", int(port)


class _Source:
    """What the page shows of one source: its newest frame (references) and its figures."""

    def __init__(self, trails: int) -> None:
        self.latest: tuple[Frame, Detections, np.ndarray | None, Any, Any] | None = None
        self.version = 0
        self.jpeg: tuple[int, bytes] = (0, b"")  # (version, JPEG) last encoded
        self.encode_lock = threading.Lock()
        self.trails = Trails(trails) if trails else None
        self.times: collections.deque[float] = collections.deque(maxlen=30)
        self.latency_ms: float | None = None
        self.classes: dict[str, int] = {}
        self.tracks = 0
        self.state = "starting"
        self.frames = 0
        self.encoded = 0  # frames drawn and encoded for watchers (none while nobody watches)


class ViewServer(Sink):
    """The sink behind `--view` (see the module docstring)."""

    def __init__(self, address: str, source_ids: Sequence[str], class_names: Sequence[str], trails: int = 0) -> None:
        host, port = parse_view(address)
        self.class_names = class_names
        self.sources = {sid: _Source(trails) for sid in source_ids}
        self._cond = threading.Condition()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        handler = type("Handler", (_Handler,), {"view": self})
        server = type("Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6 if ":" in host
                                                         else socket.AF_INET})
        try:
            self._server = server((host, port), handler)
        except OSError as err:
            raise ConfigError(f"--view {address}: cannot listen on {host}:{port} ({err.strerror}); "
                              "choose another port") from None
        self._server.daemon_threads = True
        self.address = f"http://{f'[{host}]' if ':' in host else host}:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="view", daemon=True)
        self._thread.start()
        log.warning("live view on %s", self.address)

    # ---- the pipeline's side: references only, never a wait -----------------------------

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any], labels: np.ndarray | None = None) -> None:
        src = self.sources.get(frame.source_id)
        if src is None:
            return
        paths = src.trails.update(dets) if src.trails is not None else None
        objects = message.get("objects", ())
        counts = dict(collections.Counter(obj.get("class_name", "?") for obj in objects))
        with self._cond:
            src.latest = (frame, dets, labels, paths, message)
            src.version += 1
            src.frames += 1
            src.times.append(time.monotonic())
            src.latency_ms = (message.get("latency_ms") or {}).get("total")
            src.classes, src.tracks = counts, len(objects)
            if src.state in ("starting", "file"):
                src.state = "running"
            self._cond.notify_all()

    def status(self, message: dict[str, Any]) -> None:
        src = self.sources.get(message.get("source", ""))
        if src is not None:
            src.state = str(message.get("status", src.state))

    def end_source(self, source_id: str, last_seq: int, frames: int) -> None:
        src = self.sources.get(source_id)
        if src is not None:
            src.state = "ended"
            with self._cond:
                self._cond.notify_all()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- the browser's side --------------------------------------------------------------

    def frame_jpeg(self, sid: str, after: int) -> tuple[int, bytes] | None:
        """The newest frame of `sid` once it is newer than `after` (waiting up to
        WAIT_S), drawn and encoded once however many watchers ask for it."""
        src = self.sources.get(sid)
        if src is None:
            return None
        with self._cond:
            self._cond.wait_for(lambda: src.version > after or src.state == "ended", timeout=WAIT_S)
            latest, version = src.latest, src.version
        if latest is None:
            return version, b""
        with src.encode_lock:
            if src.jpeg[0] != version:
                frame, dets, labels, paths, message = latest
                legend = legend_entries(labels, message) if labels is not None else None
                image = annotate(frame.image, dets, self.class_names, labels=labels, trails=paths, legend=legend)
                if image.shape[1] > MAX_WIDTH:
                    scale = MAX_WIDTH / image.shape[1]
                    image = cv2.resize(image, (MAX_WIDTH, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
                ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                src.jpeg = (version, data.tobytes() if ok else b"")
                src.encoded += 1
            return src.jpeg

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        out = {}
        for sid, src in self.sources.items():
            times = [t for t in src.times if now - t < 5.0]
            fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
            out[sid] = {"fps": round(fps, 1), "latency_ms": src.latency_ms, "tracks": src.tracks,
                        "classes": src.classes, "state": src.state, "frames": src.frames, "encoded": src.encoded}
        return out

    def page(self) -> bytes:
        cards = "\n".join(
            f'<section class="src" data-source="{html.escape(sid)}"><h2>{html.escape(sid)}</h2>'
            f'<img alt="{html.escape(sid)}"><div class="figures">starting</div></section>'
            for sid in self.sources)
        return PAGE.replace("{cards}", cards).encode()


class _Handler(BaseHTTPRequestHandler):
    view: ViewServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(SOCKET_TIMEOUT_S)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("view: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if not self.view._slots.acquire(blocking=False):
            self._send(503, b"too many viewers", "text/plain")
            return
        try:
            url = urlparse(self.path)
            if url.path == "/":
                self._send(200, self.view.page(), "text/html; charset=utf-8")
            elif url.path == "/stats.json":
                self._send(200, json.dumps(self.view.stats()).encode(), "application/json")
            elif url.path.startswith("/frame/") and url.path.endswith(".jpg"):
                after = parse_qs(url.query).get("after", ["0"])[0]
                found = self.view.frame_jpeg(url.path[len("/frame/"):-len(".jpg")], int(after) if after.isdigit() else 0)
                if found is None:
                    self._send(404, b"no such source", "text/plain")
                else:
                    version, data = found
                    self._send(200 if data else 204, data, "image/jpeg", {"X-Frame-Version": str(version)})
            else:
                self._send(404, b"not found", "text/plain")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the browser went away
        finally:
            self.view._slots.release()

    def _send(self, code: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>segstream</title>
<style>
body { font-family: sans-serif; background: #111; color: #eee; margin: 1em; }
main { display: flex; flex-wrap: wrap; gap: 1em; }
.src { background: #222; padding: .5em; border-radius: 6px; }
.src h2 { margin: 0 0 .3em; font-size: 1.1em; }
.src img { display: block; max-width: 48vw; min-width: 320px; background: #000; }
.figures { font-size: .95em; margin-top: .4em; white-space: pre-line; }
</style></head>
<body><h1>segstream</h1><main>
{cards}
</main>
<script>
// Each picture asks for the next frame when the last has arrived: the server
// draws and encodes only what a watcher takes, at the pace it takes it.
for (const card of document.querySelectorAll(".src")) {
  const sid = card.dataset.source, img = card.querySelector("img");
  let after = 0;
  const next = async () => {
    try {
      const r = await fetch(`/frame/${encodeURIComponent(sid)}.jpg?after=${after}`, {cache: "no-store"});
      after = Number(r.headers.get("X-Frame-Version") || after);
      if (r.status === 200) {
        const url = URL.createObjectURL(await r.blob());
        img.onload = () => { URL.revokeObjectURL(url); setTimeout(next, 0); };
        img.src = url;
        return;
      }
    } catch (e) {}
    setTimeout(next, 500);
  };
  next();
}
async function figures() {
  try {
    const stats = await (await fetch("/stats.json", {cache: "no-store"})).json();
    for (const card of document.querySelectorAll(".src")) {
      const s = stats[card.dataset.source];
      if (!s) continue;  // the figures beside the picture: state, FPS, latency, counts
      const classes = Object.entries(s.classes).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
      const latency = s.latency_ms === null ? "-" : `${s.latency_ms.toFixed(0)} ms`;
      card.querySelector(".figures").textContent =
        `${s.state} · ${s.fps.toFixed(1)} FPS · latency ${latency}\\ntracks ${s.tracks}: ${classes}`;
    }
  } catch (e) {}
  setTimeout(figures, 1000);
}
figures();
</script></body></html>
"""
