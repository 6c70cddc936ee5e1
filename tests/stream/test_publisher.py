"""Publishing over real ZeroMQ sockets: topics per source, a subscriber gets
what was sent, and a missing subscriber never blocks the publisher."""

import time

import numpy as np
import pytest
from conftest import free_port
from segstream.stream.errors import PublishError
from segstream.stream.publisher import Publisher
from segstream.stream.subscriber import Subscriber
from segstream.stream.types import Detections, Frame
from segstream.stream.wire import eos_message, frame_message


def message(source: str, seq: int) -> dict:
    frame = Frame(np.zeros((8, 8, 3), np.uint8), source, seq, time.time(), time.monotonic())
    return frame_message(frame, Detections([[0, 0, 4, 4]], [0.9], [0]), ["person"])


def subscribed(pub: Publisher, sub: Subscriber, source: str) -> None:
    """Wait until `sub` receives `source`'s messages from `pub` (ZeroMQ subscriptions
    propagate asynchronously), then consume the probes: no fixed sleep."""
    from segstream.stream.wire import status_message

    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "the subscription never arrived"
        pub.publish(status_message(source, "connected", "probe", -1, time.time(), 0))
        if sub.recv(timeout=0.05) is not None:
            break
    pub.publish(status_message(source, "ended", "last probe", -1, time.time(), 0))
    while (m := sub.recv(timeout=30)) is not None and m.get("detail") != "last probe":
        pass


def test_subscriber_receives_only_its_source():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with Publisher(endpoint) as pub, Subscriber(endpoint, sources=["cam1"]) as sub:
        subscribed(pub, sub, "cam1")
        for seq in range(5):
            pub.publish(message("cam10", seq))  # prefix of neither: must be filtered out
            pub.publish(message("cam1", seq))
        pub.publish(eos_message("cam1", 4, 5))
        got = [sub.recv(timeout=2) for _ in range(6)]
        assert [m["source"] for m in got] == ["cam1"] * 6
        assert [m["seq"] for m in got[:5]] == list(range(5))
        assert got[5]["type"] == "eos"
        assert sub.recv(timeout=0.2) is None


def test_publisher_without_subscribers_never_blocks():
    with Publisher(f"tcp://127.0.0.1:{free_port()}", hwm=4) as pub:
        t = time.monotonic()
        for seq in range(2000):
            pub.publish(message("cam", seq))
        assert time.monotonic() - t < 10  # would hang forever if sends blocked


def test_connecting_publisher_with_binding_subscriber():
    port = free_port()
    with Subscriber(f"@tcp://127.0.0.1:{port}") as sub, Publisher(f">tcp://127.0.0.1:{port}") as pub:
        # PUB/SUB drops messages until the subscription has crossed the connection.
        for seq in range(30):
            pub.publish(message("cam", seq))
            got = sub.recv(timeout=0.1)
            if got is not None:
                break
        assert got is not None and got["source"] == "cam"


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_memory_stays_bounded_with_a_stalled_subscriber():
    """A connected subscriber that never reads: ZeroMQ queues up to the
    high-water marks and then drops for it, so memory stops growing."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    big = message("cam0", 0)
    big["objects"] = big["objects"] * 200  # about 20 KB per message, like a busy frame with masks
    with Publisher(endpoint, hwm=16) as pub, Subscriber(endpoint, hwm=16) as stalled:
        subscribed(pub, stalled, "cam0")  # and from here on it never reads
        for seq in range(1000):  # warm up: fill the queues and the allocator
            pub.publish({**big, "seq": seq})
        before = rss_mb()
        for seq in range(1000, 6000):
            pub.publish({**big, "seq": seq})
        after = rss_mb()
        assert after - before < 20, (before, after)  # 5000 more messages (100 MB) did not accumulate
        assert stalled.recv(timeout=1) is not None  # it was connected all along: the backlog is bounded, not lost


def test_port_in_use_is_a_one_line_error():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with Publisher(endpoint):
        with pytest.raises(PublishError, match="cannot bind .* in use"):
            Publisher(endpoint)


def test_bad_endpoint_is_rejected():
    with pytest.raises(PublishError, match="bad ZeroMQ endpoint"):
        Publisher("127.0.0.1:5555")


def test_a_slow_subscriber_with_latest_gets_the_newest_frame_and_every_status():
    """A robot that reads slower than frames come wants the present, not a
    backlog: superseded frames are skipped per source, while status and
    end-of-stream messages all arrive, in order."""
    from segstream.stream.wire import status_message

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    # A queue deep enough for the whole burst: at the default 64 a loaded machine drops its tail
    # (end-of-stream included) before the subscriber sees it, which is the publisher's policy, not this test's.
    with Publisher(endpoint, hwm=1000) as pub, Subscriber(endpoint, latest=True) as sub:
        subscribed(pub, sub, "cam0")
        subscribed(pub, sub, "cam1")
        for seq in range(30):
            pub.publish(message("cam0", seq))
            pub.publish(message("cam1", seq))
            if seq == 10:
                pub.publish(status_message("cam0", "stalled", "no frame for 3 s", seq, time.time(), 0))
        pub.publish(eos_message("cam1", 29, 30))
        time.sleep(0.5)  # most of it arrives while the subscriber is busy; how much is up to the machine
        got = []
        deadline = time.monotonic() + 30
        while not got or got[-1]["type"] != "eos":  # the last message sent: everything before it is in
            assert time.monotonic() < deadline, got
            if (msg := sub.recv(timeout=1.0)) is not None:
                got.append(msg)
    frames = [(m["source"], m["seq"]) for m in got if m["type"] == "frame"]
    for source in ("cam0", "cam1"):
        seqs = [seq for s, seq in frames if s == source]
        assert seqs == sorted(seqs) and seqs[-1] == 29  # in order, and the newest is never the one skipped
    assert [m["type"] for m in got if m["type"] != "frame"] == ["status", "eos"]  # never skipped
    assert sub.skipped + len(frames) == 60 and sub.skipped > 0


def test_the_publisher_hears_each_new_subscriber():
    """Each subscriber that connects counts once, even to a topic others already
    hold: the pipeline tells every one of them the sources' states."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with Publisher(endpoint) as pub:
        assert pub.joined() == 0
        heard = 0
        with Subscriber(endpoint), Subscriber(endpoint):
            deadline = time.monotonic() + 30
            while heard < 2 and time.monotonic() < deadline:
                heard += pub.joined()
                time.sleep(0.01)
        assert heard == 2
