#!/usr/bin/env python3
"""Example consumer of yolact_node: pairs `detections` and `masks` of the same frame (by
stamp) and rebuilds each instance's full-frame mask.

    ros2 run yolact_ros ... / ros2 launch yolact_ros segment.launch.py weights:=... image:=...
    python3 examples/consumer.py [--ns /yolact] [--count 5]

Both topics carry the input image's header, and masks[i] belongs to detections[i]
(same index, same id), so one frame is the pair of messages with the same stamp.
"""
from __future__ import annotations

import argparse

import rclpy
from rclpy.node import Node
from vision_msgs.msg import Detection2DArray

from yolact_ros.msg import InstanceMaskArray
from yolact_ros.ros.messages import full_frame_mask  # InstanceMask (ROI + mono8 crop) -> bool [H, W]


class Consumer(Node):
    def __init__(self, ns: str, count: int):
        super().__init__("yolact_consumer")
        self._pending: dict = {}  # stamp -> the message that arrived first
        self.remaining = count
        self.create_subscription(Detection2DArray, f"{ns}/detections", self._on_detections, 10)
        self.create_subscription(InstanceMaskArray, f"{ns}/masks", self._on_masks, 10)

    def _on_detections(self, msg):
        self._pair(msg, "detections")

    def _on_masks(self, msg):
        self._pair(msg, "masks")

    def _pair(self, msg, kind: str):
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        other = self._pending.pop(key, None)
        if other is None or other[0] == kind:
            self._pending[key] = (kind, msg)
            # forget unpaired frames (e.g. masks disabled) so memory stays bounded
            while len(self._pending) > 20:
                self._pending.pop(next(iter(self._pending)))
            return
        dets, masks = (msg, other[1]) if kind == "detections" else (other[1], msg)
        self.on_frame(dets, masks)

    def on_frame(self, dets: Detection2DArray, masks: InstanceMaskArray):
        h, w = masks.image_height, masks.image_width
        lines = []
        for det, item in zip(dets.detections, masks.instances):
            assert det.id == item.id
            mask = full_frame_mask(item, h, w)
            hyp = det.results[0].hypothesis
            lines.append(f"  #{det.id} {hyp.class_id:<14} score {hyp.score:.2f}  "
                         f"box center ({det.bbox.center.position.x:.0f}, {det.bbox.center.position.y:.0f}) "
                         f"size {det.bbox.size_x:.0f}x{det.bbox.size_y:.0f}  mask {int(mask.sum())} px")
        stamp = dets.header.stamp.sec + dets.header.stamp.nanosec * 1e-9
        self.get_logger().info(f"frame {stamp:.3f} ({dets.header.frame_id}, {w}x{h}): "
                               f"{len(dets.detections)} instances\n" + "\n".join(lines))
        self.remaining -= 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ns", default="/yolact", help="namespace of yolact_node's outputs")
    ap.add_argument("--count", type=int, default=0, help="stop after this many frames (0 = run until Ctrl-C)")
    args, ros_args = ap.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = Consumer(args.ns.rstrip("/"), args.count or -1)
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
