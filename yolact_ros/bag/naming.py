"""Camera names and output topics of ``yolact bag``, the same names the node gives its outputs.

The node publishes ``<namespace>/detections`` for one camera and ``<namespace>/<camera>/detections``
for several (``cameras`` parameter; ``label_info`` once per node: ``<namespace>/label_info``).
For a bag, the camera of an image topic is its namespace: ``/front/image_raw`` -> ``front``,
``/cam/front/image_raw`` -> ``cam/front`` (a camera name the node accepts too), the
image_transport suffix ``/compressed`` left out first. When that is empty (a topic at the
root) or shared with another given topic, the camera is named after the whole topic instead
(``/left_image`` -> ``left_image``, ``/cam/image_raw`` + ``/cam/image_rect`` -> ``cam/image_raw``
and ``cam/image_rect``). Characters a ROS name does not allow become ``_``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..interfaces.names import NAMESPACE

__all__ = ["DEFAULT_NAMESPACE", "camera_names", "output_topic"]

#: The node's namespace in launch/segment.launch.py.
DEFAULT_NAMESPACE = NAMESPACE


def _clean(path: str) -> str:
    """A relative ROS name: letters, digits, ``_`` and ``/``; no part starting with a digit."""
    parts = [re.sub(r"[^A-Za-z0-9_]", "_", p) for p in path.split("/") if p]
    return "/".join(p if not p[0].isdigit() else f"_{p}" for p in parts)


def _base(topic: str) -> str:
    parts = [p for p in topic.split("/") if p]
    if len(parts) > 1 and parts[-1] == "compressed":
        parts = parts[:-1]
    return "/".join(parts)


def camera_names(topics: Sequence[str]) -> list[str]:
    """One camera name per image topic, in order; ``[""]`` for a single topic (the node's
    single-camera mode). See the module docstring for the rule."""
    if len(topics) == 1:
        return [""]
    bases = [_base(t) for t in topics]
    spaces = [b.rpartition("/")[0] for b in bases]
    names = [
        _clean(space) if space and spaces.count(space) == 1 else _clean(base) for space, base in zip(spaces, bases)
    ]
    seen: dict[str, int] = {}
    out = []
    for name in names:  # still equal (e.g. /a/image and /a/image/compressed): number them
        seen[name] = seen.get(name, 0) + 1
        out.append(name if names.count(name) == 1 else f"{name}_{seen[name]}")
    return out


def output_topic(namespace: str, camera: str, base: str) -> str:
    """``<namespace>[/<camera>]/<base>``, absolute."""
    ns = "/" + _clean(namespace) if _clean(namespace) else ""
    return f"{ns}/{camera}/{base}" if camera else f"{ns}/{base}"
