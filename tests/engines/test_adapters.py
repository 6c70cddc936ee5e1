"""Adapters are picked from the model's own outputs and metadata; models they
do not understand, and files that are not models, get a clear error."""

import numpy as np
import onnx
import pytest
from conftest import asset
from onnx import TensorProto, helper
from segstream.engines.adapters.yolo import YoloV5Seg, YoloV8Detect, YoloV8Pose, YoloV8Seg
from segstream.engines.model import Model, load_models
from segstream.stream.errors import ConfigError, ModelError
from segstream.stream.sources import open_source


@pytest.mark.parametrize(
    "model_file, adapter, num_classes, input_hw",
    [
        ("models/yolov8n-seg_320_fp32.onnx", YoloV8Seg, 80, (320, 320)),
        ("models/yolov8n-seg_int8.onnx", YoloV8Seg, 80, (320, 320)),
        ("models/yolo11n-pose.onnx", YoloV8Pose, 1, (640, 640)),
        ("models/yolov5s-seg.onnx", YoloV5Seg, 80, (640, 640)),
        ("models/yolov8n_320_fp32.onnx", YoloV8Detect, 80, (320, 320)),
    ],
)
def test_adapter_detected_from_outputs(model_file, adapter, num_classes, input_hw):
    model = Model.load(str(asset(model_file)))
    assert type(model.adapter) is adapter
    assert model.adapter.num_classes == num_classes
    assert model.adapter.input_hw == input_hw
    assert model.class_names[0] == "person"


def _save_model(path, output_shapes, metadata=None):
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])
    outs, nodes = [], []
    for i, shape in enumerate(output_shapes):
        name = f"out{i}"
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        nodes.append(helper.make_node("ConstantOfShape", [f"s{i}"], [name]))
        nodes.insert(0, helper.make_node("Constant", [], [f"s{i}"], value=helper.make_tensor(
            f"v{i}", TensorProto.INT64, [len(shape)], shape)))
    graph = helper.make_graph(nodes, "g", [inp], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)


def test_unknown_outputs_are_listed(tmp_path):
    path = tmp_path / "weird.onnx"
    _save_model(str(path), [[1, 10], [1, 3, 4, 4, 2]])
    with pytest.raises(ModelError, match=r"outputs not understood \(out0\[1, 10\], out1\[1, 3, 4, 4, 2\]\)"):
        Model.load(str(path))


@pytest.mark.parametrize("task, shape", [("obb", [1, 20, 21]), ("classify", [1, 80])])
def test_oriented_box_and_classification_models_are_refused_by_name(tmp_path, task, shape):
    """An OBB head looks like a detect head with one more class: it must not be read as one."""
    path = tmp_path / f"{task}.onnx"
    _save_model(str(path), [shape], {"task": task, "names": "{0: 'plane'}"})
    with pytest.raises(ModelError, match=f"a YOLO {task} model; segstream runs detect, segment and pose models"):
        Model.load(str(path))


@pytest.mark.parametrize("metadata, match", [
    ({"end2end": "False"}, r"outputs not understood \(out0\[1, 300, 84\]\); an Ultralytics detect export with 80 "
                           r"classes has a head \[1, 84, anchors\]"),
    ({"end2end": "True"}, r"end-to-end outputs not understood \(out0\[1, 300, 84\]\)"),
])
def test_a_head_that_fits_no_layout_is_refused(tmp_path, metadata, match):
    """Rows per object of another width (an RT-DETR head, say) name what was expected."""
    path = tmp_path / "rows.onnx"
    _save_model(str(path), [[1, 300, 84]], {"task": "detect", "names": str({i: f"c{i}" for i in range(80)}), **metadata})
    with pytest.raises(ModelError, match=match):
        Model.load(str(path))


def test_an_ultralytics_head_with_fewer_anchors_than_channels_is_still_channels_first(tmp_path):
    """A tiny input (64x64: 84 anchors) under a seg head of 116 channels: the names say which axis is which."""
    path = tmp_path / "tiny.onnx"
    _save_model(str(path), [[1, 116, 84], [1, 32, 16, 16]], {"task": "segment", "end2end": "False",
                                                            "names": str({i: f"c{i}" for i in range(80)})})
    model = Model.load(str(path))
    assert type(model.adapter).__name__ == "YoloV8Seg" and model.adapter.num_classes == 80


def _save_dynamic_model(path, channels, channels_first):
    """A head whose anchor axis follows the input's height, as in a dynamic export
    (ONNX Runtime then reports that axis without a size), and prototypes."""
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    const = lambda name, values: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [len(values)], values))
    head = [1, channels] if channels_first else [1]
    nodes = [
        helper.make_node("Shape", ["images"], ["shape"]),
        const("start", [2]), const("end", [3]), const("lead", head), const("tail", [] if channels_first else [channels]),
        helper.make_node("Slice", ["shape", "start", "end"], ["anchors"]),
        helper.make_node("Concat", ["lead", "anchors", "tail"], ["head_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["head_shape"], ["out0"]),
        const("proto_shape", [1, 32, 8, 8]),
        helper.make_node("ConstantOfShape", ["proto_shape"], ["out1"]),
    ]
    declared = ["batch", channels, "anchors"] if channels_first else ["batch", "anchors", channels]
    outs = [helper.make_tensor_value_info("out0", TensorProto.FLOAT, declared),
            helper.make_tensor_value_info("out1", TensorProto.FLOAT, ["batch", 32, "mh", "mw"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [inp], outs), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key="names", value=str({i: f"c{i}" for i in range(80)}))
    model.metadata_props.add(key="imgsz", value="[32, 32]")
    onnx.save(model, path)


@pytest.mark.parametrize("channels, channels_first, adapter", [
    (116, True, "YoloV8Seg"),   # Ultralytics dynamic=True: [batch, 116, anchors]
    (117, False, "YoloV5Seg"),  # yolov5 --dynamic: [batch, anchors, 117]
])
def test_a_dynamic_export_is_read_by_its_static_channel_axis(tmp_path, channels, channels_first, adapter):
    """The anchor axis of a dynamic export follows the input size: the channel axis says the layout.
    (`--batch` asks for such exports.)"""
    path = tmp_path / "dynamic.onnx"
    _save_dynamic_model(str(path), channels, channels_first)
    model = Model.load(str(path))
    assert model.backend.outputs[0].shape[1 if channels_first else 2] == channels
    assert None in model.backend.outputs[0].shape
    assert type(model.adapter).__name__ == adapter and model.adapter.num_classes == 80


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        Model.load(str(path))


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        Model.load(str(tmp_path / "nope.onnx"))


def test_class_filter_by_name(video, seg_model, pose_model):
    models = load_models([str(seg_model), str(pose_model)], classes=["car"])
    with open_source(str(video)) as src:
        frame = next(iter(src))
    dets = models(frame)
    assert len(dets) > 0 and set(dets.class_ids.tolist()) == {2}


def test_unknown_class_name_is_a_config_error(seg_model):
    with pytest.raises(ConfigError, match="'persn' is not a class"):
        load_models([str(seg_model)], classes=["persn"])


def test_seg_and_pose_fuse_into_one_person(video, seg_model, pose_model):
    """One tracked person carries both a mask and keypoints."""
    models = load_models([str(seg_model), str(pose_model)])
    with open_source(str(video)) as src:
        frame = next(f for f in src if f.seq == 600)
    dets = models(frame)
    assert dets.masks is not None and dets.keypoints is not None
    persons = dets[dets.class_ids == 0]
    both = (persons.masks.areas() > 0) & (persons.keypoints[:, :, 2].max(1) > 0.5)
    assert both.sum() >= 2
    # keypoints lie in (or near) their person's box
    for box, kps in zip(persons.xyxy[both], persons.keypoints[both]):
        vis = kps[kps[:, 2] > 0.5, :2]
        assert np.all((vis >= box[:2] - 10) & (vis <= box[2:] + 10))
