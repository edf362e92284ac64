"""The rclpy internals the node relies on, all here: the ChangeState guard and the state label.

rclpy's ``LifecycleNode`` keeps its ChangeState service and its state machine in private
attributes (``_service_change_state``, ``_state_machine``), and ``RCLError`` lives in
``rclpy.impl.implementation_singleton``; no other module of the package touches them, so a new
rclpy release changes this module only.

The workaround, ros2/rclpy#1209: on rclpy 7.1 (Jazzy) a ChangeState request *by id* for a
transition that is not valid in the current state raises ``RCLError`` out of the executor
(by label it answers ``success=false``), which ends the node on one stray lifecycle-manager
call. rclpy 9.1 (Kilted) catches it and answers ``success=false``. The guard is installed only
where :func:`change_state_workaround_needed` says so; ``test/ros/test_rclpy_compat.py`` checks
on every distribution the tests run on that the bug is there exactly when it says so.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode

__all__ = [
    "CHANGE_STATE_FIXED_IN",
    "RCLError",
    "change_state_workaround_needed",
    "current_state_label",
    "guard_change_state",
    "rclpy_version",
]

RCLError = _rclpy.RCLError

#: The first rclpy release line known to answer an invalid ChangeState by id with success=false
#: (Kilted's 9.x; Jazzy's 7.1.x raises). Releases before it get the guard.
CHANGE_STATE_FIXED_IN = (9, 0)


def rclpy_version() -> tuple[int, ...] | None:
    """The installed rclpy's version: its package.xml in the ament index, else its Python
    distribution's; None when neither can be read."""
    text = None
    try:
        from ament_index_python.packages import get_package_share_directory

        manifest = Path(get_package_share_directory("rclpy")) / "package.xml"
        found = re.search(r"<version>\s*([\d.]+)\s*</version>", manifest.read_text(encoding="utf-8"))
        text = found.group(1) if found else None
    except (ImportError, LookupError, OSError):  # no ament index entry: ask the Python packaging
        pass
    if text is None:
        try:
            text = importlib.metadata.version("rclpy")
        except importlib.metadata.PackageNotFoundError:
            return None
    numbers = re.findall(r"\d+", text)
    return tuple(int(n) for n in numbers[:3]) or None


def change_state_workaround_needed(version: tuple[int, ...] | None = None) -> bool:
    """Whether rclpy ``version`` (default: the installed one) needs :func:`guard_change_state`.
    An unknown version gets it: the guard changes nothing where rclpy answers by itself."""
    version = rclpy_version() if version is None else version
    return version is None or tuple(version[:2]) < CHANGE_STATE_FIXED_IN


def current_state_label(node: LifecycleNode) -> str:
    """The node's lifecycle state label (``unconfigured``, ``active``, ...); "" before the
    state machine exists."""
    try:
        return node._state_machine.current_state[1]
    except Exception:  # noqa: BLE001 - rclpy raises several kinds before the machine is initialised
        return ""


def guard_change_state(node: LifecycleNode, on_refused: Callable[[Any], None]) -> bool:
    """Make ``node``'s ChangeState service answer ``success=false`` for a transition that is not
    valid in the current state instead of raising out of the executor (ros2/rclpy#1209), when
    :func:`change_state_workaround_needed`. ``on_refused(request)`` is called for each refusal
    (to log it). True when the guard was installed."""
    service = getattr(node, "_service_change_state", None)
    if service is None or not change_state_workaround_needed():
        return False
    handle = service.callback

    def change_state(request, response):
        try:
            return handle(request, response)
        except RCLError:
            on_refused(request)
            response.success = False
            return response

    service.callback = change_state
    return True
