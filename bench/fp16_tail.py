"""Does keeping a detector's decoding tail in fp32 keep fp16 boxes at fp32's?

TensorRT fp16 builds keep the layers after the last convolutions in fp32
(engines/runtimes/precision.py). This measures why, without TensorRT: the model is
converted to torch (onnx2torch) and run three ways on the chosen device,
- "all fp16": every layer and constant in fp16 (a TensorRT fp16 build
  without precision constraints may choose this),
- "fp32 tail": the same, with the layers `engines.runtimes.precision.output_tail`
  picks (and their constants) in fp32, as segstream's TensorRT builds ask,
- "autocast": the torch backend's fp16 (torch's mixed precision),
and each is matched against ONNX Runtime's fp32 results on the CPU, frame by
frame, as bench/gpu_parity.py does (bar: boxes IoU >= 0.99, masks >= 0.97).
On a CPU, fp16 arithmetic is emulated and slow (about 2 minutes for 40
frames of the seg model on 2 cores); on a GPU it is the real kernels.

    python bench/fp16_tail.py [--model M.onnx] [--device cpu|cuda] [--frames 40]

Needs the torch backend's dependencies (onnx2torch, a torchvision matching torch).
"""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
from gpu_parity import match_objects  # noqa: E402  (bench/ is on the path: it holds this script)
from segstream.engines.model import Model
from segstream.engines.runtimes.onnx_info import load_onnx
from segstream.engines.runtimes.precision import onnx_layers, output_tail
from segstream.stream.sources import open_source

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")


def fx_target(onnx_name: str) -> str:
    """onnx2torch's module path for an ONNX node name ("/model.22/Concat" -> "model/22/Concat")."""
    return onnx_name.lstrip("/").replace(".", "/")


def half_with_fp32_tail(module: Any, tail: set[str]) -> Any:
    """`module` (an onnx2torch GraphModule) in fp16, taking an fp32 input,
    except the call_module nodes whose targets are in `tail`: they, and the
    constants only they read, stay fp32, and the activations they read from
    outside the tail are cast up."""
    fp32 = copy.deepcopy(module)
    module = module.half()
    graph = module.graph
    tail_nodes = [n for n in graph.nodes if n.op == "call_module" and n.target in tail]
    in_tail = set(tail_nodes)
    for node in graph.nodes:
        if node.op == "get_attr" and node.users and all(u in in_tail for u in node.users):
            owner_path, _, attr = node.target.rpartition(".")
            owner, original = module.get_submodule(owner_path), fp32.get_submodule(owner_path)
            setattr(owner, attr, getattr(original, attr))
    for node in tail_nodes:
        module.get_submodule(node.target).float()
        for source in node.all_input_nodes:
            if source not in in_tail and source.op != "get_attr":  # activations, not constants (shapes are int)
                with graph.inserting_before(node):
                    up = graph.call_method("float", (source,))
                node.replace_input_with(source, up)
    for placeholder in [n for n in graph.nodes if n.op == "placeholder"]:
        with graph.inserting_after(placeholder):
            down = graph.call_method("half", (placeholder,))
        placeholder.replace_all_uses_with(down)
        down.args = (placeholder,)
    graph.lint()
    module.recompile()
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=str(ASSETS / "video" / "vtest.avi"))
    parser.add_argument("--model", default=str(ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()

    graph = load_onnx(args.model).graph
    tail = {fx_target(graph.node[i].name) for i in output_tail(onnx_layers(graph))}
    reference = Model.load(args.model, backend="onnxruntime", device="cpu")
    variants = {}
    for label in ("all fp16", "fp32 tail", "autocast"):
        model = Model.load(args.model, backend="torch", device=args.device)
        if label == "autocast":
            model.backend.half = True  # the torch backend's fp16 (on a CPU it would otherwise run fp32)
        else:
            model.backend.module = half_with_fp32_tail(model.backend.module, tail if label == "fp32 tail" else set())
        variants[label] = model
    results: dict[str, list[Any]] = {label: [[], [], [], 0] for label in variants}
    frames = 0
    with open_source(args.video) as source:
        for _, frame in zip(range(args.frames), source):
            expected = reference(frame)
            frames += 1
            for label, model in variants.items():
                boxes, masks, points, alone = match_objects(model(frame), expected)
                results[label][0].append(boxes)
                results[label][1].append(masks)
                results[label][2].append(points)
                results[label][3] += alone
    print(f"{Path(args.model).name}, {frames} frames, torch on {args.device} against onnxruntime fp32 on cpu; "
          f"fp32 tail: {len(tail)} of {len(graph.node)} nodes")
    print(f"{'variant':<11}{'matched':>8}{'one side':>9}{'box<0.99':>9}{'min box':>9}{'mask<0.97':>10}{'min mask':>9}"
          f"{'kpt max px':>11}")
    for label, (boxes, masks, points, alone) in results.items():
        b, m, p = np.concatenate(boxes), np.concatenate(masks), np.concatenate(points)
        mask_cols = f"{(m < 0.97).sum():>10}{m.min():>9.4f}" if len(m) else f"{'-':>10}{'-':>9}"
        kpt = f"{p.max():>11.2f}" if len(p) else f"{'-':>11}"
        print(f"{label:<11}{len(b):>8}{alone:>9}{(b < 0.99).sum():>9}{b.min() if len(b) else 1:>9.4f}{mask_cols}{kpt}")


if __name__ == "__main__":
    main()
