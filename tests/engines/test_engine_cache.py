"""The TensorRT engine cache: an engine is reused only for the same model
file, TensorRT version, GPU, precision and shapes, and a miss says why."""

from __future__ import annotations

import shutil

import pytest
from segstream.engines.runtimes.engine_cache import BuildOptions, DeviceInfo, EngineCache, ShapeProfile, engine_key
from segstream.stream.errors import ConfigError

ORIN = DeviceInfo("10.3.0", "Orin", (8, 7))
H100 = DeviceInfo("10.7.0", "NVIDIA H100 80GB HBM3", (9, 0))
PROFILE = ShapeProfile(1, 1, 1, (320, 320), (320, 320), (320, 320))


@pytest.fixture
def model(tmp_path, seg_model):
    path = tmp_path / "yolov8n-seg.onnx"
    shutil.copy(seg_model, path)
    return str(path)


def test_key_changes_with_everything_an_engine_depends_on():
    base = engine_key("abc", ORIN, BuildOptions("fp16", PROFILE))
    assert base == engine_key("abc", ORIN, BuildOptions("fp16", PROFILE))
    others = [
        engine_key("abd", ORIN, BuildOptions("fp16", PROFILE)),
        engine_key("abc", H100, BuildOptions("fp16", PROFILE)),
        engine_key("abc", DeviceInfo("10.3.1", "Orin", (8, 7)), BuildOptions("fp16", PROFILE)),
        engine_key("abc", ORIN, BuildOptions("fp32", PROFILE)),
        engine_key("abc", ORIN, BuildOptions("fp16", ShapeProfile(1, 4, 8, (320, 320), (320, 320), (320, 320)))),
        engine_key("abc", ORIN, BuildOptions("int8", PROFILE, calib="frames/", calib_input="1111")),
        engine_key("abc", ORIN, BuildOptions("int8", PROFILE, calib="frames/", calib_input="2222")),  # other mean/std
        engine_key("abc", ORIN, BuildOptions("fp16", PROFILE, fp32_tail=False)),
        engine_key("abc", ORIN, BuildOptions("fp16", PROFILE, weak_typing=True)),  # TensorRT 10's old way
    ]
    assert base not in others and len(set(others)) == len(others)
    # fp32 engines are fp32 throughout: the fp16 tail setting does not make a second one.
    assert engine_key("abc", ORIN, BuildOptions("fp32", PROFILE)) == engine_key(
        "abc", ORIN, BuildOptions("fp32", PROFILE, fp32_tail=False))


def test_an_engine_built_with_other_options_is_rebuilt_and_says_which(tmp_path, model):
    """An engine from before the fp32 tail (or with it switched off) is not
    reused for a build that asks for it, and the one line names the option."""
    cache = EngineCache(tmp_path / "engines")
    cache.store(model, ORIN, BuildOptions("fp16", PROFILE, fp32_tail=False), b"old")
    found, why = cache.lookup(model, ORIN, BuildOptions("fp16", PROFILE))
    assert found is None
    assert why == "engine for yolov8n-seg.onnx was built with other options (fp32_tail): rebuilding"


def test_engine_is_reused_on_the_same_device_only(tmp_path, model):
    cache = EngineCache(tmp_path / "engines")
    options = BuildOptions("fp16", PROFILE)
    found, why = cache.lookup(model, ORIN, options)
    assert found is None and why == "no engine for yolov8n-seg.onnx yet: building"
    stored = cache.store(model, ORIN, options, b"serialized")
    assert cache.lookup(model, ORIN, options) == (stored, "cached")
    assert stored.read_bytes() == b"serialized"

    found, why = cache.lookup(model, H100, options)
    assert found is None
    assert why == ("engine for yolov8n-seg.onnx was built for TensorRT 10.3.0 on Orin (sm_87); "
                   "this is TensorRT 10.7.0 on NVIDIA H100 80GB HBM3 (sm_90): rebuilding")
    found, why = cache.lookup(model, ORIN, BuildOptions("fp32", PROFILE))
    assert found is None and "with fp32 and this shape profile" in why


def test_changed_model_file_is_rebuilt(tmp_path, model):
    cache = EngineCache(tmp_path / "engines")
    options = BuildOptions("fp16", PROFILE)
    cache.store(model, ORIN, options, b"old")
    with open(model, "ab") as f:
        f.write(b"\0")
    found, why = cache.lookup(model, ORIN, options)
    assert found is None and why == "yolov8n-seg.onnx changed since its engine was built: rebuilding"


def test_engine_without_its_sidecar_is_not_trusted(tmp_path, model):
    """A build killed between the two writes leaves no sidecar: that engine is rebuilt."""
    cache = EngineCache(tmp_path / "engines")
    options = BuildOptions("fp16", PROFILE)
    stored = cache.store(model, ORIN, options, b"engine")
    stored.with_suffix(".json").unlink()
    assert cache.lookup(model, ORIN, options)[0] is None


def test_timing_cache_is_per_device(tmp_path):
    cache = EngineCache(tmp_path)
    assert cache.timing_cache_path(ORIN) != cache.timing_cache_path(H100)
    assert cache.timing_cache_path(ORIN) == cache.timing_cache_path(DeviceInfo("10.3.0", "Orin", (8, 7)))


def test_int8_scales_are_kept_per_model_device_and_calibration_set(tmp_path, model, seg_model):
    """TensorRT applies a calibration cache it is given without recalibrating: scales
    from another model, GPU or calibration video would quantise silently wrong."""
    cache = EngineCache(tmp_path)
    options = BuildOptions("int8", PROFILE, calib="frames/", calib_input="1111")
    path = cache.calibration_cache_path(model, ORIN, options)
    assert path == cache.calibration_cache_path(model, ORIN, options)
    batch8 = ShapeProfile(1, 8, 8, (320, 320), (320, 320), (320, 320))
    assert path == cache.calibration_cache_path(model, ORIN, BuildOptions("int8", batch8, calib="frames/", calib_input="1111"))
    with open(model, "ab") as f:  # an edited model is another network
        f.write(b"\0")
    others = [
        cache.calibration_cache_path(model, ORIN, options),
        cache.calibration_cache_path(str(seg_model), ORIN, options),  # the same file under its own name
        cache.calibration_cache_path(model, H100, options),
        cache.calibration_cache_path(model, ORIN, BuildOptions("int8", PROFILE, calib="other.mp4", calib_input="1111")),
        cache.calibration_cache_path(model, ORIN, BuildOptions("int8", PROFILE, calib="frames/", calib_input="2222")),
        cache.calibration_cache_path(model, ORIN, BuildOptions("int8", PROFILE, calib="frames/", calib_input="1111", calib_frames=64)),
    ]
    assert path not in others and len(set(others)) == len(others)
    assert cache.timing_cache_path(ORIN) not in others


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "int4"}, "precision: 'int4' is not one of fp32, fp16, int8"),
    ({"precision": "int8"}, "int8 needs calibration frames: give --calib VIDEO_OR_IMAGE_DIR"),
    ({"profile": ShapeProfile(2, 1, 1)}, "batch: need 1 <= min <= opt <= max, got 2/1/1"),
])
def test_bad_build_options_name_the_problem(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BuildOptions(**kwargs)


def test_unwritable_cache_is_a_one_line_error(tmp_path, model):
    from segstream.stream.errors import OutputError

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write the engine cache in .*; set SEGSTREAM_CACHE to a writable folder"):
        EngineCache(blocker / "engines").store(model, ORIN, BuildOptions("fp16", PROFILE), b"engine")
