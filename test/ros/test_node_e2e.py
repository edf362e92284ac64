"""yolact_node end to end on the real runtime: the installed executable as a separate process
(started as launch starts it), a test client publishing real photos (skimage.data).

One node process serves the tests of this module in order; the last one stops it with SIGINT.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
import ros_helpers as rh
from ros_helpers import Client

from yolact_ros.ros.diagnostics import Key
from yolact_ros.ros.names import NODE_NAME
from yolact_ros.ros.node_process import NodeProcess

NS = "/yolact_e2e"
NODE = NODE_NAME
FQN = f"{NS}/{NODE}"
CAMERA = "/e2e_camera/image_raw"


@pytest.fixture(scope="module")
def node(ros_runtime, ros_log_dir, small_weights):
    # The input QoS is overridden to reliable (qos_overrides), so no test frame is lost.
    proc = NodeProcess(
        NODE,
        NS,
        {
            "weights": small_weights,
            "threads": 1,
            "backend": "torch",
            "precision": "fp32",
            "device": "cpu",
            f"qos_overrides.{CAMERA}.subscription.reliability": "reliable",
        },
        remaps={"image": CAMERA},
    )
    assert proc.wait_for_output("active:", 120), f"node did not become active:\n{proc.output}"
    yield proc
    if proc.proc.poll() is None:
        proc.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def client(node):
    c = Client(NS, CAMERA, reliable=True)
    assert c.wait_for_node_input(), "the node's image subscription never matched"
    yield c
    c.close()


@pytest.fixture(scope="module")
def photo():
    return rh.photo_rgb("astronaut")


def test_outputs_carry_header_and_match_segmenter(client, photo, reference_segmenter):
    msg = rh.image_msg(photo, "rgb8", frame_id="astronaut_cam")
    dets, masks = client.send(msg)
    assert dets.header.frame_id == masks.header.frame_id == "astronaut_cam"
    assert (masks.header.stamp.sec, masks.header.stamp.nanosec) == (msg.header.stamp.sec, msg.header.stamp.nanosec)
    for det in dets.detections:
        assert det.header.stamp == msg.header.stamp and det.header.frame_id == "astronaut_cam"
    inst = reference_segmenter(np.ascontiguousarray(photo[:, :, ::-1]))
    assert len(inst) > 0, "the reference model finds nothing: the comparison would be vacuous"
    rh.assert_matches(dets, masks, inst, photo.shape[0], photo.shape[1], reference_segmenter.class_names)


@pytest.mark.parametrize("encoding,pad", [("bgr8", 0), ("rgba8", 0), ("bgra8", 0), ("rgb8", 24), ("mono8", 5)])
def test_encodings_and_row_padding(client, photo, reference_segmenter, encoding, pad):
    small = photo[::2, ::2].copy()  # 256x256: a different size than the model's input
    msg = rh.image_msg(small, encoding, pad=pad)
    dets, masks = client.send(msg)
    if encoding == "mono8":
        import cv2

        ref_in = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    else:
        ref_in = np.ascontiguousarray(small[:, :, ::-1])
    inst = reference_segmenter(ref_in)
    assert len(inst) > 0
    rh.assert_matches(dets, masks, inst, small.shape[0], small.shape[1], reference_segmenter.class_names)


def test_runtime_parameters(client, photo, reference_segmenter):
    bgr = np.ascontiguousarray(photo[:, :, ::-1])
    base = reference_segmenter(bgr)
    top_class = reference_segmenter.class_names[int(base.class_ids[0])]
    threshold = float(np.round(base.scores[len(base) // 2], 3))  # keeps about half
    try:
        res = client.set_parameters(FQN, score_threshold=threshold, top_k=4, classes=[top_class])
        assert all(r.successful for r in res), [r.reason for r in res]
        dets, masks = client.send(rh.image_msg(photo))
        assert 0 < len(dets.detections) <= 4
        assert len(masks.instances) == len(dets.detections)
        for det in dets.detections:
            assert det.results[0].hypothesis.class_id == top_class
            assert det.results[0].hypothesis.score > threshold
        expected = [
            s
            for s, c in zip(base.scores, base.class_ids)
            if s > threshold and reference_segmenter.class_names[int(c)] == top_class
        ][:4]
        assert len(dets.detections) == len(expected)

        # Invalid values are rejected with a reason and change nothing.
        for bad in (
            {"score_threshold": 1.5},
            {"top_k": 0},
            {"classes": ["not_a_coco_class"]},
            {"weights": "/elsewhere.pth"},
            {"device": "gpu"},
        ):
            res = client.set_parameters(FQN, **bad)
            assert not res[0].successful and res[0].reason, bad
        assert "unknown class" in client.set_parameters(FQN, classes=["zebra crossing"])[0].reason
        dets, _ = client.send(rh.image_msg(photo))
        assert 0 < len(dets.detections) <= 4

        # Nothing passes a threshold of 1: empty arrays, still published with the header.
        assert client.set_parameters(FQN, score_threshold=1.0)[0].successful
        msg = rh.image_msg(photo, frame_id="empty_frame")
        dets, masks = client.send(msg)
        assert len(dets.detections) == 0 and len(masks.instances) == 0
        assert dets.header.frame_id == masks.header.frame_id == "empty_frame"
    finally:
        res = client.set_parameters(FQN, score_threshold=0.15, top_k=15, classes=[""])
        assert all(r.successful for r in res), [r.reason for r in res]


def _rejected(client) -> int:
    return int(client.latest_diagnostics(NODE)[Key.FRAMES_REJECTED])


def test_bad_input_is_rejected_and_survived(client, node, photo):
    from sensor_msgs.msg import Image

    before = _rejected(client)
    good = rh.image_msg(photo[::2, ::2].copy())

    unknown = rh.image_msg(photo[::2, ::2].copy())
    unknown.encoding = "yuv422_weird"
    short = rh.image_msg(photo[::2, ::2].copy())
    short.data = short.data[: len(short.data) // 2]
    zero = Image(height=0, width=0, encoding="rgb8", step=0)
    zero.header.frame_id = "cam"
    bad_step = rh.image_msg(photo[::2, ::2].copy())
    bad_step.step = 10
    bads = [unknown, short, zero, bad_step]
    for i, bad in enumerate(bads):
        client.send(bad, expect_output=False)
        client.latest_diagnostics(NODE, lambda v, i=i: int(v[Key.FRAMES_REJECTED]) >= before + i + 1, timeout=15)
        # the node keeps serving: the next good frame is answered
        dets, _ = client.send(rh.image_msg(photo[::2, ::2].copy()))
        assert dets is not None
        assert node.proc.poll() is None
    vals = client.latest_diagnostics(NODE, lambda v: int(v[Key.FRAMES_REJECTED]) >= before + len(bads), timeout=15)
    assert int(vals[Key.FRAMES_REJECTED]) == before + len(bads)
    assert "rejected a frame" in node.output
    assert "unsupported encoding 'yuv422_weird'" in node.output
    assert "Traceback" not in node.output
    del good


def test_visualization_only_while_subscribed(client, photo):
    def published():
        """The node's count, from a status it built after this call (the newest one received may
        be up to a period older than the frames just sent): the second status from now on."""
        seen = len(client.diagnostics)
        assert client.spin_until(lambda: len(client.diagnostics) >= seen + 2, 10), "no /diagnostics"
        return int(client.latest_diagnostics(NODE)[Key.VISUALIZATIONS])

    client.send(rh.image_msg(photo[::2, ::2].copy()))
    client.send(rh.image_msg(photo[::2, ::2].copy()))
    assert published() == 0, "overlay drawn although nobody subscribed"

    client.subscribe_visualization()
    topic = f"{NS}/visualization"
    assert client.spin_until(lambda: client.count_subscribers(topic) > 0, 10)
    msg = rh.image_msg(photo, frame_id="vis_cam")
    stamp = None
    for _ in range(10):  # the node sees our subscription after discovery: retry a few frames
        msg.header.stamp = client.next_stamp()
        client.send(msg)
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if client.spin_until(lambda stamp=stamp: client.find(client.visualizations, stamp) is not None, 3.0):
            break
    vis = client.find(client.visualizations, stamp)
    assert vis is not None, "no visualization while subscribed"
    assert vis.encoding == "bgr8" and (vis.height, vis.width) == photo.shape[:2]
    assert vis.header.frame_id == "vis_cam"
    overlay = np.frombuffer(vis.data, np.uint8).reshape(vis.height, vis.step)[:, : vis.width * 3]
    assert not np.array_equal(overlay.reshape(photo.shape), photo[:, :, ::-1]), "overlay draws nothing"

    client.unsubscribe_visualization()
    assert client.spin_until(lambda: client.count_subscribers(topic) == 0, 10)
    # wait until the node's publisher no longer counts us, then frames must not be drawn
    for _ in range(3):
        client.send(rh.image_msg(photo[::2, ::2].copy()))
    count = published()
    for _ in range(2):
        client.send(rh.image_msg(photo[::2, ::2].copy()))
    assert published() == count


def test_diagnostics_report_rates_and_model(client, photo):
    client.send(rh.image_msg(photo[::2, ::2].copy()))
    vals = client.latest_diagnostics(NODE, lambda v: int(v[Key.FRAMES_PROCESSED]) > 0)
    assert vals[Key.STATE] == "active"
    assert vals[Key.DEVICE] == "cpu" and vals[Key.MODEL] == "test_small"
    for key in (Key.INPUT_RATE, Key.OUTPUT_RATE, Key.LATENCY_P50, Key.FRAMES_DROPPED):
        assert key in vals
    assert int(vals[Key.FRAMES_RECEIVED]) >= int(vals[Key.FRAMES_PROCESSED])


def test_example_consumer_rebuilds_full_frame_masks(client, photo):
    rc, out = rh.run_example(
        "consumer.py",
        ["--ns", NS, "--count", "1"],
        lambda: client.send(rh.image_msg(photo, frame_id="consumer_cam")),
        tries=20,
    )
    assert rc == 0, out
    assert "consumer_cam, 512x512" in out and "instances" in out and " px" in out, out


def test_sigint_exits_cleanly(node, client):
    code = node.stop(signal.SIGINT)
    assert code == 0, node.output
    assert "Traceback" not in node.output
