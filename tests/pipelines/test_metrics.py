"""`--metrics-port`: Prometheus metrics from a live run, and /healthz turning
unhealthy while a real RTSP camera is stalled, healthy again once it is back."""

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import REPO, free_port
from prometheus_client.parser import text_string_to_metric_families


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return None, ""


def wait_for(predicate, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return None


@pytest.mark.slow
def test_metrics_and_health_follow_a_stalling_camera(rtsp_server, seg_model):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run = subprocess.Popen(
        [sys.executable, "-m", "segstream", "run", "--source", rtsp_server.url, "--model", str(seg_model),
         "--metrics-port", str(port), "--health-stall", "2", "--timeout", "1.5", "--open-timeout", "30", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        def frames_published():
            status, text = get(f"{base}/metrics")
            if status != 200:
                return None
            families = {f.name: f for f in text_string_to_metric_families(text)}
            samples = families["segstream_frames"].samples if "segstream_frames" in families else []
            frames = sum(s.value for s in samples if s.name == "segstream_frames_total")
            return families if frames > 5 else None

        families = wait_for(frames_published, 30)
        assert families, run.stderr.read() if run.poll() is not None else "no frames in /metrics"
        names = {s.name for f in families.values() for s in f.samples}
        assert {"segstream_stage_seconds_bucket", "segstream_latency_seconds_count", "segstream_fps",
                "segstream_dropped_frames_total", "segstream_reconnects_total", "segstream_queue_depth",
                "segstream_source_state"} <= names
        assert get(f"{base}/healthz")[0] == 200

        rtsp_server.pause()  # connection open, no frames: stalled, then reconnect attempts fail
        assert wait_for(lambda: get(f"{base}/healthz")[0] == 503, 20), "never unhealthy"
        rtsp_server.resume()
        assert wait_for(lambda: get(f"{base}/healthz")[0] == 200, 30), "never healthy again"
    finally:
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=30)
    assert run.returncode in (0, 130), err


def test_metrics_port_in_use_is_a_one_line_error(video, seg_model):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "segstream", "run", "--source", str(video), "--model",
                              str(seg_model), "--metrics-port", str(port), "--max-frames", "2"],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().startswith(f"segstream: error: cannot serve metrics on 127.0.0.1:{port}") and "\n" not in run.stderr.strip()


def test_metrics_listen_on_loopback_unless_asked_and_idle_connections_are_closed():
    """Nothing listens beyond this machine by default; a client that connects
    and sends nothing is dropped instead of holding a server thread."""
    from segstream.pipelines.metrics import MetricsServer

    server = MetricsServer(0, idle_timeout_s=0.5)
    try:
        assert server._server.server_address[0] == "127.0.0.1"
        with socket.create_connection(("127.0.0.1", server.port)) as idle:
            idle.settimeout(60)
            assert idle.recv(1) == b""  # closed by the server, no request ever sent
        assert get(f"http://127.0.0.1:{server.port}/healthz")[0] == 503  # still serving: starting, no pipeline
    finally:
        server.close()
    everywhere = MetricsServer(0, host="0.0.0.0")
    try:
        assert everywhere._server.server_address[0] == "0.0.0.0"
    finally:
        everywhere.close()
