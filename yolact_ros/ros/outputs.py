"""What the node publishes for one camera's processed frame: detections, masks, 3D, overlay, annotations.

Called by the node's inference worker once per frame and camera, after the Segmenter. Outputs
that nobody subscribes to are not computed: the overlay only while ``visualization`` has a
subscriber, the Foxglove annotations only while ``annotations`` has one, the 3D only while
``detections_3d`` (or, with ``publish_points``, ``points``) has one. Tracking, when on, gives
the ids of every output of the frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sensor_msgs.msg import CompressedImage

from .camera import CameraIO
from .compressed_depth import compressed_depth_to_array
from .diagnostics import stamp_to_ns
from .image_conversion import ImageConversionError, bgr_to_image, depth_image_to_array, to_bgr3

__all__ = ["draw_kwargs", "publish_3d", "publish_annotations", "publish_frame"]

#: ``warn(kind, text)``: one throttled log line per kind (the node's ``_warn_throttled``).
Warn = Callable[[str, str], None]


def publish_frame(cam: CameraIO, header, image, inst, outputs: dict, class_names, warn: Warn) -> tuple[float, float]:
    """All outputs of one camera's frame; returns the overlay's (wall, this thread's CPU)
    milliseconds (0 when nobody watches it). ``outputs``: the node's run-time parameters, every
    one of :data:`yolact_ros.ros.params.RUNTIME_PARAMS` (their defaults live in that table only)."""
    from .messages import instances_to_detections, instances_to_masks

    pubs = cam.pubs
    ids = cam.tracker.update(inst) if cam.tracker is not None else None
    class_id_format = outputs["class_id_format"]
    pubs["detections"].publish(
        instances_to_detections(inst, header, class_names, ids=ids, class_id_format=class_id_format)
    )
    if outputs["publish_masks"]:
        pubs["masks"].publish(instances_to_masks(inst, header, ids=ids))
    if "detections_3d" in pubs:
        publish_3d(cam, header, inst, ids, outputs, class_names, warn)
    ann_pub = pubs.get("annotations")
    if ann_pub is not None and outputs["publish_annotations"] and ann_pub.get_subscription_count() > 0:
        publish_annotations(ann_pub, header, inst, ids, outputs, class_names)
    vis_pub = pubs["visualization"]
    if not (outputs["publish_visualization"] and vis_pub.get_subscription_count() > 0):
        return 0.0, 0.0
    from ..inference.visualize import draw_instances  # only needed while someone watches

    t0, c0 = time.perf_counter(), time.thread_time()
    overlay = draw_instances(to_bgr3(image), inst, class_names, **draw_kwargs(outputs))
    vis_pub.publish(bgr_to_image(overlay, header))
    cam.stats.on_visualization()
    return (time.perf_counter() - t0) * 1000.0, (time.thread_time() - c0) * 1000.0


def publish_3d(cam: CameraIO, header, inst, ids, outputs: dict, class_names, warn: Warn) -> None:
    """detections_3d (and points) from the depth frame paired with this colour frame by stamp.
    A colour frame without a usable depth frame is counted (diagnostics), never an error."""
    from ..inference.depth import PinholeCamera, instances_in_3d
    from .messages import instances_to_detections_3d, points_to_cloud

    with_points = bool(outputs["publish_points"]) and cam.pubs["points"].get_subscription_count() > 0
    if not with_points and cam.pubs["detections_3d"].get_subscription_count() == 0:
        return  # nobody listens: nothing is computed
    tolerance_ns = int(float(outputs["depth_tolerance"]) * 1e9)
    paired = cam.depth_for(stamp_to_ns(header.stamp), tolerance_ns)
    if paired is None:
        cam.stats.on_without_depth()
        return
    depth_msg, info = paired
    try:
        max_pixels = int(outputs["max_image_pixels"]) or None
        if isinstance(depth_msg, CompressedImage):  # depth_transport: compressedDepth
            depth, encoding = compressed_depth_to_array(depth_msg, max_pixels)
        else:
            depth, encoding = depth_image_to_array(depth_msg, max_pixels), depth_msg.encoding
        camera = PinholeCamera.from_k(
            list(info.k), int(info.width) or depth.shape[1], int(info.height) or depth.shape[0]
        )
        placed = instances_in_3d(
            inst,
            depth,
            camera,
            encoding=encoding,
            min_points=int(outputs["depth_min_points"]),
            points_step=int(outputs["points_step"]) if with_points else None,
        )
    except (ImageConversionError, ValueError) as exc:  # a bad depth image, camera_info or field of view
        cam.stats.on_without_depth()
        warn(
            f"depth: {getattr(exc, 'kind', 'camera_info')}",
            f"cannot use the depth frame on {cam.topic('depth')}: {exc}",
        )
        return
    cam.stats.on_placed_3d(len(placed.indices), placed.num_skipped)
    header_3d = type(header)(stamp=header.stamp, frame_id=info.header.frame_id or depth_msg.header.frame_id)
    cam.pubs["detections_3d"].publish(
        instances_to_detections_3d(
            inst, placed, header_3d, class_names, ids=ids, class_id_format=outputs["class_id_format"]
        )
    )
    if with_points and placed.points is not None:
        cam.pubs["points"].publish(points_to_cloud(placed.points, header_3d, ids=ids))


def publish_annotations(pub, header, inst, ids, outputs: dict, class_names) -> None:
    """foxglove_msgs/ImageAnnotations of the frame, drawn like the overlay (the same
    visualization parameters), every annotation stamped with the input's stamp."""
    from .annotations import instances_to_annotations, rclpy_classes

    pub.publish(
        instances_to_annotations(
            inst,
            header,
            class_names,
            ids=ids,
            classes=rclpy_classes(),
            fill_alpha=float(outputs["visualization.mask_alpha"]),
            show_boxes=bool(outputs["visualization.show_boxes"]),
            show_labels=bool(outputs["visualization.show_labels"]),
        )
    )


def draw_kwargs(outputs: dict) -> dict:
    """Visualization parameters -> draw_instances keyword arguments."""
    return {
        "alpha": float(outputs["visualization.mask_alpha"]),
        "draw_boxes": bool(outputs["visualization.show_boxes"]),
        "draw_labels": bool(outputs["visualization.show_labels"]),
    }
