"""``yolact_node``: the managed (lifecycle) ROS 2 node around :class:`~yolact_ros.segmenter.Segmenter`.

Threads: the executor runs the subscription callback (which only stores the newest frame in a
one-slot mailbox, counting the frame it replaces as dropped), parameter/lifecycle services and
the diagnostics timer; one inference worker thread takes the newest frame, converts it, runs
the Segmenter and publishes. So callbacks never wait for inference, a slow model drops frames
instead of queueing them, and no frame is processed twice.

Lifecycle: configure loads the model and creates the publishers and the worker; activate
subscribes; deactivate unsubscribes (the model stays loaded); cleanup frees everything.
With ``autostart`` (default) the node configures and activates itself.
"""
from __future__ import annotations

import gc
import os
import sys
import threading
import time

import rclpy
from rclpy.exceptions import ParameterUninitializedException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult

from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CompressedImage, Image

from ..inference.defaults import MASK_ALPHA
from .diagnostics import FrameStats, Key, build_diagnostics, stamp_text
from .image_conversion import ImageConversionError, bgr_to_image, compressed_to_bgr, image_to_bgr, to_bgr3
from .mailbox import Frame, LatestFrame
from .params import LOAD_PARAMS, PARAMS, RUNTIME_PARAMS, validate_value

RCLError = _rclpy.RCLError

__all__ = ["YolactNode", "main", "input_qos"]

_TYPES = {
    "bool": ParameterType.PARAMETER_BOOL,
    "int": ParameterType.PARAMETER_INTEGER,
    "float": ParameterType.PARAMETER_DOUBLE,
    "str": ParameterType.PARAMETER_STRING,
    "str_list": ParameterType.PARAMETER_STRING_ARRAY,
}
_WARN_PERIOD_S = 5.0


def input_qos() -> QoSProfile:
    """Sensor-data QoS with a queue of one: only the newest frame matters."""
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST, depth=1,
        reliability=QoSReliabilityPolicy.BEST_EFFORT, durability=QoSDurabilityPolicy.VOLATILE,
    )


def output_qos(depth: int = 5) -> QoSProfile:
    """Reliable keep-last: matches both reliable and best-effort subscribers."""
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST, depth=depth,
        reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.VOLATILE,
    )


class YolactNode(LifecycleNode):
    """See the module docstring; parameters are listed in :mod:`yolact_ros.ros.params`."""

    def __init__(self, node_name: str = "yolact_node", **kwargs):
        super().__init__(node_name, **kwargs)
        for p in PARAMS:
            self._declare(p)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._guard_change_state_service()
        self._segmenter = None
        self._model_name = ""
        self._settings_lock = threading.Lock()
        self._pending: dict = {}       # runtime parameter changes, applied by the worker
        self._outputs: dict = {}       # publish_masks / visualization options, read by the worker
        self._mailbox = LatestFrame()
        self._stats = FrameStats()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._active = threading.Event()
        self._sub = None
        self._pubs: dict = {}
        self._diag_pub = None
        self._diag_timer = None
        self._warned: dict[str, float] = {}
        self._diag_counts = (0, 0)
        self._input_topic = ""

    def _guard_change_state_service(self) -> None:
        """Refuse invalid ChangeState requests instead of dying on them.

        rclpy 7.1 (Jazzy) raises RCLError out of the executor when a transition *id* is not
        valid in the current state (ros2/rclpy#1209; by label it already answers
        success=false), which would end the node on one stray lifecycle-manager call."""
        service = getattr(self, "_service_change_state", None)
        if service is None:
            return
        handle = service.callback

        def change_state(request, response):
            try:
                return handle(request, response)
            except RCLError:
                self.get_logger().warning(
                    f"refused lifecycle transition id {request.transition.id}"
                    f"{' (' + request.transition.label + ')' if request.transition.label else ''}: "
                    f"not valid in state '{self._state_name()}'")
                response.success = False
                return response

        service.callback = change_state

    # -- parameters -------------------------------------------------------------------------------
    def _declare(self, p) -> None:
        desc = ParameterDescriptor(name=p.name, type=_TYPES[p.kind], description=p.description)
        extra = []
        if p.choices:
            extra.append("one of: " + ", ".join(p.choices))
        if p.constraints:
            extra.append(p.constraints)
        if not p.runtime:
            extra.append("applied at configure/activate; change only while unconfigured")
        desc.additional_constraints = "; ".join(extra)
        if p.kind == "float" and p.min is not None:
            desc.floating_point_range = [FloatingPointRange(from_value=float(p.min), to_value=float(p.max), step=0.0)]
        elif p.kind == "int" and p.min is not None:
            desc.integer_range = [IntegerRange(from_value=int(p.min), to_value=int(p.max), step=1)]
        if p.kind == "str_list":
            # An empty list has no type in rclpy/YAML: declare by type, default to "all".
            self.declare_parameter(p.name, Parameter.Type.STRING_ARRAY, desc)
        else:
            self.declare_parameter(p.name, p.default, desc)

    def _param(self, name: str):
        try:
            value = self.get_parameter(name).value
        except ParameterUninitializedException:  # classes declared by type, never set
            value = None
        if name == "classes":
            # unset, [] or [""] mean all classes
            return [c for c in (value or []) if str(c).strip()]
        return value

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        state = self._state_name()
        class_names = self._segmenter.class_names if self._segmenter is not None else None
        updates = {}
        for prm in params:
            name, value = prm.name, prm.value
            if name in LOAD_PARAMS and state not in ("unconfigured", "finalized", ""):
                if name == "image_transport" and state == "inactive":
                    pass  # read at activate
                else:
                    return SetParametersResult(
                        successful=False,
                        reason=f"{name} is applied at configure; change it while the node is unconfigured "
                               f"(current state: {state})")
            if name == "classes":
                value = [c for c in (value or []) if str(c).strip()]
            reason = validate_value(name, value, class_names)
            if reason is None and name == "top_k" and self._segmenter is not None:
                cap = self._segmenter.cfg.max_num_detections
                if value > cap:
                    reason = f"top_k must be <= {cap} for this model, got {value}"
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
            if name in RUNTIME_PARAMS:
                updates[name] = value
        if updates and self._segmenter is not None:
            with self._settings_lock:
                self._pending.update(updates)
            if self._worker is None or not self._worker.is_alive():
                self._apply_pending()
        return SetParametersResult(successful=True)

    def _apply_pending(self) -> None:
        """Apply runtime parameter changes to the Segmenter; only ever called between frames."""
        with self._settings_lock:
            pending, self._pending = self._pending, {}
        seg = self._segmenter
        if not pending or seg is None:
            return
        for name, value in pending.items():
            try:
                if name == "score_threshold":
                    seg.score_threshold = value
                elif name == "top_k":
                    seg.top_k = value
                elif name == "nms_threshold":
                    seg.nms_threshold = value if value > 0 else None
                elif name == "classes":
                    seg.classes = value or None
                else:
                    self._outputs[name] = value
            except (ValueError, TypeError) as exc:  # validated already; keep serving regardless
                self.get_logger().error(f"cannot apply {name}={value!r}: {exc}")

    def _state_name(self) -> str:
        try:
            return self._state_machine.current_state[1]
        except Exception:  # noqa: BLE001 - before the state machine exists
            return ""

    # -- lifecycle --------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        weights = str(self._param("weights")).strip()
        device = str(self._param("device")).strip() or "auto"
        if not weights:
            self.get_logger().error("parameter 'weights' is empty: set it to a .pth file (-p weights:=/path/to/file.pth)")
            return TransitionCallbackReturn.FAILURE
        reason = validate_value("device", device)
        if reason is None:
            from ..inference.segmenter import resolve_device  # imports torch: only at configure

            try:
                resolve_device(device)
            except ValueError as exc:
                reason = str(exc)
        if reason:
            self.get_logger().error(f"cannot use device {device!r}: {reason}")
            return TransitionCallbackReturn.FAILURE
        try:
            self._segmenter = self._load_segmenter(weights, device)
        except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
            self._segmenter = None
            self.get_logger().error(_load_error_line(weights, exc))
            return TransitionCallbackReturn.FAILURE
        seg = self._segmenter
        self._model_name = seg.cfg.name
        if device == "auto" and seg.device.type == "cpu":
            self.get_logger().info("device 'auto': no CUDA device available, running on CPU")
        self.get_logger().info(
            f"loaded {self._model_name} from {weights} on {seg.device} "
            f"({len(seg.class_names)} classes, input {seg.cfg.max_size}px)")

        self._outputs = {p.name: self._param(p.name) for p in PARAMS if p.runtime}
        self._pubs = {
            "detections": self.create_lifecycle_publisher(
                _detection_type(), "detections", output_qos(),
                qos_overriding_options=QoSOverridingOptions.with_default_policies()),
            "masks": self.create_lifecycle_publisher(
                _mask_array_type(), "masks", output_qos(),
                qos_overriding_options=QoSOverridingOptions.with_default_policies()),
            "visualization": self.create_lifecycle_publisher(
                Image, "visualization", output_qos(depth=1),
                qos_overriding_options=QoSOverridingOptions.with_default_policies()),
        }
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(float(self._param("diagnostics_period")), self._publish_diagnostics)
        self._stats.reset()
        self._stop.clear()
        self._mailbox.open()
        self._worker = threading.Thread(target=self._work, name="yolact_inference", daemon=True)
        self._worker.start()
        return super().on_configure(state)

    def _load_segmenter(self, weights: str, device: str):
        from ..inference.segmenter import Segmenter  # torch import deferred to configure

        if not os.path.isfile(weights):
            raise FileNotFoundError("no such file" if not os.path.exists(weights) else "not a regular file")
        nms = float(self._param("nms_threshold"))
        seg = Segmenter(
            config=str(self._param("config")).strip() or None,
            weights=weights,
            device=device,
            score_threshold=float(self._param("score_threshold")),
            top_k=int(self._param("top_k")),
            nms_threshold=nms if nms > 0 else None,
            classes=self._param("classes") or None,
            half=bool(self._param("half")),
            num_threads=int(self._param("num_threads")) or None,
        )
        if self._param("warmup"):
            seg.warmup()
        return seg

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        transport = self._param("image_transport")
        qos_opts = QoSOverridingOptions.with_default_policies()
        if transport == "compressed":
            self._sub = self.create_subscription(
                CompressedImage, "image/compressed", self._on_image, input_qos(), qos_overriding_options=qos_opts)
        else:
            self._sub = self.create_subscription(
                Image, "image", self._on_image, input_qos(), qos_overriding_options=qos_opts)
        self._input_topic = self._sub.topic_name
        self._mailbox.open()
        self._active.set()
        self.get_logger().info(
            f"active: {self._input_topic} ({transport}) -> {self._pubs['detections'].topic_name}, "
            f"{self._pubs['masks'].topic_name}, {self._pubs['visualization'].topic_name}")
        return super().on_activate(state)

    def _unsubscribe(self) -> None:
        """Stop taking frames: the worker idles, the input subscription is destroyed."""
        self._active.clear()
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._mailbox.clear()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active.clear()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self.stop_worker()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None
        if self._segmenter is not None:
            dev = self._segmenter.device
            self._segmenter = None
            gc.collect()
            if getattr(dev, "type", "") == "cuda":
                import torch

                torch.cuda.empty_cache()

    def stop_worker(self, timeout: float = 10.0) -> None:
        self._active.clear()
        self._stop.set()
        self._mailbox.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout)
        self._worker = None

    # -- data path --------------------------------------------------------------------------------
    def _on_image(self, msg) -> None:
        """Executor thread: only stores the frame (never waits for inference)."""
        dropped = self._mailbox.put(Frame(msg, time.monotonic()))
        self._stats.on_received(dropped)

    def _work(self) -> None:
        """Inference worker thread."""
        while not self._stop.is_set():
            frame = self._mailbox.take(timeout=0.2)
            if frame is None or not self._active.is_set():
                continue
            try:
                self._process(frame)
            except Exception as exc:  # noqa: BLE001 - the node must keep serving
                if self._stop.is_set() or not rclpy.ok(context=self.context):
                    return
                self._stats.on_error(f"{type(exc).__name__}: {exc}")
                self._warn_throttled("error", f"inference failed on a frame ({type(exc).__name__}: {exc})", error=True)

    def _process(self, frame: Frame) -> None:
        self._apply_pending()
        t0 = time.perf_counter()
        c0 = time.thread_time()  # CPU time of this thread: the overhead without other processes' share
        msg = frame.msg
        try:
            if isinstance(msg, CompressedImage):
                image = compressed_to_bgr(msg)
            else:
                image = image_to_bgr(msg)
        except ImageConversionError as exc:
            self._stats.on_rejected(str(exc))
            self._warn_throttled(f"reject:{type(msg).__name__}:{msg.header.frame_id}",
                                 f"rejected a frame on {self._input_topic}: {exc}")
            return
        seg = self._segmenter
        if seg is None:
            return
        t1 = time.perf_counter()
        c1 = time.thread_time()
        inst = seg(image)
        t2 = time.perf_counter()
        c2 = time.thread_time()
        outputs = self._outputs
        header = msg.header
        pubs = self._pubs
        if not self._active.is_set() or not pubs:
            return
        from .messages import instances_to_detections, instances_to_masks

        pubs["detections"].publish(instances_to_detections(inst, header, seg.class_names))
        if outputs.get("publish_masks", True):
            pubs["masks"].publish(instances_to_masks(inst, header))
        t3 = time.perf_counter()
        c3 = time.thread_time()
        vis_ms = 0.0
        vis_pub = pubs["visualization"]
        if outputs.get("publish_visualization", True) and vis_pub.get_subscription_count() > 0:
            from ..inference.visualize import draw_instances  # only needed while someone watches

            overlay = draw_instances(
                to_bgr3(image), inst, seg.class_names,
                **_draw_kwargs(outputs))
            vis_pub.publish(bgr_to_image(overlay, header))
            vis_ms = (time.perf_counter() - t3) * 1000.0
            self._stats.on_visualization()
        t4 = time.perf_counter()
        now_ns = self.get_clock().now().nanoseconds
        stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        total_ms = (t4 - t0) * 1000.0
        seg_ms = (t2 - t1) * 1000.0
        self._stats.on_processed(
            len(inst), stamp=stamp_text(header.stamp),
            latency_ms=(now_ns - stamp_ns) / 1e6 if stamp_ns > 0 else float("nan"),
            processing_ms=(time.monotonic() - frame.received) * 1000.0,  # arrival -> published
            segmenter_ms=seg_ms,
            overhead_ms=total_ms - seg_ms - vis_ms,
            overhead_cpu_ms=((c1 - c0) + (c3 - c2)) * 1000.0,
            visualization_ms=vis_ms,
        )

    def _warn_throttled(self, key: str, text: str, error: bool = False) -> None:
        now = time.monotonic()
        last = self._warned.get(key)
        if last is not None and now - last < _WARN_PERIOD_S:
            return
        self._warned[key] = now
        (self.get_logger().error if error else self.get_logger().warning)(text)

    # -- diagnostics ------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        if self._diag_pub is None:
            return
        snap = self._stats.snapshot()
        seg = self._segmenter
        counts = (snap["rejected"], snap["errors"])
        device = str(seg.device) if seg is not None else ""
        extra = {
            Key.DEVICE: device,
            Key.MODEL: self._model_name,
            Key.WEIGHTS: str(self._param("weights")),
            Key.INPUT_TOPIC: self._input_topic,
            Key.SCORE_THRESHOLD: f"{seg.score_threshold:.3f}" if seg is not None else "",
            Key.TOP_K: str(seg.top_k) if seg is not None else "",
        }
        rejected_recently, errors_recently = counts[0] > self._diag_counts[0], counts[1] > self._diag_counts[1]
        self._diag_counts = counts
        self._diag_pub.publish(build_diagnostics(
            self.get_name(), f"{self._model_name}@{device}", self.get_clock().now().to_msg(), self._state_name(),
            snap, extra, rejected_recently=rejected_recently, errors_recently=errors_recently))


def _draw_kwargs(outputs: dict) -> dict:
    """Visualization parameters -> draw_instances keyword arguments."""
    return {
        "alpha": float(outputs.get("visualization.mask_alpha", MASK_ALPHA)),
        "draw_boxes": bool(outputs.get("visualization.show_boxes", True)),
        "draw_labels": bool(outputs.get("visualization.show_labels", True)),
    }


def _detection_type():
    from vision_msgs.msg import Detection2DArray

    return Detection2DArray


def _mask_array_type():
    from yolact_ros.msg import InstanceMaskArray

    return InstanceMaskArray


def _load_error_line(weights: str, exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if weights not in text:
        text = f"{weights}: {text}"
    return f"cannot load weights {text}" if not text.startswith("cannot") else text


def _check_imports() -> str | None:
    """A one-line reason when a message package is missing (clearer than an ImportError)."""
    try:
        import vision_msgs.msg  # noqa: F401
    except ImportError:
        return ("vision_msgs is not installed: install ros-$ROS_DISTRO-vision-msgs "
                "(or build test/ros_deps/vision_msgs into your workspace)")
    try:
        import yolact_ros.msg  # noqa: F401
    except ImportError:
        return ("yolact_ros.msg not found: build the package with colcon and source install/setup.bash "
                "(a pip install of yolact_ros has no ROS messages)")
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``yolact_node`` executable. Returns the process exit code:
    0 after SIGINT/SIGTERM, 1 when autostart fails (e.g. bad weights)."""
    args = sys.argv if argv is None else argv
    # Before torch (and its OpenMP runtime) is imported: idle OpenMP threads sleep instead of
    # spinning. Measured here (2 shared cores): spinning threads made the Segmenter 2-5x slower
    # and the publishing after each frame 3-4x slower. Set OMP_WAIT_POLICY=ACTIVE to opt out.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        rclpy.init(args=args)
    except Exception as exc:  # noqa: BLE001 - e.g. malformed --ros-args: one line, no traceback
        print(f"[ERROR] [yolact_node]: cannot start: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    node = None
    try:
        problem = _check_imports()
        if problem:
            rclpy.logging.get_logger("yolact_node").error(problem)
            return 1
        node = YolactNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().error("configure failed; exiting (set autostart:=false to configure via lifecycle services)")
                return 1
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().error("activate failed; exiting")
                return 1
        if rclpy.ok():
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001
        if not rclpy.ok():  # a signal arrived mid-transition: shutting down is what was asked
            return 0
        rclpy.logging.get_logger("yolact_node").fatal(f"unexpected {type(exc).__name__}: {exc}")
        return 1
    finally:
        if node is not None:
            node.stop_worker(timeout=5.0)
            try:
                node.destroy_node()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
        if rclpy.ok():
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
