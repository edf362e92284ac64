"""Play a rosbag2 into ROS 2 on its recorded timeline and publish that timeline on ``/clock``.

Test and benchmark support for replay on simulated time. ``ros2 bag`` is not installable
without a ROS distribution, so this does, with ``rosbags`` (reading sqlite3 and MCAP) and
rclpy, the part of ``ros2 bag play --clock 100 BAG`` that the replay tests need; a user
replays with that command and runs the node with ``use_sim_time:=true``. Like it:

* the timeline starts at the bag's start time and advances at ``rate`` x wall time; each
  message is published (as recorded: the serialized bytes) once the timeline reaches its
  log time;
* ``/clock`` (``rosgraph_msgs/Clock``) carries the timeline at ``clock_hz`` wall-clock
  Hz, also while paused (the same time again: a paused clock stands still);
* :meth:`BagPlayer.pause` / :meth:`BagPlayer.resume` stop and restart the timeline (and so
  the clock and the messages), ``start_paused`` starts it stopped; it plays the bag once
  (no loop) and then stops publishing, the clock too.

Publishers use reliable QoS (``reliable=False``: sensor-data QoS, as most cameras offer).
rclpy is imported inside functions, so importing this module needs no ROS runtime.
"""

from __future__ import annotations

import importlib
import itertools
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["BagPlayer"]

_player_ids = itertools.count()


def _message_class(msgtype: str):
    """The rclpy class of a rosbag2 type name such as ``sensor_msgs/msg/Image``."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class BagPlayer:
    """Plays ``bag`` (a rosbag2 directory) from a participant of its own rclpy Context.

            ``topics``: the topics to play (default all); ``clock=False`` publishes no ``/clock`` (as
            ``ros2 bag play`` without ``--clock``); ``remap`` publishes a bag topic under another name (as
        ``--remap``). With ``node`` (an rclpy node spun elsewhere) the publishers are created on
    it, so no participant of its own comes and goes; else the player has its own Context. Call :meth:`start`, then wait with
            :meth:`wait`; :meth:`close` at the end. ``published`` lists (log time ns, topic) of what
            went out, in order. :meth:`timeline_ns` is the bag time now (what ``/clock`` says, without
            its ``1/clock_hz`` steps)."""

    def __init__(
        self,
        bag: Path | str,
        *,
        rate: float = 1.0,
        clock_hz: float = 100.0,
        topics: Sequence[str] | None = None,
        start_paused: bool = False,
        reliable: bool = True,
        clock: bool = True,
        remap: dict[str, str] | None = None,
        node=None,
    ):
        import rclpy
        from rclpy.context import Context
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
        from rclpy.signals import SignalHandlerOptions
        from rosbags.highlevel import AnyReader

        if rate <= 0 or clock_hz <= 0:
            raise ValueError(f"rate and clock_hz must be > 0, got rate={rate}, clock_hz={clock_hz}")
        self.bag = Path(bag)
        self.rate = float(rate)
        self.clock_period = 1.0 / float(clock_hz)
        self._reader = AnyReader([self.bag])
        self._reader.open()
        wanted = set(topics) if topics is not None else None
        self._connections = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        missing = sorted((wanted or set()) - {c.topic for c in self._connections})
        if missing or not self._connections:
            self._reader.close()
            raise ValueError(f"{self.bag}: no topic {', '.join(missing) or '(none in the bag)'}")
        self.start_ns = int(self._reader.start_time)
        self.end_ns = int(self._reader.end_time)

        self._own_node = node is None
        if node is None:
            self.context = Context()
            rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
            node = rclpy.create_node(f"bag_player_{os.getpid()}_{next(_player_ids)}", context=self.context)
        self.node = node
        qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE) if reliable else qos_profile_sensor_data
        self._pubs: dict[str, Any] = {}  # bag topic -> rclpy Publisher
        for conn in self._connections:
            if conn.topic not in self._pubs:
                name = (remap or {}).get(conn.topic, conn.topic)
                self._pubs[conn.topic] = self.node.create_publisher(_message_class(conn.msgtype), name, qos)
        # the clock's class is looked up by type name, as the bag's are
        self._clock_type = _message_class("rosgraph_msgs/msg/Clock")
        self._clock_pub = self.node.create_publisher(self._clock_type, "/clock", QoSProfile(depth=1)) if clock else None

        self.published: list[tuple[int, str]] = []
        self.clocks_published = 0
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._anchor_bag_ns = self.start_ns  # the timeline at _anchor_wall (or while paused)
        self._anchor_wall: float | None = None  # None while paused
        self._start_paused = start_paused
        self._stop = threading.Event()
        self.done = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the timeline -----------------------------------------------------------------------------
    def timeline_ns(self) -> int:
        """The bag time now: stands still while paused."""
        with self._lock:
            return self._timeline_locked()

    def _timeline_locked(self) -> int:
        if self._anchor_wall is None:
            return self._anchor_bag_ns
        return self._anchor_bag_ns + int((time.monotonic() - self._anchor_wall) * self.rate * 1e9)

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._anchor_wall is None

    def pause(self) -> None:
        """Stop the timeline (the clock keeps being published, standing still)."""
        with self._lock:
            if self._anchor_wall is not None:
                self._anchor_bag_ns = self._timeline_locked()
                self._anchor_wall = None

    def resume(self) -> None:
        with self._lock:
            if self._anchor_wall is None:
                self._anchor_wall = time.monotonic()

    # -- playing ----------------------------------------------------------------------------------
    def wait_for_subscribers(self, timeout: float = 30.0) -> bool:
        """Until every played topic has a subscriber (discovery takes 0-3 s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(pub.get_subscription_count() > 0 for pub in self._pubs.values()):
                return True
            time.sleep(0.05)
        return False

    def start(self) -> None:
        """Start playing in a thread of this player (paused with ``start_paused``)."""
        if not self._start_paused:
            self.resume()
        self._thread = threading.Thread(target=self._play, name="bag_player", daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Until the whole bag was played (True) or ``timeout`` s passed; raises what the
        playing thread raised."""
        finished = self.done.wait(timeout)
        if self.error is not None:
            raise RuntimeError(f"playing {self.bag} failed: {self.error}") from self.error
        return finished

    def _publish_clock(self, stamp_ns: int) -> None:
        if self._clock_pub is None:
            return
        msg = self._clock_type()
        msg.clock.sec, msg.clock.nanosec = divmod(stamp_ns, 1_000_000_000)
        self._clock_pub.publish(msg)
        self.clocks_published += 1

    def _check_type(self, conn, raw: bytes) -> None:
        """A clear error when a topic's recorded bytes are not the installed message type."""
        from rclpy.serialization import deserialize_message

        try:
            deserialize_message(raw, _message_class(conn.msgtype))
        except Exception as exc:  # noqa: BLE001 - re-raised with the topic and type named
            raise ValueError(f"{conn.topic}: recorded data is not a valid {conn.msgtype} here ({exc})") from exc

    def _play(self) -> None:
        try:
            messages = self._reader.messages(connections=self._connections)
            checked: set[str] = set()
            pending = next(messages, None)
            next_clock = time.monotonic()
            while pending is not None and not self._stop.is_set():
                now = self.timeline_ns()
                if time.monotonic() >= next_clock:
                    self._publish_clock(now)
                    next_clock = max(next_clock + self.clock_period, time.monotonic())
                if not self.paused and now >= pending[1]:
                    conn, log_ns, raw = pending
                    if conn.topic not in checked:
                        self._check_type(conn, bytes(raw))
                        checked.add(conn.topic)
                    self._pubs[conn.topic].publish(bytes(raw))  # as recorded, like ros2 bag play
                    self.published.append((log_ns, conn.topic))
                    pending = next(messages, None)
                    continue
                wait = next_clock - time.monotonic()
                if not self.paused:
                    wait = min(wait, (pending[1] - now) / 1e9 / self.rate)
                self._stop.wait(max(wait, 0.0))
            if not self._stop.is_set():
                self._publish_clock(self.timeline_ns())  # the clock's last word: not behind the last message
        except Exception as exc:  # noqa: BLE001 - handed to wait() in the caller's thread
            self.error = exc
        finally:
            self.done.set()

    def close(self, ack_timeout: float = 10.0) -> None:
        """Stop; first wait up to ``ack_timeout`` s until the subscribers acknowledged what went
        out (reliable QoS; as ``ros2 bag play --wait-for-all-acked``): a publisher destroyed
        earlier takes its last messages with it."""
        import rclpy
        from rclpy.duration import Duration

        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for pub in self._pubs.values():
            pub.wait_for_all_acked(Duration(seconds=ack_timeout))
        try:
            if self._own_node:
                self.node.destroy_node()
                rclpy.try_shutdown(context=self.context)
            else:
                for pub in [*self._pubs.values(), self._clock_pub]:
                    if pub is not None:
                        self.node.destroy_publisher(pub)
        finally:
            self._reader.close()
