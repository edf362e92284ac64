"""``yolact_node``: the managed (lifecycle) ROS 2 node around :class:`~yolact_ros.segmenter.Segmenter`.

Threads: the executor runs the subscription callback (which only stores the newest frame in a
one-slot mailbox, counting the frame it replaces as dropped), parameter/lifecycle services and
the diagnostics timer; one inference worker thread takes the newest frame, converts it, runs
the Segmenter and publishes. So callbacks never wait for inference, a slow model drops frames
instead of queueing them, and no frame is processed twice.

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
import os
import sys
import threading
import time
from typing import TYPE_CHECKING

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from .camera import DEPTH_QUEUE, CameraIO
from .diagnostics import Key, build_status, stamp_text, stamp_to_ns
from .image_conversion import ImageConversionError, compressed_to_bgr, image_to_bgr
from .mailbox import Frame, LatestFrames
from .names import NODE_NAME
from .node_params import change_refusal, declare_all, read
from .outputs import publish_frame
from .params import PARAMS, RUNTIME_PARAMS, check, parse_cameras, segmenter_nms_threshold
from .process import shutdown_requested
from .qos import input_qos, latched_qos, output_qos
from .throttle import Throttle

if TYPE_CHECKING:
    from rclpy.publisher import Publisher
    from rclpy.timer import Timer

    from ..inference.segmenter import Segmenter

RCLError = _rclpy.RCLError

__all__ = ["YolactNode", "input_qos", "latched_qos", "output_qos"]

_WARN_PERIOD_S = 5.0


def _one_line(exc: BaseException) -> str:
    """An exception as one line: its message (KeyError without the repr quotes), else its type."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    first = (str(text).strip().splitlines() or [""])[0]
    return first or type(exc).__name__


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
                self.get_logger().error(f"{name} failed: {type(exc).__name__}: {_one_line(exc)}")
                try:
                    self._undo(name)
                except Exception as undo_exc:  # noqa: BLE001
                    self.get_logger().error(f"{name}: cleaning up after the failure failed too: {_one_line(undo_exc)}")
                return TransitionCallbackReturn.FAILURE

        return run

    return wrap


class YolactNode(LifecycleNode):
    """See the module docstring; parameters are listed in :mod:`yolact_ros.ros.params`."""

    def __init__(self, node_name: str = NODE_NAME, *, argv: list[str] | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        self._start_errors = declare_all(self, sys.argv if argv is None else argv)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._guard_change_state_service()
        self._segmenter: Segmenter | None = None
        self._model_name = ""
        self._settings_lock = threading.Lock()
        self._pending: dict = {}  # runtime parameter changes, applied by the worker
        self._outputs: dict = {}  # publish_masks / visualization options, read by the worker
        self._mailbox = LatestFrames()
        self._cameras: list[CameraIO] = []  # set at configure: one per `cameras` entry, or one named ""
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._active = threading.Event()
        self._label_pub: Publisher | None = None
        self._diag_pub: Publisher | None = None
        self._diag_timer: Timer | None = None
        self._throttle = Throttle(_WARN_PERIOD_S)
        self.finalized = threading.Event()  # set by the shutdown transition: main() then exits 0

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
                    f"not valid in state '{self._state_name()}'"
                )
                response.success = False
                return response

        service.callback = change_state

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
            with self._settings_lock:
                self._pending.update(updates)
            if self._worker is None or not self._worker.is_alive():
                self._apply_pending()
            if "score_threshold" in updates:  # label_info carries it: republished now, not at the next frame
                self._publish_label_info(updates["score_threshold"])
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
                    seg.nms_threshold = segmenter_nms_threshold(value)
                elif name == "classes":
                    seg.classes = value or None
                elif name == "cross_class_nms":
                    seg.cross_class_nms = bool(value)
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
    def _undo(self, transition: str) -> None:
        """After a failed transition: back to the state it started from."""
        if transition == "configure":
            self._release()
        elif transition == "activate":
            self._unsubscribe()

    def _configure_error(self) -> str | None:
        """Why the parameters cannot be used (one line per bad parameter), before any loading."""
        errors = list(self._start_errors)
        self._start_errors = []  # reported once; a corrected value (param set) is checked anew
        weights = str(self._param("weights")).strip()
        if not weights:
            errors.append(
                "parameter weights is empty: set it to a .pth file "
                "(weights:=/path/to/file.pth with ros2 launch, -p weights:=... with ros2 run)"
            )
        config = str(self._param("config")).strip()
        if config:
            from ..model.config import get_config  # imports torch: only at configure

            try:
                get_config(config)
            except KeyError as exc:
                errors.append(f"parameter config: {config!r} is not accepted ({_one_line(exc)})")
        device = str(self._param("device")).strip() or "auto"
        from ..inference.segmenter import resolve_device

        try:
            resolve_device(device)
        except ValueError as exc:
            errors.append(f"parameter device: {device!r} cannot be used ({_one_line(exc)})")
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
            self._segmenter = self._load_segmenter(weights, device)
        except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
            self._segmenter = None
            self.get_logger().error(_load_error_line(weights, exc))
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

        self._outputs = {p.name: self._param(p.name) for p in PARAMS if p.runtime}
        cameras = parse_cameras(self._param("cameras")) or [("", None)]
        self._cameras = [CameraIO(name, transport) for name, transport in cameras]
        use_depth, tracking = bool(self._param("use_depth")), bool(self._param("tracking"))
        if tracking:
            from ..inference.tracking import Tracker

        qos_opts = QoSOverridingOptions.with_default_policies
        for cam in self._cameras:
            outputs = [
                ("detections", _detection_type(), 5),
                ("masks", _mask_array_type(), 5),
                ("visualization", Image, 1),
            ]
            if use_depth:
                outputs += [("detections_3d", _detection_3d_type(), 5), ("points", _point_cloud_type(), 1)]
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
        self._label_pub = self.create_publisher(_label_info_type(), "label_info", latched_qos())
        self._publish_label_info()
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(float(self._param("diagnostics_period")), self._publish_diagnostics)
        self._stop.clear()
        self._mailbox.open()
        self._worker = threading.Thread(target=self._work, name="yolact_inference", daemon=True)
        self._worker.start()
        return super().on_configure(state)

    def _load_segmenter(self, weights: str, device: str) -> Segmenter:
        from ..inference.segmenter import Segmenter  # torch import deferred to configure

        if not os.path.isfile(weights):
            raise FileNotFoundError("no such file" if not os.path.exists(weights) else "not a regular file")
        seg = Segmenter(
            config=str(self._param("config")).strip() or None,
            weights=weights,
            device=device,
            score_threshold=float(self._param("score_threshold")),
            top_k=int(self._param("top_k")),
            nms_threshold=segmenter_nms_threshold(float(self._param("nms_threshold"))),
            precision=str(self._param("precision")),
            cuda_graph=bool(self._param("cuda_graph")),
            backend=str(self._param("backend")),
            cross_class_nms=bool(self._param("cross_class_nms")),
            num_threads=int(self._param("threads")) or None,
            cache_dir=str(self._param("cache_dir")).strip() or None,
        )
        if self._param("warmup"):
            seg.warmup()
        return seg

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
                cam.depth_subs = [
                    self.create_subscription(
                        Image,
                        cam.topic("depth"),
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
        self._active.set()
        return super().on_activate(state)

    def _unsubscribe(self) -> None:
        """Stop taking frames: the worker idles, the input subscriptions are destroyed."""
        self._active.clear()
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
        self._active.clear()
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
        self._active.clear()
        self._stop.set()
        self._mailbox.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout)
        self._worker = None

    # -- data path --------------------------------------------------------------------------------
    def _on_image(self, cam: CameraIO, msg) -> None:
        """Executor thread: only stores the frame (never waits for inference)."""
        dropped = self._mailbox.put(cam.name, Frame(msg, time.monotonic()))
        cam.stats.on_received(dropped)

    def _on_depth(self, cam: CameraIO, msg) -> None:
        cam.add_depth(stamp_to_ns(msg.header.stamp), msg)

    def _work(self) -> None:
        """Inference worker thread: every waiting frame (one per camera) in one batched forward."""
        by_name: dict[str, CameraIO] = {}
        while not self._stop.is_set():
            frames = self._mailbox.take_all(timeout=0.2)
            if not frames or not self._active.is_set():
                continue
            if len(by_name) != len(self._cameras):
                by_name = {cam.name: cam for cam in self._cameras}
            batch = [(by_name[name], frame) for name, frame in frames if name in by_name]
            try:
                self._process(batch)
            except Exception as exc:  # noqa: BLE001 - the node must keep serving
                if self._stop.is_set() or not rclpy.ok(context=self.context):
                    return
                for cam, _ in batch:
                    cam.stats.on_error(f"{type(exc).__name__}: {_one_line(exc)}")
                self._warn_throttled(
                    "inference error",
                    f"inference failed on a frame ({type(exc).__name__}: {_one_line(exc)})",
                    error=True,
                )

    def _convert(self, cam: CameraIO, msg):
        """The frame as the Segmenter's input, or None (rejected: counted and said once per kind)."""
        max_pixels = int(self._outputs["max_image_pixels"]) or None
        try:
            if isinstance(msg, CompressedImage):
                image, decoder_messages = compressed_to_bgr(msg, max_pixels)
                if decoder_messages:  # corrupt but decodable: processed, counted, said once per period
                    cam.stats.on_decoder_warning(decoder_messages[0].strip())
                    self._warn_throttled(
                        "decoder warning",
                        f"a frame on {cam.input_topic} decoded with "
                        f"errors (processed anyway): {decoder_messages[0].strip()}",
                    )
                return image
            return image_to_bgr(msg, max_pixels)
        except ImageConversionError as exc:
            cam.stats.on_rejected(str(exc))
            self._warn_throttled(f"rejected: {exc.kind}", f"rejected a frame on {cam.input_topic}: {exc}")
            return None

    def _process(self, batch: list[tuple[CameraIO, Frame]]) -> None:
        self._apply_pending()
        t0 = time.perf_counter()
        c0 = time.thread_time()  # CPU time of this thread: the overhead without other processes' share
        items = []
        for cam, frame in batch:
            image = self._convert(cam, frame.msg)
            if image is not None:
                items.append((cam, frame, image))
        seg = self._segmenter
        if seg is None or not items:
            return
        t1 = time.perf_counter()
        c1 = time.thread_time()
        results = seg([image for _, _, image in items])  # one batched forward for all cameras
        t2 = time.perf_counter()
        convert_ms, convert_cpu_ms = (t1 - t0) * 1000.0 / len(items), (c1 - c0) * 1000.0 / len(items)
        seg_ms = (t2 - t1) * 1000.0
        for (cam, frame, image), inst in zip(items, results):
            if not self._active.is_set() or not cam.pubs:
                return
            t3 = time.perf_counter()
            c3 = time.thread_time()
            vis_ms, vis_cpu_ms = self._publish(cam, frame.msg.header, image, inst)
            t4 = time.perf_counter()
            header = frame.msg.header
            stamp_ns = stamp_to_ns(header.stamp)
            now_ns = self.get_clock().now().nanoseconds
            publish_ms = (t4 - t3) * 1000.0
            cam.stats.on_processed(
                len(inst),
                stamp=stamp_text(header.stamp),
                latency_ms=(now_ns - stamp_ns) / 1e6 if stamp_ns > 0 else float("nan"),
                processing_ms=(time.monotonic() - frame.received) * 1000.0,  # arrival -> published
                segmenter_ms=seg_ms,
                overhead_ms=convert_ms + publish_ms - vis_ms,
                overhead_cpu_ms=convert_cpu_ms + (time.thread_time() - c3) * 1000.0 - vis_cpu_ms,
                visualization_ms=vis_ms,
            )

    def _publish(self, cam: CameraIO, header, image, inst) -> tuple[float, float]:
        """All outputs of one camera's frame (:func:`yolact_ros.ros.outputs.publish_frame`)."""
        assert self._segmenter is not None  # called by _process, which has checked it
        return publish_frame(cam, header, image, inst, self._outputs, self._segmenter.class_names, self._warn_throttled)

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
        seg = self._segmenter
        device = str(seg.device) if seg is not None else ""
        state = self._state_name()
        statuses = []
        for cam in self._cameras:
            snap = cam.stats.snapshot()
            counts = (snap["rejected"], snap["errors"])
            extra = {
                Key.CAMERA: cam.name,
                Key.DEVICE: device,
                Key.BACKEND: seg.runtime.describe() if seg is not None else "",
                Key.BACKEND_REASON: seg.choice.reason if seg is not None else "",
                Key.MODEL: self._model_name,
                Key.WEIGHTS: str(self._param("weights")),
                Key.INPUT_TOPIC: cam.input_topic,
                Key.SCORE_THRESHOLD: f"{seg.score_threshold:.3f}" if seg is not None else "",
                Key.TOP_K: str(seg.top_k) if seg is not None else "",
            }
            rejected_recently, errors_recently = counts[0] > cam.diag_counts[0], counts[1] > cam.diag_counts[1]
            cam.diag_counts = counts
            statuses.append(
                build_status(
                    self.get_name(),
                    f"{self._model_name}@{device}",
                    state,
                    snap,
                    extra,
                    camera=cam.name,
                    rejected_recently=rejected_recently,
                    errors_recently=errors_recently,
                )
            )
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        out.status = statuses
        self._diag_pub.publish(out)


def _detection_type():
    from vision_msgs.msg import Detection2DArray

    return Detection2DArray


def _mask_array_type():
    from yolact_ros.msg import InstanceMaskArray

    return InstanceMaskArray


def _detection_3d_type():
    from vision_msgs.msg import Detection3DArray

    return Detection3DArray


def _label_info_type():
    from vision_msgs.msg import LabelInfo

    return LabelInfo


def _point_cloud_type():
    from sensor_msgs.msg import PointCloud2

    return PointCloud2


def _load_error_line(weights: str, exc: BaseException) -> str:
    text = _one_line(exc)
    if weights not in text:
        text = f"{weights}: {text}"
    return f"cannot load weights {text}" if not text.startswith("cannot") else text
