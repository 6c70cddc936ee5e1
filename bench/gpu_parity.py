"""Does a GPU backend give the CPU path's results? Boxes and masks, frame by frame.

Runs the model with ONNX Runtime on the CPU (the reference) and with the
chosen backend and device (default: torch on CUDA, which uses the GPU data
path: letterbox and masks on the device), matches objects by box IoU
(Hungarian) and prints, over the frames, the matched boxes' and masks' IoU
(min and mean) and how many objects only one side found. The bar: boxes IoU
>= 0.99 and masks IoU >= 0.97 for every matched object. A pose model's
keypoints are compared in pixels (no bar). For a semantic model
it prints the share of frame pixels with the same class (min over frames and
mean), against a bar of 0.999.

    python bench/gpu_parity.py [--backend torch] [--device cuda] [--precision fp32|fp16] [--frames 200]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from segstream.engines.model import Model
from segstream.engines.runtimes.engine_cache import BuildOptions
from segstream.stream.boxes import box_iou
from segstream.stream.masks import paired_mask_iou
from segstream.stream.sources import open_source
from segstream.stream.types import Detections, LabelMap

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")


KEYPOINT_SEEN = 0.5  # keypoints the reference scores at least this are compared


def match_objects(a: Detections, b: Detections, scores: list | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(box IoU, mask IoU, keypoint distance in pixels) of the objects of `a`
    and `b` that match (Hungarian on box IoU, above 0.5; keypoints that `b`
    sees), and how many objects of either have no match. `scores`, if given,
    gets `b`'s scores of the matched objects, then those of the unmatched of either."""
    if len(a) == 0 or len(b) == 0:
        if scores is not None:
            scores += [np.zeros(0), np.concatenate([a.scores, b.scores])]
        return np.zeros(0), np.zeros(0), np.zeros(0), len(a) + len(b)
    iou = box_iou(a.xyxy, b.xyxy)
    rows, cols = linear_sum_assignment(-iou)
    keep = iou[rows, cols] > 0.5
    rows, cols = rows[keep], cols[keep]
    if scores is not None:
        scores += [b.scores[cols], np.concatenate([np.delete(a.scores, rows), np.delete(b.scores, cols)])]
    masks, points = np.zeros(0), np.zeros(0)
    if a.masks is not None and b.masks is not None:
        masks = paired_mask_iou(a.masks[rows], b.masks[cols])
    if a.keypoints is not None and b.keypoints is not None:
        ka, kb = a.keypoints[rows], b.keypoints[cols]
        seen = kb[:, :, 2] >= KEYPOINT_SEEN
        points = np.linalg.norm(ka[:, :, :2] - kb[:, :, :2], axis=2)[seen]
    return iou[rows, cols], masks, points, len(a) + len(b) - 2 * len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=str(ASSETS / "video" / "vtest.avi"))
    parser.add_argument("--model", default=str(ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"))
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--device-path", action="store_true",
                        help="force the GPU data path on (it is on by itself on CUDA); e.g. to try it on the CPU")
    parser.add_argument("--tf32", action="store_true",
                        help="CUDA: let cuDNN run fp32 convolutions in TF32 (torch's default, which segstream turns off)")
    parser.add_argument("--no-cuda-graph", action="store_false", dest="cuda_graph",
                        help="torch on CUDA: launch layer by layer instead of replaying a CUDA graph")
    parser.add_argument("--cpu-resize", action="store_true",
                        help="on the GPU data path, letterbox on the CPU (cv2) and upload the small image")
    args = parser.parse_args()

    reference = Model.load(args.model, backend="onnxruntime", device="cpu")
    tested = Model.load(args.model, backend=args.backend, device=args.device,
                        build=BuildOptions(args.precision, cuda_graph=args.cuda_graph))
    if args.tf32:  # after the load, which turns it off
        from segstream.engines.runtimes.torch import allow_tf32

        allow_tf32(True)
    if args.device_path:
        tested = Model(tested.backend, tested.adapter, args.model, on_device=True)
    if tested.device_path is not None:
        tested.device_path.resize_on_device = not args.cpu_resize
    ran = "fp16" if getattr(tested.backend, "half", args.precision == "fp16") else "fp32"  # torch runs fp32 on a CPU
    ran = "the file's own precision" if tested.backend.name == "onnxruntime" else ran
    ran += ", TF32" if args.tf32 else ""
    ran += ", CUDA graph" if getattr(tested.backend, "cuda_graph", False) else ""
    print(f"reference: onnxruntime on cpu; tested: {tested.backend.name} on {args.device} ({ran}), "
          f"GPU data path {'off' if tested.device_path is None else 'on, resize on ' + ('cpu' if args.cpu_resize else 'device')}")
    box_ious, mask_ious, keypoint_px, agreement, unmatched, frames, scores = [], [], [], [], 0, 0, []
    with open_source(args.video) as source:
        for _, frame in zip(range(args.frames), source):
            a, b = tested(frame), reference(frame)
            frames += 1
            if isinstance(a, LabelMap):
                agreement.append(float((a.labels == b.labels).mean()))
                continue
            boxes, masks, points, alone = match_objects(a, b, scores)
            box_ious.append(boxes)
            mask_ious.append(masks)
            keypoint_px.append(points)
            unmatched += alone
    if agreement:
        values = np.array(agreement)
        verdict = "ok" if values.min() >= 0.999 else f"{(values < 0.999).sum()} frames below"
        print(f"{frames} frames, label maps of {len(tested.class_names)} classes")
        print(f"{'':<8}{'min':>9}{'mean':>10}{'bar':>7}  verdict")
        print(f"{'pixels':<8}{values.min():>9.5f}{values.mean():>10.5f}{0.999:>7}  {verdict}")
        return
    boxes = np.concatenate(box_ious) if box_ious else np.zeros(0)
    masks = np.concatenate(mask_ious) if mask_ious else np.zeros(0)
    print(f"{frames} frames, {len(boxes)} matched objects, {unmatched} found by one side only")
    print(f"{'':<8}{'min IoU':>9}{'mean IoU':>10}{'bar':>6}  verdict")
    for name, values, bar in (("boxes", boxes, 0.99), ("masks", masks, 0.97)):
        if len(values):
            verdict = "ok" if values.min() >= bar else f"{(values < bar).sum()} below"
            print(f"{name:<8}{values.min():>9.4f}{values.mean():>10.4f}{bar:>6}  {verdict}")
    # Where the misses are: objects near the confidence threshold may flip in or out, or merge in NMS.
    matched, alone = np.concatenate(scores[0::2]), np.concatenate(scores[1::2])
    below = matched[boxes < 0.99]
    for what, values in (("below the box bar", below), ("found by one side only", alone)):
        if len(values):
            print(f"reference scores of the objects {what}: {np.round(np.sort(values), 2).tolist()[:12]}")
    if (matched >= 0.5).any():
        print(f"objects scored >= 0.5: {(matched >= 0.5).sum()} matched, min box IoU {boxes[matched >= 0.5].min():.4f}, "
              f"{(alone >= 0.5).sum()} found by one side only")
    points = np.concatenate(keypoint_px) if keypoint_px else np.zeros(0)
    if len(points):
        print(f"keypoints: {len(points)} seen by the reference, distance max {points.max():.2f} px, "
              f"mean {points.mean():.3f} px, 99th percentile {np.percentile(points, 99):.2f} px")


if __name__ == "__main__":
    main()
