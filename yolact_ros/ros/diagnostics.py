"""Frame counters and rolling timing statistics, and their diagnostic_msgs form.

``FrameStats`` is written by the subscription callback (received/dropped) and the inference
worker (processed, rejected, timings) and read by the diagnostics timer; a lock keeps the
three consistent.
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

__all__ = ["FrameStats", "build_diagnostics"]

_TIMINGS = ("latency_ms", "processing_ms", "segmenter_ms", "overhead_ms", "overhead_cpu_ms", "visualization_ms")


class FrameStats:
    """Counts (since configure) and a rolling window of per-frame timings (last ``window`` s)."""

    def __init__(self, window: float = 5.0):
        self.window = float(window)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.received = 0
            self.processed = 0
            self.dropped = 0
            self.rejected = 0
            self.errors = 0
            self.last_error = ""
            self.last_rejection = ""
            self.last_instances = 0
            self.visualizations = 0
            self.last_frame: dict = {}
            self._in_times: deque[float] = deque()
            self._out: deque[tuple[float, dict]] = deque()

    def _trim(self, now: float) -> None:
        while self._in_times and now - self._in_times[0] > self.window:
            self._in_times.popleft()
        while self._out and now - self._out[0][0] > self.window:
            self._out.popleft()

    def on_received(self, dropped_previous: bool) -> None:
        now = time.monotonic()
        with self._lock:
            self.received += 1
            if dropped_previous:
                self.dropped += 1
            self._in_times.append(now)
            self._trim(now)

    def on_rejected(self, reason: str) -> None:
        with self._lock:
            self.rejected += 1
            self.last_rejection = reason

    def on_error(self, reason: str) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = reason

    def on_visualization(self) -> None:
        with self._lock:
            self.visualizations += 1

    def on_processed(self, n_instances: int, stamp: str = "", **timings_ms: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.last_frame = dict(timings_ms, stamp=stamp)
            self.processed += 1
            self.last_instances = int(n_instances)
            self._out.append((now, timings_ms))
            self._trim(now)

    def snapshot(self) -> dict:
        """Counters, input/output rates (Hz over the window) and p50/max of each timing."""
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            snap = {
                "received": self.received, "processed": self.processed, "dropped": self.dropped,
                "rejected": self.rejected, "errors": self.errors, "last_instances": self.last_instances,
                "visualizations": self.visualizations,
                "last_frame": dict(self.last_frame),
                "last_rejection": self.last_rejection, "last_error": self.last_error,
                "input_rate_hz": _rate(list(self._in_times), now, self.window),
                "output_rate_hz": _rate([t for t, _ in self._out], now, self.window),
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


def build_diagnostics(name: str, hardware_id: str, stamp, state: str, snap: dict, extra: dict) -> DiagnosticArray:
    """One DiagnosticStatus named ``name``: OK while frames flow, WARN when idle while active or
    when frames were rejected in this period, ERROR after inference errors."""
    status = DiagnosticStatus()
    status.name = name
    status.hardware_id = hardware_id
    level, message = DiagnosticStatus.OK, f"{state}"
    if state == "active":
        if snap["received"] == 0 or snap["input_rate_hz"] == 0.0:
            level, message = DiagnosticStatus.WARN, "active, no input images"
        else:
            message = f"active, {snap['output_rate_hz']:.1f} Hz out of {snap['input_rate_hz']:.1f} Hz in"
    if extra.pop("rejected_recently", False):
        level, message = max(level, DiagnosticStatus.WARN), message + f"; rejected input: {snap['last_rejection']}"
    if extra.pop("errors_recently", False):
        level, message = DiagnosticStatus.ERROR, message + f"; inference error: {snap['last_error']}"
    status.level = level  # the constants are octets (bytes) already
    status.message = message
    values = {
        "state": state,
        "input rate (Hz)": f"{snap['input_rate_hz']:.2f}",
        "output rate (Hz)": f"{snap['output_rate_hz']:.2f}",
        "latency stamp->publish p50 (ms)": f"{snap['latency_ms_p50']:.1f}",
        "latency stamp->publish max (ms)": f"{snap['latency_ms_max']:.1f}",
        "processing p50 (ms)": f"{snap['processing_ms_p50']:.1f}",
        "segmenter p50 (ms)": f"{snap['segmenter_ms_p50']:.1f}",
        "node overhead p50 (ms)": f"{snap['overhead_ms_p50']:.2f}",
        "node overhead CPU time p50 (ms)": f"{snap['overhead_cpu_ms_p50']:.2f}",
        "visualization p50 (ms)": f"{snap['visualization_ms_p50']:.1f}",
        "frames received": str(snap["received"]),
        "frames processed": str(snap["processed"]),
        "frames dropped": str(snap["dropped"]),
        "frames rejected": str(snap["rejected"]),
        "inference errors": str(snap["errors"]),
        "visualizations published": str(snap["visualizations"]),
        "instances (last frame)": str(snap["last_instances"]),
    }
    last = snap.get("last_frame") or {}
    if last:
        # per-frame figures of the newest frame, for pairing with a client's own measurements
        values["last frame stamp"] = last.get("stamp", "")
        for key in ("latency_ms", "segmenter_ms", "overhead_ms", "overhead_cpu_ms", "visualization_ms"):
            values[f"last frame {key[:-3]} (ms)"] = f"{last.get(key, float('nan')):.3f}"
    values.update({k: str(v) for k, v in extra.items()})
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    out = DiagnosticArray()
    out.header.stamp = stamp
    out.status = [status]
    return out
