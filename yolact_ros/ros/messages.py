"""Instances -> ROS messages (vision_msgs 4.x detections, this package's instance masks).

Both messages of one frame are index-aligned: ``detections[i].id == instances[i].id == str(i)``
and both carry the input image's header (stamp and frame_id), never ``now()``.
:func:`full_frame_mask` is the way back, for the node's consumers.
"""
from __future__ import annotations

import math

import numpy as np

from sensor_msgs.msg import RegionOfInterest
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

from yolact_ros.msg import InstanceMask, InstanceMaskArray

from ..inference.instances import Instances
from .image_conversion import mono_to_image

__all__ = ["box_to_roi", "full_frame_mask", "instances_to_detections", "instances_to_masks"]


def box_to_roi(box, height: int, width: int) -> tuple[int, int, int, int]:
    """xyxy float pixels -> (x_offset, y_offset, width, height) integer pixels covering the box,
    clipped to the image and at least 1x1."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x0 = min(max(int(math.floor(x1)), 0), width - 1)
    y0 = min(max(int(math.floor(y1)), 0), height - 1)
    xe = min(max(int(math.ceil(x2)), x0 + 1), width)
    ye = min(max(int(math.ceil(y2)), y0 + 1), height)
    return x0, y0, xe - x0, ye - y0


def instances_to_detections(inst: Instances, header, class_names=None) -> Detection2DArray:
    """vision_msgs/Detection2DArray: one Detection2D per instance, in the instances' order.

    bbox.center.position.x/y and size_x/y in image pixels; results[0].hypothesis.class_id is the
    class name, .score the instance score; id is the index as a string."""
    names = class_names if class_names is not None else inst.class_names
    out = Detection2DArray()
    out.header = header
    boxes = np.asarray(inst.boxes, dtype=np.float64)
    scores = np.asarray(inst.scores, dtype=np.float64)
    dets = []
    for i in range(len(inst)):
        x1, y1, x2, y2 = boxes[i].tolist()
        cid = int(inst.class_ids[i])
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = names[cid] if 0 <= cid < len(names) else str(cid)
        hyp.hypothesis.score = float(scores[i])
        bbox = BoundingBox2D(size_x=x2 - x1, size_y=y2 - y1)
        bbox.center.position.x = (x1 + x2) * 0.5
        bbox.center.position.y = (y1 + y2) * 0.5
        dets.append(Detection2D(header=header, id=str(i), bbox=bbox, results=[hyp]))
    out.detections = dets
    return out


def instances_to_masks(inst: Instances, header) -> InstanceMaskArray:
    """InstanceMaskArray: per instance its id, ROI (box in pixels) and a mono8 0/255 mask
    cropped to the ROI."""
    out = InstanceMaskArray()
    out.header = header
    height, width = inst.masks.shape[1:]
    out.image_height, out.image_width = int(height), int(width)
    items = []
    if len(inst):
        for i in range(len(inst)):
            x0, y0, w, h = box_to_roi(inst.boxes[i], height, width)
            crop = inst.masks[i, y0:y0 + h, x0:x0 + w]
            # bool -> 0/255 without a temporary: view as uint8 (0/1) and scale.
            mono = np.multiply(crop.view(np.uint8), 255, dtype=np.uint8)
            items.append(InstanceMask(
                id=str(i),
                roi=RegionOfInterest(x_offset=x0, y_offset=y0, width=w, height=h, do_rectify=False),
                mask=mono_to_image(mono, header)))
    out.instances = items
    return out


def full_frame_mask(item: InstanceMask, height: int, width: int) -> np.ndarray:
    """An InstanceMask (ROI in image pixels + the mono8 mask cropped to it, rows possibly padded
    to ``step``) -> bool [height, width] mask of the whole image; False outside the ROI."""
    m = item.mask
    crop = np.frombuffer(m.data, np.uint8).reshape(m.height, m.step)[:, : m.width] > 127
    r = item.roi
    out = np.zeros((height, width), bool)
    out[r.y_offset:r.y_offset + r.height, r.x_offset:r.x_offset + r.width] = crop[: r.height, : r.width]
    return out
