"""Instances -> ROS messages (vision_msgs 4.x detections, this package's instance masks).

Both messages of one frame are index-aligned: ``detections[i].id == instances[i].id`` (the
index as a string, or the track id with tracking) and both carry the input image's header
(stamp and frame_id), never ``now()``. :func:`full_frame_mask` is the way back, for the node's
consumers. :func:`label_info` is the class map (vision_msgs/LabelInfo) whose keys are the
``class_id`` strings with ``class_id_format: id``.
"""

from __future__ import annotations

import array
import math

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField, RegionOfInterest
from vision_msgs.msg import (
    BoundingBox2D,
    Detection2D,
    Detection2DArray,
    Detection3D,
    Detection3DArray,
    LabelInfo,
    ObjectHypothesisWithPose,
    VisionClass,
)

from yolact_ros.msg import InstanceMask, InstanceMaskArray

from ..inference.instances import Instances
from .image_conversion import mono_to_image

__all__ = [
    "box_to_roi",
    "full_frame_mask",
    "instances_to_detections",
    "instances_to_detections_3d",
    "instances_to_masks",
    "label_info",
    "points_to_cloud",
]


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


def _hypothesis(inst: Instances, i: int, class_names, class_id_format: str) -> ObjectHypothesisWithPose:
    names = class_names if class_names is not None else inst.class_names
    cid = int(inst.class_ids[i])
    hyp = ObjectHypothesisWithPose()
    by_name = class_id_format != "id" and 0 <= cid < len(names)
    hyp.hypothesis.class_id = names[cid] if by_name else str(cid)
    hyp.hypothesis.score = float(inst.scores[i])
    return hyp


def instances_to_detections(
    inst: Instances, header, class_names=None, *, ids=None, class_id_format: str = "name"
) -> Detection2DArray:
    """vision_msgs/Detection2DArray: one Detection2D per instance, in the instances' order.

    bbox.center.position.x/y and size_x/y in image pixels; results[0].hypothesis.class_id is the
    class name (``class_id_format="name"``) or the class index as a decimal string (``"id"``,
    the LabelInfo key), .score the instance score; id is ``ids[i]`` (default: the index)."""
    det_ids = _ids(inst, ids)
    out = Detection2DArray()
    out.header = header
    boxes = np.asarray(inst.boxes, dtype=np.float64)
    scores = np.asarray(inst.scores, dtype=np.float64)
    dets = []
    for i in range(len(inst)):
        x1, y1, x2, y2 = boxes[i].tolist()
        hyp = _hypothesis(inst, i, class_names, class_id_format)
        hyp.hypothesis.score = float(scores[i])
        bbox = BoundingBox2D(size_x=x2 - x1, size_y=y2 - y1)
        bbox.center.position.x = (x1 + x2) * 0.5
        bbox.center.position.y = (y1 + y2) * 0.5
        dets.append(Detection2D(header=header, id=det_ids[i], bbox=bbox, results=[hyp]))
    out.detections = dets
    return out


def instances_to_masks(inst: Instances, header, *, ids=None) -> InstanceMaskArray:
    """InstanceMaskArray: per instance its id (``ids[i]``, default the index), ROI (box in
    pixels) and a mono8 0/255 mask cropped to the ROI."""
    mask_ids = _ids(inst, ids)
    out = InstanceMaskArray()
    out.header = header
    height, width = inst.image_size
    out.image_height, out.image_width = int(height), int(width)
    items = []
    if len(inst):
        for i in range(len(inst)):
            x0, y0, w, h = box_to_roi(inst.boxes[i], height, width)
            crop = np.ascontiguousarray(inst.mask_crop(i, x0, y0, w, h))
            # bool -> 0/255 without a temporary: view as uint8 (0/1) and scale.
            mono = np.multiply(crop.view(np.uint8), 255, dtype=np.uint8)
            items.append(
                InstanceMask(
                    id=mask_ids[i],
                    roi=RegionOfInterest(x_offset=x0, y_offset=y0, width=w, height=h, do_rectify=False),
                    mask=mono_to_image(mono, header),
                )
            )
    out.instances = items
    return out


def full_frame_mask(item: InstanceMask, height: int, width: int) -> np.ndarray:
    """An InstanceMask (ROI in image pixels + the mono8 mask cropped to it, rows possibly padded
    to ``step``) -> bool [height, width] mask of the whole image; False outside the ROI."""
    m = item.mask
    crop = np.frombuffer(m.data, np.uint8).reshape(m.height, m.step)[:, : m.width] > 127
    r = item.roi
    out = np.zeros((height, width), bool)
    out[r.y_offset : r.y_offset + r.height, r.x_offset : r.x_offset + r.width] = crop[: r.height, : r.width]
    return out


def label_info(class_names, threshold: float, header=None) -> LabelInfo:
    """vision_msgs/LabelInfo: class index (uint16) -> name for every class, and the score
    threshold in use."""
    out = LabelInfo()
    if header is not None:
        out.header = header
    out.class_map = [VisionClass(class_id=i, class_name=str(name)) for i, name in enumerate(class_names)]
    out.threshold = float(threshold)
    return out


def instances_to_detections_3d(
    inst: Instances, placed, header, class_names=None, *, ids=None, class_id_format: str = "name"
) -> Detection3DArray:
    """vision_msgs/Detection3DArray of the instances placed in 3D (``placed``: an
    :class:`~yolact_ros.inference.depth.Instances3D`), in index order, ids as in
    :func:`instances_to_detections` (so a 3D detection is found by its 2D id). ``header``:
    the colour image's stamp with the depth camera's optical frame id. Per detection:
    ``results[0].pose.pose.position`` = the robust centre (median of the masked points),
    ``bbox.center`` = the middle of the percentile box (orientation: the optical frame's),
    ``bbox.size`` its extents, metres."""
    det_ids = _ids(inst, ids)
    out = Detection3DArray()
    out.header = header
    dets = []
    for obj in placed.objects():
        hyp = _hypothesis(inst, obj.index, class_names, class_id_format)
        pos = hyp.pose.pose.position
        pos.x, pos.y, pos.z = (float(v) for v in obj.centre)
        hyp.pose.pose.orientation.w = 1.0
        det = Detection3D(header=header, id=det_ids[obj.index], results=[hyp])
        c = det.bbox.center
        c.position.x, c.position.y, c.position.z = (float(v) for v in obj.box_centre)
        c.orientation.w = 1.0
        det.bbox.size.x, det.bbox.size.y, det.bbox.size.z = (float(v) for v in obj.box_size)
        dets.append(det)
    out.detections = dets
    return out


def points_to_cloud(points: np.ndarray, header, ids=None) -> PointCloud2:
    """sensor_msgs/PointCloud2 (unorganised, x y z float32, ``instance`` uint32) of the
    structured points of :func:`yolact_ros.inference.depth.instance_points`; ``instance`` is
    the instance's id (``ids[index]`` when given, e.g. track ids, else its index)."""
    cloud = np.zeros(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("instance", "<u4")])
    for axis in ("x", "y", "z"):
        cloud[axis] = points[axis]
    index = points["instance"].astype(np.int64)
    cloud["instance"] = np.asarray([int(i) for i in ids], np.int64)[index] if ids is not None and len(index) else index
    msg = PointCloud2(
        header=header,
        height=1,
        width=len(cloud),
        is_bigendian=False,
        point_step=16,
        row_step=16 * len(cloud),
        is_dense=True,
    )
    msg.fields = [
        PointField(name=n, offset=o, datatype=d, count=1)
        for n, o, d in (
            ("x", 0, PointField.FLOAT32),
            ("y", 4, PointField.FLOAT32),
            ("z", 8, PointField.FLOAT32),
            ("instance", 12, PointField.UINT32),
        )
    ]
    data = array.array("B")
    data.frombytes(cloud.tobytes())
    msg.data = data  # an array.array is kept as is (a bytes value would be copied element-wise)
    return msg
