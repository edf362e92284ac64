"""Log lines of the node: one per kind of problem per period, and an exception as one line.

The throttle keeps bounded memory (at most ``max_kinds`` kinds).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

__all__ = ["Throttle", "one_line"]


class Throttle:
    """``allow(kind)`` is True at most once per ``period`` seconds per ``kind``, and reports how
    many were held back since. Keys are kinds (a rejection reason, "inference error"), never
    per-message values; at most ``max_kinds`` are remembered (the oldest is forgotten)."""

    def __init__(self, period: float = 5.0, max_kinds: int = 32):
        self.period = float(period)
        self.max_kinds = int(max_kinds)
        self._last: OrderedDict[str, list] = OrderedDict()  # kind -> [time of last line, held back]
        self._lock = threading.Lock()

    def allow(self, kind: str, now: float | None = None) -> tuple[bool, int]:
        """``(log it?, lines held back since the last one of this kind)``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._last.get(kind)
            if entry is not None and now - entry[0] < self.period:
                entry[1] += 1
                return False, 0
            held = entry[1] if entry is not None else 0
            self._last[kind] = [now, 0]
            self._last.move_to_end(kind)
            while len(self._last) > self.max_kinds:
                self._last.popitem(last=False)
            return True, held

    def __len__(self) -> int:
        return len(self._last)


def one_line(exc: BaseException) -> str:
    """An exception as one log line: its message (KeyError without the repr quotes), else its type."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    first = (str(text).strip().splitlines() or [""])[0]
    return first or type(exc).__name__
