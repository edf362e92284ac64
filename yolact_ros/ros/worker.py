"""The node's inference worker thread: the newest frames -> one batched forward -> outputs, timed.

The executor's subscription callbacks only put frames into the mailbox (one slot per camera);
this thread takes every waiting frame at once, converts them, runs the Segmenter on all of
them in one forward, publishes each camera's outputs (:func:`yolact_ros.ros.outputs.publish_frame`)
and records per frame where the time went (conversion, Segmenter, publishing, overlay; wall and
this thread's CPU time) in the camera's :class:`~yolact_ros.ros.diagnostics.FrameStats`.
So callbacks never wait for inference, a slow model drops frames instead of queueing them,
and no frame is processed twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sensor_msgs.msg import CompressedImage

from .camera import CameraIO
from .diagnostics import latency_ms, stamp_text, stamp_to_ns
from .image_conversion import ImageConversionError, compressed_to_bgr, image_to_bgr
from .mailbox import Frame, LatestFrames
from .outputs import publish_frame
from .runtime_settings import RuntimeSettings
from .throttle import one_line

if TYPE_CHECKING:
    from ..inference.segmenter import Segmenter

__all__ = ["InferenceWorker", "WarnThrottled"]

#: ``warn(kind, text, error=False)``: one log line per kind per period (the node's throttle).
WarnThrottled = Callable[..., None]


class InferenceWorker:
    """One thread between :meth:`start` (configure) and :meth:`stop`; it processes frames only
    while :attr:`active` is set (the node is active)."""

    def __init__(
        self,
        mailbox: LatestFrames,
        settings: RuntimeSettings,
        segmenter: Callable[[], Segmenter | None],
        cameras: Callable[[], list[CameraIO]],
        *,
        warn: WarnThrottled,
        log_error: Callable[[str], None],
        now_ns: Callable[[], int],
        running: Callable[[], bool],
    ):
        self._mailbox = mailbox
        self._settings = settings
        self._segmenter = segmenter
        self._cameras = cameras
        self._warn = warn
        self._log_error = log_error
        self._now_ns = now_ns  # the node's clock
        self._running = running  # False once the node's context is shut down
        self.active = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._mailbox.open()
        self._thread = threading.Thread(target=self._run, name="yolact_inference", daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking frames and end the thread (waits up to ``timeout`` s, unless called from it)."""
        self.active.clear()
        self._stop.set()
        self._mailbox.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    def apply_settings(self) -> None:
        """Apply waiting run-time parameter changes (between frames)."""
        self._settings.apply(self._segmenter(), self._log_error)

    def _run(self) -> None:
        """Every waiting frame (one per camera) in one batched forward, until stopped."""
        by_name: dict[str, CameraIO] = {}
        while not self._stop.is_set():
            frames = self._mailbox.take_all(timeout=0.2)
            if not frames or not self.active.is_set():
                continue
            cameras = self._cameras()
            if len(by_name) != len(cameras):
                by_name = {cam.name: cam for cam in cameras}
            batch = [(by_name[name], frame) for name, frame in frames if name in by_name]
            try:
                self._process(batch)
            except Exception as exc:  # noqa: BLE001 - the node must keep serving
                if self._stop.is_set() or not self._running():
                    return
                for cam, _ in batch:
                    cam.stats.on_error(f"{type(exc).__name__}: {one_line(exc)}")
                self._warn(
                    "inference error",
                    f"inference failed on a frame ({type(exc).__name__}: {one_line(exc)})",
                    error=True,
                )

    def _convert(self, cam: CameraIO, msg):
        """The frame as the Segmenter's input, or None (rejected: counted and said once per kind)."""
        max_pixels = int(self._settings.outputs["max_image_pixels"]) or None
        try:
            if isinstance(msg, CompressedImage):
                image, decoder_messages = compressed_to_bgr(msg, max_pixels)
                if decoder_messages:  # corrupt but decodable: processed, counted, said once per period
                    cam.stats.on_decoder_warning(decoder_messages[0].strip())
                    self._warn(
                        "decoder warning",
                        f"a frame on {cam.input_topic} decoded with "
                        f"errors (processed anyway): {decoder_messages[0].strip()}",
                    )
                return image
            return image_to_bgr(msg, max_pixels)
        except ImageConversionError as exc:
            cam.stats.on_rejected(str(exc))
            self._warn(f"rejected: {exc.kind}", f"rejected a frame on {cam.input_topic}: {exc}")
            return None

    def _process(self, batch: list[tuple[CameraIO, Frame]]) -> None:
        self.apply_settings()
        t0 = time.perf_counter()
        c0 = time.thread_time()  # CPU time of this thread: the overhead without other processes' share
        items = []
        for cam, frame in batch:
            image = self._convert(cam, frame.msg)
            if image is not None:
                items.append((cam, frame, image))
        seg = self._segmenter()
        if seg is None or not items:
            return
        t1 = time.perf_counter()
        c1 = time.thread_time()
        results = seg([image for _, _, image in items])  # one batched forward for all cameras
        t2 = time.perf_counter()
        convert_ms, convert_cpu_ms = (t1 - t0) * 1000.0 / len(items), (c1 - c0) * 1000.0 / len(items)
        seg_ms = (t2 - t1) * 1000.0
        for (cam, frame, image), inst in zip(items, results):
            if not self.active.is_set() or not cam.pubs:
                return
            t3 = time.perf_counter()
            c3 = time.thread_time()
            header = frame.msg.header
            vis_ms, vis_cpu_ms = publish_frame(
                cam, header, image, inst, self._settings.outputs, seg.class_names, self._warn
            )
            t4 = time.perf_counter()
            stamp_ns = stamp_to_ns(header.stamp)
            now_ns = self._now_ns()
            publish_ms = (t4 - t3) * 1000.0
            cam.stats.on_processed(
                len(inst),
                stamp=stamp_text(header.stamp),
                latency_ms=latency_ms(now_ns, stamp_ns),
                processing_ms=(time.monotonic() - frame.received) * 1000.0,  # arrival -> published
                segmenter_ms=seg_ms,
                overhead_ms=convert_ms + publish_ms - vis_ms,
                overhead_cpu_ms=convert_cpu_ms + (time.thread_time() - c3) * 1000.0 - vis_cpu_ms,
                visualization_ms=vis_ms,
            )
