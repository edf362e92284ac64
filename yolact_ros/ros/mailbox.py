"""The node's frame mailboxes: the subscriptions put, the inference worker takes.

Pure Python (no rclpy): a newer frame replaces the waiting one, so a slow model drops frames
instead of building lag, and no frame is handed out twice. :class:`LatestFrames` keeps one
slot per camera and hands out every waiting frame at once (one batched forward), in
round-robin order, so no camera starves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["Frame", "LatestFrames"]


@dataclass
class Frame:
    """A received message and when it arrived."""

    msg: Any  # the received message (sensor_msgs Image or CompressedImage)
    received: float  # time.monotonic() at arrival


class LatestFrames:
    """One slot per key (camera): ``put(key, frame)`` replaces that camera's waiting frame
    (True if one was dropped); ``take_all`` returns every waiting ``(key, frame)`` and empties
    the slots, starting after the key served first last time (round-robin: with a batch limit,
    every camera gets its turn)."""

    def __init__(self, keys=("",)):
        self._cv = threading.Condition()
        self._keys: list = list(keys)
        self._items: dict = {}
        self._start = 0
        self._closed = False

    def set_keys(self, keys) -> None:
        with self._cv:
            self._keys = list(keys)
            self._items = {}
            self._start = 0

    def put(self, key, item: Frame) -> bool:
        with self._cv:
            dropped = key in self._items
            self._items[key] = item
            self._cv.notify()
            return dropped

    def take_all(self, timeout: float, limit: int | None = None) -> list[tuple[object, Frame]]:
        with self._cv:
            if not self._items and not self._closed:
                self._cv.wait(timeout)
            n = len(self._keys)
            taken: list[tuple[object, Frame]] = []
            for i in range(n):
                key = self._keys[(self._start + i) % n]
                if key in self._items and (limit is None or len(taken) < limit):
                    taken.append((key, self._items.pop(key)))
            if taken:
                self._start = (self._keys.index(taken[0][0]) + 1) % n
            return taken

    def clear(self) -> None:
        with self._cv:
            self._items = {}

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._items = {}
            self._cv.notify_all()

    def open(self) -> None:
        with self._cv:
            self._closed = False
