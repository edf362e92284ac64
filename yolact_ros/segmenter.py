"""The public import path of the Segmenter: it lives in :mod:`yolact_ros.inference.segmenter`."""

from .inference.segmenter import STAGES, Segmenter, resolve_config, resolve_device

__all__ = ["Segmenter", "STAGES", "resolve_config", "resolve_device"]
