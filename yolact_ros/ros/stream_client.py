"""A camera stand-in and output recorder talking to a running ``yolact_node``, in its own rclpy context.

:class:`StreamClient` publishes images (as a camera driver does: sensor-data QoS, or reliable),
subscribes to the node's detections, masks, optionally overlays, and ``/diagnostics``, and
spins in the caller's thread (:meth:`StreamClient.spin_until`) or a thread of its own
(:meth:`StreamClient.spin_in_background`). Subclasses override the ``on_*`` callbacks to
process outputs instead of keeping them: the demo (:mod:`yolact_ros.ros.demo`) records them;
the tests' and benchmarks' client (``yolact_ros.testing.node_client``) adds what they need.
rclpy and the message packages are imported inside functions, so importing this module needs
no ROS runtime.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable

import numpy as np

from .diagnostics import status_name

__all__ = ["StreamClient", "image_message", "ns_to_stamp"]

_client_ids = itertools.count()


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


class StreamClient:
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

    def outputs_matched(self) -> bool:
        """The node subscribes to our images and publishes every output we subscribe to."""
        return self.pub.get_subscription_count() > 0 and all(s.get_publisher_count() > 0 for s in self.subs.values())

    # -- visualization ----------------------------------------------------------------------------
    def subscribe_visualization(self) -> None:
        """Subscribe to the overlays (the node draws them only while someone does)."""
        from sensor_msgs.msg import Image

        self.subs["visualization"] = self.node.create_subscription(
            Image, f"{self.ns}/visualization", self.on_visualization, 10
        )

    # -- frames -----------------------------------------------------------------------------------
    def publish(self, msg) -> None:
        self.pub.publish(msg)

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

    def close(self) -> None:
        import rclpy

        try:
            self.executor.shutdown(timeout_sec=2.0)
            if self._thread is not None:
                self._thread.join(5)
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.context)
