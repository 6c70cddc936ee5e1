"""segstream: instance masks, keypoints and stable track ids from video, published over ZeroMQ.

The whole pipeline in one call (the same keys as `segstream run`)::

    import segstream
    stats = segstream.run("video.mp4", "yolov8n-seg.onnx", export="tracks.txt")

or its parts, frame by frame::

    models, tracker = segstream.load_models(["yolov8n-seg.onnx"]), segstream.ByteTracker()
    with segstream.open_source("video.mp4") as source:
        for frame in source:
            tracks = tracker.update(models(frame))   # Detections with track_ids

The names below are the stable public API; the subpackages (`segstream.stream`,
`segstream.engines`, `segstream.tracking`, `segstream.pipelines`) hold the rest.
"""

from importlib.metadata import PackageNotFoundError, version

from .engines.model import Model, ModelSet, load_models
from .engines.ops.appearance import color_embeddings
from .pipelines.draw import annotate
from .pipelines.run import run
from .pipelines.stats import RunStats
from .stream.errors import ConfigError, ModelError, OutputError, PublishError, SegstreamError, SourceError
from .stream.masks import BoxMasks
from .stream.sources import Source, open_source
from .stream.subscriber import Subscriber
from .stream.types import Detections, Frame, LabelMap, PanopticMap
from .stream.wire import WireError, detections_from_message, panoptic_from_message, semantic_from_message
from .tracking.byte import ByteTracker
from .tracking.deepsort import DeepSort
from .tracking.sort import Sort

try:
    __version__ = version("segstream")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "BoxMasks", "ByteTracker", "ConfigError", "DeepSort", "Detections", "Frame", "LabelMap", "Model", "ModelError",
    "ModelSet", "OutputError", "PanopticMap", "PublishError", "RunStats", "SegstreamError", "Sort", "Source",
    "SourceError", "Subscriber", "WireError", "__version__", "annotate", "color_embeddings", "detections_from_message",
    "load_models", "open_source", "panoptic_from_message", "run", "semantic_from_message",
]
