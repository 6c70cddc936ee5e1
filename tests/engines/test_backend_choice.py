"""`--backend auto` picks the fastest runtime the machine has, and a backend
or device the machine cannot serve falls back with the reason instead of
crashing. Machines with GPUs cannot exist here, so their capabilities are
described by a plain record (`Machine`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from segstream.engines.runtimes.engine_cache import BuildOptions
from segstream.engines.runtimes.registry import Capabilities, choose_backend, load_backend
from segstream.stream.errors import ModelError


@dataclass
class Machine:
    cuda: bool = False
    tensorrt: bool = False
    torch_onnx: bool = False
    onnxruntime_cuda: bool = False


GPU_FULL = Machine(cuda=True, tensorrt=True, torch_onnx=True, onnxruntime_cuda=True)


@pytest.mark.parametrize("machine, backend, device, expected", [
    (Machine(), "auto", "auto", ("onnxruntime", "cpu")),
    (GPU_FULL, "auto", "auto", ("tensorrt", "cuda")),
    (GPU_FULL, "auto", "cuda:1", ("tensorrt", "cuda:1")),
    (Machine(cuda=True, torch_onnx=True), "auto", "auto", ("torch", "cuda")),
    (Machine(cuda=True, onnxruntime_cuda=True), "auto", "auto", ("onnxruntime", "cuda")),
    (Machine(cuda=True), "auto", "auto", ("onnxruntime", "cpu")),
    (GPU_FULL, "onnxruntime", "auto", ("onnxruntime", "cuda")),
    (GPU_FULL, "auto", "cpu", ("onnxruntime", "cpu")),
    (GPU_FULL, "torch", "cpu", ("torch", "cpu")),
])
def test_auto_order_and_explicit_choices(machine, backend, device, expected):
    assert choose_backend(backend, device, machine)[:2] == expected


def test_fallbacks_say_why():
    assert choose_backend("tensorrt", "auto", Machine()) == (
        "onnxruntime", "cpu", "no NVIDIA GPU found (no driver, or torch.cuda.is_available() is False)")
    name, device, why = choose_backend("tensorrt", "cuda", Machine(cuda=True, torch_onnx=True))
    assert (name, device) == ("torch", "cuda")
    assert why.startswith("TensorRT is not installed (pip install 'segstream[trt]')")
    assert choose_backend("tensorrt", "cpu", GPU_FULL)[2] == "tensorrt on cpu is not possible"
    # A GPU that nothing installed can use is worth a warning, not a silent CPU run.
    assert choose_backend("auto", "auto", Machine(cuda=True))[2].startswith("a GPU is there but no backend here can use it: ")


@pytest.mark.parametrize("backend, device, message", [
    ("openvino", "auto", "unknown backend 'openvino': choose auto or one of tensorrt, torch, onnxruntime"),
    ("auto", "gpu", "unknown device 'gpu': use auto, cpu, cuda or cuda:N"),
])
def test_unknown_names_are_errors(backend, device, message):
    with pytest.raises(ModelError, match=message):
        choose_backend(backend, device, Machine())


def test_this_machine_runs_the_model_on_onnxruntime_and_logs_the_fallback(seg_model, caplog):
    """What `segstream run --backend tensorrt` does on a machine without TensorRT or GPU."""
    if Capabilities().cuda:
        pytest.skip("this machine has a GPU")
    with caplog.at_level("WARNING"):
        backend = load_backend(str(seg_model), "tensorrt", "auto")
    assert backend.name == "onnxruntime"
    assert "using onnxruntime on cpu instead of tensorrt" in caplog.text


def _image_only_model(path):
    """A real ONNX model with a two-stage model's input, an [3, H, W] image of any size (TensorRT cannot profile it)."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [3, "height", "width"])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [3])
    graph = helper.make_graph([helper.make_node("ReduceMax", ["image"], ["scores"], axes=[1, 2], keepdims=0)],
                              "two_stage_like", [image], [scores])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def test_a_model_tensorrt_cannot_take_goes_to_the_next_backend_with_one_warning(tmp_path, caplog):
    """`auto` on a GPU machine with TensorRT: a two-stage model is not a reason to stop the run."""
    model = _image_only_model(tmp_path / "rcnn_like.onnx")
    with caplog.at_level("WARNING"):
        backend = load_backend(model, "auto", "auto", caps=Machine(cuda=True, tensorrt=True))
    assert backend.name == "onnxruntime"  # this machine's runtime, on its CPU: the Machine says no CUDA provider
    out = backend.infer({"image": np.arange(24, dtype=np.float32).reshape(3, 2, 4)})
    np.testing.assert_array_equal(out["scores"], [7, 15, 23])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["rcnn_like.onnx: tensorrt cannot run it (only models with an [N, 3, H, W] image input are "
                        "compiled, this one takes [3, None, None]): using onnxruntime on cpu"]


def test_a_backend_that_failed_is_skipped_and_named():
    assert choose_backend("auto", "auto", GPU_FULL, [("tensorrt", "cannot parse")])[:2] == ("torch", "cuda")
    name, device, why = choose_backend("auto", "auto", GPU_FULL, [("tensorrt", "cannot parse"), ("torch", "no Loop")])
    assert (name, device) == ("onnxruntime", "cuda")
    assert why == "tensorrt failed: cannot parse; torch failed: no Loop; best available"
    assert choose_backend("torch", "cpu", GPU_FULL, [("torch", "no Loop")]) == ("onnxruntime", "cpu", "no Loop")


def test_int8_without_tensorrt_says_the_file_runs_as_it_is(seg_model, caplog):
    """`--precision int8` is a TensorRT build option: elsewhere the run goes on, and says what precision it got."""
    with caplog.at_level("WARNING"):
        backend = load_backend(str(seg_model), "auto", "cpu", build=BuildOptions("int8", calib="frames/"))
    assert backend.name == "onnxruntime"
    assert "int8 is for TensorRT engines; onnxruntime runs the file as it is" in caplog.text


def test_asking_for_the_gpu_data_path_on_a_fallback_backend_runs_on_the_cpu_path(seg_model, video, caplog):
    """A forced GPU data path with a backend that takes only host arrays (onnxruntime,
    where torch was unavailable) warns and keeps the CPU path instead of crashing."""
    from segstream.engines.model import Model
    from segstream.stream.sources import open_source

    reference = Model.load(str(seg_model), backend="onnxruntime", device="cpu")
    with caplog.at_level("WARNING"):
        forced = Model(reference.backend, reference.adapter, str(seg_model), on_device=True)
    assert forced.device_path is None and "no GPU data path" in caplog.text
    with open_source(str(video)) as src:
        frame = next(iter(src))
    assert len(forced(frame)) == len(reference(frame)) > 0
