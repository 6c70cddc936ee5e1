"""Frames of several cameras in one model call: a static-batch Ultralytics
export is made batchable only when the result is verified identical, and
a batched call gives each frame exactly its own outputs."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from segstream.engines.model import Model, ModelSet
from segstream.engines.runtimes.batching import batchable_model, split_outputs, stack_feeds
from segstream.stream.errors import ModelError
from segstream.stream.sources import open_source


def run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


@pytest.mark.parametrize("name", ["models/yolov8n-seg_320_fp32.onnx", "models/yolo11n-pose.onnx"])
def test_static_export_becomes_batchable_with_identical_outputs(name, tmp_path):
    from conftest import asset

    path = asset(name)
    batched = batchable_model(str(path), tmp_path)
    assert batched != str(path) and Model.load(batched).batchable
    assert batchable_model(str(path), tmp_path) == batched  # cached
    x = np.random.default_rng(1).random((3, 3, 320, 320) if "320" in name else (3, 3, 640, 640), dtype=np.float32)
    together = run(batched, x)
    for i in range(3):
        for a, b in zip(run(path, x[i:i + 1]), together):
            np.testing.assert_array_equal(a[0], b[i])


def test_a_model_that_cannot_be_made_batchable_says_to_re_export(tmp_path):
    class FoldsTheBatch(torch.nn.Module):
        def forward(self, x):
            return (x.reshape(3, -1) * 2).reshape(1, 3, 8, 8)

    path = tmp_path / "folds.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(FoldsTheBatch(), torch.rand(1, 3, 8, 8), str(path), dynamo=False)
    with pytest.raises(ModelError, match="could not be made batchable: re-export it with a dynamic batch"):
        batchable_model(str(path), tmp_path)


def test_infer_batch_gives_each_frame_its_own_outputs(seg_model, video, tmp_path):
    models = ModelSet([Model.load(batchable_model(str(seg_model), tmp_path))])
    with open_source(str(video)) as source:
        frames = [f for _, f in zip(range(3), source)]
    prepared = [models.preprocess(f) for f in frames]
    batched = models.infer_batch(prepared)
    for p, out in zip(prepared, batched):
        alone = models.infer(p)
        for key in alone[0]:
            np.testing.assert_allclose(out[0][key], alone[0][key], rtol=1e-5, atol=1e-4)


def test_stack_and_split_are_inverse():
    feeds = [{"x": np.full((1, 2), i, np.float32)} for i in range(3)]
    stacked = stack_feeds(feeds)
    assert stacked["x"].shape == (3, 2)
    assert all(np.array_equal(a["x"], b["x"]) for a, b in zip(split_outputs(stacked, 3), feeds))


def test_a_model_whose_patched_graph_does_not_run_is_refused_cleanly(tmp_path):
    """A Reshape past the batch that the patch cannot fix: one clear error, no partial file."""
    class FlattensThenFolds(torch.nn.Module):
        def forward(self, x):
            return (x.reshape(1, -1) * 2).reshape(3, 64)

    path = tmp_path / "model" / "folds.onnx"
    path.parent.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(FlattensThenFolds(), torch.rand(1, 3, 8, 8), str(path), dynamo=False)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="could not be made batchable"):
        batchable_model(str(path), cache)
    assert not list(cache.iterdir())


def test_torch_exports_with_allowzero_reshapes_become_batchable(tmp_path):
    """OSNet's export (allowzero=1 on its flatten) takes a whole frame of crops in one call."""
    from conftest import asset

    path = asset("models/osnet_x0_25_msmt17.onnx")
    batched = batchable_model(str(path), tmp_path)
    x = np.random.default_rng(2).random((3, 3, 256, 128), dtype=np.float32)
    together = run(batched, x)[0]
    for i in range(3):
        np.testing.assert_allclose(run(path, x[i:i + 1])[0][0], together[i], rtol=1e-5, atol=1e-5)