"""What ``launch/segment.launch.py`` passes to ``yolact_node``: the decisions, without launch.

The launch file declares the arguments of :data:`LAUNCH_ARGUMENTS`, notes which of them the
caller gave (:func:`given_arguments`) and asks :func:`node_parameters` and
:func:`ros_arguments` what to hand the node. The rule: **only the arguments you give are
passed**, after the params file, so a params file is never overridden by an argument you did
not give (launch and rcl: the last definition of a parameter wins).

Pure Python (the standard library and :mod:`yolact_ros.ros.params`): no rclpy and no launch
import, so it is tested without a ROS runtime.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..interfaces.names import NAMESPACE
from .names import NODE_NAME
from .params import PARAMS, validate_value

__all__ = [
    "LaunchArgument",
    "LaunchArgumentError",
    "LAUNCH_ARGUMENTS",
    "LAUNCH_ARGUMENT_NAMES",
    "BUILTIN_PARAMS",
    "LOG_LEVELS",
    "NODE_NAME",
    "given_arguments",
    "image_remappings",
    "node_exit_failure",
    "node_parameters",
    "ros_arguments",
]

#: Parameters every rclpy node declares itself (not in :data:`yolact_ros.ros.params.PARAMS`).
BUILTIN_PARAMS: dict[str, str] = {"use_sim_time": "bool"}

#: Severities rcl accepts for ``--log-level`` (``warning`` is taken as ``warn``: rcl refuses it).
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")

_LEVEL_ALIASES = {"warning": "warn"}
_TRUE = ("true", "1")
_FALSE = ("false", "0")


class LaunchArgumentError(ValueError):
    """A launch argument with a value the node cannot use; the message is one line."""


@dataclass(frozen=True)
class LaunchArgument:
    """One launch argument.

    ``role``: ``launch`` = used by the launch file itself and always has a value (its default
    when not given); ``parameter`` = the node parameter of the same name, passed only when
    given; ``ros_argument`` = a ROS command-line argument of the node, passed only when given.
    ``default`` is the declared default (``None``: the launch file supplies it). For
    ``parameter``/``ros_argument`` arguments it is never used: not given means not passed."""

    name: str
    default: str | None
    description: str
    role: str = "parameter"


LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument(
        "params_file",
        None,
        "Parameter file, loaded first (default: the installed share/yolact_ros/config/yolact.yaml); '' = none.",
        role="launch",
    ),
    LaunchArgument("namespace", NAMESPACE.lstrip("/"), "Namespace of the node and its outputs.", role="launch"),
    LaunchArgument(
        "image",
        "/camera/image_raw",
        "Input image topic (raw), remapped from `image`; the compressed input is `<image>/compressed`. "
        "Single-camera mode.",
        role="launch",
    ),
    LaunchArgument(
        "cameras",
        "",
        "Cameras served by one node and one model, as a YAML list, e.g. \"[front, left, 'right:compressed']\"; "
        "their inputs are `<namespace>/<camera>/image` unless camera_images maps them. Not given: the "
        "params file's value (one camera).",
    ),
    LaunchArgument(
        "camera_images",
        "{}",
        'Input topic per camera, as a YAML map, e.g. "{front: /cam_front/image_raw, left: /cam_left/image_raw}" '
        "(the compressed input is `<topic>/compressed`).",
        role="launch",
    ),
    LaunchArgument(
        "weights", "", "Path to the .pth weights file. Not given: the params file's value (the node needs one)."
    ),
    LaunchArgument(
        "config", "", "Model config name; '' = from the checkpoint / file name. Not given: the params file's value."
    ),
    LaunchArgument("device", "", "auto | cpu | cuda | cuda:N. Not given: the params file's value."),
    LaunchArgument("image_transport", "", "raw | compressed. Not given: the params file's value."),
    LaunchArgument(
        "autostart",
        "",
        "true: configure and activate at start; false: wait for lifecycle transitions. "
        "Not given: the params file's value.",
    ),
    LaunchArgument("use_sim_time", "", "true | false: use /clock. Not given: the params file's value (false)."),
    LaunchArgument(
        "log_level", "", "Node log level: debug | info | warn | error | fatal. Not given: info.", role="ros_argument"
    ),
)

LAUNCH_ARGUMENT_NAMES = tuple(a.name for a in LAUNCH_ARGUMENTS)
_BY_NAME = {a.name: a for a in LAUNCH_ARGUMENTS}
_PARAM_KINDS = {**{p.name: p.kind for p in PARAMS}, **BUILTIN_PARAMS}
_PARAM_NAMES = frozenset(p.name for p in PARAMS)

for _a in LAUNCH_ARGUMENTS:  # the table must agree with the node's parameters
    if _a.role == "parameter" and _PARAM_KINDS.get(_a.name) not in ("str", "bool", "int", "float", "str_list"):
        raise AssertionError(f"launch argument {_a.name!r}: no node parameter of that name")
del _a


def given_arguments(launch_configurations: Mapping[str, Any]) -> dict[str, str]:
    """The declared launch arguments among ``launch_configurations``, as strings.

    Called by the launch file before its declarations apply their defaults, so what is set
    then was given: on the command line or by an including launch file (its
    ``launch_arguments`` or launch configurations of the same name)."""
    return {name: str(launch_configurations[name]) for name in LAUNCH_ARGUMENT_NAMES if name in launch_configurations}


def _convert(name: str, text: str) -> Any:
    kind = _PARAM_KINDS[name]
    if kind == "str":
        value: Any = text  # as given: '' stays '' (never YAML null)
    elif kind == "str_list":
        value = _yaml(name, text, list, "a YAML list such as [front, left]")
        value = [str(v) for v in value] or [""]  # [""] = empty (launch_ros cannot type an empty list)
    elif kind == "bool":
        low = text.strip().lower()
        if low not in _TRUE + _FALSE:
            raise LaunchArgumentError(f"launch argument {name}:={text!r}: expected true or false")
        value = low in _TRUE
    else:
        try:
            value = int(text) if kind == "int" else float(text)
        except ValueError:
            raise LaunchArgumentError(f"launch argument {name}:={text!r}: expected a number ({kind})") from None
    if name in _PARAM_NAMES:
        reason = validate_value(name, value)
        if reason:
            raise LaunchArgumentError(f"launch argument {name}:={text!r}: {reason}")
    return value


def _yaml(name: str, text: str, kind: type, expected: str):
    import yaml

    try:
        value = yaml.safe_load(text) if text.strip() else kind()
    except yaml.YAMLError:
        value = None
    if not isinstance(value, kind):
        raise LaunchArgumentError(f"launch argument {name}:={text!r}: expected {expected}")
    return value


def image_remappings(image: str, cameras_text: str | None, camera_images_text: str) -> list[tuple[str, str]]:
    """The node's input remappings: ``image`` (and ``image/compressed``) -> the ``image``
    argument; with cameras, ``<camera>/image`` (and its compressed topic) -> the topic
    ``camera_images`` names for it (cameras it does not name keep ``<namespace>/<camera>/image``).
    Raises LaunchArgumentError for a map naming a camera that is not in ``cameras`` (when given)."""
    out = [("image", image), ("image/compressed", image + "/compressed")]
    topics = _yaml("camera_images", camera_images_text, dict, "a YAML map such as {front: /cam_front/image_raw}")
    if cameras_text is not None and topics:
        from .params import parse_cameras

        names = {name for name, _ in parse_cameras(_convert("cameras", cameras_text))}
        unknown = sorted(set(map(str, topics)) - names)
        if unknown:
            raise LaunchArgumentError(
                f"launch argument camera_images: camera(s) {', '.join(unknown)} not in cameras:={cameras_text}"
            )
    for camera, topic in topics.items():
        name = str(camera).strip().strip("/")
        out += [(f"{name}/image", str(topic)), (f"{name}/image/compressed", f"{topic}/compressed")]
    return out


def _check_names(given: Mapping[str, str]) -> None:
    unknown = sorted(set(given) - set(LAUNCH_ARGUMENT_NAMES))
    if unknown:
        raise LaunchArgumentError(
            f"unknown launch argument(s) {', '.join(unknown)}; known: {', '.join(LAUNCH_ARGUMENT_NAMES)}"
        )


def node_parameters(given: Mapping[str, str], params_file: str) -> list:
    """The node's ``parameters=`` list: ``[params_file, {given overrides}]``.

    ``params_file`` is the resolved ``params_file`` argument (given or default); ``''`` means
    no file. Overrides hold only the given ``parameter`` arguments, converted to the
    parameter's type (``str`` as is, ``bool`` from true/false); the dict is left out when
    there are none. Raises :class:`LaunchArgumentError` (one line) for a value the node would
    refuse and for a params file that does not exist (launch_ros would only warn and skip it).
    """
    _check_names(given)
    parameters: list = []
    if params_file:
        path = os.path.abspath(params_file)
        if not os.path.isfile(path):
            raise LaunchArgumentError(f"launch argument params_file:={params_file!r}: no such file")
        parameters.append(path)
    overrides = {
        name: _convert(name, given[name])
        for name in LAUNCH_ARGUMENT_NAMES
        if name in given and _BY_NAME[name].role == "parameter"
    }
    if overrides:
        parameters.append(overrides)
    return parameters


def ros_arguments(given: Mapping[str, str]) -> list[str]:
    """The node's ``ros_arguments=`` list: ``['--log-level', level]`` when ``log_level`` is given."""
    _check_names(given)
    if "log_level" not in given:
        return []
    text = given["log_level"]
    level = text.strip().lower()
    level = _LEVEL_ALIASES.get(level, level)
    if level not in LOG_LEVELS:
        raise LaunchArgumentError(f"launch argument log_level:={text!r}: expected one of {' | '.join(LOG_LEVELS)}")
    return ["--log-level", level]


def node_exit_failure(returncode: int | None) -> str | None:
    """What the launch file does when ``yolact_node`` exits: None for exit code 0 (SIGINT/SIGTERM
    or the shutdown transition; launch then shuts down), else the one-line reason it raises,
    which makes ``ros2 launch`` report it and exit with a non-zero code."""
    if returncode == 0:
        return None
    if returncode is None:
        return f"{NODE_NAME} ended without an exit code"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"{NODE_NAME} was killed by {name}"
    return f"{NODE_NAME} exited with code {returncode} (its reason is in the node's log above)"
