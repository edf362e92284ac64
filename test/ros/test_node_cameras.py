"""Several cameras on one model, LabelInfo, 3D from depth and tracking ids, on the real runtime.

The node runs as launch starts it; every camera has its own client (publisher on the
camera's input, subscriptions to its outputs)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import ros_helpers as rh
from ros_helpers import Client

from yolact_ros.ros.diagnostics import Key, stamp_to_ns, status_name
from yolact_ros.ros.node_process import NodeProcess

NS = "/yolact_cams"
NODE = "multi"
FQN = f"{NS}/{NODE}"
PHOTOS = {"front": "astronaut", "left": "coffee", "right": "chelsea"}
#: upstream vision_msgs 4.1 (Jazzy) type hashes, from its generated type descriptions
UPSTREAM_HASHES = {
    "LabelInfo": "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "Detection3DArray": "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
}


def _reliable(topic: str) -> dict:
    return {f"qos_overrides.{topic}.subscription.reliability": "reliable"}


@pytest.fixture(scope="module")
def multi(ros_runtime, ros_log_dir, small_weights):
    """One node, three cameras (right on compressed input), class ids as LabelInfo keys."""
    params = {
        "weights": small_weights,
        "threads": 1,
        "backend": "torch",
        "precision": "fp32",
        "cameras": ["front", "left", "right:compressed"],
        "class_id_format": "id",
        "score_threshold": 0.2,
    }
    for cam in ("front", "left"):
        params.update(_reliable(f"/cams/{cam}/image_raw"))
    params.update(_reliable("/cams/right/image_raw/compressed"))
    proc = NodeProcess(
        NODE,
        NS,
        params,
        remaps={
            "front/image": "/cams/front/image_raw",
            "left/image": "/cams/left/image_raw",
            "right/image/compressed": "/cams/right/image_raw/compressed",
        },
    )
    clients = {
        cam: Client(
            f"{NS}/{cam}",
            f"/cams/{cam}/image_raw" + ("/compressed" if cam == "right" else ""),
            compressed=cam == "right",
            reliable=True,
        )
        for cam in PHOTOS
    }
    try:
        for c in clients.values():
            assert c.wait_for_node_input(120), proc.tail()
        yield proc, clients
    finally:
        for c in clients.values():
            c.close()
        assert proc.stop() == 0, proc.output


def _message(cam: str, photo: np.ndarray):
    if cam != "right":
        return rh.image_msg(photo, "rgb8", frame_id=f"{cam}_optical")
    import cv2
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage(format="png", data=cv2.imencode(".png", np.ascontiguousarray(photo[:, :, ::-1]))[1].tobytes())
    msg.header.frame_id = f"{cam}_optical"
    return msg


def test_every_camera_gets_its_own_results(multi, reference_segmenter):
    proc, clients = multi
    photos = {cam: rh.photo_rgb(name)[::2, ::2] for cam, name in PHOTOS.items()}
    msgs = {cam: _message(cam, photos[cam]) for cam in PHOTOS}
    for cam, msg in msgs.items():  # all three waiting together: one batched forward
        msg.header.stamp = clients[cam].next_stamp()
        clients[cam].publish(msg)
    ref = reference_segmenter.with_settings(score_threshold=0.2)
    for cam, client in clients.items():
        stamp = (msgs[cam].header.stamp.sec, msgs[cam].header.stamp.nanosec)
        dets, masks = client.send(msgs[cam])  # already published once; resent only if lost
        assert (dets.header.stamp.sec, dets.header.stamp.nanosec) == stamp
        assert dets.header.frame_id == f"{cam}_optical"
        # nothing of another camera on this camera's topics
        assert {d.header.frame_id for d in client.detections} == {f"{cam}_optical"}
        inst = ref(np.ascontiguousarray(photos[cam][:, :, ::-1]))
        assert len(inst) > 0
        ids = [str(int(c)) for c in inst.class_ids]
        assert [d.results[0].hypothesis.class_id for d in dets.detections] == ids  # class_id_format: id
        names = tuple(str(i) for i in range(len(ref.class_names)))  # assert_matches compares class ids
        rh.assert_matches(dets, masks, inst, photos[cam].shape[0], photos[cam].shape[1], names)
    status = clients["front"].latest_diagnostics(
        NODE, lambda v: v.get(Key.CAMERA) == "left" and int(v[Key.FRAMES_PROCESSED]) >= 1, timeout=10, camera="left"
    )
    assert status[Key.INPUT_TOPIC] == "/cams/left/image_raw"
    names = {st.name for arr in clients["front"].diagnostics for st in arr.status}
    assert {status_name(NODE, cam) for cam in PHOTOS} <= names


def test_label_info_is_latched_and_follows_the_threshold(multi, small_weights):
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
    from vision_msgs.msg import LabelInfo

    proc, clients = multi
    client = clients["front"]
    got = []
    latched = QoSProfile(
        depth=1, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL
    )
    client.node.create_subscription(LabelInfo, f"{NS}/label_info", got.append, latched)  # joins late
    assert client.spin_until(lambda: bool(got), 10), "no LabelInfo for a late subscriber"
    info = got[-1]
    names = [c.class_name for c in info.class_map]
    assert [c.class_id for c in info.class_map] == list(range(len(names)))
    assert names[0] == "person" and len(names) == 80
    assert abs(info.threshold - 0.2) < 1e-6
    assert client.set_parameters(FQN, score_threshold=0.3)[0].successful  # republished at once, no frame needed
    assert client.spin_until(lambda: abs(got[-1].threshold - 0.3) < 1e-6, 10), [m.threshold for m in got]
    # the type hash is upstream's (the stand-in's .msg text is upstream's)
    infos = client.node.get_publishers_info_by_topic(f"{NS}/label_info")
    assert infos and str(infos[0].topic_type_hash) == UPSTREAM_HASHES["LabelInfo"]


def test_depth_gives_3d_detections_and_tracking_keeps_ids(ros_runtime, ros_log_dir, small_weights, reference_segmenter):
    from sensor_msgs.msg import CameraInfo, Image
    from vision_msgs.msg import Detection3DArray

    from yolact_ros.inference.depth import PinholeCamera, instances_in_3d

    camera_topic = "/cams3d/image_raw"
    proc = NodeProcess(
        "rgbd",
        NS,
        {
            "weights": small_weights,
            "threads": 1,
            "backend": "torch",
            "precision": "fp32",
            "use_depth": True,
            "tracking": True,
            **_reliable(camera_topic),
        },
        remaps={"image": camera_topic, "depth": "/cams3d/depth", "camera_info": "/cams3d/camera_info"},
    )
    client = Client(NS, camera_topic, reliable=True)
    try:
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy

        got3d = []
        client.node.create_subscription(
            Detection3DArray,
            f"{NS}/detections_3d",
            got3d.append,
            QoSProfile(depth=20, reliability=QoSReliabilityPolicy.RELIABLE),
        )
        qos = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
        depth_pub = client.node.create_publisher(Image, "/cams3d/depth", qos)
        info_pub = client.node.create_publisher(CameraInfo, "/cams3d/camera_info", qos)
        assert client.wait_for_node_input(120), proc.tail()
        assert client.spin_until(
            lambda: depth_pub.get_subscription_count() > 0 and info_pub.get_subscription_count() > 0, 20
        )
        photo = rh.photo_rgb("astronaut")[::2, ::2]
        h, w = photo.shape[:2]
        # a slanted plane, 1.5 m at the top to 2.5 m at the bottom, in millimetres
        depth_mm = np.repeat(np.linspace(1500, 2500, h, dtype=np.float32)[:, None], w, axis=1).astype(np.uint16)
        k = [300.0, 0.0, w / 2, 0.0, 300.0, h / 2, 0.0, 0.0, 1.0]
        info = CameraInfo(width=w, height=h, k=k)
        info.header.frame_id = "depth_optical"
        ids_seen = []
        for _round in range(3):
            msg = rh.image_msg(photo, "rgb8", frame_id="color_optical")
            msg.header.stamp = client.next_stamp()
            depth = Image(height=h, width=w, encoding="16UC1", is_bigendian=0, step=w * 2, data=depth_mm.tobytes())
            depth.header.stamp, depth.header.frame_id = msg.header.stamp, "depth_optical"
            info.header.stamp = msg.header.stamp
            info_pub.publish(info)
            depth_pub.publish(depth)
            time.sleep(0.2)
            dets, _ = client.send(msg)
            stamp = stamp_to_ns(msg.header.stamp)
            assert client.spin_until(lambda stamp=stamp: any(stamp_to_ns(m.header.stamp) == stamp for m in got3d), 10)
            d3 = next(m for m in got3d if stamp_to_ns(m.header.stamp) == stamp)
            assert d3.header.frame_id == "depth_optical"
            ids_seen.append([d.id for d in dets.detections])
            assert {d.id for d in d3.detections} <= set(ids_seen[-1])
        inst = reference_segmenter(np.ascontiguousarray(photo[:, :, ::-1]))
        placed = instances_in_3d(inst, depth_mm.astype(np.float32) / 1000.0, PinholeCamera.from_k(k, w, h))
        assert len(d3.detections) == len(placed.indices) > 0
        order = [int(i) for i in placed.indices]
        by_2d_index = {ids_seen[-1][i]: i for i in range(len(ids_seen[-1]))}
        for det in d3.detections:
            i = by_2d_index[det.id]
            assert i in order
            c = det.results[0].pose.pose.position
            np.testing.assert_allclose([c.x, c.y, c.z], placed.centres[i], atol=2e-3)
            np.testing.assert_allclose(
                [det.bbox.size.x, det.bbox.size.y, det.bbox.size.z], placed.box_sizes[i], atol=2e-3
            )
        # the same image three times: the same track ids, not 0..n-1 renumbered
        assert ids_seen[0] == ids_seen[1] == ids_seen[2]
        assert all(int(i) >= 1 for i in ids_seen[0])
        # the example consumer picks the nearest instance of a class from detections_3d
        wanted = d3.detections[0].results[0].hypothesis.class_id
        mine = [d for d in d3.detections if d.results[0].hypothesis.class_id == wanted]
        best = min(
            mine,
            key=lambda d: np.linalg.norm(
                [
                    d.results[0].pose.pose.position.x,
                    d.results[0].pose.pose.position.y,
                    d.results[0].pose.pose.position.z,
                ]
            ),
        )

        def frame_with_depth():
            msg = rh.image_msg(photo, "rgb8", frame_id="color_optical")
            msg.header.stamp = client.next_stamp()
            depth.header.stamp = info.header.stamp = msg.header.stamp
            info_pub.publish(info)
            depth_pub.publish(depth)
            time.sleep(0.2)
            client.send(msg)

        rc, out = rh.run_example("nearest.py", ["--ns", NS, "--class", wanted, "--count", "1"], frame_with_depth)
        assert rc == 0, out
        p = best.results[0].pose.pose.position
        assert f"nearest {wanted} #{best.id} at ({p.x:.3f}, {p.y:.3f}, {p.z:.3f}) m in depth_optical" in out, out
        # a colour frame without a depth frame: 2D only, counted
        lone = rh.image_msg(photo, "rgb8", frame_id="color_optical")
        lone.header.stamp = client.next_stamp()
        assert client.send(lone)[0] is not None
        client.latest_diagnostics("rgbd", lambda v: int(v[Key.FRAMES_WITHOUT_DEPTH]) >= 1, timeout=10)
        infos = client.node.get_publishers_info_by_topic(f"{NS}/detections_3d")
        assert infos and str(infos[0].topic_type_hash) == UPSTREAM_HASHES["Detection3DArray"]
    finally:
        client.close()
        assert proc.stop() == 0, proc.output


def test_onnxruntime_backend_in_the_node(ros_runtime, ros_log_dir, small_weights, reference_segmenter, tmp_path):
    """backend: onnxruntime with a `yolact export` file gives the torch Segmenter's results."""
    pytest.importorskip("onnxruntime")
    import torch

    from yolact_ros.inference.onnx_export import export_onnx

    onnx_path = tmp_path / "test_small.onnx"
    export_onnx(reference_segmenter.model, onnx_path, batch=None)
    torch.set_num_threads(1)
    camera = "/cams_onnx/image_raw"
    proc = NodeProcess(
        "onnx",
        NS,
        {"weights": str(onnx_path), "backend": "onnxruntime", "threads": 1, "precision": "fp32", **_reliable(camera)},
        remaps={"image": camera},
    )
    client = Client(NS, camera, reliable=True)
    try:
        assert client.wait_for_node_input(120), proc.tail()
        photo = rh.photo_rgb("astronaut")[::2, ::2]
        dets, masks = client.send(rh.image_msg(photo, "rgb8"))
        inst = reference_segmenter(np.ascontiguousarray(photo[:, :, ::-1]))
        assert len(inst) > 0
        rh.assert_matches(dets, masks, inst, photo.shape[0], photo.shape[1], reference_segmenter.class_names)
    finally:
        client.close()
        assert proc.stop() == 0, proc.output


def test_the_default_auto_backend_in_the_node(ros_runtime, ros_log_dir, small_weights, reference_segmenter, tmp_path):
    """The node's defaults (backend auto, precision auto): the choice and its reason in one start-up
    log line and in diagnostics; with OpenVINO installed the network runs there, converted from
    the .pth into cache_dir, and its detections pass the reduced-precision rule against fp32."""
    pytest.importorskip("openvino")
    from reduced_precision import BF16_MAX_MASK_OUTLIERS, MIN_MATCHED, matched_fraction

    from yolact_ros.inference.capabilities import detect_cpu
    from yolact_ros.inference.instances import Instances

    camera = "/cams_auto/image_raw"
    cache = tmp_path / "cache"
    proc = NodeProcess(
        "auto",
        NS,
        {
            "weights": small_weights,
            "threads": 1,
            "cache_dir": str(cache),
            "score_threshold": 0.0,
            "top_k": 100,
            **_reliable(camera),
        },
        remaps={"image": camera},
    )
    client = Client(NS, camera, reliable=True)
    try:
        assert client.wait_for_node_input(120), proc.tail()
        lines = [ln for ln in proc.output.splitlines() if "network: backend openvino" in ln]
        assert len(lines) == 1, proc.output
        expected = "bf16" if detect_cpu().native_bf16 else "fp32"
        assert f"openvino {expected}" in lines[0] and "chosen: the CPU, OpenVINO installed" in lines[0], lines[0]
        assert any(p.name != "compiled" for p in cache.iterdir())  # converted into the node's cache_dir
        photo = rh.photo_rgb("astronaut")[::2, ::2]
        dets, masks = client.send(rh.image_msg(photo, "rgb8"))
        ref = reference_segmenter.with_settings(score_threshold=0.0, top_k=100)(np.ascontiguousarray(photo[:, :, ::-1]))
        h, w = photo.shape[:2]
        got = rh.instances_from_messages(dets, masks, h, w, reference_segmenter.class_names)
        ref = Instances(ref.boxes, ref.scores, ref.class_ids, rh.masks_in_boxes(ref.masks, ref.boxes))  # as published
        fraction, problems = matched_fraction(ref, Instances(*got))
        assert fraction >= MIN_MATCHED and len(problems) <= BF16_MAX_MASK_OUTLIERS * len(ref), (fraction, problems)
        diag = client.latest_diagnostics("auto", lambda v: v.get(Key.BACKEND, "").startswith("openvino"), 30)
        assert "chosen" not in diag[Key.BACKEND] and "OpenVINO installed" in diag[Key.BACKEND_REASON], diag
    finally:
        client.close()
        assert proc.stop() == 0, proc.output


def test_depth_per_camera(ros_runtime, ros_log_dir, small_weights):
    """With cameras, each camera's depth and camera_info are <camera>/depth, <camera>/camera_info
    and its 3D output <camera>/detections_3d (relative to the node's namespace)."""
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from vision_msgs.msg import Detection3DArray

    ns = f"{NS}_d"
    proc = NodeProcess(
        "multi_depth",
        ns,
        {
            "weights": small_weights,
            "threads": 1,
            "backend": "torch",
            "precision": "fp32",
            "cameras": ["front", "rear"],
            "use_depth": True,
            **_reliable(f"{ns}/front/image"),
        },
    )
    client = Client(f"{ns}/front", f"{ns}/front/image", reliable=True)
    try:
        got = []
        qos = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
        client.node.create_subscription(Detection3DArray, f"{ns}/front/detections_3d", got.append, qos)
        depth_pub = client.node.create_publisher(Image, f"{ns}/front/depth", qos)
        info_pub = client.node.create_publisher(CameraInfo, f"{ns}/front/camera_info", qos)
        assert client.wait_for_node_input(120), proc.tail()
        assert client.spin_until(
            lambda: depth_pub.get_subscription_count() > 0 and info_pub.get_subscription_count() > 0, 20
        )
        photo = rh.photo_rgb("astronaut")[::4, ::4]
        h, w = photo.shape[:2]
        msg = rh.image_msg(photo, "rgb8", frame_id="front_color")
        msg.header.stamp = client.next_stamp()
        depth = Image(
            height=h,
            width=w,
            encoding="32FC1",
            is_bigendian=0,
            step=w * 4,
            data=np.full((h, w), 1.25, np.float32).tobytes(),
        )
        depth.header.stamp, depth.header.frame_id = msg.header.stamp, "front_depth"
        info = CameraInfo(width=w, height=h, k=[200.0, 0.0, w / 2, 0.0, 200.0, h / 2, 0.0, 0.0, 1.0])
        info.header.stamp, info.header.frame_id = msg.header.stamp, "front_depth"
        info_pub.publish(info)
        depth_pub.publish(depth)
        time.sleep(0.3)
        dets, _ = client.send(msg)
        assert client.spin_until(lambda: bool(got), 10), proc.tail()
        assert got[-1].header.frame_id == "front_depth"
        assert got[-1].detections and all(
            abs(d.results[0].pose.pose.position.z - 1.25) < 1e-3 for d in got[-1].detections
        )
        assert {d.id for d in got[-1].detections} <= {d.id for d in dets.detections}
    finally:
        client.close()
        assert proc.stop() == 0, proc.output
