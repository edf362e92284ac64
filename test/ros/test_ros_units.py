"""In-process tests of the ROS face's pieces with real message classes: image conversion
(every encoding, row padding, zero copy, bad input), Instances -> messages, the parameter
table, the one-frame mailbox, diagnostics."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import ros_helpers as rh


@pytest.fixture(scope="module", autouse=True)
def _ros(ros_runtime):
    return ros_runtime


@pytest.fixture(scope="module")
def rgb():
    return rh.photo_rgb("astronaut")[100:220:, 50:210]  # 120x160, odd-sized crop


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
@pytest.mark.parametrize("pad", [0, 7])
def test_image_to_bgr_every_encoding_is_a_view(rgb, encoding, pad):
    import cv2

    from yolact_ros.ros.image_conversion import image_to_bgr

    msg = rh.image_msg(np.ascontiguousarray(rgb), encoding, pad=pad)
    out = image_to_bgr(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8)), "pixels were copied"
    if encoding == "mono8":
        np.testing.assert_array_equal(out, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY))
    else:
        np.testing.assert_array_equal(out[:, :, :3], rgb[:, :, ::-1])


def test_last_row_without_padding_is_accepted(rgb):
    from yolact_ros.ros.image_conversion import image_to_bgr

    msg = rh.image_msg(np.ascontiguousarray(rgb), "bgr8", pad=4)
    msg.data = bytes(msg.data)[:-4]
    np.testing.assert_array_equal(image_to_bgr(msg), rgb[:, :, ::-1])


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda m: setattr(m, "encoding", "yuv422"), "unsupported encoding"),
        (lambda m: setattr(m, "encoding", "16UC1"), "unsupported encoding"),
        (lambda m: setattr(m, "data", bytes(m.data)[:100]), "needs"),
        (lambda m: setattr(m, "height", 0), "empty image"),
        (lambda m: setattr(m, "width", 0), "empty image"),
        (lambda m: setattr(m, "step", 3), "step"),
    ],
)
def test_bad_images_raise_conversion_error(rgb, mutate, reason):
    from yolact_ros.ros.image_conversion import ImageConversionError, image_to_bgr

    msg = rh.image_msg(np.ascontiguousarray(rgb), "rgb8")
    mutate(msg)
    with pytest.raises(ImageConversionError, match=reason):
        image_to_bgr(msg)


def test_compressed_roundtrip_and_corrupt(rgb):
    import cv2
    from sensor_msgs.msg import CompressedImage

    from yolact_ros.ros.image_conversion import ImageConversionError, compressed_to_bgr

    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    png = CompressedImage(format="png", data=cv2.imencode(".png", bgr)[1].tobytes())
    decoded, messages = compressed_to_bgr(png)
    np.testing.assert_array_equal(decoded, bgr)
    assert messages == []
    jpg = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", bgr)[1].tobytes())
    assert compressed_to_bgr(jpg)[0].shape == bgr.shape
    for data, kind in (
        (b"", "layout"),
        (b"\xff\xd8\xff\xe0 not really a jpeg" * 3, "format"),
        (b"GIF89a" + bytes(40), "format"),
        (bytes(jpg.data)[:300], "decode"),
    ):
        with pytest.raises(ImageConversionError) as err:
            compressed_to_bgr(CompressedImage(format="jpeg", data=data))
        assert err.value.kind == kind, (data[:10], err.value)


def test_declared_size_and_max_pixels(rgb):
    """The size comes from the header (PNG IHDR, JPEG SOF, progressive too) before decoding."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    from yolact_ros.ros.image_conversion import ImageConversionError, compressed_to_bgr, declared_size

    bgr = np.ascontiguousarray(rgb[:37, :53, ::-1])
    assert declared_size(cv2.imencode(".png", bgr)[1].tobytes()) == ("png", 53, 37)
    assert declared_size(cv2.imencode(".jpg", bgr)[1].tobytes()) == ("jpeg", 53, 37)
    progressive = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert declared_size(progressive) == ("jpeg", 53, 37)
    png = CompressedImage(format="png", data=cv2.imencode(".png", bgr)[1].tobytes())
    with pytest.raises(ImageConversionError, match="max_image_pixels") as err:
        compressed_to_bgr(png, max_pixels=53 * 37 - 1)
    assert err.value.kind == "too_large"
    assert compressed_to_bgr(png, max_pixels=53 * 37)[0].shape == bgr.shape


def test_corrupt_jpeg_messages_are_collected_not_printed(rgb, capfd):
    """libjpeg's warning for a corrupt-but-decodable JPEG comes back with the image; nothing
    reaches the process's stderr."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    from yolact_ros.ros.image_conversion import compressed_to_bgr

    data = bytearray(cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]))[1].tobytes())
    for i in range(2000, len(data) - 2, 997):
        data[i] = 0xD9 if i % 2 else 0x00
    capfd.readouterr()
    image, messages = compressed_to_bgr(CompressedImage(format="jpeg", data=bytes(data)))
    assert image.shape == rgb.shape
    assert messages and "JPEG" in messages[0], messages
    assert capfd.readouterr().err == ""


def test_bgr_to_image_roundtrip(rgb):
    from std_msgs.msg import Header

    from yolact_ros.ros.image_conversion import bgr_to_image, image_to_bgr

    bgr = rgb[:, ::-1, ::-1]  # non-contiguous input
    msg = bgr_to_image(bgr, Header(frame_id="f"))
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.header.frame_id) == ("bgr8", 120, 160, 480, "f")
    np.testing.assert_array_equal(image_to_bgr(msg), bgr)


def _instances(h=60, w=80):
    from yolact_ros.inference.instances import Instances

    boxes = np.array([[10.4, 5.2, 30.7, 25.9], [0.0, 0.0, 80.0, 60.0], [70.5, 50.5, 79.9, 59.9]], np.float32)
    masks = np.zeros((3, h, w), bool)
    masks[0, 8:20, 12:28] = True
    masks[0, 40:45, 40:45] = True  # outside its box: not part of the cropped mask
    masks[1, :, :40] = True
    masks[2, 55:58, 72:78] = True
    return Instances(
        boxes=boxes,
        scores=np.array([0.9, 0.5, 0.2], np.float32),
        class_ids=np.array([0, 2, 79], np.int64),
        masks=masks,
        class_names=tuple(f"class{i}" for i in range(80)),
    )


def test_detections_layout():
    from std_msgs.msg import Header

    from yolact_ros.ros.messages import instances_to_detections

    inst = _instances()
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 34
    msg = instances_to_detections(inst, header)
    assert msg.header == header and len(msg.detections) == 3
    d = msg.detections[0]
    assert d.id == "0" and d.header == header
    assert d.bbox.center.position.x == pytest.approx((10.4 + 30.7) / 2, abs=1e-5)
    assert d.bbox.center.position.y == pytest.approx((5.2 + 25.9) / 2, abs=1e-5)
    assert d.bbox.size_x == pytest.approx(20.3, abs=1e-5) and d.bbox.size_y == pytest.approx(20.7, abs=1e-5)
    assert d.results[0].hypothesis.class_id == "class0"
    assert d.results[0].hypothesis.score == pytest.approx(0.9)
    assert msg.detections[2].results[0].hypothesis.class_id == "class79"
    from yolact_ros.inference.instances import Instances

    empty = instances_to_detections(Instances.empty(60, 80, inst.class_names), header)
    assert empty.detections == [] and empty.header == header


def test_masks_cropped_to_roi_and_index_aligned():
    from std_msgs.msg import Header

    from yolact_ros.ros.messages import full_frame_mask, instances_to_masks

    inst = _instances()
    msg = instances_to_masks(inst, Header(frame_id="cam"))
    assert [m.id for m in msg.instances] == ["0", "1", "2"]
    assert (msg.image_height, msg.image_width) == (60, 80)
    r0 = msg.instances[0].roi
    assert (r0.x_offset, r0.y_offset, r0.width, r0.height) == (10, 5, 21, 21)
    r1 = msg.instances[1].roi
    assert (r1.x_offset, r1.y_offset, r1.width, r1.height) == (0, 0, 80, 60)
    r2 = msg.instances[2].roi
    assert (r2.x_offset, r2.y_offset, r2.width, r2.height) == (70, 50, 10, 10)
    for item, full in zip(msg.instances, inst.masks):
        m = item.mask
        assert (m.encoding, m.width, m.height, m.step) == ("mono8", item.roi.width, item.roi.height, item.roi.width)
        assert m.header.frame_id == "cam"
        data = np.frombuffer(m.data, np.uint8)
        assert set(np.unique(data).tolist()) <= {0, 255}
        r = item.roi
        expected = full[r.y_offset : r.y_offset + r.height, r.x_offset : r.x_offset + r.width]
        np.testing.assert_array_equal(data.reshape(r.height, r.width) == 255, expected)
    rebuilt = full_frame_mask(msg.instances[0], 60, 80)
    assert rebuilt.sum() == 12 * 16  # the pixels outside the box are not in the message
    from yolact_ros.inference.instances import Instances

    empty = instances_to_masks(Instances.empty(60, 80), Header())
    assert empty.instances == [] and (empty.image_height, empty.image_width) == (60, 80)


def test_full_frame_mask_honours_row_padding():
    from sensor_msgs.msg import RegionOfInterest
    from yolact_ros.msg import InstanceMask

    from yolact_ros.ros.messages import full_frame_mask
    from yolact_ros.ros.stream_client import image_message

    full = np.zeros((60, 80), bool)
    full[12:30, 20:45] = True
    full[15, 25] = False
    crop = np.where(full[12:30, 20:45], 255, 0).astype(np.uint8)
    item = InstanceMask(
        id="0",
        roi=RegionOfInterest(x_offset=20, y_offset=12, width=25, height=18),
        mask=image_message(crop, "mono8", pad=3),
    )
    assert item.mask.step == 28
    np.testing.assert_array_equal(full_frame_mask(item, 60, 80), full)


def test_box_to_roi_clips_and_never_empties():
    from yolact_ros.ros.messages import box_to_roi

    assert box_to_roi([-5, -5, 500, 500], 60, 80) == (0, 0, 80, 60)
    assert box_to_roi([30.2, 30.2, 30.3, 30.3], 60, 80) == (30, 30, 1, 1)
    assert box_to_roi([79.6, 59.6, 80.0, 60.0], 60, 80) == (79, 59, 1, 1)


def test_latest_frame_mailbox_keeps_only_the_newest():
    from yolact_ros.ros.mailbox import Frame, LatestFrames

    box = LatestFrames()
    assert box.take_all(0.01) == []
    assert box.put("", Frame("a", 0.0)) is False
    assert box.put("", Frame("b", 0.0)) is True  # "a" dropped, counted by the caller
    assert [f.msg for _, f in box.take_all(0.01)] == ["b"]
    assert box.take_all(0.01) == []  # never handed out twice
    got = []
    t = threading.Thread(target=lambda: got.append(box.take_all(5.0)))
    t.start()
    box.put("", Frame("c", 0.0))
    t.join(5)
    assert got[0][0][1].msg == "c"
    box.close()
    closed = []
    t = threading.Thread(target=lambda: closed.append(box.take_all(3600.0)), daemon=True)  # closed: returns at once
    t.start()
    t.join(60)  # only guards against a hang
    assert not t.is_alive() and closed == [[]]


def test_mailbox_per_camera_round_robin():
    """One slot per camera, all waiting frames at once; with a limit every camera gets its turn."""
    from yolact_ros.ros.mailbox import Frame, LatestFrames

    box = LatestFrames(["front", "left", "right"])
    for cam in ("right", "front", "left"):
        box.put(cam, Frame(cam + "1", 0.0))
    assert box.put("left", Frame("left2", 0.0)) is True
    assert [(k, f.msg) for k, f in box.take_all(0.01)] == [("front", "front1"), ("left", "left2"), ("right", "right1")]
    served = []
    for _ in range(6):
        for cam in ("front", "left", "right"):
            box.put(cam, Frame(cam, 0.0))
        served += [k for k, _ in box.take_all(0.01, limit=1)]
        box.clear()
    assert served == ["left", "right", "front"] * 2  # starts after the one served first last time


def test_parameter_table_validation():
    from yolact_ros.ros.params import PARAM_NAMES, RUNTIME_PARAMS, validate_value

    assert {
        "weights",
        "config",
        "device",
        "precision",
        "image_transport",
        "score_threshold",
        "top_k",
        "nms_threshold",
        "classes",
        "publish_masks",
        "publish_visualization",
        "autostart",
    } <= set(PARAM_NAMES)
    assert {"score_threshold", "top_k", "classes", "publish_visualization"} <= RUNTIME_PARAMS
    assert "weights" not in RUNTIME_PARAMS
    assert validate_value("device", "cuda:1") is None and validate_value("device", "auto") is None
    assert "device" in validate_value("device", "gpu0")
    assert validate_value("image_transport", "theora")
    assert validate_value("score_threshold", 1.2)
    assert validate_value("classes", ["person"], ("person", "car")) is None
    assert "unknown class" in validate_value("classes", ["persn"], ("person", "car"))


def test_diagnostics_message():
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticStatus

    from yolact_ros.ros.diagnostics import FrameStats, Key, build_diagnostics, status_name

    stats = FrameStats()
    for dropped in (False, True, False):
        stats.on_received(dropped)
    stats.on_rejected("unsupported encoding 'x'")
    stats.on_processed(
        4,
        stamp="1.000000002",
        latency_ms=30.0,
        processing_ms=25.0,
        segmenter_ms=20.0,
        overhead_ms=2.0,
        visualization_ms=0.0,
    )
    snap = stats.snapshot()
    assert (snap["received"], snap["dropped"], snap["processed"], snap["rejected"]) == (3, 1, 1, 1)
    arr = build_diagnostics("n", "m@cpu", Time(sec=5), "active", snap, {Key.DEVICE: "cpu"}, rejected_recently=True)
    st = arr.status[0]
    assert st.name == status_name("n") == "n: yolact"
    values = {kv.key: kv.value for kv in st.values}
    assert st.level == DiagnosticStatus.WARN and "rejected" in st.message
    assert values[Key.FRAMES_DROPPED] == "1" and values[Key.FRAMES_REJECTED] == "1" and values[Key.DEVICE] == "cpu"
    assert values[Key.LAST_STAMP] == "1.000000002" and float(values[Key.LAST_SEGMENTER]) == 20.0
    # every value the node publishes has its constant: readers never spell a display string
    constants = {v for k, v in vars(Key).items() if k.isupper()}
    assert set(values) <= constants, set(values) - constants
    assert build_diagnostics("n", "m@cpu", Time(sec=5), "active", snap, {}).status[0].level == DiagnosticStatus.OK
