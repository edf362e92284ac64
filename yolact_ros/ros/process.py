"""The ``yolact_node`` process: signals, parent death and the exit code.

What supervisors (``ros2 launch``, systemd, a lifecycle manager's host) rely on:

* SIGINT/SIGTERM at any moment end the process within :data:`EXIT_GRACE_S` seconds with exit
  code 0, no traceback and no abort (:mod:`yolact_ros.signals`): during start-up (imports,
  rclpy, the model load or a cold OpenVINO conversion, the autostart transitions) the process
  ends at once, from a watcher thread, wherever the main thread is, even inside a C++ call;
  once the node spins (:func:`mark_started`) the main loop shuts down in order and the watcher
  ends the process if that takes longer than :data:`EXIT_GRACE_S`; a second signal exits at once.
* With ``YOLACT_ROS_EXIT_WITH_PARENT`` unset or 1 (default), Linux delivers SIGTERM to the node
  when its parent process dies (``prctl(PR_SET_PDEATHSIG)``), so a killed ``ros2 launch``
  leaves no orphan (ros2/launch#666). Set it to 0 for a node that must outlive its parent
  (``nohup``, a shell that exits).
* :func:`yolact_ros.ros.main.run_node` ends with ``os._exit`` after flushing the streams: the
  inference worker is a daemon thread that may be inside torch, which interpreter
  finalisation does not always survive.

Standard library only: the generated ``yolact_node`` script runs
:func:`yolact_ros.ros.main.run_node`, which installs these handlers before rclpy and torch
are imported, so they are in place a few milliseconds after exec.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from .. import signals
from ..signals import finish

__all__ = [
    "EXIT_GRACE_S",
    "install_signal_handlers",
    "mark_started",
    "shutdown_requested",
    "exit_with_parent",
    "finish",
]

#: After the first SIGINT/SIGTERM the process is gone within this many seconds.
EXIT_GRACE_S = 0.9
_PR_SET_PDEATHSIG = 1


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM -> exit 0 (see the module docstring); idempotent."""
    signals.install(lambda signum: 0)


def mark_started() -> None:
    """The node spins: from now on a signal asks for an orderly shutdown (within :data:`EXIT_GRACE_S`)."""
    signals.mark_started(EXIT_GRACE_S)


def shutdown_requested() -> bool:
    """True once SIGINT/SIGTERM arrived."""
    return signals.requested()


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
