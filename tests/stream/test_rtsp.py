"""Live RTSP against a real server on loopback (GStreamer, tests/rtsp_server.py):
frames arrive, a dead or stalled camera is reported and reconnected with
backoff, and frame numbers continue across the gap."""

import threading
import time

from segstream.stream.sources import open_source

# Opening waits for the test server to prepare its stream, which a busy machine makes slow;
# the short `timeout`s only make stalls quick to notice.
OPEN_S = 30


def collect(source, seconds, events, frames):
    """Iterate `source` for `seconds`, recording frame numbers and status changes."""
    end = time.monotonic() + seconds
    for frame in source:
        frames.append(frame.seq)
        events.extend(e.status for e in source.pop_status())
        if time.monotonic() > end:
            break
    events.extend(e.status for e in source.pop_status())


def through_fault(source, fault, seconds=12):
    """Run `fault()` in the background while collecting from `source` (fast
    backoff for the test); returns (frame numbers, status changes)."""
    frames, events = [], []
    source.backoff = (0.2, 1.0)
    threading.Thread(target=fault, daemon=True).start()
    try:
        collect(source, seconds, events, frames)
    finally:
        source.close()
    return frames, events


def test_frames_arrive_with_increasing_numbers(rtsp_server):
    frames, events = [], []
    with open_source(rtsp_server.url, timeout=3, open_timeout=OPEN_S) as src:
        assert src.is_live
        collect(src, 1.5, events, frames)
    assert len(frames) >= 5 and frames == sorted(frames) and len(set(frames)) == len(frames)
    assert events[0] == "connected"


def test_a_restarted_camera_is_reconnected_and_numbers_continue(rtsp_server):
    def reboot():
        time.sleep(2.0)
        rtsp_server.kill()
        time.sleep(1.5)
        rtsp_server.start()

    src = open_source(rtsp_server.url, timeout=2, open_timeout=OPEN_S)
    frames, events = through_fault(src, reboot)
    assert "reconnecting" in events and events.count("connected") >= 2, events
    assert src.reconnects >= 1
    assert frames == sorted(frames) and len(set(frames)) == len(frames)  # numbering continues, never restarts
    gap = max(b - a for a, b in zip(frames, frames[1:]))
    assert gap < 10  # 1.5 s away at 10 fps would be 15: no numbers are invented for the outage
    # (smaller gaps are frames the freshest-frame policy skipped while this loop was busy)


def test_a_stalled_camera_is_reported_then_recovers(rtsp_server):
    def stall():
        time.sleep(2.0)
        rtsp_server.pause()  # the TCP connection stays open, nothing is sent
        time.sleep(3.5)
        rtsp_server.resume()

    frames, events = through_fault(open_source(rtsp_server.url, timeout=1.5, open_timeout=OPEN_S), stall)
    assert "stalled" in events and events.index("stalled") < len(events) - 1, events
    after = events[events.index("stalled"):]
    assert "connected" in after  # recovered
    assert len(frames) > 20


def test_without_reconnect_a_lost_camera_ends_the_stream(rtsp_server):
    def lose():
        time.sleep(1.5)
        rtsp_server.kill()

    # returns when the stream ends, well before 20 s
    _, events = through_fault(open_source(rtsp_server.url, timeout=2, open_timeout=OPEN_S, reconnect=False), lose, seconds=20)
    assert events[-1] == "ended" and "reconnecting" not in events


def test_a_password_in_the_url_never_reaches_a_log_or_an_error(rtsp_server, caplog):
    """Credentials are shown as ***, in the reconnect logs and in the one-line error."""
    import logging

    import pytest
    from segstream.stream.errors import SourceError

    def reboot():
        time.sleep(1.5)
        rtsp_server.kill()
        time.sleep(1.0)
        rtsp_server.start()

    caplog.set_level(logging.DEBUG)
    url = rtsp_server.url.replace("rtsp://", "rtsp://admin:s3cret@")
    _, events = through_fault(open_source(url, timeout=2, open_timeout=OPEN_S), reboot)
    assert "reconnecting" in events
    assert "s3cret" not in caplog.text and "admin:***@" in caplog.text
    with pytest.raises(SourceError) as err:
        open_source("rtsp://admin:s3cret@127.0.0.1:9/x?token=t0ken", timeout=1)
    assert "s3cret" not in str(err.value) and "t0ken" not in str(err.value) and "admin:***@127.0.0.1:9" in str(err.value)
