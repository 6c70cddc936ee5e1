"""Draw segstream's results on a video file or a webcam, frame by frame.

    python examples/draw_video.py video.mp4 yolov8n-seg.onnx [yolo11n-pose.onnx] --out annotated.mp4
    python examples/draw_video.py 0 yolov8n-seg.onnx --show        # webcam 0; q quits

Masks, boxes, track ids and skeletons are drawn by `segstream.annotate`, the
same drawing as `segstream run --save`. This is the pipeline's work done in
one thread, in a dozen lines, to show the parts; `segstream run` (or
`segstream.run(...)`) overlaps them on several threads and is faster.
"""

from __future__ import annotations

import argparse

import cv2
import segstream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="video file, image folder, webcam index or rtsp:// URL")
    parser.add_argument("models", nargs="+", help="ONNX models: a segmentation model, optionally a pose model")
    parser.add_argument("--classes", default="person", help="comma-separated classes to keep (default person)")
    parser.add_argument("--out", help="write the annotated video here (.mp4)")
    parser.add_argument("--snapshot", help="write the last annotated frame here (.jpg or .png)")
    parser.add_argument("--show", action="store_true", help="show the frames in a window (q quits)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = parser.parse_args()

    models = segstream.load_models(args.models, classes=args.classes.split(","))
    tracker = segstream.DeepSort()  # motion + the colours inside each mask
    writer, picture = None, None
    with segstream.open_source(args.source) as source:
        for count, frame in enumerate(source, 1):
            dets = models(frame)
            dets = dets.with_(embeddings=segstream.color_embeddings(frame, dets))
            tracks = tracker.update(dets)
            picture = segstream.annotate(frame.image, tracks, models.class_names)
            if args.out:
                if writer is None:
                    size = (frame.width, frame.height)
                    writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*"mp4v"), source.fps or 25, size)
                writer.write(picture)
            if args.show:
                cv2.imshow("segstream", picture)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
            if count == args.max_frames:
                break
    if writer is not None:
        writer.release()
    if args.snapshot and picture is not None:
        cv2.imwrite(args.snapshot, picture, [cv2.IMWRITE_JPEG_QUALITY, 80])
    models.close()


if __name__ == "__main__":
    main()
