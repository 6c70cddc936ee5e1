"""The TensorRT path as far as it runs without TensorRT: shape profiles, the
build options handed to the builder, the timing cache, and the one-line
errors. `fake_tensorrt` is a test double of the `tensorrt` module (it cannot
be installed here: no NVIDIA GPU); nothing in these tests compiles an engine."""

from __future__ import annotations

import importlib.util

import cv2
import fake_tensorrt as trt
import pytest
from conftest import asset
from segstream.engines.adapters.semantic import SemanticConfig
from segstream.engines.model import onnx_preprocess
from segstream.engines.runtimes.engine_cache import BuildOptions, DeviceInfo, EngineCache, ShapeProfile
from segstream.engines.runtimes.tensorrt import (
    build_serialized,
    calibration_input,
    check_version,
    ensure_engine,
    options_for_model,
    profile_for,
)
from segstream.stream.errors import ModelError
from segstream.stream.sources import open_source
from semantic_models import export_tiny_fcn

HW = (320, 320)
DEVICE = DeviceInfo("10.3.0", "Orin", (8, 7))


@pytest.fixture(autouse=True)
def _reset_fake():
    trt.Builder.FAIL, trt.Builder.last_config, trt.OnnxParser.PARSE_ERRORS = False, None, []


def test_profile_follows_the_models_input():
    assert profile_for((1, 3, 320, 320), 1, (640, 640)) == ShapeProfile(1, 1, 1, HW, HW, HW)
    assert profile_for((None, 3, None, None), 8, (384, 640)) == ShapeProfile(1, 8, 8, (384, 640), (384, 640), (384, 640))
    with pytest.raises(ModelError, match="batch axis is fixed at 1, so it cannot run batches of 8: export it with a dynamic batch"):
        profile_for((1, 3, 320, 320), 8, (640, 640))


def test_options_for_model_reads_the_input_from_the_onnx_file(seg_model):
    options, metadata = options_for_model(str(seg_model), BuildOptions("fp32"))
    assert options.precision == "fp32" and options.profile == ShapeProfile(1, 1, 1, HW, HW, HW)
    assert "names" in metadata  # the adapters still get Ultralytics' metadata


def test_a_dynamic_input_is_profiled_at_the_size_its_adapter_feeds(tmp_path):
    """A semantic model with a dynamic input gets an engine for the size the run feeds it (its config's
    input_size, else the adapter's default), not Ultralytics' 640: any other profile fails every call."""
    path = str(tmp_path / "fcn.onnx")
    export_tiny_fcn(path, dynamic=True)
    batch2 = BuildOptions("fp16", ShapeProfile(1, 2, 2))
    options, _ = options_for_model(path, batch2, onnx_preprocess(path, SemanticConfig(input_hw=(256, 512))))
    assert options.profile == ShapeProfile(1, 2, 2, (256, 512), (256, 512), (256, 512))
    options, _ = options_for_model(path, batch2, onnx_preprocess(path))
    assert options.profile.opt_hw == (520, 520)  # torchvision's size, the semantic adapter's default
    options, _ = options_for_model(path, batch2)
    assert options.profile.opt_hw == (640, 640)  # no adapter at hand: the export's imgsz, else 640


def test_fp16_build_sets_flag_profile_workspace_and_timing_cache(tmp_path, seg_model):
    """TensorRT 10's weak typing (`--trt-weak-typing`): precision by builder flags."""
    timing = tmp_path / "timing.cache"
    progress: list[str] = []
    options = BuildOptions("fp16", ShapeProfile(1, 1, 1, HW, HW, HW), workspace_mb=512, weak_typing=True)
    data = build_serialized(trt, str(seg_model), options, timing, progress=progress.append)
    config = trt.Builder.last_config
    assert data == b"engine for images"
    assert config.flags == {"fp16", "prefer_precision_constraints"} and config.pools == {"workspace": 512 << 20}
    assert config.profiles[0].shapes == {"images": ((1, 3, 320, 320),) * 3}
    assert timing.read_bytes() == b"+tactics"
    assert progress[0] == "22 layers after the last convolutions kept in fp32 (box and keypoint decoding)"
    assert progress[1] == "Building engine (10 steps)" and progress[-1] == "    Building engine: 10/10"
    build_serialized(trt, str(seg_model), options, timing)  # the next build starts from the saved tactics
    assert trt.Builder.last_config.timing_cache.data == b"+tactics"


def test_fp32_build_is_ieee_fp32_not_tf32(tmp_path, seg_model):
    """TensorRT lets fp32 layers run in TF32 unless told not to; `--precision fp32`
    means fp32 (on an H200 torch's TF32 moved 6 of 1919 boxes below IoU 0.99)."""
    build_serialized(trt, str(seg_model), BuildOptions("fp32", ShapeProfile(1, 1, 1, HW, HW, HW)), tmp_path / "t.cache")
    assert trt.Builder.last_config.flags == set()


def test_fp16_build_keeps_the_decoding_after_the_last_convolutions_in_fp32(tmp_path, seg_model):
    """Box coordinates of up to 320 px lose up to 0.25 px in fp16: the layers that
    compute them are constrained to fp32; the convolutions are not, nor are
    shape arithmetic (int64) and constants. Switched off, nothing is constrained.
    (TensorRT 10's weak typing; strongly typed, the typed graph keeps them fp32.)"""
    options = BuildOptions("fp16", ShapeProfile(1, 1, 1, HW, HW, HW), weak_typing=True)
    build_serialized(trt, str(seg_model), options, tmp_path / "t.cache")
    layers = trt.Builder.last_network.layers
    kept = [layer for layer in layers if layer.precision == trt.float32]
    assert kept and all(layer.type == trt.LayerType.OTHER for layer in kept)
    assert all(layer.output_types == {j: trt.float32 for j in range(layer.num_outputs)} for layer in kept)
    assert "/model.22/Concat_4" in {layer.name for layer in kept}  # makes output0, the boxes and scores

    build_serialized(trt, str(asset("models/yolov5s-seg.onnx")), options, tmp_path / "t.cache")
    layers = trt.Builder.last_network.layers
    shape_math = [layer for layer in layers if layer.get_output(0).dtype == trt.int64]
    constants = [layer for layer in layers if layer.type == trt.LayerType.CONSTANT]
    assert shape_math and constants and all(layer.precision is None for layer in shape_math + constants)
    assert any(layer.precision == trt.float32 for layer in layers)

    build_serialized(trt, str(seg_model), BuildOptions("fp16", options.profile, fp32_tail=False, weak_typing=True),
                     tmp_path / "t.cache")
    assert trt.Builder.last_config.flags == {"fp16"}
    assert all(layer.precision is None for layer in trt.Builder.last_network.layers)


def test_int8_build_sets_calibrator_on_the_profile(tmp_path, seg_model):
    options = BuildOptions("int8", ShapeProfile(1, 1, 1, HW, HW, HW), calib="frames/", weak_typing=True)
    scales = tmp_path / "engines" / "model.calib.cache"
    build_serialized(trt, str(seg_model), options, tmp_path / "t.cache", calib_batches=iter([]), calib_cache=scales)
    config = trt.Builder.last_config
    assert config.flags == {"fp16", "int8", "prefer_precision_constraints"} and config.int8_calibrator is not None
    assert config.calibration_profile is config.profiles[0]
    calibrator = config.int8_calibrator
    assert calibrator.read_calibration_cache() is None  # nothing yet: TensorRT calibrates
    calibrator.write_calibration_cache(memoryview(b"scales"))  # the first build: the cache folder does not exist yet
    assert calibrator.read_calibration_cache() == b"scales" and scales.read_bytes() == b"scales"


def test_calibration_that_cannot_fill_a_batch_fails_before_the_build(tmp_path, seg_model, video):
    """`--int8 --calib one.jpg --batch 8`: one line naming --calib, not an error from inside TensorRT's callback."""
    image = tmp_path / "one.jpg"
    with open_source(str(video)) as source:
        cv2.imwrite(str(image), next(iter(source)).image)
    options = BuildOptions("int8", ShapeProfile(1, 8, 8, HW, HW, HW), calib=str(image))
    with pytest.raises(ModelError, match=r"calib: .*one.jpg has fewer than 8 frame\(s\) to calibrate with"):
        calibration_input(EngineCache(tmp_path), str(seg_model), DEVICE, options, onnx_preprocess(str(seg_model)), print)


def test_calibration_feeds_prepared_frames_and_reuses_its_own_scales(tmp_path, seg_model, video):
    cache, said = EngineCache(tmp_path), []
    options = BuildOptions("int8", ShapeProfile(1, 2, 2, HW, HW, HW), calib=str(video), calib_frames=4)
    prepare = onnx_preprocess(str(seg_model))
    batches, scales = calibration_input(cache, str(seg_model), DEVICE, options, prepare, said.append)
    assert scales == cache.calibration_cache_path(str(seg_model), DEVICE, options) and not scales.exists()
    assert [b.shape for b in batches] == [(2, 3, *HW)] * 2
    scales.write_bytes(b"scales")
    calibration_input(cache, str(seg_model), DEVICE, options, prepare, said.append)
    assert said == [f"reusing the INT8 scales in {scales}"]


def test_parse_and_build_failures_are_one_line_errors(tmp_path, seg_model):
    options = BuildOptions("fp16", ShapeProfile(1, 1, 1, HW, HW, HW))
    trt.OnnxParser.PARSE_ERRORS = ["In node 12 (importPlugin): UNSUPPORTED_NODE: No importer registered for op: Foo"]
    with pytest.raises(ModelError, match="TensorRT cannot parse .*No importer registered for op: Foo"):
        build_serialized(trt, str(seg_model), options, tmp_path / "t.cache")
    trt.OnnxParser.PARSE_ERRORS, trt.Builder.FAIL = [], True
    with pytest.raises(ModelError, match=r"TensorRT could not build .* \(fp16\); rerun with --debug"):
        build_serialized(trt, str(seg_model), options, tmp_path / "t.cache")


def test_without_tensorrt_the_error_says_how_to_get_it(seg_model):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed on this machine")
    with pytest.raises(ModelError, match=r"TensorRT is not installed: pip install 'segstream\[trt\]'"):
        ensure_engine(str(seg_model), BuildOptions())


def test_a_tensorrt_other_than_10_or_11_is_refused_in_one_line():
    """A TensorRT this backend was not written for: say so and name the versions to
    install, instead of failing inside a build (auto then falls back to the next
    backend, as when TensorRT is missing)."""
    check_version("10.13.3.9")
    check_version("11.4.0.106")
    with pytest.raises(ModelError, match=r"TensorRT 12.0.0 is installed.*pip install 'tensorrt>=10,<12'"):
        check_version("12.0.0")


@pytest.fixture
def fake_installed(tmp_path, monkeypatch):
    """The double installed as `tensorrt` of a given version, with a GPU and a cache of this test's own."""
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setenv("SEGSTREAM_CACHE", str(tmp_path))
    monkeypatch.setattr("segstream.engines.runtimes.tensorrt.device_info", lambda trt, device: DEVICE)
    return lambda version: monkeypatch.setattr(trt, "__version__", version)


@pytest.mark.parametrize("version", ["10.13.3.9-fake", "11.4.0.106-fake"])
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_typed_graph_is_built_strongly_typed_on_10_and_11(tmp_path, seg_model, video, fake_installed, precision,
                                                         version):
    """The engine is built from the fp16 or QDQ INT8 copy of the model, as a strongly
    typed network, and nothing of TensorRT 10's weak typing is called: 11 has no
    precision flags or calibrators, and on 10 (JetPack) the same graph then sets the
    same precision. `--trt-weak-typing` keeps 10's old way (the tests above)."""
    fake_installed(version)
    options = BuildOptions(precision, ShapeProfile(1, 1, 1, HW, HW, HW), calib=str(video) if precision == "int8" else None,
                           calib_frames=4)
    engine = ensure_engine(str(seg_model), options, cache=EngineCache(tmp_path / "engines"), progress=lambda line: None,
                           calib_preprocess=onnx_preprocess(str(seg_model)))
    network, config = trt.Builder.last_network, trt.Builder.last_config
    assert network.created_with == 1 << trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED
    assert network.parsed.endswith(f".{precision}.{network.parsed.split('.')[-2]}.onnx")  # the typed copy
    assert (tmp_path / "graphs").is_dir() and network.parsed.startswith(str(tmp_path / "graphs"))
    assert config.flags == set() and config.int8_calibrator is None  # no FP16/INT8 flags, TF32 cleared
    assert all(layer.precision is None for layer in network.layers)
    assert engine.is_file()


def test_weak_typing_builds_the_model_itself_on_10_and_is_refused_by_11(tmp_path, seg_model, fake_installed):
    fake_installed("10.13.3.9-fake")
    options = BuildOptions("fp16", ShapeProfile(1, 1, 1, HW, HW, HW), weak_typing=True)
    cache = EngineCache(tmp_path / "engines")
    ensure_engine(str(seg_model), options, cache=cache, progress=lambda line: None)
    network, config = trt.Builder.last_network, trt.Builder.last_config
    assert network.created_with == 0 and network.parsed == str(seg_model)
    assert config.flags == {"fp16", "prefer_precision_constraints"}
    fake_installed("11.4.0.106-fake")
    with pytest.raises(ModelError, match=r"^--trt-weak-typing: TensorRT 11.4.0.106-fake builds strongly typed "
                                         r"networks only; drop the flag"):
        ensure_engine(str(seg_model), options, cache=cache, progress=lambda line: None)
