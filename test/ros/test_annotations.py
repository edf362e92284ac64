"""Foxglove image annotations with the real foxglove_msgs classes (the stand-in built from
upstream's definitions, checked against their text and type hashes): outlines on the mask
boundary, boxes, labels, timestamps, a clear error without foxglove_msgs, and a few kB a frame."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from yolact_ros.inference.depth import PinholeCamera
from yolact_ros.inference.instances import Instances
from yolact_ros.inference.visualize import class_color
from yolact_ros.testing.rgbd import random_solids, render_rgbd

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "test" / "ros_deps" / "foxglove_msgs" / "msg"
CAM = PinholeCamera(525.0, 523.0, 319.3, 241.2, 640, 480)
#: git blob ids of upstream's .msg files: foxglove/schemas, tag ros-v3.1.0 (foxglove_msgs 3.1.0,
#: commit 19ca37c914b1a90bf1e4098e710293e1e78de912), ros_foxglove_msgs/ros2/<name>.msg
UPSTREAM_BLOBS = {
    "ImageAnnotations": "3b9f2f640006b995df1ead095807241ddd173d50",
    "PointsAnnotation": "a1bc59ede7eb9256a1e12ea4b3a8f18a743459fe",
    "TextAnnotation": "4383c514cad57022703c19ebec2ec0899bd0c92d",
    "CircleAnnotation": "a14cb8a62e3d02df05bb01c65bb1d9ebc8915f57",
    "Point2": "3f8e70982bb0ae18a282535bfb8582369ad04f0b",
    "Color": "c3e1ea15a34642fd81acc5f46af2169e7654eec8",
}
#: RIHS01 type hashes of those upstream definitions (rosidl_generator_type_description, Jazzy); the
#: same from foxglove/schemas dd8b4f38df88908e05f3ddee18ffddfa5ef7a4cd, whose .msg comments differ
UPSTREAM_HASHES = {
    "ImageAnnotations": "RIHS01_47c6c0891ba263ec1b20d9b785c4261d4bc41051cbcc01668130e36aa2dcaee3",
    "PointsAnnotation": "RIHS01_61bd8dda01243d9c7232f00d9101577291b5a9bc1855b06ada4a29e0dc0496a7",
}


@pytest.fixture(scope="module")
def classes(ros_runtime):
    from yolact_ros.ros.annotations import FoxgloveMsgsMissing, rclpy_classes

    try:
        return rclpy_classes()
    except FoxgloveMsgsMissing as exc:
        if os.environ.get("YOLACT_ROS_REQUIRE_ROS") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def frame():
    return render_rgbd(random_solids(CAM, 6, np.random.default_rng(1), min_pixels=40), CAM)


def _header(sec=1234, nanosec=567):
    from std_msgs.msg import Header

    h = Header(frame_id="camera_optical")
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def _on_boundary(mask: np.ndarray, x: float, y: float) -> bool:
    """(x, y) is the centre of a mask pixel with a 4-neighbour outside the mask."""
    u, v = int(np.floor(x)), int(np.floor(y))
    if (x - u, y - v) != (0.5, 0.5) or not mask[v, u]:
        return False
    padded = np.pad(mask, 1)
    return not (padded[v, u + 1] and padded[v + 2, u + 1] and padded[v + 1, u] and padded[v + 1, u + 2])


def test_standin_definitions_are_upstreams():
    for name, blob in UPSTREAM_BLOBS.items():
        text = (STANDIN / f"{name}.msg").read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest() == blob, name


def test_type_hashes_are_upstreams(classes):
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("annotations_hash", context=context)
        node.create_publisher(classes.ImageAnnotations, "annotations", 1)
        node.create_publisher(classes.PointsAnnotation, "points_annotation", 1)
        for name, topic in [("ImageAnnotations", "annotations"), ("PointsAnnotation", "points_annotation")]:
            infos = node.get_publishers_info_by_topic(f"/{topic}")
            assert infos and str(infos[0].topic_type_hash) == UPSTREAM_HASHES[name]
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_outlines_boxes_labels_and_timestamps(classes, frame):
    from yolact_ros.ros.annotations import LINE_LOOP, instances_to_annotations

    inst = frame.instances()
    header = _header()
    msg = instances_to_annotations(inst, header, ids=[10 + i for i in range(len(inst))], classes=classes)
    assert isinstance(msg, classes.ImageAnnotations) and list(msg.circles) == []
    order = np.argsort(inst.scores, kind="stable")
    # per instance: one outline (convex solids: one piece each) then its box
    assert len(msg.points) == 2 * len(inst) and len(msg.texts) == len(inst)
    for k, i in enumerate(order):
        outline, box, text = msg.points[2 * k], msg.points[2 * k + 1], msg.texts[k]
        assert outline.type == box.type == LINE_LOOP == classes.PointsAnnotation.LINE_LOOP
        xy = np.array([(p.x, p.y) for p in outline.points])
        assert len(xy) >= 4 and all(_on_boundary(frame.masks[i], x, y) for x, y in xy)
        # the simplified outline still covers the mask
        import cv2

        poly = np.zeros(frame.masks[i].shape, np.uint8)
        cv2.fillPoly(poly, [np.round(xy - 0.5).astype(np.int32)], 1)
        iou = (poly.astype(bool) & frame.masks[i]).sum() / (poly.astype(bool) | frame.masks[i]).sum()
        assert iou > 0.9, iou
        x1, y1, x2, y2 = inst.boxes[i]
        assert [(p.x, p.y) for p in box.points] == [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        b, g, r = class_color(inst.class_ids[i])
        colour = (outline.outline_color.r, outline.outline_color.g, outline.outline_color.b)
        assert colour == pytest.approx((r / 255, g / 255, b / 255))
        assert outline.fill_color.a > 0 and box.fill_color.a == 0
        assert text.text == f"{inst.labels[i]} {inst.scores[i]:.2f} #{10 + i}"
        assert (text.position.x, text.position.y) == (x1, max(y1, text.font_size))
    for a in [*msg.points, *msg.texts]:
        assert (a.timestamp.sec, a.timestamp.nanosec) == (1234, 567)


def test_pieces_holes_switches_and_empty(classes):
    from yolact_ros.ros.annotations import instances_to_annotations

    masks = np.zeros((2, 60, 80), bool)
    masks[0, 5:25, 5:30] = True
    masks[0, 12:18, 12:20] = False  # a hole: not an outline of its own
    masks[0, 40:55, 50:75] = True  # a second piece
    masks[0, 58, 2] = True  # one stray pixel: below min_area_px
    masks[1, 30:40, 10:20] = True
    inst = Instances(
        boxes=np.array([[5, 5, 75, 55], [10, 30, 20, 40]], np.float32),
        scores=np.array([0.9, 0.5], np.float32),
        class_ids=np.array([1, 0], np.int64),
        masks=masks,
        class_names=("cat", "dog"),
    )
    msg = instances_to_annotations(inst, _header(), classes=classes)
    assert [len(p.points) for p in msg.points] == [4, 4, 4, 4, 4]  # low score first: outline, box
    assert [t.text for t in msg.texts] == ["cat 0.50", "dog 0.90"]
    assert msg.texts[1].position.y == 14.0  # the box touches the top: the label moves into the image
    largest = instances_to_annotations(inst, _header(), classes=classes, all_contours=False, show_boxes=False)
    assert len(largest.points) == 2
    assert {(p.x, p.y) for p in largest.points[1].points} == {(5.5, 5.5), (29.5, 5.5), (29.5, 24.5), (5.5, 24.5)}
    bare = instances_to_annotations(
        inst, _header(), classes=classes, show_outlines=False, show_boxes=False, show_labels=False
    )
    assert list(bare.points) == [] and list(bare.texts) == []
    empty = instances_to_annotations(Instances.empty(480, 640, ("a",)), _header(), classes=classes)
    assert list(empty.points) == list(empty.texts) == list(empty.circles) == []


def test_a_frame_is_a_few_kb(classes, frame):
    from rclpy.serialization import deserialize_message, serialize_message

    from yolact_ros.ros.annotations import instances_to_annotations

    msg = instances_to_annotations(frame.instances(), _header(), classes=classes)
    data = serialize_message(msg)
    assert 1000 < len(data) < 8000, len(data)  # the bgr8 overlay of this frame: 921,600 bytes
    back = deserialize_message(data, classes.ImageAnnotations)
    assert back == msg


def test_without_foxglove_msgs_one_clear_line(ros_runtime, monkeypatch):
    from yolact_ros.ros.annotations import FoxgloveMsgsMissing, rclpy_classes

    monkeypatch.setitem(sys.modules, "foxglove_msgs", None)  # the import then fails as for a package not installed
    monkeypatch.setitem(sys.modules, "foxglove_msgs.msg", None)
    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    with pytest.raises(FoxgloveMsgsMissing, match="install ros-jazzy-foxglove-msgs$") as info:
        rclpy_classes()
    assert "\n" not in str(info.value) and "publish_annotations" in str(info.value)
