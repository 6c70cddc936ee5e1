"""Boxes, masks and keypoints match Ultralytics' standard post-processing
(transcribed in torch in ultralytics_reference.py) on real frames of the sample
video: matched boxes IoU >= 0.99, mask IoU >= 0.97, keypoints within 1.5 px."""

import numpy as np
import pytest
import torch
import ultralytics_reference as ref
from conftest import asset
from scipy.optimize import linear_sum_assignment
from segstream.engines.model import Model
from segstream.stream.boxes import box_iou
from segstream.stream.masks import BoxMasks, paired_mask_iou
from segstream.stream.sources import open_source

FRAMES = (0, 200, 400, 600)


@pytest.fixture(scope="module")
def frames(video):
    wanted, out = set(FRAMES), {}
    with open_source(str(video)) as src:
        for f in src:
            if f.seq in wanted:
                out[f.seq] = f
            if f.seq >= max(FRAMES):
                break
    return out


def reference(model: Model, outputs: dict, frame) -> dict:
    a = model.adapter
    head = torch.from_numpy(outputs[a.output_names[0]])
    det = ref.non_max_suppression(head, 0.25, 0.7, a.num_classes, yolov5=type(a).__name__.startswith("YoloV5"))
    shape = (frame.height, frame.width)
    boxes = ref.scale_boxes(a.input_hw, det[:, :4], shape)
    out = {"xyxy": boxes.numpy(), "scores": det[:, 4].numpy(), "class_ids": det[:, 5].numpy().astype(int)}
    if a.task == "segment":
        protos = torch.from_numpy(outputs[a.output_names[1]][0])
        out["masks"] = ref.process_mask_native(protos, det[:, 6:], boxes, shape).numpy().astype(bool)
    if a.task == "pose":
        kpts = det[:, 6:].reshape(-1, 17, 3)
        out["keypoints"] = ref.scale_coords(a.input_hw, kpts[..., :2], shape).numpy()
    return out


@pytest.mark.parametrize(
    "model_file",
    ["models/yolov8n-seg_320_fp32.onnx", "models/yolo11n-pose.onnx", "models/yolov5s-seg.onnx", "models/yolov8n_320_fp32.onnx"],
)
def test_matches_ultralytics_postprocessing(model_file, frames):
    model = Model.load(str(asset(model_file)))
    total = 0
    for seq in FRAMES[: 2 if "yolov5s" in model_file else None]:
        frame = frames[seq]
        prepared = model.preprocess(frame)
        outputs = model.infer(prepared)
        ours = model.postprocess(outputs, prepared)
        want = reference(model, outputs, frame)
        assert len(ours) == len(want["xyxy"]), f"frame {seq}: {len(ours)} vs {len(want['xyxy'])} objects"
        if not len(ours):
            continue
        iou = box_iou(ours.xyxy, want["xyxy"])
        rows, cols = linear_sum_assignment(-iou)
        assert iou[rows, cols].min() >= 0.99
        np.testing.assert_array_equal(ours.class_ids[rows], want["class_ids"][cols])
        np.testing.assert_allclose(ours.scores[rows], want["scores"][cols], atol=1e-5)
        if "masks" in want:
            a, b = ours.masks[rows], BoxMasks.from_dense(want["masks"][cols])
            nonempty = (a.areas() > 0) | (b.areas() > 0)
            assert paired_mask_iou(a, b)[nonempty].min() >= 0.97
        if "keypoints" in want:
            err = np.abs(ours.keypoints[rows, :, :2] - want["keypoints"][cols]).max()
            assert err <= 1.5
        total += len(ours)
    assert total > 0


def ultralytics_input(image: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """Ultralytics' LetterBox (centred, grey 114) and its tensor preparation
    (BGR to RGB, CHW, divided by 255), transcribed from its source: a reference
    for the network input that shares no code with segstream's."""
    import cv2

    h, w = image.shape[:2]
    r = min(input_hw[0] / h, input_hw[1] / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    dw, dh = (input_hw[1] - new_w) / 2, (input_hw[0] - new_h) / 2
    if (w, h) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return (np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0)


def test_network_input_matches_ultralytics_preparation(video):
    """The letterbox, the colour order and the scaling against Ultralytics' own
    recipe, on frames read by OpenCV (not segstream's decoder): exact for a BGR
    frame, and within a grey level for a video file's frame made from its planes."""
    import cv2
    from segstream.stream.types import Frame

    model = Model.load(str(asset("models/yolov8n-seg_320_fp32.onnx")))
    name = model.adapter.input_name
    cap = cv2.VideoCapture(str(video))
    with open_source(str(video)) as src:
        for seq, planes_frame in zip(range(3), src):
            ok, image = cap.read()
            assert ok
            want = ultralytics_input(image, model.adapter.input_hw)
            exact = model.preprocess(Frame(image, "cam", seq, 0.0, 0.0)).feed[name]
            np.testing.assert_allclose(exact, want, rtol=0, atol=1e-7)
            from_planes = model.preprocess(planes_frame).feed[name]
            diff = np.abs(from_planes - want) * 255
            assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 6, (diff.mean(), np.percentile(diff, 99))
    cap.release()
