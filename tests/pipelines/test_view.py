"""`--view PORT` shows the run live in a real browser (headless Chromium):
the annotated picture moves and the counts are beside it; frames are drawn
and encoded only while someone watches, and only on loopback by default."""

import json
import shutil
import subprocess
import time
import urllib.request

import cv2
import numpy as np
import pytest
from conftest import REPO, free_port
from segstream.pipelines.view import parse_view
from test_cli import SEGSTREAM

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def stats(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats.json", timeout=10) as r:
        return json.load(r)


def browser(url, *args):
    """Headless Chromium on the page (Debian's chromium; CI installs it): never skipped. It stops
    at most 5 s after the page starts loading; a run that hangs on a loaded machine counts as a miss."""
    assert CHROMIUM, "chromium is needed (apt-get install chromium)"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1300,800", "--timeout=5000",
           *args, url]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None


def until(look, ok, deadline_s=180):
    """Look again until what is seen is `ok` (however slow the machine), or fail."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        seen = look()
        if seen is not None and ok(seen):
            return seen
        time.sleep(0.5)
    pytest.fail("the page never showed it")


@pytest.fixture
def viewed_run(video, seg_model):
    port = free_port()
    # --realtime: 80 s of video, still running while the browser looks, however fast the machine
    run = subprocess.Popen([*SEGSTREAM, "run", "--source", video, "--model", seg_model, "--classes", "person",
                            "--realtime", "--view", str(port), "--no-progress"], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if stats(port)["vtest"]["frames"] > 0:
                break
        except OSError:
            time.sleep(0.3)
    yield port
    run.terminate()
    run.communicate(timeout=60)


def test_the_browser_shows_the_moving_annotated_picture_and_the_counts(viewed_run, tmp_path):
    url = f"http://127.0.0.1:{viewed_run}/"

    def picture():
        shot = tmp_path / "shot.png"
        shot.unlink(missing_ok=True)
        if browser(url, f"--screenshot={shot}") is None or not shot.exists():
            return None
        return cv2.imread(str(shot))[100:600, 20:660].astype(int)  # where the page puts the first source

    first = until(picture, lambda p: p.std() > 20)  # a picture, not an empty box
    until(picture, lambda p: p.std() > 20 and np.abs(p - first).mean() > 0.5)  # and it moves

    def page():
        result = browser(url, "--dump-dom")
        return None if result is None else result.stdout

    until(page, lambda dom: all(word in dom for word in ("FPS", "latency", "tracks", "person")))


def test_nothing_is_encoded_while_nobody_watches(viewed_run):
    """The browser is gone: frames go on, not one more picture is drawn or encoded."""
    browser(f"http://127.0.0.1:{viewed_run}/")
    time.sleep(3.0)  # let the last request the browser left behind finish (it waits up to 2 s)
    before = stats(viewed_run)["vtest"]
    deadline = time.monotonic() + 60
    while stats(viewed_run)["vtest"]["frames"] < before["frames"] + 10 and time.monotonic() < deadline:
        time.sleep(0.3)
    after = stats(viewed_run)["vtest"]
    assert after["frames"] >= before["frames"] + 10 and after["encoded"] == before["encoded"]


def test_view_listens_on_loopback_unless_told():
    assert parse_view("8080") == ("127.0.0.1", 8080)
    assert parse_view("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_view("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ValueError, match="give PORT or HOST:PORT"):
        parse_view("http://x")


def test_a_view_port_in_use_is_a_one_line_error():
    import socket

    from segstream.pipelines.view import ViewServer
    from segstream.stream.errors import ConfigError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"--view {port}: cannot listen on 127.0.0.1:{port}"):
            ViewServer(str(port), ["cam0"], ["person"])
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    view = ViewServer(f"[::1]:{port}", ["cam0"], ["person"])  # IPv6 loopback too
    assert view.address == f"http://[::1]:{port}/"
    view.close()
