"""Instances -> the fields of the published messages, for any message classes (rclpy's or rosbags').

The one mapping from :class:`~yolact_ros.inference.instances.Instances` to vision_msgs 4.x
detections, this package's instance masks and the class map. The caller passes the message
classes in a :class:`MessageClasses`: the node passes rclpy's generated classes
(:mod:`yolact_ros.ros.messages`), ``yolact bag`` passes rosbags' dataclasses behind factories
that fill the fields not given with their defaults (:mod:`yolact_ros.bag.typestore`).

Both messages of one frame are index-aligned: ``detections[i].id == masks.instances[i].id``
(the index as a string, or the track id with tracking) and both carry the input image's header
(stamp and frame_id), never the time of publishing. :func:`full_frame_mask` is the way back.
:func:`label_info` is the class map whose keys are the ``class_id`` strings of
``class_id_format: id``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..inference.instances import Instances

__all__ = [
    "CLASS_ID_FORMATS",
    "MessageClasses",
    "box_to_roi",
    "full_frame_mask",
    "instances_to_detections",
    "instances_to_detections_3d",
    "instances_to_masks",
    "label_info",
    "make_image",
    "stamp_to_ns",
]

#: What a hypothesis' ``class_id`` carries: the class name (the default) or the class index as a
#: decimal string (the key of LabelInfo's class map).
CLASS_ID_FORMATS = ("name", "id")


def stamp_to_ns(stamp) -> int:
    """A stamp (``builtin_interfaces/Time``: ``sec``, ``nanosec``) in nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


#: A message class, or a factory with its keyword arguments (every field has a default).
Make = Callable[..., Any]


@dataclass(frozen=True)
class MessageClasses:
    """The message constructors the mapping uses, and how a uint8[] field is filled from an
    array (rclpy keeps an ``array.array`` without copying it; rosbags wants a numpy array)."""

    Detection2DArray: Make
    Detection2D: Make
    BoundingBox2D: Make
    ObjectHypothesisWithPose: Make
    Detection3DArray: Make
    Detection3D: Make
    InstanceMaskArray: Make
    InstanceMask: Make
    RegionOfInterest: Make
    Image: Make
    LabelInfo: Make
    VisionClass: Make
    uint8_array: Callable[[np.ndarray], Any]


def box_to_roi(box, height: int, width: int) -> tuple[int, int, int, int]:
    """xyxy float pixels -> (x_offset, y_offset, width, height) integer pixels covering the box,
    clipped to the image and at least 1x1."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x0 = min(max(int(math.floor(x1)), 0), width - 1)
    y0 = min(max(int(math.floor(y1)), 0), height - 1)
    xe = min(max(int(math.ceil(x2)), x0 + 1), width)
    ye = min(max(int(math.ceil(y2)), y0 + 1), height)
    return x0, y0, xe - x0, ye - y0


def _ids(inst: Instances, ids) -> list[str]:
    return [str(i) for i in range(len(inst))] if ids is None else [str(i) for i in ids]


def _hypothesis(cls: MessageClasses, inst: Instances, i: int, class_names, class_id_format: str):
    names = class_names if class_names is not None else inst.class_names
    cid = int(inst.class_ids[i])
    hyp = cls.ObjectHypothesisWithPose()
    by_name = class_id_format != "id" and 0 <= cid < len(names)
    hyp.hypothesis.class_id = names[cid] if by_name else str(cid)
    hyp.hypothesis.score = float(inst.scores[i])
    return hyp


def instances_to_detections(
    cls: MessageClasses,
    inst: Instances,
    header,
    class_names=None,
    *,
    ids=None,
    class_id_format: str = CLASS_ID_FORMATS[0],
):
    """vision_msgs/Detection2DArray: one Detection2D per instance, in the instances' order.

    bbox.center.position.x/y and size_x/y in image pixels; results[0].hypothesis.class_id is the
    class name (``class_id_format="name"``) or the class index as a decimal string (``"id"``,
    the LabelInfo key), .score the instance score; id is ``ids[i]`` (default: the index)."""
    det_ids = _ids(inst, ids)
    out = cls.Detection2DArray()
    out.header = header
    boxes = np.asarray(inst.boxes, dtype=np.float64)
    scores = np.asarray(inst.scores, dtype=np.float64)
    dets = []
    for i in range(len(inst)):
        x1, y1, x2, y2 = boxes[i].tolist()
        hyp = _hypothesis(cls, inst, i, class_names, class_id_format)
        hyp.hypothesis.score = float(scores[i])
        bbox = cls.BoundingBox2D(size_x=x2 - x1, size_y=y2 - y1)
        bbox.center.position.x = (x1 + x2) * 0.5
        bbox.center.position.y = (y1 + y2) * 0.5
        dets.append(cls.Detection2D(header=header, id=det_ids[i], bbox=bbox, results=[hyp]))
    out.detections = dets
    return out


def make_image(image_class: Make, uint8_array: Callable[[np.ndarray], Any], arr: np.ndarray, encoding: str, header):
    """HxW or HxWxC uint8 -> sensor_msgs/Image of ``encoding`` (header by reference)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    msg = image_class(
        height=int(arr.shape[0]), width=int(arr.shape[1]), encoding=encoding, is_bigendian=0, step=int(arr.strides[0])
    )
    msg.data = uint8_array(arr)  # set after construction: rclpy's constructor would copy it
    if header is not None:
        msg.header = header
    return msg


def instances_to_masks(cls: MessageClasses, inst: Instances, header, *, ids=None):
    """InstanceMaskArray: per instance its id (``ids[i]``, default the index), ROI (box in
    pixels) and a mono8 0/255 mask cropped to the ROI."""
    mask_ids = _ids(inst, ids)
    out = cls.InstanceMaskArray()
    out.header = header
    height, width = inst.image_size
    out.image_height, out.image_width = int(height), int(width)
    items = []
    for i in range(len(inst)):
        x0, y0, w, h = box_to_roi(inst.boxes[i], height, width)
        crop = np.ascontiguousarray(inst.mask_crop(i, x0, y0, w, h))
        # bool -> 0/255 without a temporary: view as uint8 (0/1) and scale.
        mono = np.multiply(crop.view(np.uint8), 255, dtype=np.uint8)
        items.append(
            cls.InstanceMask(
                id=mask_ids[i],
                roi=cls.RegionOfInterest(x_offset=x0, y_offset=y0, width=w, height=h, do_rectify=False),
                mask=make_image(cls.Image, cls.uint8_array, mono, "mono8", header),
            )
        )
    out.instances = items
    return out


def full_frame_mask(item, height: int, width: int) -> np.ndarray:
    """An InstanceMask (ROI in image pixels + the mono8 mask cropped to it, rows possibly padded
    to ``step``) -> bool [height, width] mask of the whole image; False outside the ROI."""
    m = item.mask
    crop = np.frombuffer(m.data, np.uint8).reshape(m.height, m.step)[:, : m.width] > 127
    r = item.roi
    out = np.zeros((height, width), bool)
    out[r.y_offset : r.y_offset + r.height, r.x_offset : r.x_offset + r.width] = crop[: r.height, : r.width]
    return out


def label_info(cls: MessageClasses, class_names: Sequence[str], threshold: float, header=None):
    """vision_msgs/LabelInfo: class index (uint16) -> name for every class, and the score
    threshold in use."""
    out = cls.LabelInfo()
    if header is not None:
        out.header = header
    out.class_map = [cls.VisionClass(class_id=i, class_name=str(name)) for i, name in enumerate(class_names)]
    out.threshold = float(threshold)
    return out


def instances_to_detections_3d(
    cls: MessageClasses,
    inst: Instances,
    placed,
    header,
    class_names=None,
    *,
    ids=None,
    class_id_format: str = CLASS_ID_FORMATS[0],
):
    """vision_msgs/Detection3DArray of the instances placed in 3D (``placed``: the
    ``Instances3D`` of :func:`yolact_ros.inference.depth.instances_in_3d`), in index order, ids
    as in :func:`instances_to_detections` (so a 3D detection is found by its 2D id). ``header``:
    the colour image's stamp with the depth camera's optical frame id. Per detection:
    ``results[0].pose.pose.position`` = the robust centre (median of the masked points),
    ``bbox.center`` = the middle of the percentile box (orientation: the optical frame's),
    ``bbox.size`` its extents, metres."""
    det_ids = _ids(inst, ids)
    out = cls.Detection3DArray()
    out.header = header
    dets = []
    for obj in placed.objects():
        hyp = _hypothesis(cls, inst, obj.index, class_names, class_id_format)
        pos = hyp.pose.pose.position
        pos.x, pos.y, pos.z = (float(v) for v in obj.centre)
        hyp.pose.pose.orientation.w = 1.0
        det = cls.Detection3D(header=header, id=det_ids[obj.index], results=[hyp])
        c = det.bbox.center
        c.position.x, c.position.y, c.position.z = (float(v) for v in obj.box_centre)
        c.orientation.w = 1.0
        det.bbox.size.x, det.bbox.size.y, det.bbox.size.z = (float(v) for v in obj.box_size)
        dets.append(det)
    out.detections = dets
    return out
