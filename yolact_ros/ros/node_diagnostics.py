"""The node's ``/diagnostics`` message: one status per camera, built from its counters and the model.

Called by the node's diagnostics timer. The status text, levels and keys are
:func:`yolact_ros.ros.diagnostics.build_status`'s; this module gathers what the node knows
(state, device, backend, model, weights, settings in force) for each camera.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from diagnostic_msgs.msg import DiagnosticArray

from .camera import CameraIO
from .diagnostics import Key, build_status

if TYPE_CHECKING:
    from ..inference.segmenter import Segmenter

__all__ = ["diagnostics_array"]


def diagnostics_array(
    node_name: str,
    state: str,
    cameras: Sequence[CameraIO],
    seg: Segmenter | None,
    model_name: str,
    weights: str,
    stamp,
) -> DiagnosticArray:
    """The DiagnosticArray stamped ``stamp``; each camera's "recently rejected / failed" flags
    compare its counts with those of the previous report (kept in ``CameraIO.diag_counts``)."""
    device = str(seg.device) if seg is not None else ""
    statuses = []
    for cam in cameras:
        snap = cam.stats.snapshot()
        counts = (snap["rejected"], snap["errors"])
        extra = {
            Key.CAMERA: cam.name,
            Key.DEVICE: device,
            Key.BACKEND: seg.runtime.describe() if seg is not None else "",
            Key.BACKEND_REASON: seg.choice.reason if seg is not None else "",
            Key.MODEL: model_name,
            Key.WEIGHTS: weights,
            Key.INPUT_TOPIC: cam.input_topic,
            Key.SCORE_THRESHOLD: f"{seg.score_threshold:.3f}" if seg is not None else "",
            Key.TOP_K: str(seg.top_k) if seg is not None else "",
        }
        rejected_recently, errors_recently = counts[0] > cam.diag_counts[0], counts[1] > cam.diag_counts[1]
        cam.diag_counts = counts
        statuses.append(
            build_status(
                node_name,
                f"{model_name}@{device}",
                state,
                snap,
                extra,
                camera=cam.name,
                rejected_recently=rejected_recently,
                errors_recently=errors_recently,
            )
        )
    out = DiagnosticArray()
    out.header.stamp = stamp
    out.status = statuses
    return out
