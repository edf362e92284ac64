"""yolact_node as a managed node (autostart off) with compressed input, the weights / device
errors, and SIGTERM. The node runs as a separate process, as launch starts it."""

from __future__ import annotations

import signal

import cv2
import numpy as np
import pytest
import ros_helpers as rh
from ros_helpers import Client

from yolact_ros.ros.diagnostics import Key
from yolact_ros.ros.node_process import NodeProcess

NS = "/yolact_lc"
NODE = "seg_lc"
FQN = f"{NS}/{NODE}"
CAMERA = "/lc_camera/image_raw"


def _compressed(bgr: np.ndarray, fmt: str = "jpeg"):
    from sensor_msgs.msg import CompressedImage

    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr)
    assert ok
    msg = CompressedImage()
    msg.header.frame_id = "lc_cam"
    msg.format = fmt
    msg.data = buf.tobytes()
    return msg


def test_lifecycle_compressed_input_and_sigterm(ros_runtime, ros_log_dir, small_weights, reference_segmenter):
    proc = NodeProcess(
        NODE,
        NS,
        {
            "weights": small_weights,
            "threads": 1,
            "backend": "torch",
            "precision": "fp32",
            "device": "auto",
            "autostart": False,
            "image_transport": "compressed",
        },
        remaps={"image/compressed": CAMERA + "/compressed"},
    )
    client = Client(NS, CAMERA + "/compressed", compressed=True)
    try:
        assert client.lifecycle(FQN) == "unconfigured"
        assert client.count_subscribers(CAMERA + "/compressed") == 0
        assert client.lifecycle(FQN, "configure") is True
        assert client.lifecycle(FQN) == "inactive"
        import torch

        if not torch.cuda.is_available():  # device auto -> CPU, said once
            assert proc.output.count("no CUDA device available, running on CPU") == 1, proc.output
        # the model is loaded but nothing is subscribed until activate
        assert client.count_subscribers(CAMERA + "/compressed") == 0
        # load-time parameters are locked once configured
        res = client.set_parameters(FQN, weights="/other.pth")
        assert not res[0].successful and "unconfigured" in res[0].reason
        assert client.lifecycle(FQN, "activate") is True
        assert client.wait_for_node_input()

        bgr = np.ascontiguousarray(rh.photo_rgb("astronaut")[::2, ::2, ::-1])
        for fmt in ("jpeg", "png"):
            msg = _compressed(bgr, fmt)
            dets, masks = client.send(msg)
            decoded = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
            inst = reference_segmenter(decoded)
            assert len(inst) > 0
            assert dets.header.frame_id == "lc_cam"
            rh.assert_matches(dets, masks, inst, bgr.shape[0], bgr.shape[1], reference_segmenter.class_names)

        # a corrupt JPEG and an empty message are rejected; the node keeps serving
        good = _compressed(bgr)
        corrupt = _compressed(bgr)
        corrupt.data = bytes(good.data[:200]) + b"\x00garbage" * 10
        empty = _compressed(bgr)
        empty.data = b""
        for i, bad in enumerate((corrupt, empty)):
            client.send(bad, expect_output=False)
            client.latest_diagnostics(NODE, lambda v, i=i: int(v[Key.FRAMES_REJECTED]) >= i + 1, timeout=15)
            assert client.send(_compressed(bgr))[0] is not None
        assert "cannot decode compressed image" in proc.output

        # deactivate pauses (unsubscribes, model kept); activate resumes; cleanup frees
        assert client.lifecycle(FQN, "deactivate") is True
        assert client.spin_until(lambda: client.count_subscribers(CAMERA + "/compressed") == 0, 10)
        assert client.lifecycle(FQN, "activate") is True
        assert client.wait_for_node_input()
        assert client.send(_compressed(bgr))[0] is not None
        assert client.lifecycle(FQN, "deactivate") is True
        assert client.lifecycle(FQN, "cleanup") is True
        assert client.lifecycle(FQN) == "unconfigured"
        # unconfigured again: load-time parameters may change
        assert client.set_parameters(FQN, image_transport="raw")[0].successful
    finally:
        client.close()
        code = proc.stop(signal.SIGTERM)
    assert code == 0, proc.output
    assert "Traceback" not in proc.output


def _run_failing(params: dict, name: str) -> tuple[int, str]:
    proc = NodeProcess(name, "/yolact_err", params)
    code = proc.wait(120)
    return code, proc.output


@pytest.fixture(scope="module")
def garbage_weights(tmp_path_factory):
    p = tmp_path_factory.mktemp("bad") / "yolact_base_54_800000.pth"
    p.write_bytes(b"this is not a checkpoint" * 100)
    return p


def test_weights_and_device_errors_are_one_clear_line(
    ros_runtime, ros_log_dir, small_weights, garbage_weights, tmp_path
):
    import torch

    missing = tmp_path / "missing_weights.pth"
    cases = [
        ({"weights": str(missing)}, str(missing), "no such file"),
        ({"weights": str(garbage_weights)}, str(garbage_weights), "checkpoint"),
        # a checkpoint of another architecture than the config asked for
        ({"weights": str(small_weights), "config": "yolact_darknet53"}, str(small_weights), "yolact_darknet53"),
        ({"weights": ""}, "parameter weights", "empty"),
    ]
    if not torch.cuda.is_available():
        cases.append(({"weights": str(small_weights), "device": "cuda"}, "parameter device: 'cuda'", "no CUDA device"))
    procs = [
        (NodeProcess(f"err{i}", "/yolact_err", dict(p, warmup=False)), needle, reason)
        for i, (p, needle, reason) in enumerate(cases)
    ]
    for proc, needle, reason in procs:
        code = proc.wait(180)
        out = proc.output
        assert code != 0, out
        assert "Traceback" not in out, out
        errors = [ln for ln in out.splitlines() if "[ERROR]" in ln]
        first = errors[0] if errors else ""
        assert needle in first and reason in first, out
        # one line that says it all (the node's exit is said at INFO)
        assert len(errors) == 1, out
        assert "exiting with code 1" in out, out


#: transitions valid from each primary state; every other id must be refused, not crash the node
_VALID = {"unconfigured": {1, 5}, "inactive": {2, 3, 6}, "active": {4, 7}}
_IDS = list(range(0, 9)) + [10, 11, 12, 13, 14, 99]


def test_invalid_transition_ids_are_refused_in_every_state(ros_runtime, ros_log_dir, small_weights):
    """rclpy 7.1 raises out of the executor for an invalid id (ros2/rclpy#1209; the node's guard
    answers instead), later rclpy answers by itself: on every distribution the node must answer
    success=false, stay in its state and keep serving."""
    proc = NodeProcess(
        "seg_ids",
        NS,
        {
            "weights": small_weights,
            "threads": 1,
            "backend": "torch",
            "precision": "fp32",
            "autostart": False,
            "warmup": False,
        },
    )
    client = Client(NS, CAMERA)
    fqn = f"{NS}/seg_ids"
    try:
        for state, step in (("unconfigured", "configure"), ("inactive", "activate"), ("active", None)):
            assert client.lifecycle(fqn) == state
            for tid in _IDS:
                if tid in _VALID[state]:
                    continue
                assert client.lifecycle(fqn, tid) is False, (state, tid)
                assert proc.proc.poll() is None, f"node died on transition id {tid} in {state}:\n{proc.output}"
                assert client.lifecycle(fqn) == state
            if step:
                assert client.lifecycle(fqn, step) is True
        from yolact_ros.ros.rclpy_compat import change_state_workaround_needed

        if change_state_workaround_needed():  # the node's guard answered (ros2/rclpy#1209)
            assert "refused lifecycle transition id" in proc.output
        assert "Traceback" not in proc.output and "FATAL" not in proc.output, proc.output
    finally:
        client.close()
        assert proc.stop() == 0, proc.output
