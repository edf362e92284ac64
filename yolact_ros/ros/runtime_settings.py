"""Run-time parameter changes: queued when a ``ros2 param set`` is accepted, applied between frames.

A change that concerns the Segmenter is applied through :data:`SEGMENTER_SETTERS`, one entry per
such parameter; every other run-time parameter is an output option that the inference worker
reads from :attr:`RuntimeSettings.outputs`. Changes are applied by the worker before its next
frame (or at once while no worker runs), so a frame never sees half of a change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .params import segmenter_nms_threshold

if TYPE_CHECKING:
    from ..inference.segmenter import Segmenter

__all__ = ["SEGMENTER_SETTERS", "RuntimeSettings"]


def _set(attribute: str, convert: Callable[[Any], Any] = lambda v: v) -> Callable[[Segmenter, Any], None]:
    def apply(seg: Segmenter, value: Any) -> None:
        setattr(seg, attribute, convert(value))

    return apply


#: How each run-time parameter that changes the Segmenter is applied to it (the parameter's value
#: is already checked by :func:`yolact_ros.ros.params.check`).
SEGMENTER_SETTERS: dict[str, Callable[[Segmenter, Any], None]] = {
    "score_threshold": _set("score_threshold"),
    "top_k": _set("top_k"),
    "nms_threshold": _set("nms_threshold", segmenter_nms_threshold),
    "classes": _set("classes", lambda v: v or None),  # empty = every class
    "cross_class_nms": _set("cross_class_nms", bool),
}


class RuntimeSettings:
    """The run-time parameters in force (:attr:`outputs`) and the changes waiting for the next frame."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}
        #: Every run-time parameter's current value (set at configure), read by the worker.
        self.outputs: dict[str, Any] = {}

    def reset(self, values: Mapping[str, Any]) -> None:
        """At configure: the run-time parameters' values; nothing pending."""
        with self._lock:
            self._pending = {}
        self.outputs = dict(values)

    def queue(self, updates: Mapping[str, Any]) -> None:
        with self._lock:
            self._pending.update(updates)

    def apply(self, seg: Segmenter | None, on_error: Callable[[str], None]) -> None:
        """Apply the waiting changes; called only between frames. A change that the Segmenter
        refuses (validated already, so unexpected) is reported through ``on_error``, one line."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending or seg is None:
            return
        for name, value in pending.items():
            try:
                setter = SEGMENTER_SETTERS.get(name)
                if setter is not None:
                    setter(seg, value)
                else:
                    self.outputs[name] = value
            except (ValueError, TypeError) as exc:  # keep serving regardless
                on_error(f"cannot apply {name}={value!r}: {exc}")
