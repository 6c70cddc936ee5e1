"""End-to-end versions of the sample YOLO models, made here: the real
network with NMS appended inside the ONNX graph (ONNX's NonMaxSuppression),
so the head is [1, 300, 6 + extra] rows of x1, y1, x2, y2, score, class,
then the mask coefficients or keypoints, zero-padded, as Ultralytics'
`nms=True` exports and YOLOv10 / YOLO26 give. No such export can be
downloaded here, and Ultralytics is not installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MAX_DET = 300


def export_end_to_end(src: Path, dst: Path, num_classes: int, mark: str = "end2end",
                      conf: float = 0.25, iou: float = 0.7) -> None:
    """`src` (an Ultralytics v8+ export: head [1, 4 + nc + extra, anchors]) with
    class-wise NMS appended; `mark` says so in the metadata as Ultralytics
    does: "end2end" (end2end: True) or "nms" (args with nms: True); or "shape":
    neither, and no `end2end` key at all, as YOLOv10's own exports."""
    model = onnx.load(str(src))
    graph = model.graph
    head = graph.output[0]
    channels = head.type.tensor_type.shape.dim[1].dim_value
    extra = channels - 4 - num_classes
    raw = head.name + "_raw"
    for node in graph.node:  # the network's head now feeds the appended nodes
        node.output[:] = [raw if o == head.name else o for o in node.output]

    def const(name: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    reduce_max = (  # ReduceMax takes its axes as an input from opset 18, as an attribute before
        helper.make_node("ReduceMax", ["e2e_cls", const("e2e_axis", np.array([2], np.int64))], ["e2e_score"], keepdims=1)
        if opset >= 18 else helper.make_node("ReduceMax", ["e2e_cls"], ["e2e_score"], axes=[2], keepdims=1)
    )
    nodes = [
        helper.make_node("Transpose", [raw], ["e2e_rows"], perm=[0, 2, 1]),  # [1, A, C]
        helper.make_node("Split", ["e2e_rows", const("e2e_split", np.array([2, 2, num_classes, extra], np.int64))],
                         ["e2e_cxcy", "e2e_wh", "e2e_cls", "e2e_extra"], axis=2),
        helper.make_node("Mul", ["e2e_wh", const("e2e_half", np.array(0.5, np.float32))], ["e2e_halfwh"]),
        helper.make_node("Sub", ["e2e_cxcy", "e2e_halfwh"], ["e2e_x1y1"]),
        helper.make_node("Add", ["e2e_cxcy", "e2e_halfwh"], ["e2e_x2y2"]),
        helper.make_node("Concat", ["e2e_x1y1", "e2e_x2y2"], ["e2e_xyxy"], axis=2),
        reduce_max,
        helper.make_node("ArgMax", ["e2e_cls"], ["e2e_label"], axis=2, keepdims=1),
        helper.make_node("Cast", ["e2e_label"], ["e2e_labelf"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["e2e_score"], ["e2e_nms_scores"], perm=[0, 2, 1]),  # [1, 1, A]
        # Class-wise, as Ultralytics: each class's boxes moved far from the others' before NMS.
        helper.make_node("Mul", ["e2e_labelf", const("e2e_apart", np.array(4096.0, np.float32))], ["e2e_offset"]),
        helper.make_node("Add", ["e2e_xyxy", "e2e_offset"], ["e2e_nms_boxes"]),
        helper.make_node("NonMaxSuppression", ["e2e_nms_boxes", "e2e_nms_scores",
                                               const("e2e_max", np.array([MAX_DET], np.int64)),
                                               const("e2e_iou", np.array([iou], np.float32)),
                                               const("e2e_conf", np.array([conf], np.float32))], ["e2e_selected"]),
        helper.make_node("Gather", ["e2e_selected", const("e2e_col", np.array(2, np.int64))], ["e2e_keep"], axis=1),
        helper.make_node("Concat", ["e2e_xyxy", "e2e_score", "e2e_labelf", "e2e_extra"], ["e2e_all"], axis=2),
        helper.make_node("Squeeze", ["e2e_all", const("e2e_axis0", np.array([0], np.int64))], ["e2e_all0"]),
        helper.make_node("Gather", ["e2e_all0", "e2e_keep"], ["e2e_kept"], axis=0),  # [K, 6 + extra]
        helper.make_node("Shape", ["e2e_kept"], ["e2e_shape"]),
        helper.make_node("Gather", ["e2e_shape", const("e2e_zero", np.array([0], np.int64))], ["e2e_k"], axis=0),
        helper.make_node("Sub", [const("e2e_maxdet", np.array([MAX_DET], np.int64)), "e2e_k"], ["e2e_missing"]),
        helper.make_node("Concat", [const("e2e_pad0", np.array([0, 0], np.int64)), "e2e_missing",
                                    const("e2e_pad1", np.array([0], np.int64))], ["e2e_pads"], axis=0),
        helper.make_node("Pad", ["e2e_kept", "e2e_pads"], ["e2e_padded"]),
        helper.make_node("Unsqueeze", ["e2e_padded", "e2e_axis0"], [head.name]),
    ]
    graph.node.extend(nodes)
    del graph.output[0]
    graph.output.insert(0, helper.make_tensor_value_info(head.name, TensorProto.FLOAT, [1, MAX_DET, 6 + extra]))
    props = {p.key: p.value for p in model.metadata_props}
    props["end2end"] = str(mark == "end2end")
    if mark == "shape":  # exports from before Ultralytics wrote the key (YOLOv10's own)
        del props["end2end"]
    if mark == "nms":
        props["args"] = "{'batch': 1, 'nms': True, 'conf': 0.25, 'iou': 0.7}"
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
