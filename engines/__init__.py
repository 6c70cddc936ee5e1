"""Models: what runs an ONNX file, what its outputs mean, and how results combine.

- `runtimes/`: the backends (ONNX Runtime, TensorRT with its engine cache and
  INT8 calibration, torch) behind `runtimes.base.Backend`, and
  `runtimes.registry`, the one place that chooses among them.
- `adapters/`: what a model's outputs mean (YOLO heads, semantic logits,
  R-CNN, re-id features); they know nothing of the runtime.
- `ops/`: the arithmetic adapters and the GPU path share (letterbox, NMS,
  masks, label-map resizing, colour features).
- `fusion/`: combining models (keypoints onto instances, panoptic maps).
- `model.py` composes a runtime and an adapter into a `Model`; `device_path.py`
  keeps pre/post-processing on the GPU; `hub.py` downloads registered models;
  `torchvision_export.py` writes torchvision's models as ONNX.
"""
