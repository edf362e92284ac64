"""Instances -> rclpy messages: the mapping of :mod:`yolact_ros.interfaces.fields` bound to
rclpy's message classes (vision_msgs 4.x detections, this package's instance masks, the class
map), plus the point cloud of the 3D outputs.

Both messages of one frame are index-aligned: ``detections[i].id == instances[i].id`` (the
index as a string, or the track id with tracking) and both carry the input image's header
(stamp and frame_id), never ``now()``. :func:`full_frame_mask` is the way back, for the node's
consumers. :func:`label_info` is the class map (vision_msgs/LabelInfo) whose keys are the
``class_id`` strings with ``class_id_format: id``.
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import Image, PointCloud2, PointField, RegionOfInterest
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
from ..interfaces import fields
from ..interfaces.fields import CLASS_ID_FORMATS, box_to_roi, full_frame_mask
from .image_conversion import uint8_array

__all__ = [
    "RCLPY_CLASSES",
    "box_to_roi",
    "full_frame_mask",
    "instances_to_detections",
    "instances_to_detections_3d",
    "instances_to_masks",
    "label_info",
    "points_to_cloud",
]


#: rclpy's generated classes, for :mod:`yolact_ros.interfaces.fields`.
RCLPY_CLASSES = fields.MessageClasses(
    Detection2DArray=Detection2DArray,
    Detection2D=Detection2D,
    BoundingBox2D=BoundingBox2D,
    ObjectHypothesisWithPose=ObjectHypothesisWithPose,
    Detection3DArray=Detection3DArray,
    Detection3D=Detection3D,
    InstanceMaskArray=InstanceMaskArray,
    InstanceMask=InstanceMask,
    RegionOfInterest=RegionOfInterest,
    Image=Image,
    LabelInfo=LabelInfo,
    VisionClass=VisionClass,
    uint8_array=uint8_array,
)


def instances_to_detections(
    inst: Instances, header, class_names=None, *, ids=None, class_id_format: str = CLASS_ID_FORMATS[0]
) -> Detection2DArray:
    """vision_msgs/Detection2DArray (:func:`yolact_ros.interfaces.fields.instances_to_detections`)."""
    return fields.instances_to_detections(
        RCLPY_CLASSES, inst, header, class_names, ids=ids, class_id_format=class_id_format
    )


def instances_to_masks(inst: Instances, header, *, ids=None) -> InstanceMaskArray:
    """InstanceMaskArray (:func:`yolact_ros.interfaces.fields.instances_to_masks`)."""
    return fields.instances_to_masks(RCLPY_CLASSES, inst, header, ids=ids)


def label_info(class_names, threshold: float, header=None) -> LabelInfo:
    """vision_msgs/LabelInfo (:func:`yolact_ros.interfaces.fields.label_info`)."""
    return fields.label_info(RCLPY_CLASSES, class_names, threshold, header)


def instances_to_detections_3d(
    inst: Instances, placed, header, class_names=None, *, ids=None, class_id_format: str = CLASS_ID_FORMATS[0]
) -> Detection3DArray:
    """vision_msgs/Detection3DArray (:func:`yolact_ros.interfaces.fields.instances_to_detections_3d`)."""
    return fields.instances_to_detections_3d(
        RCLPY_CLASSES, inst, placed, header, class_names, ids=ids, class_id_format=class_id_format
    )


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
