"""The namespace the package's outputs live under by default, for the node and ``yolact bag`` alike.

The launch file starts the node in it (``namespace`` launch argument), the demo talks to it, and
``yolact bag`` names its output topics under it, so a recorded bag and a live node agree.
"""

from __future__ import annotations

__all__ = ["NAMESPACE"]

#: The default namespace of the node and its outputs (``/yolact/detections``, ...).
NAMESPACE = "/yolact"
