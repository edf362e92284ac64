"""Helpers of the ROS tests: start the installed node as launch would, and a test client.

Everything rclpy is imported inside functions, so collecting the tests works without ROS.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def ros_problem() -> str | None:
    """None if rclpy, the messages and the node executable are available, else why not."""
    try:
        import rclpy  # noqa: F401
    except ImportError as exc:
        return f"rclpy not importable ({exc})"
    try:
        import vision_msgs.msg  # noqa: F401
    except ImportError:
        return "vision_msgs not importable (build the workspace: bash scripts/build_ws.sh)"
    try:
        import yolact_ros.msg  # noqa: F401
    except ImportError:
        return "yolact_ros.msg not importable (workspace not built or install/setup.bash not sourced)"
    if node_executable() is None:
        return "install/lib/yolact_ros/yolact_node not found (bash scripts/build_ws.sh)"
    return None


def install_prefix() -> Path | None:
    """The install prefix holding yolact_ros: this repository's workspace first."""
    candidates = [REPO / "install"]
    candidates += [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in candidates:
        if (prefix / "lib" / "yolact_ros" / "yolact_node").is_file():
            return prefix
    return None


def node_executable() -> Path | None:
    prefix = install_prefix()
    return prefix / "lib" / "yolact_ros" / "yolact_node" if prefix else None


def params_file() -> Path:
    prefix = install_prefix()
    installed = prefix / "share" / "yolact_ros" / "config" / "yolact.yaml" if prefix else None
    return installed if installed and installed.is_file() else REPO / "config" / "yolact.yaml"


class NodeProcess:
    """``yolact_node`` started the way launch starts it; output collected in the background."""

    def __init__(self, name: str, namespace: str, params: dict, remaps: dict | None = None):
        cmd = [str(node_executable()), "--ros-args", "--params-file", str(params_file())]
        for key, value in params.items():
            cmd += ["-p", f"{key}:={_param_text(value)}"]
        cmd += ["-r", f"__node:={name}", "-r", f"__ns:={namespace}"]
        for src, dst in (remaps or {}).items():
            cmd += ["-r", f"{src}:={dst}"]
        self.cmd = cmd
        self.name = name
        self.namespace = namespace
        self.lines: list[str] = []
        self._lock = threading.Lock()
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for_output(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            if self.proc.poll() is not None:
                self._reader.join(2)
                return text in self.output
            time.sleep(0.05)
        return False

    def stop(self, sig=signal.SIGINT, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
            raise AssertionError(f"node did not exit within {timeout}s after {sig!r}:\n{self.output}")
        self._reader.join(5)
        return code

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code


def _param_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(f'"{v}"' for v in value) + "]"
    if value == "":
        return "''"
    return str(value)


class Client:
    """A test client in its own rclpy Context: publishes images, collects every output."""

    def __init__(self, namespace: str, image_topic: str, compressed: bool = False, reliable: bool = False):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image
        from vision_msgs.msg import Detection2DArray

        from yolact_ros.msg import InstanceMaskArray

        self.ns = namespace.rstrip("/")
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"yolact_test_client_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.image_topic = image_topic
        qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE) if reliable else qos_profile_sensor_data
        self.pub = self.node.create_publisher(CompressedImage if compressed else Image, image_topic, qos)
        self.detections: list = []
        self.masks: list = []
        self.diagnostics: list = []
        self.visualizations: list = []
        self.node.create_subscription(Detection2DArray, f"{self.ns}/detections", self.detections.append, 10)
        self.node.create_subscription(InstanceMaskArray, f"{self.ns}/masks", self.masks.append, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self._vis_sub = None
        self._stamp_counter = 0

    # -- plumbing -------------------------------------------------------------------------------
    def spin_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(predicate())

    def wait_for_node_input(self, timeout: float = 30.0) -> bool:
        """Until the node's subscription matched our publisher (discovery takes 0-3 s)."""
        return self.spin_until(lambda: self.pub.get_subscription_count() > 0, timeout)

    def subscribe_visualization(self):
        from sensor_msgs.msg import Image

        self._vis_sub = self.node.create_subscription(
            Image, f"{self.ns}/visualization", self.visualizations.append, 10)

    def unsubscribe_visualization(self):
        if self._vis_sub is not None:
            self.node.destroy_subscription(self._vis_sub)
            self._vis_sub = None

    def next_stamp(self):
        from builtin_interfaces.msg import Time

        self._stamp_counter += 1
        # A distinctive stamp in the past, unique per frame.
        return Time(sec=1_000_000 + self._stamp_counter, nanosec=123_456_789 % 1_000_000_000)

    def send(self, msg, timeout: float = 30.0, resend: float = 3.0, expect_output: bool = True):
        """Publish ``msg`` (stamp set here unless already set) until detections with its stamp
        arrive (best effort may lose a frame); returns (detections, masks) for that stamp."""
        if msg.header.stamp.sec == 0:
            msg.header.stamp = self.next_stamp()
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if not expect_output:
            self.pub.publish(msg)
            return None, None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pub.publish(msg)
            if self.spin_until(lambda: self.find(self.detections, stamp) is not None, min(resend, deadline - time.monotonic())):
                dets = self.find(self.detections, stamp)
                # masks are published right after detections
                self.spin_until(lambda: self.find(self.masks, stamp) is not None, 5.0)
                return dets, self.find(self.masks, stamp)
        raise AssertionError(f"no detections with stamp {stamp} within {timeout}s")

    @staticmethod
    def find(msgs, stamp):
        for m in reversed(msgs):
            if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp:
                return m
        return None

    def latest_diagnostics(self, node_name: str, predicate=lambda values: True, timeout: float = 10.0) -> dict:
        """Key/values of the newest /diagnostics status of ``node_name`` satisfying predicate."""
        found = {}

        def check():
            for arr in reversed(self.diagnostics):
                for st in arr.status:
                    if st.name.startswith(f"{node_name}:"):
                        values = {kv.key: kv.value for kv in st.values}
                        values["_level"] = st.level
                        values["_message"] = st.message
                        if predicate(values):
                            found.update(values)
                            return True
            return False

        if not self.spin_until(check, timeout):
            raise AssertionError(f"no /diagnostics from {node_name} satisfying the condition within {timeout}s")
        return found

    def set_parameters(self, node_fqn: str, **values):
        """SetParameters service call; returns the list of SetParametersResult."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        cli = self.node.create_client(SetParameters, f"{node_fqn}/set_parameters")
        try:
            assert cli.wait_for_service(timeout_sec=20.0), f"{node_fqn}/set_parameters not available"
            req = SetParameters.Request()
            req.parameters = [Parameter(k.replace("__", "."), value=v).to_parameter_msg() for k, v in values.items()]
            fut = cli.call_async(req)
            assert self.spin_until(fut.done, 20.0), "set_parameters timed out"
            return fut.result().results
        finally:
            self.node.destroy_client(cli)

    def lifecycle(self, node_fqn: str, transition: str | None = None):
        """Trigger a lifecycle transition by label (configure, activate, ...) or, without one,
        return the current state label."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState, GetState

        if transition is None:
            cli = self.node.create_client(GetState, f"{node_fqn}/get_state")
            req = GetState.Request()
        else:
            cli = self.node.create_client(ChangeState, f"{node_fqn}/change_state")
            req = ChangeState.Request()
            req.transition = Transition(id=getattr(Transition, f"TRANSITION_{transition.upper()}"))
        try:
            assert cli.wait_for_service(timeout_sec=30.0), f"lifecycle service of {node_fqn} not available"
            fut = cli.call_async(req)
            assert self.spin_until(fut.done, 60.0), f"lifecycle call {transition} timed out"
            res = fut.result()
            return res.current_state.label if transition is None else res.success
        finally:
            self.node.destroy_client(cli)

    def count_subscribers(self, topic: str) -> int:
        return self.node.count_subscribers(topic)

    def close(self):
        import rclpy

        try:
            self.executor.shutdown()
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.context)


# -- images ------------------------------------------------------------------------------------
def photo_rgb(name: str = "astronaut") -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def image_msg(rgb: np.ndarray, encoding: str = "rgb8", frame_id: str = "camera_optical", pad: int = 0):
    """A sensor_msgs/Image of an RGB photo in ``encoding``, rows padded by ``pad`` bytes."""
    import cv2
    from sensor_msgs.msg import Image

    conv = {
        "rgb8": lambda a: a,
        "bgr8": lambda a: a[:, :, ::-1],
        "rgba8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2RGBA),
        "bgra8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2BGRA),
        "mono8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2GRAY),
    }
    arr = np.ascontiguousarray(conv[encoding](rgb))
    h, w = arr.shape[:2]
    row = arr.reshape(h, -1)
    if pad:
        row = np.concatenate([row, np.full((h, pad), 77, np.uint8)], axis=1)
    msg = Image()
    msg.header.frame_id = frame_id
    msg.height, msg.width = h, w
    msg.encoding = encoding
    msg.step = row.shape[1]
    msg.data = row.tobytes()
    return msg


def full_mask(item, height: int, width: int) -> np.ndarray:
    """Rebuild a full-frame bool mask from an InstanceMask (roi + cropped mono8)."""
    m = np.frombuffer(item.mask.data, np.uint8).reshape(item.mask.height, item.mask.step)[:, : item.mask.width]
    out = np.zeros((height, width), bool)
    r = item.roi
    out[r.y_offset:r.y_offset + r.height, r.x_offset:r.x_offset + r.width] = m > 127
    return out


def assert_matches(dets, masks, inst, height: int, width: int, class_names) -> None:
    """The node's messages agree with Instances computed directly."""
    assert len(dets.detections) == len(inst), (len(dets.detections), len(inst))
    assert len(masks.instances) == len(inst)
    for i, (det, item) in enumerate(zip(dets.detections, masks.instances)):
        assert det.id == str(i) == item.id
        x1, y1, x2, y2 = inst.boxes[i].tolist()
        assert abs(det.bbox.center.position.x - (x1 + x2) / 2) < 0.5
        assert abs(det.bbox.center.position.y - (y1 + y2) / 2) < 0.5
        assert abs(det.bbox.size_x - (x2 - x1)) < 1.0 and abs(det.bbox.size_y - (y2 - y1)) < 1.0
        assert det.results[0].hypothesis.class_id == class_names[int(inst.class_ids[i])]
        assert abs(det.results[0].hypothesis.score - float(inst.scores[i])) < 1e-3
        assert item.mask.encoding == "mono8"
        assert set(np.unique(np.frombuffer(item.mask.data, np.uint8)).tolist()) <= {0, 255}
        from yolact_ros.ros.messages import box_to_roi

        assert (item.roi.x_offset, item.roi.y_offset, item.roi.width, item.roi.height) == \
            box_to_roi(inst.boxes[i], height, width)
        assert (item.mask.width, item.mask.height) == (item.roi.width, item.roi.height)
        got = full_mask(item, height, width)
        # the published mask is the Segmenter's mask inside the box (ROI)
        ref = np.zeros_like(inst.masks[i])
        r = item.roi
        ref[r.y_offset:r.y_offset + r.height, r.x_offset:r.x_offset + r.width] = \
            inst.masks[i][r.y_offset:r.y_offset + r.height, r.x_offset:r.x_offset + r.width]
        union = np.logical_or(got, ref).sum()
        iou = np.logical_and(got, ref).sum() / union if union else 1.0
        assert iou > 0.98, f"instance {i}: mask IoU {iou:.3f}"
