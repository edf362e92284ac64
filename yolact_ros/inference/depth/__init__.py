"""Instances in 3D: a registered depth image + pinhole intrinsics -> per-instance centre and size (no ROS).

What the ROS layer calls, per colour frame with its registered depth image::

    camera = PinholeCamera.from_k(info.k, info.width, info.height)        # sensor_msgs/CameraInfo
    result = instances_in_3d(instances, depth_array, camera,              # Instances3D
                             encoding="16UC1", points_step=2)             # 16UC1 (mm) or 32FC1 (m)
    for obj in result.objects():          # only the instances with enough valid depth
        obj.index, obj.box_centre, obj.box_size, obj.centre               # -> vision_msgs/Detection3D
    result.points                          # structured x, y, z float32 + instance int32 -> PointCloud2
    result.num_skipped                     # instances left out: too few valid depth pixels

**Frames and units.** Every 3D value is in the camera's optical frame (x right, y down, z
forward, as ``*_optical_frame`` in ROS), in metres. ``depth[v, u]`` is the z coordinate of
pixel (u, v) (a depth image, not a range image); the pixel's point is
``((u - cx) z / fx, (v - cy) z / fy, z)``, pixel centres at integer coordinates (the OpenCV
and ROS convention). The depth must be registered to the colour image ("aligned depth": same
optical centre and field of view, rectified); lens distortion is not modelled.

Modules, one job each: ``camera`` (pinhole intrinsics), ``encodings`` (sensor depth
encodings and the valid range), ``results`` (the result types), ``measure`` (the
measurement; its docstring states the method), ``atlas`` (all crops packed into one image
for the pixel rules), ``robust`` (medians and percentile extremes).
"""

from __future__ import annotations

from ..defaults import DEPTH_MIN_POINTS as DEFAULT_MIN_POINTS
from .camera import PinholeCamera
from .encodings import DEFAULT_MAX_DEPTH_M, DEFAULT_MIN_DEPTH_M, DEPTH_ENCODINGS, depth_to_metres
from .measure import DEFAULT_MAX_SAMPLES, instance_points, instances_in_3d
from .results import POINT_DTYPE, Instance3D, Instances3D

__all__ = [
    "DEFAULT_MAX_DEPTH_M",
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_MIN_DEPTH_M",
    "DEFAULT_MIN_POINTS",
    "DEPTH_ENCODINGS",
    "POINT_DTYPE",
    "Instance3D",
    "Instances3D",
    "PinholeCamera",
    "depth_to_metres",
    "instance_points",
    "instances_in_3d",
]
