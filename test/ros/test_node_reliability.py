"""What lifecycle managers, supervisors, launch and bad parameter files do to yolact_node.

Real runtime: the installed executable as launch starts it (params file + overrides), driven
over rclpy. Each case takes seconds (the small test model, one thread)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import ros_helpers as rh
from ros_helpers import Client

from yolact_ros.ros.diagnostics import Key
from yolact_ros.ros.node_process import NodeProcess
from yolact_ros.testing.node_client import wait_until_signals_held

NS = "/yolact_rel"


def _errors(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if "[ERROR]" in ln or "[FATAL]" in ln]


# -- start values ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"image_transport": "theora"}, ["parameter image_transport: 'theora'", "one of raw, compressed"]),
        ({"image_transport": "compresed"}, ["parameter image_transport: 'compresed'"]),
        # with a params file, rcl drops these mistyped overrides before the node sees them
        ({"score_threshold": "abc"}, ["parameter score_threshold: 'abc'", "a number in [0.0, 1.0]"]),
        ({"top_k": 5.0}, ["parameter top_k: 5.0", "an integer in [1, 100]"]),
        ({"publish_masks": "maybe"}, ["parameter publish_masks: 'maybe'", "true or false"]),
        ({"config": "nonsense"}, ["parameter config: 'nonsense'", "unknown config"]),
        ({"classes": ["no_such_class"]}, ["parameter classes:", "unknown class name(s) 'no_such_class'"]),
        ({"device": "gpu0"}, ["parameter device: 'gpu0'", "auto | cpu | cuda | cuda:N"]),
    ],
)
def test_bad_start_values_fail_configure_with_one_line(ros_runtime, ros_log_dir, small_weights, overrides, expected):
    proc = NodeProcess("bad_start", NS, {"weights": small_weights, "warmup": False, **overrides})
    code = proc.wait(120)
    out = proc.output
    assert code == 1, out
    assert "Traceback" not in out, out
    errors = _errors(out)
    assert len(errors) == 1, out  # one line per bad parameter, nothing else at ERROR
    assert all(text in errors[0] for text in expected), out
    assert "weights" not in errors[0].split("]:", 1)[1].split("(")[0] or "weights" in overrides, out
    assert "autostart:=false" in out  # the hint, as a launch argument


def test_start_values_that_mean_what_they_say(ros_runtime, ros_log_dir, small_weights):
    """An integer for a float parameter and an empty class list (from the command line) are taken."""
    proc = NodeProcess(
        "good_start",
        NS,
        {
            "weights": small_weights,
            "warmup": False,
            "threads": 1,
            "backend": "torch",
            "precision": "fp32",
            "score_threshold": 0,
            "classes": [],
        },
    )
    client = Client(NS, "/rel_unused/image")
    try:
        status = client.latest_diagnostics("good_start", lambda v: v.get(Key.STATE) == "active", timeout=60)
        assert status[Key.SCORE_THRESHOLD] == "0.000"
        assert not _errors(proc.output), proc.output
    finally:
        client.close()
        assert proc.stop(signal.SIGTERM) == 0, proc.output


def test_a_configure_exception_gives_its_cause(ros_runtime, ros_log_dir, small_weights):
    """rclpy swallows exceptions in lifecycle callbacks; the node says what went wrong."""
    proc = NodeProcess(
        "bad_qos",
        NS,
        {"weights": small_weights, "warmup": False},
        ros_args=["-p", f"qos_overrides.{NS}/detections.publisher.reliability:=bogus"],
    )
    code = proc.wait(120)
    out = proc.output
    assert code == 1, out
    errors = _errors(out)
    assert len(errors) == 1 and "configure failed" in errors[0] and "bogus" in errors[0], out
    assert "Traceback" not in out


# -- runtime parameters ----------------------------------------------------------------------------
def test_runtime_parameters_use_the_same_check(ros_runtime, ros_log_dir, small_weights):
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    proc = NodeProcess(
        "rt", NS, {"weights": small_weights, "warmup": False, "threads": 1, "backend": "torch", "precision": "fp32"}
    )
    client = Client(NS, "/rel_unused/image")
    fqn = f"{NS}/rt"
    try:
        assert client.lifecycle(fqn) == "active"
        # ranges come from the same table, as descriptors (rclpy checks them first, in its words)
        res = client.set_parameters(fqn, top_k=101)
        assert not res[0].successful and "top_k" in res[0].reason and "100" in res[0].reason
        res = client.set_parameters(fqn, device="gpu0")
        assert not res[0].successful and "read at configure" in res[0].reason
        res = client.set_parameters(fqn, classes=["no_such_class"])
        assert not res[0].successful and "unknown class name" in res[0].reason
        res = client.set_parameters(fqn, image_transport="compressed")
        assert not res[0].successful and "read at activate" in res[0].reason and "inactive" in res[0].reason
        # `ros2 param set <node> classes "[]"` sends an empty *bool* array
        req = SetParameters.Request()
        req.parameters = [ParameterMsg(name="classes", value=ParameterValue(type=ParameterType.PARAMETER_BOOL_ARRAY))]
        res = client._call(SetParameters, f"{fqn}/set_parameters", req, 20.0, 20.0).results
        assert res[0].successful, res[0].reason
        res = client.set_parameters(fqn, classes=["person"])  # the test model is COCO
        assert res[0].successful, res[0].reason
        assert proc.alive()
    finally:
        client.close()
        assert proc.stop() == 0, proc.output


# -- signals and the exit code ---------------------------------------------------------------------
def _time_to_exit(proc: NodeProcess, sig: int) -> tuple[int, float]:
    t0 = time.monotonic()
    proc.proc.send_signal(sig)
    code = proc.proc.wait(10)
    elapsed = time.monotonic() - t0
    proc.wait(5)
    return code, elapsed


#: signals per model / cache state in CI (3 states: at least 40 in all, about 2-3 min here);
#: bench/bench_signals.py runs the long sweep
SIGNALS_PER_CASE = 14
DEMO = Path(__file__).resolve().parents[2] / "models" / "demo" / "yolact_synth_demo.pth"


def _start_up(params: dict) -> NodeProcess:
    proc = NodeProcess("sig", NS, params)
    wait_until_signals_held(proc)
    return proc


@pytest.mark.parametrize("case", ["demo_auto_cold_cache", "demo_auto_warm_cache", "resnet50_torch"])
def test_signals_spread_over_the_whole_start_up_exit_0(ros_runtime, ros_log_dir, small_weights, tmp_path, case):
    """SIGTERM and SIGINT (alternating) at random delays over the whole start-up, from exec to
    "active" (measured first, for this model and cache state), seed logged in every failure:
    each one ends the process with 0, no traceback, no abort. The demo model runs the node's
    default backend (auto: OpenVINO converts it at configure with a cold cache); the ResNet-50
    model (reference weights, 256 px) runs torch."""
    import random

    seed = int(os.environ.get("YOLACT_SIGNAL_SEED", time.time_ns() % 2**31))
    rng = random.Random(f"{seed}-{case}")
    warm = tmp_path / "warm_cache"
    if case.startswith("demo"):
        base = {"weights": DEMO, "threads": 1, "backend": "auto", "precision": "auto"}
    else:
        base = {"weights": small_weights, "threads": 1, "backend": "torch", "precision": "fp32"}

    def params(i: int) -> dict:
        cold = case.endswith("cold_cache")
        return {**base, "cache_dir": str(tmp_path / f"cold_{i}" if cold else warm)}

    proc = _start_up(params(-1))  # measure the start-up (and fill the warm cache)
    assert proc.wait_for_output("active:", 120), proc.output
    active_s = time.monotonic() - proc.started
    assert proc.stop() == 0, proc.output
    for i in range(SIGNALS_PER_CASE):
        sig = (signal.SIGTERM, signal.SIGINT)[i % 2]
        delay = rng.uniform(0.0, active_s * 1.1)
        proc = _start_up(params(i))
        time.sleep(max(0.0, delay - (time.monotonic() - proc.started)))
        code, _ = _time_to_exit(proc, sig)  # the 1 s bound is measured by bench/bench_signals.py, not here
        out = proc.output
        where = f"seed {seed}, {case}, {signal.Signals(sig).name} at {delay:.3f} s of {active_s:.2f} s start-up"
        assert code == 0, (where, code, out[-3000:])
        assert "Traceback" not in out and "terminate called" not in out, (where, out[-3000:])


def test_shutdown_transition_ends_the_process_with_0(ros_runtime, ros_log_dir, small_weights):
    proc = NodeProcess(
        "shut", NS, {"weights": small_weights, "warmup": False, "threads": 1, "backend": "torch", "precision": "fp32"}
    )
    client = Client(NS, "/rel_unused/image")
    fqn = f"{NS}/shut"
    try:
        assert client.lifecycle(fqn) == "active"
        # invalid requests by label are refused too, the node keeps serving
        assert client.lifecycle(fqn, "configure", by_label=True) is False
        assert client.lifecycle(fqn, "activate", by_label=True) is False
        assert client.lifecycle(fqn) == "active"
        assert client.lifecycle(fqn, "active_shutdown") is True
        assert proc.wait(5) == 0, proc.output
        assert "Traceback" not in proc.output and not _errors(proc.output), proc.output
    finally:
        client.close()
        proc.stop()


_PARENT = """
import subprocess, sys, time
child = subprocess.Popen(sys.argv[1:])
print(child.pid, flush=True)
time.sleep(600)
"""


def test_node_exits_when_its_parent_dies(ros_runtime, ros_log_dir, small_weights):
    """launch killed with SIGKILL (or SIGTERM, ros2/launch#666) must not leave the node running."""
    cmd = NodeProcess.command(
        "orphan", NS, {"weights": small_weights, "warmup": False, "threads": 1, "backend": "torch", "precision": "fp32"}
    )
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, *cmd], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        time.sleep(4.0)  # mid-start or already spinning
        parent.kill()
        parent.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(child):
            time.sleep(0.05)
        assert not _alive(child), "the node outlived its parent"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- bad frames: bounded logs, counted, bounded memory -----------------------------------------------
def _png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of valid PNG structure whose header declares width x height."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def _rss_peak_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM"))


def test_bad_raw_frames_are_counted_and_logged_once_per_kind(ros_runtime, ros_log_dir, small_weights):
    camera = "/rel_raw/image"
    proc = NodeProcess(
        "raw",
        NS,
        {"weights": small_weights, "threads": 1, "backend": "torch", "precision": "fp32"},
        remaps={"image": camera},
    )
    client = Client(NS, camera, reliable=True)
    fqn = f"{NS}/raw"
    try:
        assert client.wait_for_node_input()
        good = rh.image_msg(rh.photo_rgb("astronaut")[::4, ::4], "rgb8")
        assert client.send(good)[0] is not None
        # two kinds of rejection, each from many distinct frame_ids
        for i in range(40):
            bad = rh.image_msg(rh.photo_rgb("astronaut")[::8, ::8], "rgb8", frame_id=f"cam_{i}")
            if i % 2:
                bad.encoding = "yuv422_yuy2"
            else:
                bad.step = bad.width  # smaller than width * 3
            client.send(bad, expect_output=False)
            time.sleep(0.03)
        status = client.latest_diagnostics("raw", lambda v: int(v[Key.FRAMES_REJECTED]) >= 10, timeout=20)
        assert int(status[Key.FRAMES_REJECTED]) <= 40
        time.sleep(0.5)
        out = proc.output
        assert out.count("unsupported encoding") == 1, out
        assert out.count("is smaller than width*channels") == 1, out
        # max_image_pixels: a frame above the cap is refused before conversion
        res = client.set_parameters(fqn, max_image_pixels=1000)
        assert res[0].successful, res[0].reason
        for _ in range(3):
            good.header.stamp = client.next_stamp()
            client.send(good, expect_output=False)
            time.sleep(0.2)
        assert proc.wait_for_output("exceeds max_image_pixels", 15), proc.tail()
        assert client.set_parameters(fqn, max_image_pixels=50_000_000)[0].successful
        good.header.stamp = client.next_stamp()
        assert client.send(good)[0] is not None  # still serving

        # a stopped input shows in /diagnostics (the timeout only guards against a hang)
        period = 1.0 / 15
        for _ in range(30):
            client.publish(good)
            time.sleep(period)
        client.spin_once(0.1)
        del client.diagnostics[:]  # a report from before the stop does not count
        client.latest_diagnostics(
            "raw",
            lambda v: float(v[Key.INPUT_RATE]) == 0.0 and "input stopped" in client_status_message(client, "raw"),
            timeout=30,
        )
    finally:
        client.close()
        assert proc.stop() == 0, proc.output


def client_status_message(client: Client, node: str) -> str:
    from yolact_ros.ros.diagnostics import status_name

    for arr in reversed(client.diagnostics):
        for st in arr.status:
            if st.name == status_name(node):
                return st.message
    return ""


def test_bad_compressed_frames_bounded_memory_and_quiet_decoders(ros_runtime, ros_log_dir, small_weights):
    camera = "/rel_cmp/image"
    proc = NodeProcess(
        "cmp",
        NS,
        {
            "weights": small_weights,
            "threads": 1,
            "backend": "torch",
            "precision": "fp32",
            "image_transport": "compressed",
        },
        remaps={"image/compressed": camera + "/compressed"},
    )
    client = Client(NS, camera + "/compressed", compressed=True, reliable=True)
    try:
        from sensor_msgs.msg import CompressedImage

        assert client.wait_for_node_input()
        bgr = np.ascontiguousarray(rh.photo_rgb("astronaut")[::4, ::4, ::-1])
        jpeg = cv2.imencode(".jpg", bgr)[1].tobytes()
        assert client.send(CompressedImage(format="jpeg", data=jpeg))[0] is not None
        peak_before = _rss_peak_kb(proc.proc.pid)
        bomb = CompressedImage(format="png", data=_png_declaring(30000, 30000))
        assert len(bomb.data) < 200
        for _ in range(3):
            client.send(bomb, expect_output=False)
            time.sleep(0.2)
        client.latest_diagnostics("cmp", lambda v: int(v[Key.FRAMES_REJECTED]) >= 1, timeout=20)
        assert proc.output.count("exceeds max_image_pixels") == 1, proc.output
        assert _rss_peak_kb(proc.proc.pid) - peak_before < 100_000  # < 100 MB (the full decode: 2.7 GB)

        # corrupt but decodable: processed, counted, no libjpeg line on the console
        corrupt = bytearray(jpeg)
        for i in range(600, len(corrupt) - 2, 397):
            corrupt[i] = 0xD9 if i % 2 else 0x00
        for _ in range(3):
            dets, _ = client.send(CompressedImage(format="jpeg", data=bytes(corrupt)))
            assert dets is not None
        client.latest_diagnostics("cmp", lambda v: int(v[Key.FRAMES_DECODED_WITH_ERRORS]) >= 3, timeout=20)
        out = proc.output
        assert "Corrupt JPEG data" not in "\n".join(ln for ln in out.splitlines() if "[WARN]" not in ln), out
        assert out.count("decoded with errors") == 1, out
    finally:
        client.close()
        assert proc.stop() == 0, proc.output
