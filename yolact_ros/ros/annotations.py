"""Instances -> foxglove_msgs/ImageAnnotations: outlines, boxes and labels for Foxglove's Image panel.

Foxglove draws these over the camera image the viewer already receives, so a remote viewer
gets the overlay for a few kB a frame instead of a re-encoded ``bgr8`` image. Per instance,
lower scores first so the best end on top (as the overlay draws them):

- its **mask outline**: each external contour of the mask (``all_contours``, default) or only
  the largest, simplified with ``cv2.approxPolyDP`` to ``tolerance_px``, as a ``PointsAnnotation``
  of type ``LINE_LOOP`` filled with the class colour at ``fill_alpha``; contours smaller than
  ``min_area_px`` pixels are left out;
- its **box**: a ``LINE_LOOP`` of the four corners of ``inst.boxes[i]``, not filled;
- its **label**: ``"<class> <score>"`` (``" #<id>"`` added when ``ids`` are given, e.g. track
  ids) as a ``TextAnnotation`` whose bottom-left is the box's top-left corner (moved down
  into the image when the box touches the top edge), black on the class colour.

Coordinates are the input image's pixels in Foxglove's convention: the origin is the top-left
*corner* of the top-left pixel, so pixel (u, v) covers [u, u+1) x [v, v+1) and its centre is
(u + 0.5, v + 0.5). Outline vertices are centres of the mask's boundary pixels; box corners are
``inst.boxes`` as they are (xyxy pixel edges). Colours are the overlay's
(:func:`yolact_ros.inference.visualize.class_color`), so both views agree. The message has no
header: every annotation's ``timestamp`` is the input image's stamp, which is how Foxglove
pairs the annotations with their image.

The builder takes the message classes (:class:`AnnotationClasses`); :func:`rclpy_classes`
gives foxglove_msgs' generated ones and is the only place that imports foxglove_msgs (the
node calls it only when ``publish_annotations`` is on; a missing package is one clear error,
:class:`FoxgloveMsgsMissing`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..inference.defaults import MASK_ALPHA
from ..inference.instances import Instances
from ..inference.visualize import class_color

__all__ = [
    "AnnotationClasses",
    "FoxgloveMsgsMissing",
    "LINE_LOOP",
    "instances_to_annotations",
    "mask_outlines",
    "rclpy_classes",
]

#: foxglove_msgs/PointsAnnotation.LINE_LOOP: a closed polygon.
LINE_LOOP = 2
#: Outline simplification (cv2.approxPolyDP epsilon), pixels.
DEFAULT_TOLERANCE_PX = 1.0
#: Contours of fewer pixels (area) are not drawn.
DEFAULT_MIN_AREA_PX = 4.0
DEFAULT_THICKNESS_PX = 2.0
DEFAULT_FONT_SIZE_PX = 14.0

Make = Callable[..., Any]


@dataclass(frozen=True)
class AnnotationClasses:
    """The foxglove_msgs constructors the builder uses (rclpy's, or another library's)."""

    ImageAnnotations: Make
    PointsAnnotation: Make
    TextAnnotation: Make
    Point2: Make
    Color: Make


class FoxgloveMsgsMissing(RuntimeError):
    """foxglove_msgs cannot be imported; the message is the one line to show the user."""


def rclpy_classes() -> AnnotationClasses:
    """foxglove_msgs' rclpy classes; raises :class:`FoxgloveMsgsMissing` (one line naming the
    package to install) when foxglove_msgs is not installed."""
    try:
        from foxglove_msgs.msg import Color, ImageAnnotations, Point2, PointsAnnotation, TextAnnotation
    except ImportError as exc:
        distro = os.environ.get("ROS_DISTRO") or "<distro>"
        raise FoxgloveMsgsMissing(
            f"publish_annotations needs foxglove_msgs, which is not installed ({exc}): "
            f"install ros-{distro}-foxglove-msgs"
        ) from None
    return AnnotationClasses(
        ImageAnnotations=ImageAnnotations,
        PointsAnnotation=PointsAnnotation,
        TextAnnotation=TextAnnotation,
        Point2=Point2,
        Color=Color,
    )


def mask_outlines(
    inst: Instances,
    i: int,
    *,
    tolerance_px: float = DEFAULT_TOLERANCE_PX,
    min_area_px: float = DEFAULT_MIN_AREA_PX,
    all_contours: bool = True,
) -> list[np.ndarray]:
    """Instance ``i``'s external mask contours as float64 [K,2] (x, y) vertices in the input
    image's Foxglove coordinates (pixel centres: index + 0.5), largest first; only the largest
    when ``all_contours`` is False. Read from the instance's mask window only."""
    x0, y0, win = inst.mask_window(i)
    if win.size == 0 or not win.any():
        return []
    contours, _ = cv2.findContours(win.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # The polygon through the boundary pixels' centres misses half a pixel all round: its
    # area + half its perimeter + 1 is the pixels the piece covers (exact for straight edges;
    # a one-pixel-wide piece has zero polygon area but counts its pixels).
    sized = [(cv2.contourArea(c) + cv2.arcLength(c, True) / 2.0 + 1.0, c) for c in contours]
    sized = sorted((sc for sc in sized if sc[0] >= min_area_px), key=lambda sc: -sc[0])
    if not all_contours:
        sized = sized[:1]
    offset = np.array([x0 + 0.5, y0 + 0.5])
    out = []
    for _, c in sized:
        poly = cv2.approxPolyDP(c, tolerance_px, True) if tolerance_px > 0 else c
        out.append(poly.reshape(-1, 2).astype(np.float64) + offset)
    return out


def _color(cls: AnnotationClasses, bgr: Sequence[int], alpha: float) -> Any:
    b, g, r = bgr
    return cls.Color(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=float(alpha))


def _loop(cls: AnnotationClasses, stamp, xy: np.ndarray, outline, fill, thickness: float) -> Any:
    return cls.PointsAnnotation(
        timestamp=stamp,
        type=LINE_LOOP,
        points=[cls.Point2(x=float(x), y=float(y)) for x, y in xy.tolist()],
        outline_color=outline,
        fill_color=fill,
        thickness=float(thickness),
    )


def instances_to_annotations(
    inst: Instances,
    header,
    class_names: Sequence[str] | None = None,
    ids: Sequence[int] | None = None,
    *,
    classes: AnnotationClasses | None = None,
    show_outlines: bool = True,
    show_boxes: bool = True,
    show_labels: bool = True,
    fill_alpha: float = MASK_ALPHA,
    tolerance_px: float = DEFAULT_TOLERANCE_PX,
    min_area_px: float = DEFAULT_MIN_AREA_PX,
    all_contours: bool = True,
    thickness: float = DEFAULT_THICKNESS_PX,
    font_size: float = DEFAULT_FONT_SIZE_PX,
) -> Any:
    """One frame's ``foxglove_msgs/ImageAnnotations`` (module docstring: what is drawn, where).

    ``header``: the input image's header (only its ``stamp`` is used). ``class_names``: the
    names for ``inst.class_ids`` (default ``inst.class_names``). ``ids``: per-instance ids
    shown in the labels (the node's track ids), or None. ``classes``: the message classes
    (default :func:`rclpy_classes`). No instances: an empty message.
    """
    cls = classes or rclpy_classes()
    names = class_names if class_names is not None else inst.class_names
    stamp = header.stamp
    points, texts = [], []
    black = cls.Color(r=0.0, g=0.0, b=0.0, a=1.0)
    clear = cls.Color(r=0.0, g=0.0, b=0.0, a=0.0)
    height = inst.image_size[0]
    for i in np.argsort(np.asarray(inst.scores), kind="stable"):
        i = int(i)
        cid = int(inst.class_ids[i])
        bgr = class_color(cid)
        solid = _color(cls, bgr, 1.0)
        if show_outlines:
            fill = _color(cls, bgr, fill_alpha)
            for xy in mask_outlines(
                inst, i, tolerance_px=tolerance_px, min_area_px=min_area_px, all_contours=all_contours
            ):
                points.append(_loop(cls, stamp, xy, solid, fill, thickness))
        x1, y1, x2, y2 = (float(v) for v in inst.boxes[i])
        if show_boxes:
            corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
            points.append(_loop(cls, stamp, corners, solid, clear, thickness))
        if show_labels:
            name = names[cid] if 0 <= cid < len(names) else str(cid)
            text = f"{name} {float(inst.scores[i]):.2f}" + (f" #{ids[i]}" if ids is not None else "")
            texts.append(
                cls.TextAnnotation(
                    timestamp=stamp,
                    position=cls.Point2(x=x1, y=min(max(y1, font_size), float(height))),
                    text=text,
                    font_size=float(font_size),
                    text_color=black,
                    background_color=solid,
                )
            )
    return cls.ImageAnnotations(circles=[], points=points, texts=texts)
