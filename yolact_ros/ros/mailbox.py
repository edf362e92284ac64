"""The node's one-slot frame mailbox: the subscription puts, the inference worker takes.

Pure Python (no rclpy): a newer frame replaces the waiting one, so a slow model drops frames
instead of building lag, and no frame is handed out twice.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["Frame", "LatestFrame"]


@dataclass
class Frame:
    """A received message and when it arrived."""

    msg: object
    received: float  # time.monotonic() at arrival


class LatestFrame:
    """A one-slot mailbox: ``put`` replaces the waiting frame (returns True if one was
    dropped), ``take`` removes and returns it, so every frame is handed out at most once."""

    def __init__(self):
        self._cv = threading.Condition()
        self._item: Frame | None = None
        self._closed = False

    def put(self, item: Frame) -> bool:
        with self._cv:
            dropped = self._item is not None
            self._item = item
            self._cv.notify()
            return dropped

    def take(self, timeout: float) -> Frame | None:
        with self._cv:
            if self._item is None and not self._closed:
                self._cv.wait(timeout)
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._cv:
            self._item = None

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._item = None
            self._cv.notify_all()

    def open(self) -> None:
        with self._cv:
            self._closed = False
