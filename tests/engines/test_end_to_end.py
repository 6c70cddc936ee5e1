"""End-to-end YOLO exports (NMS inside the model: Ultralytics `nms=True`;
NMS-free heads: YOLOv10, YOLO26) give the objects the usual export gives:
same boxes, classes, scores, masks and keypoints, whichever way the export
says it is end-to-end. The end-to-end models are the sample models with NMS
appended inside their ONNX graphs (tests/end_to_end_models.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import asset
from end_to_end_models import export_end_to_end
from segstream.engines.adapters.yolo import EndToEndDetect, EndToEndPose, EndToEndSeg
from segstream.engines.model import Model
from segstream.stream.boxes import box_iou
from segstream.stream.sources import open_source

CASES = {
    "segment": ("models/yolov8n-seg_320_fp32.onnx", 80, EndToEndSeg),
    "pose": ("models/yolo11n-pose.onnx", 1, EndToEndPose),
    "detect": ("models/yolov8n_320_fp32.onnx", 80, EndToEndDetect),
}


def frames(video, n):
    with open_source(str(video)) as source:
        for i, frame in enumerate(source):
            if i >= n:
                return
            yield frame


@pytest.mark.parametrize("task, mark", [("segment", "end2end"), ("pose", "nms"), ("detect", "shape")])
def test_an_end_to_end_export_gives_the_objects_of_the_usual_export(tmp_path, video, task, mark):
    """`mark`: the metadata says end2end, or args say nms=True, or only the head's
    shape tells (rows per object in an Ultralytics export)."""
    path, num_classes, adapter = CASES[task]
    usual = Model.load(str(asset(path)))
    e2e_path = tmp_path / "e2e.onnx"
    export_end_to_end(asset(path), e2e_path, num_classes, mark=mark)
    e2e = Model.load(str(e2e_path))
    assert type(e2e.adapter) is adapter and e2e.task == task and e2e.class_names == usual.class_names
    total = 0
    for frame in frames(video, 8):
        want, got = usual(frame), e2e(frame)
        assert len(got) == len(want)
        total += len(want)
        if not len(want):
            continue
        iou = box_iou(want.xyxy, got.xyxy)
        match = iou.argmax(axis=1)
        assert (iou.max(axis=1) >= 0.999).all() and len(set(match.tolist())) == len(want)
        assert np.array_equal(got.class_ids[match], want.class_ids)
        np.testing.assert_allclose(got.scores[match], want.scores, atol=1e-5)
        if task == "segment":
            assert all(np.array_equal(got.masks[j], want.masks[i]) for i, j in enumerate(match))
        if task == "pose":
            np.testing.assert_allclose(got.keypoints[match], want.keypoints, atol=0.01)
    assert total > 0


def test_class_and_confidence_filters_apply_to_end_to_end_rows(tmp_path, video):
    """`--classes` and a higher `--conf` keep a subset of the rows the model returned."""
    path, num_classes, _ = CASES["segment"]
    e2e_path = tmp_path / "e2e.onnx"
    export_end_to_end(asset(path), e2e_path, num_classes)
    frame = next(frames(video, 1))
    everything = Model.load(str(e2e_path))(frame)
    people = Model.load(str(e2e_path), classes=["person"])(frame)
    confident = Model.load(str(e2e_path), conf=0.6)(frame)
    assert set(everything.class_ids.tolist()) > {0} and set(people.class_ids.tolist()) == {0}
    assert len(people) == int((everything.class_ids == 0).sum())
    assert len(confident) == int((everything.scores > 0.6).sum()) and (np.diff(everything.scores) <= 0).all()
