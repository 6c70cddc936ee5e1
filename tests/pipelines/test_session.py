"""The inference layout policy: files favour throughput, live sources latency,
and explicit settings always win."""

from pipelines.config import RunConfig
from pipelines.session import InferenceLayout, inference_layout, unique_source_ids


def test_layout_policy():
    config = RunConfig(source=["a.mp4"], model=["m.onnx"])
    assert inference_layout(config, live=False, cpus=2) == InferenceLayout(3, 1)
    assert inference_layout(config, live=True, cpus=2) == InferenceLayout(1, None)
    assert inference_layout(config, live=False, cpus=1) == InferenceLayout(1, None)
    explicit = RunConfig(source=["a.mp4"], model=["m.onnx"], threads=2)
    assert inference_layout(explicit, live=False, cpus=8) == InferenceLayout(1, 2)


def test_unique_source_ids():
    assert unique_source_ids(["a/cam.mp4", "b/cam.mp4", "0", "rtsp://camera.local:554/live"]) == [
        "cam", "cam-2", "cam0", "camera.local_live"]
