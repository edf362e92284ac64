#!/usr/bin/env python3
"""Example consumer of yolact_node's 3D output: the nearest instance of one class.

    ros2 launch yolact_ros segment.launch.py weights:=... image:=... use_depth:=true
    python3 examples/nearest.py --class cup [--ns /yolact] [--count 5]

Subscribes to `<ns>/detections_3d` (vision_msgs/Detection3DArray) and `<ns>/label_info`
(vision_msgs/LabelInfo, latched: class ids are names by default, or numbers with
`class_id_format: id`, which LabelInfo maps back to names). For every frame it picks the
instance of the class whose robust centre (`results[0].pose.pose.position`, the median of its
masked depth points) is nearest to the camera, logs it, and publishes that point as a
geometry_msgs/PointStamped on `<ns>/nearest` (in the depth camera's optical frame, with the
colour frame's stamp) for a grasp or approach planner. A frame without that class logs
"none in view" and publishes nothing.
"""
from __future__ import annotations

import argparse
import math

import rclpy
from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from vision_msgs.msg import Detection3DArray, LabelInfo


def nearest(msg: Detection3DArray, wanted: str, names: dict[str, str], min_score: float = 0.0):
    """(detection, distance m) of the nearest instance of class ``wanted`` in ``msg``, or None.
    ``names``: class id -> name from LabelInfo (ids that are names map to themselves)."""
    best = None
    for det in msg.detections:
        if not det.results:
            continue
        hyp = det.results[0]
        if names.get(hyp.hypothesis.class_id, hyp.hypothesis.class_id) != wanted or hyp.hypothesis.score < min_score:
            continue
        p = hyp.pose.pose.position
        distance = math.sqrt(p.x * p.x + p.y * p.y + p.z * p.z)
        if best is None or distance < best[1]:
            best = (det, distance)
    return best


class Nearest(Node):
    def __init__(self, ns: str, wanted: str, count: int, min_score: float):
        super().__init__("yolact_nearest")
        self.wanted, self.remaining, self.min_score = wanted, count, min_score
        self.names: dict[str, str] = {}
        latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                             durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(LabelInfo, f"{ns}/label_info", self._on_labels, latched)
        self.create_subscription(Detection3DArray, f"{ns}/detections_3d", self._on_detections, 10)
        self.pub = self.create_publisher(PointStamped, f"{ns}/nearest", 10)

    def _on_labels(self, msg: LabelInfo):
        self.names = {str(c.class_id): c.class_name for c in msg.class_map}

    def _on_detections(self, msg: Detection3DArray):
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        found = nearest(msg, self.wanted, self.names, self.min_score)
        if found is None:
            self.get_logger().info(f"frame {stamp:.3f}: no {self.wanted} in view ({len(msg.detections)} instances in 3D)")
        else:
            det, distance = found
            p = det.results[0].pose.pose.position
            self.pub.publish(PointStamped(header=msg.header, point=p))
            self.get_logger().info(
                f"frame {stamp:.3f}: nearest {self.wanted} #{det.id} at ({p.x:.3f}, {p.y:.3f}, {p.z:.3f}) m "
                f"in {msg.header.frame_id}, {distance:.3f} m away, score {det.results[0].hypothesis.score:.2f}, "
                f"box {det.bbox.size.x:.3f} x {det.bbox.size.y:.3f} m")
        self.remaining -= 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--class", dest="wanted", required=True, help="class name, e.g. cup")
    ap.add_argument("--ns", default="/yolact", help="namespace of yolact_node's outputs")
    ap.add_argument("--min-score", type=float, default=0.0)
    ap.add_argument("--count", type=int, default=0, help="stop after this many frames (0 = run until Ctrl-C)")
    args, ros_args = ap.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = Nearest(args.ns.rstrip("/"), args.wanted, args.count or -1, args.min_score)
    try:
        while rclpy.ok() and node.remaining != 0:
            rclpy.spin_once(node, timeout_sec=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
