"""SIGINT / SIGTERM for the node and the ``yolact`` commands: an exit that never aborts.

Why not a Python handler that raises: Python runs a signal handler in the main thread at the
next bytecode boundary, which may be Python code called back from inside a C/C++ extension
(torch's ``_c10d_init`` imports modules from C++ during ``import torch``); an exception raised
there cannot cross the C++ frames and the process dies by ``std::terminate`` (SIGABRT, a core
dump) instead of exiting.  So the Python-level handler only records the signal, and the work is
done by a watcher thread woken through :func:`signal.set_wakeup_fd` (the C-level handler writes
the signal number to a pipe at once, wherever the main thread is):

* **starting** (until :func:`mark_started`): the first signal ends the process at once with
  its exit code, after one line on stderr if a message was given; nothing is unwound.  Files
  written meanwhile (the model cache, checkpoints) are written atomically by their writers.
* **started** (after :func:`mark_started`, e.g. the node spinning, the trainer's loop): the
  first signal sets :func:`requested`, which the main loop polls to shut down in order; if that
  takes longer than the grace period the watcher ends the process anyway.  A second signal
  ends it at once.

Standard library only, so the node's script can install it before importing anything heavy.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["install", "mark_started", "requested", "received", "exit_code_for", "finish", "SIGNALS"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_requested = threading.Event()
_started = threading.Event()
_lock = threading.Lock()
_state: dict = {"installed": False, "grace_s": 0.9, "exit_code": None, "message": None, "count": 0, "signum": None}


def _record(signum, frame) -> None:  # noqa: ARG001 - the Python-level handler: records, never raises
    _state["signum"] = _state["signum"] or signum
    _requested.set()


def install(exit_code: Callable[[int], int] = lambda signum: 0, message: "Callable[[int], str] | None" = None) -> None:
    """Install the handlers and the watcher (idempotent; call from the main thread).
    ``exit_code(signum)``: the process's exit code for that signal; ``message(signum)``: one
    line printed to stderr before a starting process ends (None: nothing)."""
    with _lock:
        _state["exit_code"], _state["message"] = exit_code, message
        if _state["installed"]:
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        for sig in SIGNALS:
            signal.signal(sig, _record)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        threading.Thread(target=_watch, args=(read_fd,), name="signal_watcher", daemon=True).start()
        _state["installed"] = True
    # A shebang may block the signals across the exec (GNU env --block-signal): one that arrived
    # meanwhile is delivered now, to the handler above.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(SIGNALS))


def mark_started(grace_s: float) -> None:
    """From now on a first signal asks for an orderly shutdown (:func:`requested`), ended by the
    watcher after ``grace_s`` seconds at the latest."""
    _state["grace_s"] = float(grace_s)
    _started.set()
    if _requested.is_set():  # a signal that came just before: its grace starts now
        _arm(signal.SIGTERM)


def requested() -> bool:
    """True once SIGINT / SIGTERM arrived."""
    return _requested.is_set()


def received() -> "int | None":
    """The first SIGINT / SIGTERM received (None: none yet)."""
    return _state["signum"]


def exit_code_for(signum: int) -> int:
    return int(_state["exit_code"](signum)) if _state["exit_code"] else 0


def _watch(fd: int) -> None:
    while True:
        try:
            data = os.read(fd, 64)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum not in SIGNALS:
                continue  # the wakeup fd also reports other signals with Python handlers
            _state["signum"] = _state["signum"] or signum
            _requested.set()
            _state["count"] += 1
            if _state["count"] > 1 or not _started.is_set():
                _say(signum)
                finish(exit_code_for(signum))
            _arm(signum)


def _arm(signum: int) -> None:
    threading.Thread(target=_exit_after, args=(_state["grace_s"], signum), name="exit_watchdog", daemon=True).start()


def _exit_after(seconds: float, signum: int) -> None:
    time.sleep(seconds)
    finish(exit_code_for(signum))


def _say(signum: int) -> None:
    message = _state["message"]
    if message is None:
        return
    try:
        sys.stderr.write("\n" + message(signum) + "\n")  # a new line: a progress bar may hold the current one
    except (OSError, ValueError):
        pass


def finish(code: int) -> None:
    """Flush stdout/stderr and end the process with ``code`` (no interpreter finalisation: a
    worker thread may be inside a C extension that finalisation would not survive)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(int(code))
