"""The GPU data path for YOLO and semantic models: frames go to the GPU once, come back as results.

With a backend that runs on a CUDA device (TensorRT, torch), the CPU path
would letterbox on the CPU, copy the blob up, copy every output (including
the [1, 32, 160, 160] prototypes, or a semantic model's [1, C, h, w] logits)
down and finish on the CPU. Here instead:
- the uint8 frame is copied up once, from pinned memory (half the bytes of a
  float blob, and asynchronous);
- letterbox, RGB and scaling to [0, 1] (and a semantic model's mean/std)
  run on the GPU;
- YOLO: only the small detection head comes back for NMS on the CPU; mask
  assembly (coefficients @ prototypes, bilinear upsampling to the frame,
  crop to the box) runs on the GPU and only the final boolean masks of the
  kept objects come back;
- semantic: the logits are resized to the frame and arg-maxed on the GPU,
  and only the uint8 label map comes back (on the CPU this costs about 64 ms
  a 1080p frame for 21 classes).

The operations are plain torch and are tested on the CPU against the numpy
path (tests/engines/test_device_path.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from ..stream.masks import BoxMasks
from ..stream.picture import YUV_TO_BGR, transform_fixed_point
from ..stream.types import Detections, Frame, LabelMap
from .adapters.semantic import SemanticAdapter, logit_region
from .adapters.yolo import YoloAdapter
from .ops.label_resize import label_dtype
from .ops.letterbox import PAD_VALUE, Letterbox, letterbox_frame, letterbox_geometry
from .ops.masks import box_pixel_ranges, proto_region


@lru_cache(maxsize=32)
def cv2_linear_taps(dst: int, src: int, rows: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's INTER_LINEAR taps for uint8 images along one axis: output i =
    in[lo[i]] * w0[i] + in[hi[i]] * w1[i], weights in 11-bit fixed point
    (they sum to 2048), computed in float32 as `cv::resize` does. At the
    borders cv2 treats the axes differently: columns clamp the sample
    position to the edge pixel, rows keep the fraction and repeat the edge row."""
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst) + 0.5) * scale - 0.5).astype(np.float32)
    lo = np.floor(f).astype(np.int64)
    f = (f - lo).astype(np.float32)
    if rows:
        hi = np.clip(lo + 1, 0, src - 1)
        lo = np.clip(lo, 0, src - 1)
    else:
        f[lo < 0], lo[lo < 0] = 0, 0
        f[lo >= src - 1], lo[lo >= src - 1] = 0, src - 1
        hi = np.minimum(lo + 1, src - 1)
    w1 = np.rint(f * np.float32(2048)).astype(np.int32)
    w0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int32)
    return lo, hi, w0, w1


@lru_cache(maxsize=32)
def _taps_on(device: Any, dst: int, src: int, rows: bool) -> tuple[Any, ...]:
    """`cv2_linear_taps` as tensors on `device`, uploaded once per size."""
    import torch

    return tuple(torch.from_numpy(t).to(device) for t in cv2_linear_taps(dst, src, rows))


def resize_like_cv2(image: Any, new_h: int, new_w: int) -> Any:
    """(H, W, C) uint8 tensor -> (new_h, new_w, C) int32 tensor equal to
    `cv2.resize(..., INTER_LINEAR)`: the same fixed-point taps and the same
    rounding as OpenCV's vectorised uint8 path. A float
    resize differs from cv2 by a grey level in most pixels, and the network
    then moves the odd ambiguous box (22 of 1,919 boxes below IoU 0.99 on the
    sample video); with this, the GPU path sees the CPU path's pixels."""
    import torch

    h, w = int(image.shape[0]), int(image.shape[1])
    ylo, yhi, b0, b1 = _taps_on(image.device, new_h, h, True)
    xlo, xhi, a0, a1 = _taps_on(image.device, new_w, w, False)
    x = image.to(torch.int32)
    rows = x[:, xlo] * a0[None, :, None] + x[:, xhi] * a1[None, :, None]  # horizontal pass, 11 fractional bits
    top, bottom = rows[ylo] >> 4, rows[yhi] >> 4
    out = (((b0[:, None, None] * top) >> 16) + ((b1[:, None, None] * bottom) >> 16) + 2) >> 2
    return out.clamp_(0, 255)


def letterbox_on_device(image: Any, input_hw: tuple[int, int]) -> tuple[Any, Letterbox]:
    """(H, W, 3) uint8 BGR tensor -> ((1, 3, ih, iw) float32 RGB in [0, 1], Letterbox),
    with the same geometry and the same pixels as `engines.ops.letterbox.letterbox`."""
    lb, new_w, new_h = letterbox_geometry((int(image.shape[0]), int(image.shape[1])), input_hw)
    if (new_w, new_h) != (int(image.shape[1]), int(image.shape[0])):
        image = resize_like_cv2(image, new_h, new_w)
    return _padded_blob(image, lb), lb


def letterbox_planes_on_device(y: Any, u: Any, v: Any, input_hw: tuple[int, int]) -> tuple[Any, Letterbox]:
    """A frame's decoded planes (uint8 tensors: Y (H, W), U and V at half size)
    -> `letterbox_on_device`'s blob, made as `Frame.resized` makes it on the
    CPU: each plane resized to the network's size, then converted to BGR.
    Only the planes go up: half the bytes of the BGR frame."""
    import torch

    lb, new_w, new_h = letterbox_geometry((int(y.shape[0]), int(y.shape[1])), input_hw)
    planes = [resize_like_cv2(p[:, :, None], new_h, new_w)[:, :, 0] for p in (y, u, v)]  # int32
    weights, offsets = (torch.from_numpy(a).to(y.device) for a in transform_fixed_point(YUV_TO_BGR))
    bgr = (planes[0][..., None] * weights[:, 0] + planes[1][..., None] * weights[:, 1]
           + planes[2][..., None] * weights[:, 2] + offsets) >> 10
    return _padded_blob(bgr.clamp_(0, 255), lb), lb


def _padded_blob(image: Any, lb: Letterbox) -> Any:
    """(h, w, 3) BGR tensor of values 0..255, already resized -> the padded
    (1, 3, ih, iw) float32 RGB blob in [0, 1], as `to_blob` scales."""
    import torch

    (ih, iw), (new_h, new_w) = lb.input_hw, (int(image.shape[0]), int(image.shape[1]))
    x = image.permute(2, 0, 1).flip(0)[None].float()  # BGR -> RGB, NCHW
    scale = np.float32(1 / 255.0)  # as `to_blob` scales: the same float32 values, bit for bit
    blob = torch.full((1, 3, ih, iw), float(np.float32(PAD_VALUE) * scale), dtype=torch.float32, device=image.device)
    # A Python float, not a device tensor: making one copies it up from pageable memory, which waits for
    # everything queued on the stream (the previous frame's inference). Multiplied in float32 all the same.
    blob[:, :, lb.top:lb.top + new_h, lb.left:lb.left + new_w] = x * float(scale)
    return blob


def assemble_masks_on_device(protos: Any, coefficients: Any, xyxy: np.ndarray, frame_hw: tuple[int, int]) -> Any:
    """(N, H, W) bool tensor: Ultralytics' `process_mask_native` on the device
    (prototype padding cut, bilinear upsampling to the frame, crop to the box)."""
    import torch
    import torch.nn.functional as F

    h, w = frame_hw
    n = int(coefficients.shape[0])
    if n == 0:
        return torch.zeros((0, h, w), dtype=torch.bool, device=protos.device)
    top, bottom, left, right = proto_region(tuple(protos.shape[1:]), frame_hw)
    region = protos[:, top:bottom, left:right].float()
    c, rh, rw = region.shape
    logits = (coefficients.float() @ region.reshape(c, -1)).reshape(1, n, rh, rw)
    upsampled = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)[0]
    r = torch.from_numpy(box_pixel_ranges(xyxy, frame_hw)).to(protos.device)
    cols = torch.arange(w, device=protos.device)[None, None, :]
    rows = torch.arange(h, device=protos.device)[None, :, None]
    inside = ((cols >= r[:, 0, None, None]) & (cols < r[:, 2, None, None])
              & (rows >= r[:, 1, None, None]) & (rows < r[:, 3, None, None]))
    return (upsampled > 0) & inside


def box_crops_to_host(masks: Any, ranges: np.ndarray, frame_hw: tuple[int, int]) -> BoxMasks:
    """(N, H, W) device masks that are zero outside their end-exclusive pixel
    `ranges` (x0, y0, x1, y1) -> `BoxMasks` on the host, with one
    device-to-host copy of just the box pixels instead of N whole frames."""
    import torch

    boxes = ranges.tolist()
    pieces = [masks[i, y0:y1, x0:x1].reshape(-1) for i, (x0, y0, x1, y1) in enumerate(boxes)]
    flat = torch.cat(pieces).cpu().numpy() if pieces else np.zeros(0, bool)
    crops, at = [], 0
    for x0, y0, x1, y1 in boxes:
        h, w = max(y1 - y0, 0), max(x1 - x0, 0)
        crops.append(flat[at:at + h * w].reshape(h, w))
        at += h * w
    return BoxMasks(crops, ranges[:, :2], frame_hw)


class FrameUploader:
    """Copies frames to the device through one reused pinned buffer (an
    asynchronous copy; the next frame waits only for the previous copy)."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self._pinned: Any = None
        self._done: Any = None

    def __call__(self, image: np.ndarray) -> Any:
        torch = self.torch
        host = torch.from_numpy(image)
        if self.device.type != "cuda":
            return host.to(self.device)
        if self._pinned is None or self._pinned.shape != host.shape:
            self._pinned = torch.empty(host.shape, dtype=torch.uint8).pin_memory()
        if self._done is not None:
            self._done.synchronize()  # the previous frame has left the buffer
        self._pinned.copy_(host)
        on_device = self._pinned.to(self.device, non_blocking=True)
        self._done = torch.cuda.Event()
        self._done.record()
        return on_device


def labels_on_device(logits: Any, lb: Letterbox, chunk: int = 16) -> Any:
    """(C, h, w) logits tensor -> (H, W) int64 class tensor at frame resolution:
    the semantic adapter's post-processing (padding cut off, bilinear resize
    to the frame, argmax there; the first class wins a tie) on the device.
    Classes go `chunk` at a time with a running maximum, so a 150-class model
    at 1080p never holds 150 full-frame planes."""
    import torch
    import torch.nn.functional as F

    y0, y1, x0, x1 = logit_region(tuple(logits.shape[1:]), lb)
    crop = logits[:, y0:y1, x0:x1].float()[None]
    best, labels = None, None
    for k in range(0, crop.shape[1], chunk):
        planes = F.interpolate(crop[:, k:k + chunk], size=lb.frame_hw, mode="bilinear", align_corners=False)[0]
        value, index = planes.max(dim=0)
        if best is None:
            best, labels = value, index
        else:
            higher = value > best
            labels = torch.where(higher, index + k, labels)
            best = torch.maximum(best, value)
    return labels


class DevicePath:
    """What the GPU data paths share: the frame goes up once and is
    letterboxed there, and the backend takes and returns device tensors.

    `resize_on_device=False` letterboxes on the CPU with cv2, as the CPU path
    does, and uploads the small letterboxed image instead of the frame (less
    to copy up); on the device, `resize_like_cv2` gives cv2's pixels too."""

    def __init__(self, adapter: Any, backend: Any, resize_on_device: bool = True) -> None:
        self.adapter = adapter
        self.backend = backend
        self.resize_on_device = resize_on_device
        self.upload = FrameUploader(backend.device)
        self.upload_planes = [FrameUploader(backend.device) for _ in range(3)]  # Y, U, V: each its own buffer

    def letterboxed(self, frame: Frame) -> tuple[Any, Letterbox]:
        """(1, 3, ih, iw) float32 RGB in [0, 1] on the device, and its geometry."""
        if self.resize_on_device and frame.yuv is not None:
            planes = (frame.yuv.y, frame.yuv.u, frame.yuv.v)
            y, u, v = (up(np.ascontiguousarray(p)) for up, p in zip(self.upload_planes, planes))
            return letterbox_planes_on_device(y, u, v, self.adapter.input_hw)
        if self.resize_on_device:
            return letterbox_on_device(self.upload(frame.image), self.adapter.input_hw)
        padded, lb = letterbox_frame(frame, self.adapter.input_hw)
        blob, _ = letterbox_on_device(self.upload(padded), self.adapter.input_hw)  # already in place: only scaled
        return blob, lb

    def infer(self, feed: dict[str, Any]) -> dict[str, Any]:
        return self.backend.infer_device(feed)


class DeviceSemanticPath(DevicePath):
    """Pre/post-processing of a `SemanticAdapter` on the backend's device:
    the same mean/std and the same label map as the CPU path."""

    def __init__(self, adapter: Any, backend: Any, resize_on_device: bool = True) -> None:
        import torch

        super().__init__(adapter, backend, resize_on_device)
        self.scale = torch.from_numpy(adapter.norm_scale).to(backend.device)
        self.shift = torch.from_numpy(adapter.norm_shift).to(backend.device)

    def preprocess(self, frame: Frame) -> tuple[dict[str, Any], Letterbox]:
        blob, lb = self.letterboxed(frame)
        return {self.adapter.input_name: blob.mul_(self.scale).add_(self.shift)}, lb  # as the adapter: *= then +=

    def postprocess(self, outputs: dict[str, Any], lb: Letterbox) -> LabelMap:
        import torch

        logits = outputs[self.adapter.output_name][0]
        if self.adapter.class_ids:
            return LabelMap(self._ids_to_frame(logits, lb), self.adapter.class_names)
        if self.adapter.threshold is not None:  # one channel: background at the threshold, as `with_background`
            logits = torch.cat([torch.full_like(logits, self.adapter.threshold), logits])
        labels = _to_host(labels_on_device(logits, lb), label_dtype(int(logits.shape[0])))
        return LabelMap(labels, self.adapter.class_names)

    def _ids_to_frame(self, ids: Any, lb: Letterbox) -> np.ndarray:
        """`SemanticAdapter.resize_ids` on the device: nearest pixel centre, as cv2's INTER_NEAREST_EXACT."""
        import torch.nn.functional as F

        ids = ids.reshape(ids.shape[-2:])
        y0, y1, x0, x1 = logit_region(tuple(ids.shape), lb)
        crop = ids[y0:y1, x0:x1].clamp(0, self.adapter.num_classes - 1).float()[None, None]  # exact below 2**24
        labels = F.interpolate(crop, size=lb.frame_hw, mode="nearest-exact")[0, 0]
        return _to_host(labels, label_dtype(self.adapter.num_classes))


def _to_host(labels: Any, dtype: type) -> np.ndarray:
    """A device label map as a `dtype` (uint8/uint16) numpy map. A uint16 map comes
    down as int32 (torch's uint16 lacks kernels); a uint8 one as it is."""
    import torch

    return labels.to(torch.uint8 if dtype is np.uint8 else torch.int32).cpu().numpy().astype(dtype, copy=False)


class DeviceYoloPath(DevicePath):
    """Pre/post-processing of a YOLO adapter on the backend's device; the
    adapter's own decoding and NMS are reused on the (small) head output."""

    def preprocess(self, frame: Frame) -> tuple[dict[str, Any], Letterbox]:
        blob, lb = self.letterboxed(frame)
        return {self.adapter.input_name: blob}, lb

    def postprocess(self, outputs: dict[str, Any], lb: Letterbox) -> Detections:
        import torch

        names = self.adapter.output_names
        head = {names[0]: outputs[names[0]].float().cpu().numpy()}
        if self.adapter.task != "segment":
            return self.adapter.postprocess(head, lb)
        boxes, scores, class_ids, coefficients = self.adapter.select(head)
        xyxy = lb.boxes_to_frame(boxes)
        protos = outputs[names[1]][0]
        coeff = torch.from_numpy(np.ascontiguousarray(coefficients, dtype=np.float32)).to(protos.device)
        dense = assemble_masks_on_device(protos, coeff, xyxy, lb.frame_hw)  # zero outside the boxes
        masks = box_crops_to_host(dense, box_pixel_ranges(xyxy, lb.frame_hw), lb.frame_hw)
        return Detections(xyxy, scores, class_ids, masks=masks)


def device_path_for(adapter: Any, backend: Any) -> DevicePath | None:
    """The GPU data path for this adapter, or None where it has none (two-stage models)."""
    if isinstance(adapter, YoloAdapter):
        return DeviceYoloPath(adapter, backend)
    if isinstance(adapter, SemanticAdapter):
        return DeviceSemanticPath(adapter, backend)
    return None
