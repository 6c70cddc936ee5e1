"""`--show` opens a real window on a real X server (Xvfb) whose pixels follow
the video, ends the run when the user presses q, and without a display fails
in one line before anything starts."""

import os
import shutil
import struct
import subprocess
import time

import numpy as np
import pytest
from conftest import REPO
from segstream.pipelines.show import tile
from segstream.stream.errors import ConfigError
from test_cli import SEGSTREAM, segstream


@pytest.fixture
def display():
    """A virtual X server for this test (Debian's xvfb; CI installs it). Missing, it fails: never skipped."""
    assert shutil.which("Xvfb") and shutil.which("xwd") and shutil.which("xdotool"), \
        "Xvfb, xwd and xdotool are needed (apt-get install xvfb x11-apps xdotool)"
    server = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    number = server.stdout.readline().strip()
    assert number.isdigit(), "Xvfb did not start"
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def screen(display):
    """The whole screen's pixels (B, G, R), read with xwd."""
    data = subprocess.run(["xwd", "-root", "-silent", "-display", display], capture_output=True, check=True).stdout
    header = struct.unpack(">25I", data[:100])
    header_size, width, height, bits, line = header[0], header[4], header[5], header[11], header[12]
    start = header_size + header[19] * 12  # after the colour map
    pixels = np.frombuffer(data[start:start + line * height], np.uint8).reshape(height, line)
    return pixels[:, : width * bits // 8].reshape(height, width, bits // 8)[..., :3]


def test_show_opens_a_window_that_follows_the_video_and_q_ends_the_run(video, seg_model, display):
    env = {**os.environ, "DISPLAY": display}
    # --realtime: 80 s of video, so the run is still going when q comes, however fast the machine
    run = subprocess.Popen([*SEGSTREAM, "run", "--source", video, "--model", seg_model, "--show", "--realtime",
                            "--no-progress"],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env)
    first, changed, deadline = None, False, time.monotonic() + 180
    while time.monotonic() < deadline and run.poll() is None:
        shot = screen(display)
        # The window is up and painted: the sample video's grey pavement is nowhere near black.
        if (shot.max(axis=2) > 0).sum() > 300 * 200:
            if first is None:
                first = shot
            elif np.abs(shot.astype(int) - first).mean() > 0.5:
                changed = True
                break
        time.sleep(0.5)
    assert first is not None and changed, "no window, or its pixels never changed"
    windows = subprocess.run(["xdotool", "search", "--name", "segstream"], env=env, timeout=30,
                             capture_output=True, text=True).stdout.split()
    assert windows
    for window in windows:  # no window manager here: focus it, then type
        subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, timeout=30, capture_output=True)
        subprocess.run(["xdotool", "key", "q"], env=env, timeout=30, capture_output=True)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err  # stopped by the user, as Ctrl-C: frames in flight finished
    assert "frames" in out and "(interrupted)" in out


def test_show_without_a_display_fails_in_one_line_before_starting(video, seg_model):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = segstream("run", "--source", video, "--model", seg_model, "--show", env=env, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--show needs a display, and DISPLAY is not set" in lines[0], result.stderr
    result = segstream("run", "--source", video, "--model", seg_model, "--show", env={**env, "DISPLAY": ":93"},
                       timeout=60)
    assert result.returncode != 0 and "no X display answers at DISPLAY=:93" in result.stderr


def test_sources_are_tiled_in_a_grid_that_fits_the_screen():
    images = [np.full((576, 768, 3), i * 40, np.uint8) for i in range(1, 6)]  # five cameras: a 3x2 grid
    out = tile(images, max_size=(1600, 900))
    assert out.shape[1] <= 1600 and out.shape[0] <= 900
    cell_h, cell_w = out.shape[0] // 2, out.shape[1] // 3
    assert out[cell_h // 2, cell_w // 2, 0] == 40 and out[cell_h + cell_h // 2, cell_w + cell_w // 2, 0] == 200
    assert out[cell_h + cell_h // 2, 2 * cell_w + cell_w // 2, 0] == 0  # the sixth cell is empty


def test_check_display_names_the_problem():
    from segstream.pipelines.show import check_display

    with pytest.raises(ConfigError, match="DISPLAY is not set"):
        check_display({})
    with pytest.raises(ConfigError, match="not a display name"):
        check_display({"DISPLAY": "nonsense"})
    check_display({"WAYLAND_DISPLAY": "wayland-0"})
