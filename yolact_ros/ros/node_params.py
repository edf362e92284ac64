"""The parameter table of :mod:`yolact_ros.ros.params` bound to an rclpy node: declared with
descriptors (type, range, choices, when it may change), read back, and a change checked.

Every value goes through :func:`params.check`, whatever its source: the command line's ``-p``
(read raw, since rcl drops an override whose type differs from the params file's), the params
file, or a later ``ros2 param set``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter

from .params import LOAD_PARAMS, PARAMS, ParamSpec, check, command_line_overrides, spec

__all__ = ["changeable_in", "change_refusal", "declare_all", "descriptor", "read"]

_TYPES = {
    "bool": ParameterType.PARAMETER_BOOL,
    "int": ParameterType.PARAMETER_INTEGER,
    "float": ParameterType.PARAMETER_DOUBLE,
    "str": ParameterType.PARAMETER_STRING,
    "str_list": ParameterType.PARAMETER_STRING_ARRAY,
}
# states in which no load-time parameter is in use
_UNLOADED = ("unconfigured", "finalized", "")


def changeable_in(p: ParamSpec) -> str:
    """The states in which load-time parameter ``p`` may change."""
    return "unconfigured or inactive" if p.read_at == "activate" else "unconfigured"


def descriptor(p: ParamSpec) -> ParameterDescriptor:
    """What ``ros2 param describe`` shows: type, description, choices, range, when it may change.

    A string list is declared with dynamic typing: an empty list has no type in YAML or ros2cli
    (``ros2 param set ... "[]"`` sends a bool array), so :func:`params.check` types it instead."""
    desc = ParameterDescriptor(name=p.name, type=_TYPES[p.kind], description=p.description)
    extra = []
    if p.choices:
        extra.append("one of: " + ", ".join(p.choices))
    if p.constraints:
        extra.append(p.constraints)
    if not p.runtime:
        extra.append(f"read at {p.read_at}; change it while the node is {changeable_in(p)}")
    desc.additional_constraints = "; ".join(extra)
    if p.min is not None:
        assert p.max is not None  # every ranged parameter in PARAMS has both bounds
        if p.kind == "float":
            desc.floating_point_range = [FloatingPointRange(from_value=float(p.min), to_value=float(p.max), step=0.0)]
        elif p.kind == "int":
            desc.integer_range = [IntegerRange(from_value=int(p.min), to_value=int(p.max), step=1)]
    if p.kind == "str_list":
        desc.type = ParameterType.PARAMETER_NOT_SET
        desc.dynamic_typing = True
    return desc


def declare_all(node, argv: Sequence[str]) -> list[str]:
    """Declare every parameter on ``node`` with its start value checked; the errors, one line each.

    The start value is what the command line's ``-p`` says, else the params file's, else the
    default. An invalid value is replaced by the default so the node still comes up and
    answers; the caller reports the errors (configure fails with them)."""
    typed = command_line_overrides(argv, node.get_name())
    overrides = getattr(node, "_parameter_overrides", {})
    errors = []
    for p in PARAMS:
        if p.name in typed:
            value, source = typed[p.name], "command line"
        elif p.name in overrides and overrides[p.name].type_ != Parameter.Type.NOT_SET:
            value, source = overrides[p.name].value, "parameter file"
        else:
            value, source = p.default, ""
        value, reason = check(p.name, value)
        if reason:
            errors.append(f"{reason} [from the {source}]" if source else reason)
            value = p.default
        if p.kind == "str_list":
            value = list(value) or None  # unset = empty = all
        node.declare_parameter(p.name, value, descriptor(p), ignore_override=True)
    return errors


def read(node, name: str) -> Any:
    """The parameter's current value; a string list normalised (unset, [] or [""]: [])."""
    try:
        value = node.get_parameter(name).value
    except ParameterUninitializedException:  # a list declared by type, never set
        value = None
    if spec(name).kind == "str_list":
        return check(name, value)[0]
    return value


def change_refusal(
    name: str, value: Any, state: str, class_names: Sequence[str] | None = None, max_detections: int | None = None
) -> tuple[Any, str | None]:
    """A requested change checked against the node's state and model: ``(value, None)`` with
    the value as the node uses it, or ``(value, reason)`` when it is refused."""
    if name in LOAD_PARAMS and state not in _UNLOADED:
        p = spec(name)
        if not (p.read_at == "activate" and state == "inactive"):
            return value, (
                f"{name} is read at {p.read_at}; change it while the node is {changeable_in(p)} "
                f"(current state: {state})"
            )
    value, reason = check(name, value, class_names)
    if reason is None and name == "top_k" and max_detections is not None and value > max_detections:
        reason = f"top_k must be <= {max_detections} for this model, got {value}"
    return value, reason
