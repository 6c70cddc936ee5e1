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


def export_tiny_fcn(path: Path, classes: int = len(STREET_LABELS), hw: tuple[int, int] = (96, 128), seed: int = 0,
                    dynamic: bool = False, sigmoid: bool = False) -> nn.Module:
    """Export with random weights; `dynamic`: batch, height and width are dynamic axes, as in many third-party exports;
    `sigmoid`: the output is probabilities (binary models with one class often end so)."""
    torch.manual_seed(seed)
    model = TinyFCN(classes).eval()
    if sigmoid:
        model = nn.Sequential(model, nn.Sigmoid()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(model, torch.rand(1, 3, *hw), str(path), input_names=["input"], output_names=["out"],
                          dynamic_axes={n: {0: "n", 2: "h", 3: "w"} for n in ("input", "out")} if dynamic else None,
                          dynamo=False)
    return model
