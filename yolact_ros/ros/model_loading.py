"""The model at configure: the start parameters checked, the Segmenter built, failures as one line.

``param(name)`` reads a parameter's current value (the node's :func:`yolact_ros.ros.node_params.read`).
No rclpy import: torch is imported only when the Segmenter is built.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .params import segmenter_nms_threshold
from .throttle import one_line

if TYPE_CHECKING:
    from ..inference.segmenter import Segmenter

__all__ = ["load_error_line", "load_segmenter", "start_parameter_errors"]

ParamReader = Callable[[str], Any]


def start_parameter_errors(param: ParamReader) -> list[str]:
    """Why ``weights``, ``config`` or ``device`` cannot be used (one line each), before any loading."""
    errors = []
    weights = str(param("weights")).strip()
    if not weights:
        errors.append(
            "parameter weights is empty: set it to a .pth file "
            "(weights:=/path/to/file.pth with ros2 launch, -p weights:=... with ros2 run)"
        )
    config = str(param("config")).strip()
    if config:
        from ..model.config import get_config  # imports torch: only at configure

        try:
            get_config(config)
        except KeyError as exc:
            errors.append(f"parameter config: {config!r} is not accepted ({one_line(exc)})")
    device = str(param("device")).strip() or "auto"
    from ..inference.segmenter import resolve_device

    try:
        resolve_device(device)
    except ValueError as exc:
        errors.append(f"parameter device: {device!r} cannot be used ({one_line(exc)})")
    return errors


def load_segmenter(param: ParamReader, weights: str, device: str) -> Segmenter:
    """The Segmenter the parameters describe (warmed up when ``warmup``); raises on failure."""
    from ..inference.segmenter import Segmenter  # torch import deferred to configure

    if not os.path.isfile(weights):
        raise FileNotFoundError("no such file" if not os.path.exists(weights) else "not a regular file")
    seg = Segmenter(
        config=str(param("config")).strip() or None,
        weights=weights,
        device=device,
        score_threshold=float(param("score_threshold")),
        top_k=int(param("top_k")),
        nms_threshold=segmenter_nms_threshold(float(param("nms_threshold"))),
        precision=str(param("precision")),
        cuda_graph=bool(param("cuda_graph")),
        backend=str(param("backend")),
        cross_class_nms=bool(param("cross_class_nms")),
        num_threads=int(param("threads")) or None,
        cache_dir=str(param("cache_dir")).strip() or None,
    )
    if param("warmup"):
        seg.warmup()
    return seg


def load_error_line(weights: str, exc: BaseException) -> str:
    """A failed load as one line naming the weights file."""
    text = one_line(exc)
    if weights not in text:
        text = f"{weights}: {text}"
    return f"cannot load weights {text}" if not text.startswith("cannot") else text
