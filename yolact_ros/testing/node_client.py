"""The tests' and benchmarks' side of talking to ``yolact_node``: frames sent until answered, waits.

:class:`Client` extends the product's :class:`~yolact_ros.ros.stream_client.StreamClient`
(which the demo uses) with what only tests and benchmarks need: a frame re-sent until its
detections come back, diagnostics awaited, discovery awaited, the overlay subscription
dropped. :class:`StampRecorder` keeps only stamps for long runs, and
:func:`wait_until_signals_held` waits until a started node can take SIGINT/SIGTERM.
Lifecycle and parameter service calls live with the ROS tests (``test/ros/ros_helpers.py``).
No rclpy import here: the ROS-free tests import this package.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from ..ros.diagnostics import stamp_to_ns
from ..ros.node_process import NodeProcess
from ..ros.stream_client import StreamClient, ns_to_stamp

__all__ = ["Client", "StampRecorder", "wait_until_signals_held"]


class Client(StreamClient):
    """A :class:`StreamClient` that sends frames and waits for their answers."""

    _stamp_counter = 0

    def wait_for_node_input(self, timeout: float = 30.0) -> bool:
        """Until the node's subscription matched our publisher (discovery takes 0-3 s)."""
        return self.spin_until(lambda: self.pub.get_subscription_count() > 0, timeout)

    def count_subscribers(self, topic: str) -> int:
        return self.node.count_subscribers(topic)

    def unsubscribe_visualization(self) -> None:
        sub = self.subs.pop("visualization", None)
        if sub is not None:
            self.node.destroy_subscription(sub)

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

    def latest_diagnostics(
        self, node_name: str, predicate: Callable[[dict], bool] | None = None, timeout: float = 10.0, camera: str = ""
    ) -> dict[str, str]:
        """The newest status of ``node_name`` (``camera``) satisfying ``predicate``, waiting up to ``timeout`` s."""
        if not self.spin_until(lambda: bool(self.statuses(node_name, predicate, camera)), timeout):
            raise TimeoutError(f"no /diagnostics from {node_name} satisfying the condition within {timeout}s")
        return self.statuses(node_name, predicate, camera)[-1]


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


def wait_until_signals_held(proc: NodeProcess, timeout: float = 2.0) -> bool:
    """Until the process blocks or catches both SIGINT and SIGTERM (/proc/<pid>/status): a
    signal in the first moment after exec, before the script's ``env --block-signal`` ran,
    still kills it by the default action (docs/ros.md). True once held (or already gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = open(f"/proc/{proc.proc.pid}/status").read()
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
