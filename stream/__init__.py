"""Core types, frame sources and the ZeroMQ wire format. Depends on nothing else in segstream."""

from .errors import ConfigError, ModelError, OutputError, PublishError, SegstreamError, SourceError
from .masks import BoxMasks
from .publisher import Publisher
from .sources import Source, open_source
from .subscriber import Subscriber
from .types import NUM_KEYPOINTS, Detections, Frame, LabelMap, PanopticMap, Segment
from .wire import WireError

__all__ = [
    "BoxMasks", "ConfigError", "Detections", "Frame", "LabelMap", "ModelError", "PanopticMap", "Segment", "NUM_KEYPOINTS", "OutputError", "PublishError", "Publisher",
    "SegstreamError", "Source", "SourceError", "Subscriber", "WireError", "open_source",
]
