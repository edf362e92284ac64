"""The one check of a parameter value, against the table of :mod:`yolact_ros.ros.param_table`.

:func:`check` validates a value wherever it comes from: a params file, ``-p`` on the command
line, a launch argument or ``ros2 param set``. rcl drops a ``-p`` override whose type differs
from the params file's value before the node can see it; :func:`command_line_overrides` reads
the raw ``--ros-args`` so the node checks what was typed. The table's names are re-exported
here (the launch rules, the node and the tests read them from this module). No rclpy or torch
import, so it can be read without a ROS runtime.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

from .param_table import NMS_UNSET, PARAMS, SECTIONS, ParamSpec, Section

__all__ = [
    "NMS_UNSET",
    "ParamSpec",
    "Section",
    "SECTIONS",
    "PARAMS",
    "PARAM_NAMES",
    "RUNTIME_PARAMS",
    "LOAD_PARAMS",
    "check",
    "validate_value",
    "accepted",
    "command_line_overrides",
    "parse_cameras",
    "segmenter_nms_threshold",
    "spec",
]


def segmenter_nms_threshold(value: float) -> float | None:
    """The Segmenter's ``nms_threshold`` for the parameter's ``value``: None (the model
    config's) for :data:`NMS_UNSET`."""
    return float(value) if value > NMS_UNSET else None


_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

PARAM_NAMES = tuple(p.name for p in PARAMS)
RUNTIME_PARAMS = frozenset(p.name for p in PARAMS if p.runtime)
LOAD_PARAMS = frozenset(p.name for p in PARAMS if not p.runtime)
_BY_NAME = {p.name: p for p in PARAMS}


def spec(name: str) -> ParamSpec:
    return _BY_NAME[name]


_KIND_TEXT = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "str_list": "a list of strings",
}


def accepted(p: ParamSpec) -> str:
    """What parameter ``p`` accepts, in words (for error messages)."""
    if p.choices:
        return "one of " + ", ".join(p.choices)
    if p.constraints:
        return p.constraints
    text = _KIND_TEXT[p.kind]
    if p.min is not None:
        assert p.max is not None  # every ranged parameter in PARAMS has both bounds
        lo, hi = (int(p.min), int(p.max)) if p.kind == "int" else (p.min, p.max)
        text += f" in [{lo}, {hi}]"
    return text


def _typed(p: ParamSpec, value: Any) -> tuple[Any, bool]:
    """``value`` as parameter ``p``'s type, and whether that was possible. Widening only:
    an integer is taken for a float, an empty list of any type for a string list."""
    if p.kind == "bool":
        return value, isinstance(value, bool)
    if p.kind == "int":
        return value, isinstance(value, int) and not isinstance(value, bool)
    if p.kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), True
        return value, False
    if p.kind == "str":
        return value, isinstance(value, str)
    # str_list: unset, [] (typed as a bool/int/... array by YAML and ros2cli) and [""] = all
    if value is None:
        return [], True
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v for v in value if v.strip()], True
    if isinstance(value, (list, tuple)) and len(value) == 0:
        return [], True
    return value, False


def check(name: str, value: Any, class_names: Sequence[str] | None = None) -> tuple[Any, str | None]:
    """``(value, None)`` with ``value`` in the parameter's type, or ``(value, reason)``: one
    line naming the parameter, the value and what is accepted. Unknown names pass unchecked."""
    p = _BY_NAME.get(name)
    if p is None:
        return value, None
    typed, ok = _typed(p, value)

    def refused(detail: str = "") -> tuple[Any, str]:
        return value, f"parameter {name}: {value!r} is not accepted ({detail or 'expected ' + accepted(p)})"

    if not ok:
        return refused()
    if p.kind in ("int", "float") and (p.min is not None and typed < p.min or p.max is not None and typed > p.max):
        return refused()
    if p.choices and typed not in p.choices:
        return refused()
    if name == "device" and not _DEVICE_RE.match(typed.strip().lower()):
        return refused()
    if name == "cameras":
        reason = _cameras_problem(typed)
        if reason:
            return refused(reason)
    if name == "publish_annotations" and typed:
        from .annotations import FoxgloveMsgsMissing, rclpy_classes

        try:
            rclpy_classes()
        except FoxgloveMsgsMissing as exc:
            return value, str(exc)
    if name == "classes" and class_names is not None:
        unknown = [v for v in typed if v not in class_names]
        if unknown:
            return refused(
                f"unknown class name(s) {', '.join(map(repr, unknown))}; this model knows: {', '.join(class_names)}"
            )
    return typed, None


_CAMERA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
_TRANSPORTS = ("raw", "compressed")


def parse_cameras(entries: Sequence[str]) -> list[tuple[str, str | None]]:
    """``cameras`` entries -> ``[(name, transport or None)]`` (``"left:compressed"`` ->
    ``("left", "compressed")``; None = the ``image_transport`` parameter's). Assumes
    :func:`check` accepted them."""
    out = []
    for entry in entries:
        name, _, transport = entry.strip().partition(":")
        out.append((name.strip().strip("/"), transport.strip() or None))
    return out


def _cameras_problem(entries: list[str]) -> str | None:
    seen = set()
    for entry in entries:
        name, sep, transport = entry.strip().partition(":")
        name = name.strip().strip("/")
        if not _CAMERA_RE.match(name):
            return f"camera name {name!r}: use letters, digits, _ and / (a relative topic name)"
        if sep and transport.strip() not in _TRANSPORTS:
            return f"camera {name!r}: transport must be raw or compressed, got {transport.strip()!r}"
        if name in seen:
            return f"camera {name!r} is listed twice"
        seen.add(name)
    return None


def validate_value(name: str, value: Any, class_names: Sequence[str] | None = None) -> str | None:
    """None if ``value`` is acceptable for parameter ``name``, else the reason (see :func:`check`)."""
    return check(name, value, class_names)[1]


def command_line_overrides(argv: Sequence[str], node_name: str) -> dict[str, Any]:
    """The ``-p name:=value`` / ``--param`` overrides in ``argv``'s ``--ros-args`` sections that
    apply to ``node_name`` (no node prefix, or ``node_name:``), the value parsed as YAML as rcl
    does; the last one wins. rcl silently keeps a params file's value when a ``-p`` value has
    another type; comparing with these is how the node notices."""
    out: dict[str, Any] = {}
    in_ros_args = False
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        i += 1
        if arg == "--ros-args":
            in_ros_args = True
            continue
        if arg == "--":
            in_ros_args = False
            continue
        if not in_ros_args or arg not in ("-p", "--param") or i >= len(items):
            continue
        rule = items[i]
        i += 1
        if ":=" not in rule:
            continue
        target, text = rule.split(":=", 1)
        node, _, name = target.rpartition(":")
        if node and node != node_name:
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if value is None:  # '' stays a string; ~ / null set nothing here
            if text.strip():
                continue
            value = ""
        out[name] = value
    return out
