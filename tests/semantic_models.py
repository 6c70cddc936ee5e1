"""Real semantic segmentation ONNX models for the tests, exported from torch
with random weights (no weights can be downloaded here): an FCN-style
encoder with a transposed-convolution decoder, logits [1, C, H, W]."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

STREET_LABELS = ["road", "person", "sky", "building", "vegetation"]


class TinyFCN(nn.Module):
    """Stride-8 convolutions down, a learned 8x transposed convolution up (FCN-8 in miniature)."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, classes, 1),
        )
        self.upsample = nn.ConvTranspose2d(classes, classes, 8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.encoder(x))


class ClassIds(nn.Module):
    """The argmax over classes inside the model, as mmdeploy exports segmentors: int64 ids."""

    def __init__(self, keepdim: bool) -> None:
        super().__init__()
        self.keepdim = keepdim

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(1, keepdim=self.keepdim)


def export_tiny_fcn(path: Path, classes: int = len(STREET_LABELS), hw: tuple[int, int] = (96, 128), seed: int = 0,
                    dynamic: bool = False, sigmoid: bool = False, ids: str | None = None) -> nn.Module:
    """Export with random weights; `dynamic`: batch, height and width are dynamic axes, as in many third-party exports;
    `sigmoid`: the output is probabilities (binary models with one class often end so); `ids`: the output is
    class ids, "[N,1,h,w]" or "[N,h,w]". Returns the module that computes the logits."""
    torch.manual_seed(seed)
    logits = model = TinyFCN(classes).eval()
    if sigmoid:
        model = nn.Sequential(model, nn.Sigmoid()).eval()
    if ids:
        model = nn.Sequential(model, ClassIds(keepdim=ids == "[N,1,h,w]")).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(model, torch.rand(1, 3, *hw), str(path), input_names=["input"], output_names=["out"],
                          dynamic_axes={n: {0: "n", 2: "h", 3: "w"} for n in ("input", "out")} if dynamic else None,
                          dynamo=False)
    return logits if ids else model
