"""The node's QoS profiles: sensor-data input, reliable output, latched label info."""

from __future__ import annotations

from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

__all__ = ["input_qos", "latched_qos", "output_qos"]


def input_qos(depth: int = 1) -> QoSProfile:
    """Sensor-data QoS with a queue of one: only the newest frame matters (depth frames keep a
    few, to pair with a colour frame by stamp)."""
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=QoSReliabilityPolicy.BEST_EFFORT,
        durability=QoSDurabilityPolicy.VOLATILE,
    )


def output_qos(depth: int = 5) -> QoSProfile:
    """Reliable keep-last: matches both reliable and best-effort subscribers."""
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.VOLATILE,
    )


def latched_qos() -> QoSProfile:
    """Reliable, transient local, depth 1: a late subscriber gets the last message (LabelInfo)."""
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
    )
