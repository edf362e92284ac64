"""``yolact_node`` run as launch runs it, and an rclpy client that talks to it.

One harness for the integration tests (``test/ros``), the benchmark (``bench/bench_node.py``)
and the demo (:mod:`yolact_ros.ros.demo`):

* :class:`NodeProcess` starts the installed executable with the command line
  ``launch/segment.launch.py`` produces (``--ros-args --params-file <installed yolact.yaml>
  -p name:=value ... -r __node:=... -r __ns:=... -r image:=...``), collects its output (and
  optionally logs and echoes it) and stops it with a signal.
* :class:`Client` is a participant in its own rclpy ``Context``: it publishes images, collects
  the node's detections, masks, overlays and ``/diagnostics``, sets parameters, drives the
  lifecycle and waits for conditions with a timeout. It spins in the caller's thread during
  those waits, or in a thread of its own after :meth:`Client.spin_in_background`. Subclasses
  override the ``on_*`` callbacks to process outputs instead of keeping them.

rclpy and the message packages are imported inside functions, so importing this module (e.g.
to collect the tests) needs no ROS runtime.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .diagnostics import stamp_to_ns, status_name
from .names import EXECUTABLE, PACKAGE

__all__ = [
    "Client",
    "NodeProcess",
    "StampRecorder",
    "image_message",
    "install_prefix",
    "node_executable",
    "ns_to_stamp",
    "params_file",
    "ros_problem",
    "stamp_to_ns",
]

_client_ids = itertools.count()


# -- the installed package ------------------------------------------------------------------------
def install_prefix() -> Path | None:
    """The first prefix on ``AMENT_PREFIX_PATH`` holding the node executable (where ament_index
    finds the package), None when it is not built or not sourced."""
    for entry in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if entry and (Path(entry) / "lib" / PACKAGE / EXECUTABLE).is_file():
            return Path(entry)
    return None


def node_executable() -> Path | None:
    prefix = install_prefix()
    return prefix / "lib" / PACKAGE / EXECUTABLE if prefix else None


def params_file() -> Path | None:
    """The installed default parameter file (the launch file's ``params_file``)."""
    prefix = install_prefix()
    return prefix / "share" / PACKAGE / "config" / "yolact.yaml" if prefix else None


def ros_problem() -> str | None:
    """None if rclpy, the messages, the node executable and its parameter file are there, else why not."""
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
        return "no yolact_node on AMENT_PREFIX_PATH (bash scripts/build_ws.sh && source scripts/ros_env.sh)"
    params = params_file()
    if params is None or not params.is_file():
        return f"{params} not found: rebuild the workspace (bash scripts/build_ws.sh)"
    return None


# -- the node process -----------------------------------------------------------------------------
def _param_text(value) -> str:
    """A value as ``-p name:=<text>`` takes it (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(f'"{v}"' for v in value) + "]"
    if value == "":
        return "''"
    return str(value)


class NodeProcess:
    """The installed ``yolact_node`` started as launch starts it; its output (stdout and stderr)
    is collected by a background thread, optionally also written to ``log_path`` and printed
    with the prefix ``echo``."""

    def __init__(
        self,
        name: str,
        namespace: str,
        params: Mapping[str, object] | None = None,
        remaps: Mapping[str, str] | None = None,
        *,
        log_path: Path | None = None,
        echo: str | None = None,
        ros_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ):
        self.cmd = cmd = self.command(name, namespace, params, remaps, ros_args)
        self.name = name
        self.namespace = namespace
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._log = open(log_path, "w", encoding="utf-8") if log_path else None  # noqa: SIM115 - closed in _finish
        self._echo = echo
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0", **(env or {}))
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @staticmethod
    def command(
        name: str,
        namespace: str,
        params: Mapping[str, object] | None = None,
        remaps: Mapping[str, str] | None = None,
        ros_args: Sequence[str] = (),
    ) -> list[str]:
        """The command line: the installed params file, then ``-p`` overrides and remaps."""
        exe, yaml = node_executable(), params_file()
        if exe is None:
            raise FileNotFoundError(ros_problem() or "yolact_node is not installed")
        cmd = [str(exe), "--ros-args", "--params-file", str(yaml)]
        for key, value in (params or {}).items():
            cmd += ["-p", f"{key}:={_param_text(value)}"]
        cmd += ["-r", f"__node:={name}", "-r", f"__ns:={namespace}"]
        for src, dst in (remaps or {}).items():
            cmd += ["-r", f"{src}:={dst}"]
        return cmd + list(ros_args)

    def _read(self) -> None:
        assert self.proc.stdout is not None  # started with stdout=PIPE
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self.lines.append(line)
            if self._log is not None:
                self._log.write(line + "\n")
                self._log.flush()
            if self._echo is not None:
                print(f"{self._echo}{line}", flush=True)

    @property
    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def tail(self, n: int = 15) -> str:
        with self._lock:
            return "\n".join(self.lines[-n:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_output(self, text: str, timeout: float) -> bool:
        """Until a line containing ``text`` was printed; False after ``timeout`` or when the node exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            if self.proc.poll() is not None:
                self._reader.join(2)
                return text in self.output
            time.sleep(0.05)
        return False

    def wait_until_signals_held(self, timeout: float = 2.0) -> bool:
        """Until the process blocks or catches both SIGINT and SIGTERM (/proc/<pid>/status): a
        signal in the first moment after exec, before the script's ``env --block-signal`` ran,
        still kills it by the default action (docs/ros.md). True once held (or already gone)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status = open(f"/proc/{self.proc.pid}/status").read()
            except OSError:
                return True  # gone: nothing left to wait for
            masks = {
                k: int(v, 16)
                for k, v in (ln.split(":\t", 1) for ln in status.splitlines() if ln[:6] in ("SigBlk", "SigCgt"))
            }
            held = masks.get("SigBlk", 0) | masks.get("SigCgt", 0)
            if all(held >> (s - 1) & 1 for s in (signal.SIGINT, signal.SIGTERM)):
                return True
            time.sleep(0.0005)
        return False

    def wait(self, timeout: float) -> int:
        """Until the node exits by itself; its exit code."""
        code = self.proc.wait(timeout)
        self._finish()
        return code

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int | None:
        """Send ``sig`` (SIGINT as Ctrl-C, SIGTERM as launch on shutdown) and wait; SIGKILL after
        ``timeout``. The exit code; None when it had to be killed."""
        code: int | None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                code = None
        else:
            code = self.proc.returncode
        self._finish()
        return code

    def _finish(self) -> None:
        self._reader.join(5)
        if self._log is not None:
            self._log.close()
            self._log = None


# -- messages -------------------------------------------------------------------------------------
def ns_to_stamp(ns: int):
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def image_message(pixels: np.ndarray, encoding: str, frame_id: str = "", pad: int = 0):
    """A sensor_msgs/Image of uint8 ``pixels`` already in the layout of ``encoding`` (HxW or
    HxWxC), every row followed by ``pad`` filler bytes (``step`` says so)."""
    from sensor_msgs.msg import Image

    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = arr.shape[:2]
    rows = arr.reshape(h, -1)
    if pad:
        rows = np.concatenate([rows, np.full((h, pad), 77, np.uint8)], axis=1)
    msg = Image()
    msg.header.frame_id = frame_id
    msg.height, msg.width = h, w
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = rows.shape[1]
    msg.data = rows.tobytes()
    return msg


# -- the client -----------------------------------------------------------------------------------
class Client:
    """Our side, in its own rclpy Context: a publisher on ``image_topic`` (sensor-data QoS as a
    camera driver, or reliable) and subscriptions to ``<namespace>/detections``, ``/masks``
    (reliable, deep queues), optionally ``/visualization``, and ``/diagnostics``. By default
    every message is appended to ``detections``, ``masks``, ``visualizations``, ``diagnostics``.

    No rclpy signal handlers are installed: Ctrl-C stays the program's KeyboardInterrupt."""

    def __init__(
        self,
        namespace: str,
        image_topic: str,
        *,
        compressed: bool = False,
        reliable: bool = False,
        visualization: bool = False,
        name: str | None = None,
    ):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import CompressedImage, Image
        from vision_msgs.msg import Detection2DArray

        from yolact_ros.msg import InstanceMaskArray

        self.ns = namespace.rstrip("/")
        self.image_topic = image_topic
        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name or f"yolact_client_{os.getpid()}_{next(_client_ids)}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE) if reliable else qos_profile_sensor_data
        self.pub = self.node.create_publisher(CompressedImage if compressed else Image, image_topic, qos)
        self.detections: list = []
        self.masks: list = []
        self.visualizations: list = []
        self.diagnostics: list = []
        outputs = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)
        self.subs = {
            "detections": self.node.create_subscription(
                Detection2DArray, f"{self.ns}/detections", self.on_detections, outputs
            ),
            "masks": self.node.create_subscription(InstanceMaskArray, f"{self.ns}/masks", self.on_masks, outputs),
        }
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.on_diagnostics, 50)
        self._thread: threading.Thread | None = None
        self._stamp_counter = 0
        if visualization:
            self.subscribe_visualization()

    # -- callbacks (override to process instead of keeping) ---------------------------------------
    def on_detections(self, msg) -> None:
        self.detections.append(msg)

    def on_masks(self, msg) -> None:
        self.masks.append(msg)

    def on_visualization(self, msg) -> None:
        self.visualizations.append(msg)

    def on_diagnostics(self, msg) -> None:
        self.diagnostics.append(msg)

    # -- spinning and waiting ---------------------------------------------------------------------
    def spin_in_background(self) -> None:
        """Run the callbacks in a thread of this client from now on (waits then only poll)."""
        from rclpy.executors import ExternalShutdownException

        def spin() -> None:
            try:
                self.executor.spin()
            except (ExternalShutdownException, Exception):  # noqa: BLE001 - shutting down
                pass

        self._thread = threading.Thread(target=spin, daemon=True)
        self._thread.start()

    def spin_once(self, timeout: float) -> None:
        if self._thread is None:
            self.executor.spin_once(timeout_sec=timeout)
        else:
            time.sleep(timeout)

    def spin_until(
        self, predicate: Callable[[], bool], timeout: float, abort: Callable[[], bool] | None = None
    ) -> bool:
        """Until ``predicate()`` holds (True) or ``timeout`` s passed or ``abort()`` holds (False
        unless the predicate holds by then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if abort is not None and abort():
                break
            self.spin_once(0.05)
        return bool(predicate())

    def wait_for_node_input(self, timeout: float = 30.0) -> bool:
        """Until the node's subscription matched our publisher (discovery takes 0-3 s)."""
        return self.spin_until(lambda: self.pub.get_subscription_count() > 0, timeout)

    def outputs_matched(self) -> bool:
        """The node subscribes to our images and publishes every output we subscribe to."""
        return self.pub.get_subscription_count() > 0 and all(s.get_publisher_count() > 0 for s in self.subs.values())

    def count_subscribers(self, topic: str) -> int:
        return self.node.count_subscribers(topic)

    # -- visualization ----------------------------------------------------------------------------
    def subscribe_visualization(self) -> None:
        """Subscribe to the overlays (the node draws them only while someone does)."""
        from sensor_msgs.msg import Image

        self.subs["visualization"] = self.node.create_subscription(
            Image, f"{self.ns}/visualization", self.on_visualization, 10
        )

    def unsubscribe_visualization(self) -> None:
        sub = self.subs.pop("visualization", None)
        if sub is not None:
            self.node.destroy_subscription(sub)

    # -- frames -----------------------------------------------------------------------------------
    def publish(self, msg) -> None:
        self.pub.publish(msg)

    def next_stamp(self):
        self._stamp_counter += 1
        # A distinctive stamp in the past, unique per frame.
        return ns_to_stamp((1_000_000 + self._stamp_counter) * 1_000_000_000 + 123_456_789)

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
            if self.spin_until(
                lambda: self.find(self.detections, stamp) is not None, min(resend, deadline - time.monotonic())
            ):
                dets = self.find(self.detections, stamp)
                # masks are published right after detections
                self.spin_until(lambda: self.find(self.masks, stamp) is not None, 5.0)
                return dets, self.find(self.masks, stamp)
        raise TimeoutError(f"no detections with stamp {stamp} within {timeout}s")

    @staticmethod
    def find(msgs, stamp: tuple[int, int]):
        """The newest message of ``msgs`` whose header has ``stamp`` (sec, nanosec), or None."""
        for m in reversed(msgs):
            if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp:
                return m
        return None

    # -- diagnostics ------------------------------------------------------------------------------
    def statuses(
        self, node_name: str, where: Callable[[dict], bool] | None = None, camera: str = ""
    ) -> list[dict[str, str]]:
        """The key/values (see :class:`~yolact_ros.ros.diagnostics.Key`) of every /diagnostics
        status of ``node_name`` (of its ``camera`` with the ``cameras`` parameter) received so
        far, oldest first, that satisfy ``where``."""
        name = status_name(node_name, camera)
        found = []
        for arr in list(self.diagnostics):
            for st in arr.status:
                if st.name == name:
                    values = {kv.key: kv.value for kv in st.values}
                    if where is None or where(values):
                        found.append(values)
        return found

    def latest_diagnostics(
        self, node_name: str, predicate: Callable[[dict], bool] | None = None, timeout: float = 10.0, camera: str = ""
    ) -> dict[str, str]:
        """The newest status of ``node_name`` (``camera``) satisfying ``predicate``, waiting up to ``timeout`` s."""
        if not self.spin_until(lambda: bool(self.statuses(node_name, predicate, camera)), timeout):
            raise TimeoutError(f"no /diagnostics from {node_name} satisfying the condition within {timeout}s")
        return self.statuses(node_name, predicate, camera)[-1]

    # -- services ---------------------------------------------------------------------------------
    def _call(self, srv_type, service: str, request, ready_timeout: float, call_timeout: float):
        cli = self.node.create_client(srv_type, service)
        try:
            if not cli.wait_for_service(timeout_sec=ready_timeout):
                raise TimeoutError(f"{service} not available within {ready_timeout}s")
            fut = cli.call_async(request)
            if not self.spin_until(fut.done, call_timeout):
                raise TimeoutError(f"{service} call timed out after {call_timeout}s")
            return fut.result()
        finally:
            self.node.destroy_client(cli)

    def set_parameters(self, node_fqn: str, **values):
        """SetParameters service call (``a__b`` names the parameter ``a.b``); returns the list of
        SetParametersResult."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        req = SetParameters.Request()
        req.parameters = [Parameter(k.replace("__", "."), value=v).to_parameter_msg() for k, v in values.items()]
        return self._call(SetParameters, f"{node_fqn}/set_parameters", req, 20.0, 20.0).results

    def lifecycle(self, node_fqn: str, transition: "str | int | None" = None, *, by_label: bool = False):
        """Trigger a lifecycle transition by name (configure, activate, ...) or raw transition id,
        sent by id, or by its label with ``by_label`` (True when it succeeded), or, without one,
        return the current state label."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState, GetState

        if transition is None:
            return self._call(GetState, f"{node_fqn}/get_state", GetState.Request(), 30.0, 60.0).current_state.label
        req = ChangeState.Request()
        tid = transition if isinstance(transition, int) else getattr(Transition, f"TRANSITION_{transition.upper()}")
        req.transition = Transition(label=transition) if by_label else Transition(id=tid)
        return self._call(ChangeState, f"{node_fqn}/change_state", req, 30.0, 60.0).success

    def close(self) -> None:
        import rclpy

        try:
            self.executor.shutdown(timeout_sec=2.0)
            if self._thread is not None:
                self._thread.join(5)
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.context)


class StampRecorder(Client):
    """A Client for long runs: keeps (receive time, stamp in ns) of each detections message in
    ``received``, not the messages; masks are ignored."""

    def __init__(self, *args, **kwargs):
        self.received: list[tuple[float, int]] = []
        super().__init__(*args, **kwargs)

    def on_detections(self, msg) -> None:
        self.received.append((time.time(), stamp_to_ns(msg.header.stamp)))

    def on_masks(self, msg) -> None:
        pass
