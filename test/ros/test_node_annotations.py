"""Foxglove image annotations and depth over compressedDepth, in the node on the real runtime.

One node with ``publish_annotations`` on and ``depth_transport: compressedDepth``: the
annotations of a frame carry its stamp and one label per detection, the 3D detections from
the compressed 16UC1 depth equal the raw depth's measurement, and ``publish_annotations``
turned off at run time stops them."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import ros_helpers as rh
from ros_helpers import Client

from yolact_ros.ros.diagnostics import stamp_to_ns
from yolact_ros.ros.node_process import NodeProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # test/: the compressedDepth encoder

from compressed_depth_encoder import encode_compressed_depth  # noqa: E402 - after its folder is on the path

NS = "/yolact_fox"
CAMERA = "/fox/image_raw"


def test_annotations_and_compressed_depth(ros_runtime, ros_log_dir, small_weights, reference_segmenter):
    from foxglove_msgs.msg import ImageAnnotations
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, CompressedImage
    from vision_msgs.msg import Detection3DArray

    from yolact_ros.inference.depth import PinholeCamera, instances_in_3d

    proc = NodeProcess(
        "fox",
        NS,
        {
            "weights": small_weights,
            "threads": 1,
            "backend": "torch",
            "precision": "fp32",
            "use_depth": True,
            "depth_transport": "compressedDepth",
            "publish_annotations": True,
            f"qos_overrides.{CAMERA}.subscription.reliability": "reliable",
        },
        remaps={"image": CAMERA, "depth": "/fox/depth", "camera_info": "/fox/camera_info"},
    )
    client = Client(NS, CAMERA, reliable=True)
    try:
        qos = QoSProfile(depth=20, reliability=QoSReliabilityPolicy.RELIABLE)
        annotations: list = []
        got3d: list = []
        client.node.create_subscription(ImageAnnotations, f"{NS}/annotations", annotations.append, qos)
        client.node.create_subscription(Detection3DArray, f"{NS}/detections_3d", got3d.append, qos)
        depth_pub = client.node.create_publisher(CompressedImage, "/fox/depth/compressedDepth", qos)
        info_pub = client.node.create_publisher(CameraInfo, "/fox/camera_info", qos)
        assert client.wait_for_node_input(120), proc.tail()
        assert client.spin_until(
            lambda: depth_pub.get_subscription_count() > 0 and info_pub.get_subscription_count() > 0, 20
        ), proc.tail()

        photo = rh.photo_rgb("astronaut")[::2, ::2]
        h, w = photo.shape[:2]
        depth_mm = np.repeat(np.linspace(1500, 2500, h, dtype=np.float32)[:, None], w, axis=1).astype(np.uint16)
        fmt, data = encode_compressed_depth(depth_mm, "16UC1")
        k = [300.0, 0.0, w / 2, 0.0, 300.0, h / 2, 0.0, 0.0, 1.0]
        info = CameraInfo(width=w, height=h, k=k)
        info.header.frame_id = "depth_optical"

        msg = rh.image_msg(photo, "rgb8", frame_id="color_optical")
        msg.header.stamp = client.next_stamp()
        depth = CompressedImage(format=fmt, data=data)
        depth.header.stamp, depth.header.frame_id = msg.header.stamp, "depth_optical"
        info.header.stamp = msg.header.stamp
        info_pub.publish(info)
        depth_pub.publish(depth)
        time.sleep(0.2)
        dets, _ = client.send(msg)
        stamp = stamp_to_ns(msg.header.stamp)
        assert client.spin_until(lambda: any(stamp_to_ns(m.header.stamp) == stamp for m in got3d), 10), proc.tail()
        assert client.spin_until(
            lambda: any(m.texts and stamp_to_ns(m.texts[0].timestamp) == stamp for m in annotations), 10
        ), proc.tail()

        # the annotations: the input's stamp everywhere, one label per detection, outlines + boxes
        ann = next(m for m in annotations if m.texts and stamp_to_ns(m.texts[0].timestamp) == stamp)
        assert len(ann.texts) == len(dets.detections) > 0
        assert all(stamp_to_ns(a.timestamp) == stamp for a in [*ann.points, *ann.texts, *ann.circles])
        assert len(ann.points) >= 2 * len(dets.detections)  # at least one outline and one box each
        for p in ann.points:
            xy = np.array([[q.x, q.y] for q in p.points])
            assert ((xy >= -1) & (xy <= [w + 1, h + 1])).all()  # input image pixels

        # 3D from the compressed 16UC1 depth equals the raw depth's measurement
        d3 = next(m for m in got3d if stamp_to_ns(m.header.stamp) == stamp)
        inst = reference_segmenter(np.ascontiguousarray(photo[:, :, ::-1]))
        placed = instances_in_3d(inst, depth_mm.astype(np.float32) / 1000.0, PinholeCamera.from_k(k, w, h))
        assert len(d3.detections) == len(placed.indices) > 0
        centres = sorted(
            (round(d.results[0].pose.pose.position.z, 4), round(d.results[0].pose.pose.position.x, 4))
            for d in d3.detections
        )
        expected = sorted((round(float(c[2]), 4), round(float(c[0]), 4)) for c in placed.centres[placed.indices])
        np.testing.assert_allclose(centres, expected, atol=2e-3)

        # turned off at run time: the next frame has detections and no annotations
        client.set_parameters(f"{NS}/fox", publish_annotations=False)
        count = len(annotations)
        msg2 = rh.image_msg(photo, "rgb8", frame_id="color_optical")
        msg2.header.stamp = client.next_stamp()
        assert client.send(msg2)[0] is not None
        client.spin_once(0.5)
        assert len(annotations) == count
    finally:
        client.close()
        assert proc.stop() == 0, proc.output
