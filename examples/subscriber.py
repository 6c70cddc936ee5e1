"""Read segstream's messages in Python until every source has ended, and print
one JSON line per object: what another program gets from the wire.

    segstream run --source video.mp4 --model yolov8n-seg.onnx --publish tcp://127.0.0.1:5555 &
    python examples/subscriber.py tcp://127.0.0.1:5555 [--source video]

Start it before the run: ZeroMQ drops what is published before a subscriber
has connected. Without --source it stops once every source it has heard from
has sent its end-of-stream message. Its lines are what
examples/cpp_subscriber prints, so the two readers can be compared.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import segstream


def object_lines(message: dict) -> list[dict]:
    """One summary per object: box, track, mask area and bounds, keypoints."""
    dets = segstream.detections_from_message(message)  # numpy arrays, masks decoded from COCO RLE
    lines = []
    for i, obj in enumerate(message["objects"]):
        line = {"source": message["source"], "seq": message["seq"], "class_name": obj["class_name"],
                "score": obj["score"], "box": obj["box"], "track_id": obj["track_id"],
                "mask_area": None, "mask_bounds": None, "keypoints": obj["keypoints"]}
        if obj["mask"] is not None:
            crop, (x, y) = dets.masks.crops[i], dets.masks.origins[i]
            ys, xs = np.nonzero(crop)
            line["mask_area"] = int(len(xs))
            line["mask_bounds"] = ([int(x + xs.min()), int(y + ys.min()), int(x + xs.max() + 1), int(y + ys.max() + 1)]
                                   if len(xs) else [0, 0, 0, 0])
        lines.append(line)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("endpoint", help="where segstream publishes, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--source", action="append", help="only this source id (repeatable)")
    parser.add_argument("--timeout", type=float, help="exit 1 after this many seconds without a message")
    args = parser.parse_args()

    seen, ended = set(), set()
    with segstream.Subscriber(args.endpoint, sources=args.source) as sub:
        while True:
            try:
                message = sub.recv(timeout=args.timeout)
            except segstream.WireError as err:
                print(f"skipping malformed message: {err}", file=sys.stderr)
                continue
            if message is None:
                print(f"no message on {args.endpoint}", file=sys.stderr)
                return 1
            seen.add(message["source"])
            if message["type"] == "frame":
                for line in object_lines(message):
                    print(json.dumps(line, separators=(",", ":")))
            elif message["type"] == "eos":
                ended.add(message["source"])
                if ended >= set(args.source or seen):
                    return 0


if __name__ == "__main__":
    sys.exit(main())
