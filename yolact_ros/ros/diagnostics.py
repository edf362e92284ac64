"""Frame counters and rolling timing statistics, and their diagnostic_msgs form.

``FrameStats`` is written by the subscription callback (received/dropped) and the inference
worker (processed, rejected, timings) and read by the diagnostics timer; a lock keeps the
three consistent. Its arrival times, rates and "input stopped" run on the clock it is given:
the node gives it :func:`stats_clock` of its own clock, so under ``use_sim_time`` they follow
the simulated (bag) time, and a paused ``/clock`` pauses them too.

The keys of the published values are :class:`Key`'s constants and the status is named
:func:`status_name`: the node writes them and every reader (tests, benchmark, demo) looks them
up by these names, never by the display strings. diagnostic_msgs is imported only to build a
message, so readers import this module without a ROS runtime.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from ..interfaces.fields import stamp_to_ns

__all__ = [
    "FrameStats",
    "Key",
    "build_diagnostics",
    "build_status",
    "latency_ms",
    "stamp_text",
    "stamp_to_ns",
    "stats_clock",
    "status_name",
]

_TIMINGS = ("latency_ms", "processing_ms", "segmenter_ms", "overhead_ms", "overhead_cpu_ms", "visualization_ms")


class Key:
    """The keys of the node's diagnostic values (``KeyValue.key``); the values are text."""

    STATE = "state"  # lifecycle state label
    INPUT_RATE = "input rate (Hz)"  # 0 once the input stopped (see FrameStats.stopped_after)
    INPUT_AGE = "seconds since last input"  # '' before the first frame
    OUTPUT_RATE = "output rate (Hz)"
    LATENCY_P50 = "latency stamp->publish p50 (ms)"
    LATENCY_MAX = "latency stamp->publish max (ms)"
    PROCESSING_P50 = "processing p50 (ms)"
    SEGMENTER_P50 = "segmenter p50 (ms)"
    OVERHEAD_P50 = "node overhead p50 (ms)"
    OVERHEAD_CPU_P50 = "node overhead CPU time p50 (ms)"
    VISUALIZATION_P50 = "visualization p50 (ms)"
    # counters since configure (integers)
    FRAMES_RECEIVED = "frames received"
    FRAMES_PROCESSED = "frames processed"
    FRAMES_DROPPED = "frames dropped"
    FRAMES_REJECTED = "frames rejected"
    FRAMES_DECODED_WITH_ERRORS = "frames decoded with errors"  # corrupt but decodable: processed
    FRAMES_WITHOUT_DEPTH = "frames without depth"  # use_depth: no depth frame within depth_tolerance
    INSTANCES_3D = "instances in 3D (last frame)"
    INSTANCES_SKIPPED_3D = "instances without enough depth"  # since configure
    INFERENCE_ERRORS = "inference errors"
    VISUALIZATIONS = "visualizations published"
    INSTANCES = "instances (last frame)"
    # the newest frame: its stamp (stamp_text) and its own timings
    LAST_STAMP = "last frame stamp"
    LAST_LATENCY = "last frame latency (ms)"
    LAST_SEGMENTER = "last frame segmenter (ms)"
    LAST_OVERHEAD = "last frame overhead (ms)"
    LAST_OVERHEAD_CPU = "last frame overhead_cpu (ms)"
    LAST_VISUALIZATION = "last frame visualization (ms)"
    # the node's setup
    DEVICE = "device"
    BACKEND = "backend"  # what runs the network and in which precision (read back from the runtime)
    BACKEND_REASON = "backend choice"  # why: the auto rule's reason
    MODEL = "model"
    WEIGHTS = "weights"
    INPUT_TOPIC = "input topic"
    CAMERA = "camera"  # '' in the single-camera mode
    SCORE_THRESHOLD = "score_threshold"
    TOP_K = "top_k"


# FrameStats.on_processed timing -> its "last frame" key
_LAST_FRAME_KEYS = {
    "latency_ms": Key.LAST_LATENCY,
    "segmenter_ms": Key.LAST_SEGMENTER,
    "overhead_ms": Key.LAST_OVERHEAD,
    "overhead_cpu_ms": Key.LAST_OVERHEAD_CPU,
    "visualization_ms": Key.LAST_VISUALIZATION,
}


def status_name(node_name: str, camera: str = "") -> str:
    """The name of a node's DiagnosticStatus (one per camera with the ``cameras`` parameter)."""
    return f"{node_name}: yolact" + (f" [{camera}]" if camera else "")


def stamp_text(stamp) -> str:
    """A header stamp (``sec``, ``nanosec``) as the value of :attr:`Key.LAST_STAMP`."""
    return f"{stamp.sec}.{stamp.nanosec:09d}"


def latency_ms(now_ns: int, stamp_ns: int) -> float:
    """Milliseconds from a header stamp to ``now_ns`` on the node's clock; NaN when either is
    unset (a zero stamp, or a simulated clock before the first ``/clock`` message). Never
    clamped: a stamp from another epoch (a bag played without ``use_sim_time``) reads as old
    as it is."""
    if stamp_ns <= 0 or now_ns <= 0:
        return float("nan")
    return (now_ns - stamp_ns) / 1e6


def stats_clock(ros_clock) -> Callable[[], float]:
    """The clock of :class:`FrameStats` for a node whose clock is ``ros_clock`` (an rclpy
    ``ROSClock``): its time in seconds while it runs on ROS (simulated, ``/clock``) time,
    else ``time.monotonic()`` (steady, so a wall-clock step never reads as a pause)."""

    def now() -> float:
        if getattr(ros_clock, "ros_time_is_active", False):
            return ros_clock.now().nanoseconds * 1e-9
        return time.monotonic()

    return now


class FrameStats:
    """Counts (since configure) and a rolling window of per-frame timings (last ``window`` s).

    The input counts as stopped once no frame came for :meth:`stopped_after` seconds (2.5
    frame intervals of the recent rate, at least 0.25 s): the rates then read 0 at once
    instead of decaying over the window.

    Times are read from ``clock`` (seconds; default ``time.monotonic``), always under the
    lock, so they are in order. When it goes back (a simulated clock whose bag was restarted
    or looped) the stored times are re-anchored (shifted back by the jump), so ages and rates
    go on from where they were instead of turning negative, and ``on_clock_jump(seconds
    back)`` is called once per jump."""

    def __init__(
        self,
        window: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_clock_jump: Callable[[float], None] | None = None,
    ):
        self.window = float(window)
        self._clock = clock
        self._on_clock_jump = on_clock_jump
        self._latest = float("-inf")  # the newest time read from the clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.received = 0
            self.processed = 0
            self.dropped = 0
            self.rejected = 0
            self.decoder_warnings = 0
            self.without_depth = 0
            self.last_instances_3d = 0
            self.skipped_3d = 0
            self.last_decoder_warning = ""
            self.errors = 0
            self.last_error = ""
            self.last_rejection = ""
            self.last_instances = 0
            self.visualizations = 0
            self.last_frame: dict = {}
            self._in_times: deque[float] = deque()
            self._last_in: float | None = None
            self._out: deque[tuple[float, dict]] = deque()

    def _now(self) -> float:
        """The clock's time; re-anchors the windows when it went back. Called under the lock."""
        now = float(self._clock())
        if now < self._latest:
            back = self._latest - now
            # shift the history back with the clock: ages and rates go on from where they were
            self._in_times = deque(t - back for t in self._in_times)
            self._out = deque((t - back, timings) for t, timings in self._out)
            if self._last_in is not None:
                self._last_in -= back
            if self._on_clock_jump is not None:
                self._on_clock_jump(back)
        self._latest = now
        return now

    def _trim(self, now: float) -> None:
        while self._in_times and now - self._in_times[0] > self.window:
            self._in_times.popleft()
        while self._out and now - self._out[0][0] > self.window:
            self._out.popleft()

    @staticmethod
    def stopped_after(in_times: list[float]) -> float:
        """Seconds without a frame after which the input counts as stopped."""
        if len(in_times) < 2:
            return 1.0
        interval = (in_times[-1] - in_times[0]) / (len(in_times) - 1)
        return max(0.25, 2.5 * interval)

    def on_received(self, dropped_previous: bool) -> None:
        with self._lock:
            now = self._now()
            self._last_in = now
            self.received += 1
            if dropped_previous:
                self.dropped += 1
            self._in_times.append(now)
            self._trim(now)

    def on_rejected(self, reason: str) -> None:
        with self._lock:
            self.rejected += 1
            self.last_rejection = reason

    def on_decoder_warning(self, message: str) -> None:
        with self._lock:
            self.decoder_warnings += 1
            self.last_decoder_warning = message

    def on_without_depth(self) -> None:
        with self._lock:
            self.without_depth += 1

    def on_placed_3d(self, placed: int, skipped: int) -> None:
        with self._lock:
            self.last_instances_3d = int(placed)
            self.skipped_3d += int(skipped)

    def on_error(self, reason: str) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = reason

    def on_visualization(self) -> None:
        with self._lock:
            self.visualizations += 1

    def on_processed(self, n_instances: int, stamp: str = "", **timings_ms: float) -> None:
        with self._lock:
            now = self._now()
            self.last_frame = dict(timings_ms, stamp=stamp)
            self.processed += 1
            self.last_instances = int(n_instances)
            self._out.append((now, timings_ms))
            self._trim(now)

    def snapshot(self) -> dict:
        """Counters, input/output rates (Hz over the window) and p50/max of each timing."""
        with self._lock:
            now = self._now()
            in_times = list(self._in_times)
            last_in = self._last_in
            self._trim(now)
            age = now - last_in if last_in is not None else None
            stopped = age is not None and age > self.stopped_after(in_times)
            snap = {
                "received": self.received,
                "processed": self.processed,
                "dropped": self.dropped,
                "rejected": self.rejected,
                "errors": self.errors,
                "last_instances": self.last_instances,
                "decoder_warnings": self.decoder_warnings,
                "last_decoder_warning": self.last_decoder_warning,
                "without_depth": self.without_depth,
                "last_instances_3d": self.last_instances_3d,
                "skipped_3d": self.skipped_3d,
                "visualizations": self.visualizations,
                "last_frame": dict(self.last_frame),
                "last_rejection": self.last_rejection,
                "last_error": self.last_error,
                "input_age_s": age,
                "input_stopped": stopped,
                "input_rate_hz": 0.0 if stopped else _rate(list(self._in_times), now, self.window),
                "output_rate_hz": 0.0 if stopped else _rate([t for t, _ in self._out], now, self.window),
            }
            for key in _TIMINGS:
                vals = [d[key] for _, d in self._out if key in d]
                snap[f"{key}_p50"] = float(np.median(vals)) if vals else float("nan")
                snap[f"{key}_max"] = float(np.max(vals)) if vals else float("nan")
        return snap


def _rate(times: list[float], now: float, window: float) -> float:
    if len(times) < 2:
        return 0.0 if not times or now - times[-1] > window else 1.0 / window
    span = max(times[-1] - times[0], 1e-9)
    return (len(times) - 1) / span


def build_diagnostics(
    node_name: str,
    hardware_id: str,
    stamp,
    state: str,
    snap: dict,
    extra: dict,
    *,
    rejected_recently: bool = False,
    errors_recently: bool = False,
):
    """A DiagnosticArray with the one status of :func:`build_status`."""
    from diagnostic_msgs.msg import DiagnosticArray

    out = DiagnosticArray()
    out.header.stamp = stamp
    out.status = [
        build_status(
            node_name,
            hardware_id,
            state,
            snap,
            extra,
            rejected_recently=rejected_recently,
            errors_recently=errors_recently,
        )
    ]
    return out


def build_status(
    node_name: str,
    hardware_id: str,
    state: str,
    snap: dict,
    extra: dict,
    *,
    camera: str = "",
    rejected_recently: bool = False,
    errors_recently: bool = False,
):
    """A DiagnosticStatus named ``status_name(node_name, camera)``: OK while frames flow, WARN
    when idle or stopped while active or when frames were ``rejected_recently`` (in this
    period), ERROR after ``errors_recently``. Values: the snapshot's figures, then ``extra``
    (keys from :class:`Key`)."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    status = DiagnosticStatus()
    status.name = status_name(node_name, camera)
    status.hardware_id = hardware_id
    level, message = DiagnosticStatus.OK, f"{state}"
    if state == "active":
        if snap["received"] == 0:
            level, message = DiagnosticStatus.WARN, "active, no input images"
        elif snap.get("input_stopped") or snap["input_rate_hz"] == 0.0:
            level, message = (
                DiagnosticStatus.WARN,
                f"active, input stopped (last frame {snap['input_age_s']:.1f} s ago)",
            )
        else:
            message = f"active, {snap['output_rate_hz']:.1f} Hz out of {snap['input_rate_hz']:.1f} Hz in"
    if rejected_recently:
        level, message = max(level, DiagnosticStatus.WARN), message + f"; rejected input: {snap['last_rejection']}"
    if errors_recently:
        level, message = DiagnosticStatus.ERROR, message + f"; inference error: {snap['last_error']}"
    status.level = level  # the constants are octets (bytes) already
    status.message = message
    values = {
        Key.STATE: state,
        Key.INPUT_RATE: f"{snap['input_rate_hz']:.2f}",
        Key.OUTPUT_RATE: f"{snap['output_rate_hz']:.2f}",
        Key.LATENCY_P50: f"{snap['latency_ms_p50']:.1f}",
        Key.LATENCY_MAX: f"{snap['latency_ms_max']:.1f}",
        Key.PROCESSING_P50: f"{snap['processing_ms_p50']:.1f}",
        Key.SEGMENTER_P50: f"{snap['segmenter_ms_p50']:.1f}",
        Key.OVERHEAD_P50: f"{snap['overhead_ms_p50']:.2f}",
        Key.OVERHEAD_CPU_P50: f"{snap['overhead_cpu_ms_p50']:.2f}",
        Key.VISUALIZATION_P50: f"{snap['visualization_ms_p50']:.1f}",
        Key.FRAMES_RECEIVED: str(snap["received"]),
        Key.FRAMES_PROCESSED: str(snap["processed"]),
        Key.FRAMES_DROPPED: str(snap["dropped"]),
        Key.FRAMES_REJECTED: str(snap["rejected"]),
        Key.FRAMES_DECODED_WITH_ERRORS: str(snap.get("decoder_warnings", 0)),
        Key.FRAMES_WITHOUT_DEPTH: str(snap.get("without_depth", 0)),
        Key.INSTANCES_3D: str(snap.get("last_instances_3d", 0)),
        Key.INSTANCES_SKIPPED_3D: str(snap.get("skipped_3d", 0)),
        Key.INPUT_AGE: "" if snap.get("input_age_s") is None else f"{snap['input_age_s']:.2f}",
        Key.INFERENCE_ERRORS: str(snap["errors"]),
        Key.VISUALIZATIONS: str(snap["visualizations"]),
        Key.INSTANCES: str(snap["last_instances"]),
    }
    last = snap.get("last_frame") or {}
    if last:
        # per-frame figures of the newest frame, for pairing with a client's own measurements
        values[Key.LAST_STAMP] = last.get("stamp", "")
        for timing, key in _LAST_FRAME_KEYS.items():
            values[key] = f"{last.get(timing, float('nan')):.3f}"
    values.update({k: str(v) for k, v in extra.items()})
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return status
