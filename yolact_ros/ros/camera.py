"""One camera served by the node: its topic names, counters, depth pairing and tracker.

With the ``cameras`` parameter empty the node serves one camera named ``""`` on ``image`` ->
``detections``; otherwise every camera ``c`` has ``c/image`` -> ``c/detections`` and so on
(relative names, so ``-r __ns:=/x`` moves them all). Pure Python: the rclpy handles
(subscriptions, publishers) are stored here by the node, never created here.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .diagnostics import FrameStats

if TYPE_CHECKING:
    from ..inference.tracking import Tracker

__all__ = ["CameraIO", "DEPTH_QUEUE"]

#: Depth frames kept per camera for pairing by stamp (bounded; a few frames of a 30 Hz camera).
DEPTH_QUEUE = 8


@dataclass
class CameraIO:
    name: str  # "" = the single-camera mode
    transport: str | None = None  # raw | compressed; None = the image_transport parameter
    stats: FrameStats = field(default_factory=FrameStats)
    sub: Any = None  # rclpy Subscription
    pubs: dict = field(default_factory=dict)
    depth_subs: list = field(default_factory=list)
    input_topic: str = ""
    tracker: Tracker | None = None
    diag_counts: tuple = (0, 0)
    info: object = None  # the newest sensor_msgs/CameraInfo
    _depths: deque = field(default_factory=lambda: deque(maxlen=DEPTH_QUEUE))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def topic(self, base: str) -> str:
        """``base`` (e.g. ``image``, ``detections``) under this camera's prefix."""
        return f"{self.name}/{base}" if self.name else base

    @property
    def label(self) -> str:
        return self.name or "image"

    # -- depth (executor thread puts, worker takes) ---------------------------------------------------
    def add_depth(self, stamp_ns: int, msg) -> None:
        with self._lock:
            self._depths.append((stamp_ns, msg))

    def set_info(self, msg) -> None:
        with self._lock:
            self.info = msg

    def depth_for(self, stamp_ns: int, tolerance_ns: int):
        """``(depth message, camera info)`` closest in stamp to ``stamp_ns`` within the
        tolerance, or None when there is none (or no camera info yet)."""
        with self._lock:
            info = self.info
            best = None
            for ns, msg in self._depths:
                gap = abs(ns - stamp_ns)
                if gap <= tolerance_ns and (best is None or gap < best[0]):
                    best = (gap, msg)
        if best is None or info is None:
            return None
        return best[1], info

    def clear(self) -> None:
        with self._lock:
            self._depths.clear()
        if self.tracker is not None:
            self.tracker.reset()
