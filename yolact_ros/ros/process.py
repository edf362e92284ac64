"""The ``yolact_node`` process: signals, parent death and the exit code.

What supervisors (``ros2 launch``, systemd, a lifecycle manager's host) rely on:

* SIGINT/SIGTERM at any moment end the process within :data:`EXIT_GRACE_S` seconds with exit
  code 0 and no traceback: while importing rclpy and torch, while the model loads, while
  spinning. The first signal raises :class:`ShutdownRequested` in the main thread (Python runs
  signal handlers there between bytecodes, so a long model load is interrupted too) and arms
  a watchdog that ends the process if the orderly shutdown takes longer; a second signal
  exits at once.
* With ``YOLACT_ROS_EXIT_WITH_PARENT`` unset or 1 (default), Linux delivers SIGTERM to the node
  when its parent process dies (``prctl(PR_SET_PDEATHSIG)``), so a killed ``ros2 launch``
  leaves no orphan (ros2/launch#666). Set it to 0 for a node that must outlive its parent
  (``nohup``, a shell that exits).
* :func:`yolact_ros.ros.main.run_node` ends with ``os._exit`` after flushing the streams: the inference worker is a
  daemon thread that may be inside torch, which interpreter finalisation does not always
  survive.

Standard library only: the generated ``yolact_node`` script runs
:func:`yolact_ros.ros.main.run_node`, which installs these handlers before rclpy and torch
are imported, so they are in place a few milliseconds after exec.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

__all__ = ["EXIT_GRACE_S", "ShutdownRequested", "install_signal_handlers", "shutdown_requested",
           "exit_with_parent", "finish"]

#: After the first SIGINT/SIGTERM the process is gone within this many seconds.
EXIT_GRACE_S = 0.9
_PR_SET_PDEATHSIG = 1


class ShutdownRequested(BaseException):
    """Raised in the main thread by the first SIGINT/SIGTERM (a BaseException, like
    KeyboardInterrupt, so ``except Exception`` blocks on the way do not swallow it)."""


_requested = threading.Event()


def _on_signal(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    if _requested.is_set():
        finish(0)  # second signal: now
    _requested.set()
    watchdog = threading.Thread(target=_exit_after, args=(EXIT_GRACE_S,), name="exit_watchdog", daemon=True)
    watchdog.start()
    raise ShutdownRequested(signal.Signals(signum).name)


def _exit_after(seconds: float) -> None:
    time.sleep(seconds)
    finish(0)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM -> :class:`ShutdownRequested` (first), immediate exit 0 (second)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    # The generated script's shebang may have blocked them across the exec (GNU env
    # --block-signal): one that arrived meanwhile is delivered now, to the handler above.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def shutdown_requested() -> bool:
    """True once SIGINT/SIGTERM arrived."""
    return _requested.is_set()


def exit_with_parent() -> bool:
    """Ask Linux for SIGTERM when the parent process dies (see the module docstring); True if
    armed. Exits at once when the parent is already gone (the race between fork and here)."""
    if os.environ.get("YOLACT_ROS_EXIT_WITH_PARENT", "1").strip().lower() in ("0", "false", "no", ""):
        return False
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # re-parented before prctl took effect
        finish(0)
    return True


def finish(code: int) -> None:
    """Flush stdout/stderr and end the process with ``code`` (no interpreter finalisation)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(int(code))
