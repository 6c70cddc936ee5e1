"""`segstream run` on a real RTSP camera (tests/rtsp_server.py on loopback):
the camera reboots mid-run, the pipeline keeps going, subscribers are told
(`reconnecting`, then `connected`) and frame numbers continue."""

import subprocess
import sys
import time

import pytest

from conftest import REPO, free_port
from stream.subscriber import Subscriber


@pytest.mark.slow
def test_camera_reboot_mid_run_is_published_and_survived(rtsp_server, seg_model):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    messages = []
    with Subscriber(endpoint) as sub:
        run = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "run", "--source", rtsp_server.url, "--model", str(seg_model),
             "--publish", endpoint, "--timeout", "2", "--max-frames", "60", "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )
        rebooted = False
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            msg = sub.recv(timeout=1.0)
            if msg is None:
                if run.poll() is not None:
                    break
                continue
            messages.append(msg)
            frames = [m for m in messages if m["type"] == "frame"]
            if len(frames) == 15 and not rebooted:
                rebooted = True
                rtsp_server.kill()
                time.sleep(1.5)
                rtsp_server.start()
            if msg["type"] == "eos":
                break
        out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    statuses = [m["status"] for m in messages if m["type"] == "status"]
    assert "reconnecting" in statuses and statuses.count("connected") >= 1, statuses
    seqs = [m["seq"] for m in messages if m["type"] == "frame"]
    assert len(seqs) >= 40 and seqs == sorted(seqs)  # frames after the reboot continue the numbering
    assert messages[-1]["type"] == "eos"
    assert "reconnects:" in out
