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
    """Headless Chromium on the page for 3 s of its own time; Debian's chromium (CI installs it): never skipped."""
    assert CHROMIUM, "chromium is needed (apt-get install chromium)"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1300,800",
           "--virtual-time-budget=3000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


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
    shots = []
    for name in ("a.png", "b.png"):
        result = browser(url, f"--screenshot={tmp_path / name}")
        assert result.returncode == 0, result.stderr[-2000:]
        shots.append(cv2.imread(str(tmp_path / name)))
    picture = [shot[100:600, 20:660].astype(int) for shot in shots]  # where the page puts the first source
    assert all(p.std() > 20 for p in picture)  # a picture, not an empty box
    assert np.abs(picture[0] - picture[1]).mean() > 0.5  # and it moved between the two looks
    dom = browser(url, "--dump-dom").stdout
    assert "FPS" in dom and "latency" in dom and "tracks" in dom and "person" in dom


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
