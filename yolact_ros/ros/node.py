"""``yolact_node``'s lifecycle shell: transitions, publishers, subscriptions, parameter callbacks.

The managed (lifecycle) ROS 2 node around :class:`~yolact_ros.segmenter.Segmenter`. Threads:
the executor runs the subscription callbacks (which only store the newest frame in a one-slot
mailbox per camera, counting the frame it replaces as dropped), parameter/lifecycle services and
the diagnostics timer (:mod:`yolact_ros.ros.node_diagnostics`); one inference worker thread
(:mod:`yolact_ros.ros.worker`) takes the newest frames, runs the Segmenter and publishes.
Run-time parameter changes are applied between frames (:mod:`yolact_ros.ros.runtime_settings`).

Lifecycle: configure loads the model and creates the publishers and the worker; activate
subscribes; deactivate unsubscribes (the model stays loaded); cleanup frees everything;
shutdown ends the process (exit code 0). With ``autostart`` (default) the node configures and
activates itself. A transition that fails logs one line with its cause and answers
``success=false``; an invalid request (by id or label, in any state) is refused the same way.

Parameters are checked by :func:`yolact_ros.ros.params.check` whether they come from a params
file, the command line, launch or ``ros2 param set``; bad start values make configure fail
with one line per parameter. The process around it (signals, exit codes, ``main``): :mod:`yolact_ros.ros.main`.
"""

from __future__ import annotations

import functools
import gc
import importlib
import sys
import threading
import time
from typing import TYPE_CHECKING

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from .camera import DEPTH_QUEUE, CameraIO
from .diagnostics import FrameStats, stamp_to_ns, stats_clock
from .mailbox import Frame, LatestFrames
from .model_loading import load_error_line, load_segmenter, start_parameter_errors
from .names import NODE_NAME
from .node_diagnostics import diagnostics_array
from .node_params import change_refusal, declare_all, read
from .params import PARAMS, RUNTIME_PARAMS, check, parse_cameras
from .process import shutdown_requested
from .qos import input_qos, latched_qos, output_qos
from .rclpy_compat import current_state_label, guard_change_state
from .runtime_settings import RuntimeSettings
from .throttle import Throttle, one_line
from .worker import InferenceWorker

if TYPE_CHECKING:
    from rclpy.publisher import Publisher
    from rclpy.timer import Timer

    from ..inference.segmenter import Segmenter

__all__ = ["YolactNode", "input_qos", "latched_qos", "output_qos"]

_WARN_PERIOD_S = 5.0


def _transition(name: str):
    """Wrap a lifecycle callback: rclpy drops an exception raised in one (configure fails with
    no reason), so any exception becomes one ERROR line with its cause and a FAILURE, after
    the callback's partial work is undone."""

    def wrap(callback):
        @functools.wraps(callback)
        def run(self, state):
            try:
                return callback(self, state)
            except Exception as exc:  # noqa: BLE001 - reported, the node keeps serving
                if shutdown_requested():
                    # a signal arrived: the process is ending (yolact_ros.signals); nothing undone,
                    # no error line; never raised into rclpy's C++ caller
                    return TransitionCallbackReturn.FAILURE
                self.get_logger().error(f"{name} failed: {type(exc).__name__}: {one_line(exc)}")
                try:
                    self._undo(name)
                except Exception as undo_exc:  # noqa: BLE001
                    self.get_logger().error(f"{name}: cleaning up after the failure failed too: {one_line(undo_exc)}")
                return TransitionCallbackReturn.FAILURE

        return run

    return wrap


class YolactNode(LifecycleNode):
    """See the module docstring; parameters are listed in :mod:`yolact_ros.ros.params`."""

    def __init__(self, node_name: str = NODE_NAME, *, argv: list[str] | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        self._start_errors = declare_all(self, sys.argv if argv is None else argv)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        guard_change_state(self, self._refused_transition)
        self._segmenter: Segmenter | None = None
        self._model_name = ""
        self._settings = RuntimeSettings()  # run-time parameters in force, changes waiting for a frame
        self._mailbox = LatestFrames()
        self._cameras: list[CameraIO] = []  # set at configure: one per `cameras` entry, or one named ""
        self._worker = InferenceWorker(
            self._mailbox,
            self._settings,
            lambda: self._segmenter,
            lambda: self._cameras,
            warn=self._warn_throttled,
            log_error=self.get_logger().error,
            now_ns=lambda: self.get_clock().now().nanoseconds,
            running=lambda: rclpy.ok(context=self.context),
        )
        self._label_pub: Publisher | None = None
        self._diag_pub: Publisher | None = None
        self._diag_timer: Timer | None = None
        self._throttle = Throttle(_WARN_PERIOD_S)
        self.finalized = threading.Event()  # set by the shutdown transition: main() then exits 0

    def _refused_transition(self, request) -> None:
        """Log a ChangeState request refused as invalid in the current state (rclpy_compat's guard)."""
        label = request.transition.label
        self.get_logger().warning(
            f"refused lifecycle transition id {request.transition.id}{' (' + label + ')' if label else ''}: "
            f"not valid in state '{self._state_name()}'"
        )

    # -- parameters -------------------------------------------------------------------------------
    def _param(self, name: str):
        return read(self, name)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        state = self._state_name()
        seg = self._segmenter
        class_names = seg.class_names if seg is not None else None
        cap = seg.cfg.max_num_detections if seg is not None else None
        updates = {}
        for prm in params:
            name = prm.name
            value, reason = change_refusal(name, prm.value, state, class_names, cap)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
            if name in RUNTIME_PARAMS:
                updates[name] = value
        if updates and self._segmenter is not None:
            self._settings.queue(updates)
            if not self._worker.is_alive():
                self._worker.apply_settings()
            if "score_threshold" in updates:  # label_info carries it: republished now, not at the next frame
                self._publish_label_info(updates["score_threshold"])
        return SetParametersResult(successful=True)

    def _state_name(self) -> str:
        return current_state_label(self)

    # -- lifecycle --------------------------------------------------------------------------------
    def _undo(self, transition: str) -> None:
        """After a failed transition: back to the state it started from."""
        if transition == "configure":
            self._release()
        elif transition == "activate":
            self._unsubscribe()

    def _configure_error(self) -> str | None:
        """Why the parameters cannot be used (one line per bad parameter, each logged), before any loading."""
        errors = self._start_errors + start_parameter_errors(self._param)
        self._start_errors = []  # reported once; a corrected value (param set) is checked anew
        for line in errors:
            self.get_logger().error(line)
        return errors[0] if errors else None

    @_transition("configure")
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._configure_error() is not None:
            return TransitionCallbackReturn.FAILURE
        weights = str(self._param("weights")).strip()
        device = str(self._param("device")).strip() or "auto"
        try:
            self._segmenter = load_segmenter(self._param, weights, device)
        except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
            self._segmenter = None
            self.get_logger().error(load_error_line(weights, exc))
            return TransitionCallbackReturn.FAILURE
        seg = self._segmenter
        classes, reason = check("classes", self._param("classes"), seg.class_names)
        if reason:
            self.get_logger().error(reason)
            self._release()
            return TransitionCallbackReturn.FAILURE
        seg.classes = classes or None
        self._model_name = seg.cfg.name
        if device == "auto" and seg.device.type == "cpu":
            self.get_logger().info("device 'auto': no CUDA device available, running on CPU")
        self.get_logger().info(
            f"loaded {self._model_name} from {weights} on {seg.device} "
            f"({len(seg.class_names)} classes, input {seg.cfg.max_size}px)"
        )
        self.get_logger().info(f"network: {seg.describe()}")

        self._settings.reset({p.name: self._param(p.name) for p in PARAMS if p.runtime})
        cameras = parse_cameras(self._param("cameras")) or [("", None)]
        self._cameras = [CameraIO(name, transport, stats=self._frame_stats()) for name, transport in cameras]
        use_depth, tracking = bool(self._param("use_depth")), bool(self._param("tracking"))
        if tracking:
            from ..inference.tracking import Tracker

        qos_opts = QoSOverridingOptions.with_default_policies
        annotation_type = _annotation_type()
        for cam in self._cameras:
            outputs = [
                ("detections", _message_type("vision_msgs.msg", "Detection2DArray"), 5),
                ("masks", _message_type("yolact_ros.msg", "InstanceMaskArray"), 5),
                ("visualization", Image, 1),
            ]
            if use_depth:
                outputs += [
                    ("detections_3d", _message_type("vision_msgs.msg", "Detection3DArray"), 5),
                    ("points", _message_type("sensor_msgs.msg", "PointCloud2"), 1),
                ]
            if annotation_type is not None:
                outputs.append(("annotations", annotation_type, 5))
            cam.pubs = {
                key: self.create_lifecycle_publisher(
                    kind, cam.topic(key), output_qos(depth), qos_overriding_options=qos_opts()
                )
                for key, kind, depth in outputs
            }
            change_iou = float(self._param("tracking_class_change_iou"))
            cam.tracker = (
                Tracker(
                    max_age=int(self._param("tracking_max_age")),
                    class_change_iou=change_iou if change_iou > 0 else None,
                )
                if tracking
                else None
            )
        self._mailbox.set_keys([cam.name for cam in self._cameras])
        self._label_pub = self.create_publisher(
            _message_type("vision_msgs.msg", "LabelInfo"), "label_info", latched_qos()
        )
        self._publish_label_info()
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # a steady timer: /diagnostics goes on while a simulated clock stands still (a paused bag)
        self._diag_timer = self.create_timer(
            float(self._param("diagnostics_period")),
            self._publish_diagnostics,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self._worker.start()
        return super().on_configure(state)

    def _frame_stats(self) -> FrameStats:
        """A camera's counters, timed on this node's clock (simulated time under use_sim_time)."""
        return FrameStats(clock=stats_clock(self.get_clock()), on_clock_jump=self._clock_went_back)

    def _clock_went_back(self, seconds: float) -> None:
        self._warn_throttled(
            "clock jump",
            f"the node's clock went back {seconds:.3f} s (a replayed bag restarted or looped?): "
            "input rates and ages re-anchored",
        )

    @_transition("activate")
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        default = self._param("image_transport")
        qos_opts = QoSOverridingOptions.with_default_policies
        use_depth = bool(self._param("use_depth"))
        for cam in self._cameras:
            transport = cam.transport or default
            callback = functools.partial(self._on_image, cam)
            if transport == "compressed":
                cam.sub = self.create_subscription(
                    CompressedImage,
                    cam.topic("image/compressed"),
                    callback,
                    input_qos(),
                    qos_overriding_options=qos_opts(),
                )
            else:
                cam.sub = self.create_subscription(
                    Image, cam.topic("image"), callback, input_qos(), qos_overriding_options=qos_opts()
                )
            cam.input_topic = cam.sub.topic_name
            if use_depth:
                compressed_depth = self._param("depth_transport") == "compressedDepth"
                cam.depth_subs = [
                    self.create_subscription(
                        CompressedImage if compressed_depth else Image,
                        # image_transport's way: the transport's topic under the remapped base
                        self.resolve_topic_name(cam.topic("depth")) + "/compressedDepth"
                        if compressed_depth
                        else cam.topic("depth"),
                        functools.partial(self._on_depth, cam),
                        input_qos(depth=DEPTH_QUEUE),
                        qos_overriding_options=qos_opts(),
                    ),
                    self.create_subscription(
                        CameraInfo,
                        cam.topic("camera_info"),
                        cam.set_info,
                        input_qos(depth=5),
                        qos_overriding_options=qos_opts(),
                    ),
                ]
            outs = ", ".join(pub.topic_name for pub in cam.pubs.values())
            self.get_logger().info(f"active: {cam.input_topic} ({transport}) -> {outs}")
        self._mailbox.open()
        self._worker.active.set()
        return super().on_activate(state)

    def _unsubscribe(self) -> None:
        """Stop taking frames: the worker idles, the input subscriptions are destroyed."""
        self._worker.active.clear()
        for cam in self._cameras:
            for sub in [cam.sub, *cam.depth_subs]:
                if sub is not None:
                    self.destroy_subscription(sub)
            cam.sub, cam.depth_subs = None, []
            cam.clear()

    @_transition("deactivate")
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._mailbox.clear()
        return super().on_deactivate(state)

    @_transition("cleanup")
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    @_transition("shutdown")
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._unsubscribe()
            self._release()
        finally:
            self.finalized.set()  # finalized either way: the process exits
        return super().on_shutdown(state)

    @_transition("error handling")
    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._worker.active.clear()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self.stop_worker()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for cam in self._cameras:
            for pub in cam.pubs.values():
                self.destroy_lifecycle_publisher(pub)
            cam.pubs = {}
        self._cameras = []
        for pub in (self._diag_pub, self._label_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self._diag_pub = self._label_pub = None
        if self._segmenter is not None:
            dev = self._segmenter.device
            self._segmenter = None
            gc.collect()
            if getattr(dev, "type", "") == "cuda":
                import torch

                torch.cuda.empty_cache()

    def stop_worker(self, timeout: float = 10.0) -> None:
        self._worker.stop(timeout)

    # -- data path --------------------------------------------------------------------------------
    def _on_image(self, cam: CameraIO, msg) -> None:
        """Executor thread: only stores the frame (never waits for inference)."""
        dropped = self._mailbox.put(cam.name, Frame(msg, time.monotonic()))
        cam.stats.on_received(dropped)

    def _on_depth(self, cam: CameraIO, msg) -> None:
        cam.add_depth(stamp_to_ns(msg.header.stamp), msg)

    def _publish_label_info(self, threshold: float | None = None) -> None:
        """vision_msgs/LabelInfo on label_info (latched): class index -> name, the score
        threshold (``threshold``: the one about to apply)."""
        seg, pub = self._segmenter, self._label_pub
        if seg is None or pub is None:
            return
        from std_msgs.msg import Header

        from .messages import label_info

        header = Header(stamp=self.get_clock().now().to_msg())
        pub.publish(label_info(seg.class_names, seg.score_threshold if threshold is None else threshold, header))

    def _warn_throttled(self, kind: str, text: str, error: bool = False) -> None:
        """One line per ``kind`` (a fixed set: rejection kinds, decoder warning, inference
        error) per period, saying how many like it were held back."""
        allowed, held = self._throttle.allow(kind)
        if not allowed:
            return
        if held:
            text += f" [{held} more '{kind}' since the last such line]"
        (self.get_logger().error if error else self.get_logger().warning)(text)

    # -- diagnostics ------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        if self._diag_pub is None:
            return
        self._diag_pub.publish(
            diagnostics_array(
                self.get_name(),
                self._state_name(),
                self._cameras,
                self._segmenter,
                self._model_name,
                str(self._param("weights")),
                self.get_clock().now().to_msg(),
            )
        )


def _message_type(module: str, name: str):
    """A message class, imported when the node first needs it (``vision_msgs.msg``, ...)."""
    return getattr(importlib.import_module(module), name)


def _annotation_type():
    """foxglove_msgs/ImageAnnotations, or None when foxglove_msgs is not installed (then
    ``publish_annotations`` cannot be turned on: :func:`yolact_ros.ros.params.check` says why)."""
    from .annotations import FoxgloveMsgsMissing, rclpy_classes

    try:
        return rclpy_classes().ImageAnnotations
    except FoxgloveMsgsMissing:
        return None
