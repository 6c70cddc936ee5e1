"""The inference layout policy: files favour throughput, live sources latency,
explicit settings win, and a GPU backend gets one frame at a time."""

from segstream.pipelines.config import RunConfig
from segstream.pipelines.session import (
    InferenceLayout,
    build_pipeline,
    inference_layout,
    make_tracker_factory,
    serial_layout,
    unique_source_ids,
)


def test_layout_policy():
    config = RunConfig(source=["a.mp4"], model=["m.onnx"])
    assert inference_layout(config, live=False, cpus=2) == InferenceLayout(3, 1)
    assert inference_layout(config, live=True, cpus=2) == InferenceLayout(1, None)
    assert inference_layout(config, live=False, cpus=1) == InferenceLayout(1, None)
    explicit = RunConfig(source=["a.mp4"], model=["m.onnx"], threads=2)
    assert inference_layout(explicit, live=False, cpus=8) == InferenceLayout(1, 2)


def test_a_gpu_backend_gets_one_frame_at_a_time(caplog):
    """TensorRT and torch on a GPU take one call at a time; the file layout's extra frames would only queue."""
    files = InferenceLayout(3, 1)
    assert serial_layout(files, serial=False, asked_workers=None) == files
    assert serial_layout(files, serial=True, asked_workers=None) == InferenceLayout(1, 1)
    with caplog.at_level("WARNING"):
        assert serial_layout(InferenceLayout(4, None), serial=True, asked_workers=4) == InferenceLayout(1, None)
    assert "infer_workers: 4 ignored, the GPU backend runs one call at a time" in caplog.text


def test_unique_source_ids():
    assert unique_source_ids(["a/cam.mp4", "b/cam.mp4", "0", "rtsp://camera.local:554/live"]) == [
        "cam", "cam-2", "cam0", "camera.local_live"]


def test_each_sources_tracker_counts_lost_time_at_that_sources_frame_rate(video, seg_model):
    """BYTE's second is 10 frames of the 10 fps sample video; SORT and DeepSORT count frames."""
    config = RunConfig(source=[str(video)], model=[str(seg_model)], tracker="byte", max_frames=2, progress=False)
    pipeline, _ = build_pipeline(config)
    pipeline.run()
    assert pipeline._trackers["vtest"].track_buffer == 10
    factory = make_tracker_factory(RunConfig(source=["a.mp4"], model=["m.onnx"], tracker="deepsort"))
    assert factory(first_id=5, frame_rate=7).max_age == 30
