"""Errors users see as one line: each names the thing that is wrong and the fix."""


class SegstreamError(Exception):
    """Base class: the CLI prints `str(err)` on one line and exits non-zero."""


class SourceError(SegstreamError):
    """A video file, camera, image folder or stream URL cannot be opened or read."""


class ModelError(SegstreamError):
    """A model file is missing, corrupt, or has outputs no adapter understands."""


class ConfigError(SegstreamError):
    """A config file or flag has an unknown key or a wrong value."""


class PublishError(SegstreamError):
    """A ZeroMQ endpoint cannot be bound or connected, or a message cannot be decoded."""


class OutputError(SegstreamError):
    """An output file (export, annotated video) cannot be written."""
