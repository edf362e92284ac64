"""``yolact bag``: real rosbag2 files (sqlite3 and MCAP, written and read with rosbags), the demo model, no ROS."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

rosbags = pytest.importorskip("rosbags")

from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402

from yolact_ros.bag.naming import camera_names, output_topic  # noqa: E402
from yolact_ros.bag.typestore import bag_typestore, factory, header  # noqa: E402
from yolact_ros.cli import main as yolact  # noqa: E402
from yolact_ros.data.scene import DemoScene  # noqa: E402
from yolact_ros.inference.depth import PinholeCamera, instances_in_3d  # noqa: E402
from yolact_ros.interfaces.fields import full_frame_mask, stamp_to_ns  # noqa: E402
from yolact_ros.interfaces.msg_files import DEFINITIONS_DIR, message_files  # noqa: E402
from yolact_ros.segmenter import Segmenter  # noqa: E402
from yolact_ros.testing.rgbd import Solid, render_rgbd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "models" / "demo" / "yolact_synth_demo.pth"
SIZE = (256, 192)  # the demo model's input size is 256: small frames keep the test quick
SEC = 1_000_000_000
STORE = bag_typestore()
Image = factory(STORE, "sensor_msgs/msg/Image")
CompressedImage = factory(STORE, "sensor_msgs/msg/CompressedImage")
CameraInfo = factory(STORE, "sensor_msgs/msg/CameraInfo")


@pytest.fixture(scope="module")
def seg():
    return Segmenter(weights=DEMO, device="cpu")


@pytest.fixture(scope="module")
def frames():
    scene = DemoScene(("disc", "rectangle", "triangle", "star"), size=SIZE, seed=3)
    return [scene.frame(i)[0] for i in range(4)]


def image_msg(img: np.ndarray, encoding: str, stamp: int, frame_id: str):
    """bgr8 / rgb8 / mono8 from a BGR image (16UC1: a uint16 one) as a rosbags sensor_msgs/Image."""
    if encoding in ("rgb8", "mono8"):
        img = img[:, :, ::-1] if encoding == "rgb8" else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    a = np.ascontiguousarray(img)
    h, w, data = a.shape[0], a.shape[1], a.view(np.uint8).reshape(-1)
    return Image(header=header(stamp, frame_id), height=h, width=w, encoding=encoding, step=a.strides[0], data=data)


def jpeg_msg(bgr: np.ndarray, stamp: int, frame_id: str):
    data = cv2.imencode(".jpg", bgr)[1].reshape(-1)
    return CompressedImage(header=header(stamp, frame_id), format="jpeg", data=data)


def write_bag(path: Path, storage: str, entries) -> None:
    """``entries``: (topic, type, log time, message) in any order."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns: dict[str, object] = {}
        for topic, msgtype, log_time, msg in entries:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=STORE)
            writer.write(conns[topic], log_time, STORE.serialize_cdr(msg, msgtype))


def read_bag(path: Path):
    """[(topic, type, log time, message, raw bytes)] in log order, and the connections."""
    with AnyReader([path], default_typestore=STORE) as reader:
        out = [
            (c.topic, c.msgtype, t, reader.deserialize(raw, c.msgtype), bytes(raw)) for c, t, raw in reader.messages()
        ]
        return out, list(reader.connections)


def run_bag(bag_in, bag_out, topic: str, *extra: str) -> int:
    """``yolact bag`` in this process with the demo model on the CPU."""
    args = ["bag", "--in", str(bag_in), "--out", str(bag_out), "--topic", topic, *extra]
    return yolact(args + ["--weights", str(DEMO), "--device", "cpu"])


def assert_detections_equal(msg, inst, class_names):
    assert len(msg.detections) == len(inst)
    for det, box, cid, score in zip(msg.detections, inst.boxes, inst.class_ids, inst.scores):
        x1, y1, x2, y2 = (float(v) for v in box)
        assert det.bbox.center.position.x == pytest.approx((x1 + x2) / 2, abs=1e-3)
        assert det.bbox.size_x == pytest.approx(x2 - x1, abs=1e-3)
        assert det.results[0].hypothesis.class_id == class_names[int(cid)]
        assert det.results[0].hypothesis.score == pytest.approx(float(score), abs=1e-4)


def test_camera_names_follow_the_namespace_rule():
    assert camera_names(["/front/image_raw"]) == [""]
    assert camera_names(["/front/image_raw", "/rear/image_raw/compressed"]) == ["front", "rear"]
    assert camera_names(["/cam/front/image_raw", "/cam/rear/image_raw"]) == ["cam/front", "cam/rear"]
    assert camera_names(["/left", "/right"]) == ["left", "right"]  # at the root: the topic
    assert camera_names(["/cam/image_raw", "/cam/image_rect", "/x/image"]) == ["cam/image_raw", "cam/image_rect", "x"]
    assert camera_names(["/a/image", "/a/image/compressed"]) == ["a/image_1", "a/image_2"]
    assert camera_names(["/1cam/im-age", "/2cam/im-age"]) == ["_1cam", "_2cam"]
    assert output_topic("/yolact", "", "detections") == "/yolact/detections"
    assert output_topic("/yolact", "cam/front", "masks") == "/yolact/cam/front/masks"


def test_every_encoding_several_cameras_copy_inputs(tmp_path, seg, frames):
    """sqlite3 in, MCAP out: four cameras (bgr8, rgb8, mono8, JPEG), inputs copied, batches
    across cameras; outputs equal the Segmenter run on the same frames, at the inputs' log
    times with their stamps, in the bag's order."""
    cams = {
        "/front/image_raw": "bgr8",
        "/rear/image_raw": "rgb8",
        "/mono/image": "mono8",
        "/jpeg/image_raw/compressed": "jpeg",
    }
    entries, expected = [], {}
    for i, img in enumerate(frames[:3]):
        for k, (topic, enc) in enumerate(cams.items()):
            stamp = 10 * SEC + i * SEC // 10 + k
            msg = jpeg_msg(img, stamp, topic) if enc == "jpeg" else image_msg(img, enc, stamp, topic)
            msgtype = "sensor_msgs/msg/CompressedImage" if enc == "jpeg" else "sensor_msgs/msg/Image"
            entries.append((topic, msgtype, stamp + 1000, msg))
            if enc == "jpeg":
                decoded = cv2.imdecode(msg.data, cv2.IMREAD_COLOR)
            else:
                decoded = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if enc == "mono8" else img
            expected[(topic, stamp + 1000)] = (stamp, decoded)
    bag_in, bag_out = tmp_path / "in", tmp_path / "out"
    write_bag(bag_in, "sqlite3", entries)
    topics = [a for t in cams for a in ("--topic", t)][1:]
    assert run_bag(bag_in, bag_out, *topics, "--copy-inputs", "--batch-size", "3") == 0
    assert (bag_out / "out.mcap").is_file()
    messages, conns = read_bag(bag_out)
    names = dict(zip(cams, ["front", "rear", "mono", "jpeg"]))
    want_topics = {"/yolact/label_info"} | set(cams)
    want_topics |= {f"/yolact/{n}/{o}" for n in names.values() for o in ("detections", "masks")}
    assert {c.topic for c in conns} == want_topics
    assert messages[0][0] == "/yolact/label_info" and [m[0] for m in messages].count("/yolact/label_info") == 1
    assert [c.class_name for c in messages[0][3].class_map] == list(seg.class_names)
    log_times = [m[2] for m in messages]
    assert log_times == sorted(log_times)
    copied = {(t, lt): raw for t, _, lt, _, raw in messages if t in cams}
    assert {k: bytes(STORE.serialize_cdr(m, ty)) for t, ty, lt, m in entries for k in [(t, lt)]} == copied
    seen = 0
    for topic, name in names.items():
        dets = [(lt, m) for t, _, lt, m, _ in messages if t == f"/yolact/{name}/detections"]
        masks = [(lt, m) for t, _, lt, m, _ in messages if t == f"/yolact/{name}/masks"]
        assert len(dets) == len(masks) == 3
        for (lt, det), (lt2, mask) in zip(dets, masks):
            stamp, image = expected[(topic, lt)]
            assert lt2 == lt and stamp_to_ns(det.header.stamp) == stamp_to_ns(mask.header.stamp) == stamp
            assert det.header.frame_id == mask.header.frame_id == topic
            inst = seg(image)
            assert_detections_equal(det, inst, seg.class_names)
            assert [m.id for m in mask.instances] == [d.id for d in det.detections]
            h, w = image.shape[:2]
            for item, full in zip(mask.instances, inst.masks):
                r = item.roi  # the message keeps the mask inside the box
                want = np.zeros_like(full)
                box = (slice(r.y_offset, r.y_offset + r.height), slice(r.x_offset, r.x_offset + r.width))
                want[box] = full[box]
                assert (full_frame_mask(item, h, w) == want).mean() > 0.9995
            seen += len(inst)
    assert seen > 0  # the demo model finds the scene's shapes


def test_single_camera_sqlite_output_coco_and_subprocess(tmp_path, seg, frames):
    """MCAP in, sqlite3 out, run as a process; one topic: the node's single-camera names;
    --coco writes images + instances.json that pycocotools and yolact train's reader load."""
    from pycocotools.coco import COCO

    from yolact_ros.data.coco import CocoInstances

    entries = [
        ("/cam/image_raw", "sensor_msgs/msg/Image", 5 * SEC + i * SEC // 15, image_msg(f, "bgr8", 4 * SEC + i, "cam"))
        for i, f in enumerate(frames)
    ]
    bag_in, bag_out, coco = tmp_path / "in", tmp_path / "out", tmp_path / "coco"
    write_bag(bag_in, "mcap", entries)
    r = subprocess.run(
        [sys.executable, "-m", "yolact_ros.cli", "bag", "--in", str(bag_in), "--out", str(bag_out), "--topic",
         "/cam/image_raw", "--weights", str(DEMO), "--device", "cpu", "--storage", "sqlite3", "--coco", str(coco)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "image (/cam/image_raw): 4 read, 4 segmented, 0 skipped" in r.stdout
    assert "frames/s" in r.stdout
    assert list(bag_out.glob("*.db3"))
    messages, conns = read_bag(bag_out)
    assert {c.topic for c in conns} == {"/yolact/detections", "/yolact/masks", "/yolact/label_info"}
    dets = [(lt, m) for t, _, lt, m, _ in messages if t == "/yolact/detections"]
    assert [lt for lt, _ in dets] == [e[2] for e in entries]
    assert [stamp_to_ns(m.header.stamp) for _, m in dets] == [4 * SEC + i for i in range(4)]

    ann = coco / "image" / "instances.json"
    gt = COCO(str(ann))
    assert len(gt.getImgIds()) == 4
    assert len(gt.getAnnIds()) == sum(len(m.detections) for _, m in dets) > 0
    a = gt.loadAnns(gt.getAnnIds())[0]
    assert a["iscrowd"] == 0 and a["area"] > 0 and len(a["bbox"]) == 4 and 0 < a["score"] <= 1
    assert gt.annToMask(a).sum() == a["area"]
    assert {c["name"] for c in gt.loadCats(gt.getCatIds())} == set(seg.class_names)
    data = CocoInstances(ann, coco / "image" / "images", keep_empty=True)
    assert len(data) == 4
    image, target = data[0]
    assert image.shape[:2] == (SIZE[1], SIZE[0]) and len(target["labels"]) == len(dets[0][1].detections)
    results = json.loads((coco / "image" / "results.json").read_text())
    assert len(results) == len(gt.getAnnIds()) and {"segmentation", "bbox", "score"} <= set(results[0])
    gt.loadRes(results)


def test_detections_3d_pair_depth_by_nearest_stamp(tmp_path, seg, frames):
    """A 16UC1 depth topic + camera_info: detections_3d per colour frame, from the depth frame
    nearest in stamp (logged after the colour frame), in the depth camera's frame; a frame
    without depth within the tolerance gets 2D only."""
    w, h = SIZE
    cam = PinholeCamera(fx=220.0, fy=220.0, cx=w / 2, cy=h / 2, width=w, height=h)
    depth = render_rgbd([Solid("box", (0.0, 0.0, 1.5), (0.6, 0.5, 0.3))], cam, plane_distance=3.0).depth_mm
    info = CameraInfo(
        header=header(0, "depth_optical"), height=h, width=w, k=np.array([220.0, 0, w / 2, 0, 220.0, h / 2, 0, 0, 1])
    )
    entries = [("/rgbd/camera_info", "sensor_msgs/msg/CameraInfo", SEC, info)]
    for i, img in enumerate(frames[:3]):
        stamp = 2 * SEC + i * SEC // 10
        entries.append(
            ("/rgbd/color/image_raw", "sensor_msgs/msg/Image", stamp + 10, image_msg(img, "bgr8", stamp, "color"))
        )
        if i < 2:  # a near one (3 ms) logged after the colour frame, a farther one (40 ms)
            for gap in (3_000_000, 40_000_000):
                d = image_msg(depth + np.uint16(i + gap // 1_000_000), "16UC1", stamp + gap, "depth")
                entries.append(("/rgbd/depth/image_raw", "sensor_msgs/msg/Image", stamp + 20 + gap, d))
    bag_in, bag_out = tmp_path / "in", tmp_path / "out"
    write_bag(bag_in, "mcap", entries)
    depth_args = ["--depth-topic", "/rgbd/depth/image_raw", "--camera-info-topic", "/rgbd/camera_info"]
    assert run_bag(bag_in, bag_out, "/rgbd/color/image_raw", *depth_args, "--batch-size", "2") == 0
    messages, conns = read_bag(bag_out)
    out3d = [(lt, m) for t, _, lt, m, _ in messages if t == "/yolact/detections_3d"]
    colour = [e for e in entries if e[0] == "/rgbd/color/image_raw"]
    assert [lt for lt, _ in out3d] == [e[2] for e in colour[:2]]  # the third has no depth within 50 ms
    for (lt, msg), (_, _, _, image) in zip(out3d, colour):
        i = colour.index(next(e for e in colour if e[2] == lt))
        assert (
            stamp_to_ns(msg.header.stamp) == stamp_to_ns(image.header.stamp) and msg.header.frame_id == "depth_optical"
        )
        inst = seg(frames[i])
        placed = instances_in_3d(inst, depth + np.uint16(i + 3), cam, encoding="16UC1")  # the 3 ms one
        objs = list(placed.objects())
        assert len(msg.detections) == len(objs)
        for det, obj in zip(msg.detections, objs):
            assert det.id == str(obj.index)
            p = det.results[0].pose.pose.position
            assert (p.x, p.y, p.z) == pytest.approx(tuple(float(v) for v in obj.centre), abs=1e-6)
    assert sum(len(m.detections) for _, m in out3d) > 0


def test_bad_frames_are_counted_and_skipped(tmp_path, seg, frames, capsys):
    """An unsupported encoding, a short data buffer, a JPEG that does not decode and a
    message that does not deserialize: each one line, counted, skipped; the rest written."""
    topic, ty = "/cam/image_raw", "sensor_msgs/msg/Image"
    good = image_msg(frames[0], "bgr8", SEC, "cam")
    mono16 = image_msg(np.zeros((8, 8), np.uint16), "16UC1", SEC + 1, "cam")
    mono16.encoding = "mono16"
    short = image_msg(frames[1], "bgr8", SEC + 2, "cam")
    short.data = short.data[:100]
    entries = [(topic, ty, 10, good), (topic, ty, 11, mono16), (topic, ty, 12, short), (topic, ty, 14, good)]
    bag_in, bag_out = tmp_path / "in", tmp_path / "out"
    write_bag(bag_in, "sqlite3", entries)
    # a row whose bytes are not CDR: rewrite one message's data in the sqlite file
    import sqlite3

    db = next(bag_in.glob("*.db3"))
    with sqlite3.connect(db) as con:
        con.execute("UPDATE messages SET data = ? WHERE timestamp = 14", (b"\x00\x01\x00\x00\xff",))
    assert run_bag(str(bag_in), str(bag_out), topic) == 0
    out = capsys.readouterr()
    assert "4 read, 1 segmented, 3 skipped (1 deserialize, 1 encoding, 1 layout)" in out.out
    assert "unsupported encoding 'mono16'" in out.err and "cannot deserialize" in out.err
    messages, _ = read_bag(bag_out)
    assert [(t, lt) for t, _, lt, _, _ in messages if t != "/yolact/label_info"] == [
        ("/yolact/detections", 10),
        ("/yolact/masks", 10),
    ]
    # a JPEG that does not decode
    broken = CompressedImage(
        header=header(SEC, "c"), format="jpeg", data=np.frombuffer(b"\xff\xd8\xff\xe0garbage", np.uint8)
    )
    write_bag(tmp_path / "in2", "mcap", [("/c/image/compressed", "sensor_msgs/msg/CompressedImage", 5, broken)])
    code = run_bag(str(tmp_path / "in2"), str(tmp_path / "out2"), "/c/image/compressed")
    assert code == 0 and "1 read, 0 segmented, 1 skipped (1 format)" in capsys.readouterr().out
    assert read_bag(tmp_path / "out2")[0][0][0] == "/yolact/label_info"


def test_fatal_input_problems_one_line_and_nothing_half_written(tmp_path, frames, capsys):
    entries = [
        ("/cam/image_raw", "sensor_msgs/msg/Image", i + 1, image_msg(f, "bgr8", i, "cam"))
        for i, f in enumerate(frames[:2])
    ]
    entries.append(("/cam/info", "sensor_msgs/msg/CameraInfo", 1, CameraInfo()))
    good = tmp_path / "good"
    write_bag(good, "mcap", entries)
    base = ["bag", "--weights", str(DEMO), "--device", "cpu"]

    def run(bag, topic="/cam/image_raw", out="out", extra=()):
        code = yolact(base + ["--in", str(bag), "--out", str(tmp_path / out), "--topic", topic, *extra])
        err = capsys.readouterr().err
        return code, [line for line in err.splitlines() if "error" in line]

    code, errors = run(good, "/nope/image")
    assert code == 2 and errors == [
        "yolact bag: error: topic /nope/image is not in the bag; the bag's image topics: /cam/image_raw"
    ]
    code, errors = run(good, "/cam/info")
    assert code == 2 and "is sensor_msgs/msg/CameraInfo, not an image" in errors[0]
    code, errors = run(good, extra=("--depth-topic", "/cam/image_raw"))
    assert code == 2 and "needs both --depth-topic and --camera-info-topic" in errors[0]
    assert not (tmp_path / "out").exists()
    for storage in ("mcap", "sqlite3"):  # truncated files
        bag = tmp_path / f"trunc_{storage}"
        write_bag(bag, storage, entries)
        data = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
        data.write_bytes(data.read_bytes()[: data.stat().st_size * 2 // 3])
        code, errors = run(bag)
        assert code == 2 and len(errors) == 1 and "cannot read" in errors[0] and "as a rosbag2" in errors[0], errors
        assert not (tmp_path / "out").exists()
    code, errors = run(tmp_path / "missing")
    assert code == 2 and "does not exist" in errors[0]
    (tmp_path / "exists").mkdir()
    code, errors = run(good, out="exists")
    assert code == 2 and "exists already" in errors[0]


def test_a_record_broken_mid_file_keeps_what_was_written(tmp_path, frames, capsys):
    """A message record with a corrupt length inside an MCAP file: reading stops with one line,
    exit 1, and the output bag is closed and readable."""
    entries = [
        ("/cam/image_raw", "sensor_msgs/msg/Image", SEC + i, image_msg(f, "bgr8", i, "cam"))
        for i, f in enumerate(frames)
    ]
    bag = tmp_path / "in"
    write_bag(bag, "mcap", entries)
    data = bytearray((bag / "in.mcap").read_bytes())
    at = data.find(struct.pack("<QQ", SEC + 2, SEC + 2)) - 15  # opcode, length, channel, sequence
    assert data[at] == 0x05
    data[at + 1 : at + 9] = struct.pack("<Q", 2**40)
    (bag / "in.mcap").write_bytes(bytes(data))
    code = run_bag(str(bag), str(tmp_path / "out"), "/cam/image_raw")
    out = capsys.readouterr().out
    assert code == 1 and "reading stopped early" in out
    read_bag(tmp_path / "out")  # closed properly: readable


def test_one_copy_of_each_definition():
    """The ROS builds read the shipped .msg files (symlinks), so there is one copy of each."""
    assert (REPO / "msg").resolve() == (DEFINITIONS_DIR / "yolact_ros").resolve()
    assert (REPO / "test/ros_deps/vision_msgs/msg").resolve() == (DEFINITIONS_DIR / "vision_msgs").resolve()
    names = set(message_files())
    assert {
        "vision_msgs/msg/Detection2DArray",
        "vision_msgs/msg/LabelInfo",
        "yolact_ros/msg/InstanceMaskArray",
    } <= names
    # the type hashes written into bags are the ones rosidl generates from the same files
    share = REPO / "install" / "share"
    if not (share / "vision_msgs" / "msg" / "Detection2DArray.json").is_file():
        pytest.skip("no ROS build (scripts/build_ws.sh) to compare type hashes with")
    for name in names:
        pkg, _, stem = name.split("/")
        want = json.loads((share / pkg / "msg" / f"{stem}.json").read_text())["type_hashes"][0]["hash_string"]
        assert STORE.hash_rihs01(name) == want, name


def test_output_is_real_cdr_equal_to_the_node_messages(tmp_path, seg, frames):
    """With a ROS build: the bag's detections and masks deserialize with rclpy into vision_msgs'
    Detection2DArray and this package's InstanceMaskArray, equal field by field to what the
    node builds for the same instances (CDR padding bytes are left uninitialised by rclpy, so
    the bytes themselves are compared only through the messages)."""
    try:
        from rclpy.serialization import deserialize_message, serialize_message
        from std_msgs.msg import Header
        from vision_msgs.msg import Detection2DArray, LabelInfo
        from yolact_ros.msg import InstanceMaskArray

        from yolact_ros.ros.messages import instances_to_detections, instances_to_masks, label_info
    except ImportError as exc:
        if os.environ.get("YOLACT_ROS_REQUIRE_ROS") == "1":
            raise
        pytest.skip(f"no ROS runtime: {exc}")
    from builtin_interfaces.msg import Time

    bag_in, bag_out = tmp_path / "in", tmp_path / "out"
    write_bag(
        bag_in, "mcap", [("/cam/image", "sensor_msgs/msg/Image", 7, image_msg(frames[0], "bgr8", 3 * SEC + 5, "cam"))]
    )
    from yolact_ros.bag.segment import BagJob, segment_bag

    # this very Segmenter object, so the instances below are the same numbers
    segment_bag(seg, BagJob(input=bag_in, output=bag_out, topics=["/cam/image"]))
    messages, _ = read_bag(bag_out)
    raw = {t: r for t, _, _, _, r in messages}
    det = deserialize_message(raw["/yolact/detections"], Detection2DArray)
    inst = seg(frames[0])
    assert len(det.detections) == len(inst) > 0 and det.header.frame_id == "cam"
    head = Header(stamp=Time(sec=3, nanosec=5), frame_id="cam")
    assert det == instances_to_detections(inst, head, seg.class_names)
    masks = deserialize_message(raw["/yolact/masks"], InstanceMaskArray)
    assert masks == instances_to_masks(inst, head) and len(masks.instances) == len(inst)
    info = deserialize_message(raw["/yolact/label_info"], LabelInfo)  # stamped with its log time
    ref = label_info(seg.class_names, seg.score_threshold, Header(stamp=Time(sec=0, nanosec=7)))
    assert info == deserialize_message(serialize_message(ref), LabelInfo)  # threshold is a float32
    # the bag's bytes are a valid CDR stream: rclpy writes them back to the same length
    assert len(serialize_message(det)) == len(raw["/yolact/detections"])


def test_without_rosbags_the_command_says_what_to_install(tmp_path):
    """``yolact bag`` without rosbags installed: one line naming the extra."""
    (tmp_path / "rosbags").mkdir()
    (tmp_path / "rosbags" / "__init__.py").write_text("raise ImportError('no rosbags here', name='rosbags')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    r = subprocess.run(
        [sys.executable, "-m", "yolact_ros.cli", "bag", "--in", "x", "--out", "y", "--topic", "/t", "--weights", "w"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "pip install 'yolact_ros[bag]'" in r.stderr, r.stderr


def test_a_stop_request_ends_reading_and_closes_the_bag(tmp_path, seg, frames):
    """Ctrl-C (``stop``, the CLI passes ``signals.requested``): nothing more is read or
    segmented; what is done is written and the bag closed."""
    from yolact_ros.bag.segment import BagJob, segment_bag

    entries = [
        ("/c/image", "sensor_msgs/msg/Image", SEC + i, image_msg(f, "bgr8", i, "c")) for i, f in enumerate(frames)
    ]
    write_bag(tmp_path / "in", "mcap", entries)
    done: list[int] = []
    job = BagJob(input=tmp_path / "in", output=tmp_path / "out", topics=["/c/image"], batch_size=1)
    summary = segment_bag(seg, job, on_frame=lambda: done.append(1), stop=lambda: len(done) >= 2)
    assert summary.stopped == "interrupted" and summary.cameras[0][2].segmented == 2
    assert [lt for t, _, lt, _, _ in read_bag(tmp_path / "out")[0] if t == "/yolact/detections"] == [SEC, SEC + 1]
