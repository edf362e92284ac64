"""One camera's depth and camera_info from a bag, paired with its colour frames by stamp (the node's rule).

The depth frames are kept in a short queue; a colour frame takes the one of the nearest
stamp within the tolerance, with the newest camera_info, and is placed in 3D with
:func:`yolact_ros.inference.depth.instances_in_3d` in the depth camera's optical frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ..inference.defaults import DEPTH_MIN_POINTS
from ..inference.depth import PinholeCamera, instances_in_3d
from ..inference.instances import Instances
from ..interfaces.fields import stamp_to_ns
from ..interfaces.images import ImageConversionError, depth_image_to_array

__all__ = ["DEPTH_QUEUE", "DepthPairing"]

#: Depth frames kept for pairing (a bag is read in log order: a few frames of slack).
DEPTH_QUEUE = 16


class DepthPairing:
    """Depth frames and the newest camera_info of one camera."""

    def __init__(self, topic: str):
        self.topic = topic
        self.frames: deque = deque(maxlen=DEPTH_QUEUE)  # (stamp ns, message)
        self.info = None
        self.newest = -1  # the newest depth stamp seen

    def add(self, role: str, reader, conn, raw, warn: Callable[[str], None]) -> None:
        """A depth (``role`` "depth") or camera_info message as read from the bag."""
        try:
            msg = reader.deserialize(raw, conn.msgtype)
        except Exception as exc:  # noqa: BLE001 - rosbags raises many kinds for bad CDR
            warn(f"{conn.topic}: a message does not deserialize ({type(exc).__name__}: {exc}); left out")
            return
        if role == "info":
            self.info = msg
            return
        stamp = stamp_to_ns(msg.header.stamp)
        self.frames.append((stamp, msg))
        self.newest = max(self.newest, stamp)

    def passed(self, stamp_ns: int) -> bool:
        """True once a depth frame at or after ``stamp_ns`` was read: no nearer one can follow."""
        return self.newest >= stamp_ns

    def place(self, inst: Instances, stamp_ns: int, tolerance_s: float, warn: Callable[[str], None]):
        """``(Instances3D, frame_id)`` of the frame at ``stamp_ns``, or None without a usable
        depth frame within the tolerance (or without camera_info)."""
        tolerance = int(tolerance_s * 1e9)
        best = min(((abs(s - stamp_ns), m) for s, m in self.frames), default=None, key=lambda p: p[0])
        if best is None or best[0] > tolerance or self.info is None:
            return None
        depth_msg, info = best[1], self.info
        try:
            depth = depth_image_to_array(depth_msg)
            camera = PinholeCamera.from_k(
                list(info.k), int(info.width) or depth.shape[1], int(info.height) or depth.shape[0]
            )
            placed = instances_in_3d(inst, depth, camera, encoding=depth_msg.encoding, min_points=DEPTH_MIN_POINTS)
        except (ImageConversionError, ValueError) as exc:
            warn(f"cannot use the depth frame on {self.topic}: {exc}")
            return None
        return placed, str(info.header.frame_id or depth_msg.header.frame_id)
