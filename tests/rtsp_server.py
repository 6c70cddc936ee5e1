"""A real RTSP server on loopback for the tests: GStreamer's gst-rtsp-server
serving a video file as H.264, paced at `--fps`, looping.

Runs under the system Python, which has Debian's GStreamer bindings
(python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good/-ugly/-libav;
`.ci/run` installs them):

    /usr/bin/python3 tests/rtsp_server.py --video vtest.avi --port 8554 [--fps 10]

serves rtsp://127.0.0.1:PORT/stream and prints "ready" once it listens.
Tests stop it with SIGKILL (server died), SIGSTOP/SIGCONT (connection open,
no frames) and start it again on the same port (camera rebooted).
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--video", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--width", type=int, default=384)
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    # multifilesrc loops the file; decodebin finds the codec; the stream is
    # re-timed to a fixed rate and sent as low-latency H.264 with frequent key frames
    # so that a client joining (or re-joining) decodes within a fraction of a second.
    factory.set_launch(
        f"( multifilesrc location={args.video} loop=true ! decodebin ! videoconvert ! videoscale "
        f"! video/x-raw,width={args.width},pixel-aspect-ratio=1/1 ! videorate ! video/x-raw,framerate={args.fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/stream", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr, flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
