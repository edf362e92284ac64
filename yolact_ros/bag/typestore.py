"""The rosbags typestore of ``yolact bag``: ROS 2 Jazzy's types plus this package's and vision_msgs'.

Also the message factories the shared mapping (:mod:`yolact_ros.interfaces.fields`) builds
with: rosbags' dataclasses need every field, so :func:`factory` fills the ones not given
with the defaults a ROS message has (0, "", False, zero arrays, nested defaults).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype
from rosbags.typesys.store import Typestore

from ..interfaces.fields import MessageClasses
from ..interfaces.msg_files import message_files

__all__ = [
    "COMPRESSED_IMAGE",
    "IMAGE",
    "OUTPUT_TYPES",
    "bag_typestore",
    "factory",
    "header",
    "message_classes",
]

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"

#: output name (as the node's topics) -> message type
OUTPUT_TYPES = {
    "detections": "vision_msgs/msg/Detection2DArray",
    "masks": "yolact_ros/msg/InstanceMaskArray",
    "detections_3d": "vision_msgs/msg/Detection3DArray",
    "label_info": "vision_msgs/msg/LabelInfo",
}

#: Default values the .msg definitions give (``float64 w 1``) that rosbags' types do not carry,
#: for every type the outputs contain (test_bag compares the messages with rclpy's, field by field).
FIELD_DEFAULTS = {"geometry_msgs/msg/Quaternion": {"w": 1.0}}

_NUMERIC = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


@lru_cache(maxsize=1)
def bag_typestore() -> Typestore:
    """Jazzy's standard types + the shipped ``.msg`` definitions (one store per process)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for name, path in message_files().items():
        types.update(get_types_from_msg(path.read_text(), name))
    store.register(types)
    return store


def _default_maker(store: Typestore, desc) -> Callable[[], Any]:
    """A zero-argument callable making a fresh default value for one field description."""
    kind, arg = desc
    if kind == Nodetype.BASE:
        typ = arg[0]
        if typ == "string":
            return str
        if typ == "bool":
            return bool
        return float if typ.startswith("float") else int
    if kind == Nodetype.NAME:
        return factory(store, arg)
    sub, size = arg
    numeric = sub[0] == Nodetype.BASE and sub[1][0] in _NUMERIC
    if kind == Nodetype.ARRAY:
        if numeric:
            return lambda: np.zeros(size, _NUMERIC[sub[1][0]])
        item = _default_maker(store, sub)
        return lambda: [item() for _ in range(size)]
    if numeric:  # a sequence
        return lambda: np.zeros(0, _NUMERIC[sub[1][0]])
    return list


_FACTORIES: dict[tuple[int, str], Callable[..., Any]] = {}


def factory(store: Typestore, typename: str) -> Callable[..., Any]:
    """``make(**fields)`` -> a rosbags message of ``typename``, the fields not given at their
    defaults (made fresh per message: nested messages are never shared)."""
    key = (id(store), typename)
    made = _FACTORIES.get(key)
    if made is not None:
        return made
    cls = store.types[typename]
    _, fields = store.fielddefs[typename]
    defaults: list[tuple[str, Callable[[], Any]]] = []
    _FACTORIES[key] = make = _make_factory(cls, defaults)
    given = FIELD_DEFAULTS.get(typename, {})
    defaults.extend(
        (name, _constant(given[name]) if name in given else _default_maker(store, desc)) for name, desc in fields
    )
    return make


def _constant(value) -> Callable[[], Any]:
    return lambda: value


def _make_factory(cls, defaults: list[tuple[str, Callable[[], Any]]]) -> Callable[..., Any]:
    def make(**given):
        for name, default in defaults:
            if name not in given:
                given[name] = default()
        return cls(**given)

    return make


def _uint8(arr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(arr, dtype=np.uint8).reshape(-1)


def message_classes(store: Typestore | None = None) -> MessageClasses:
    """The mapping's message constructors as rosbags factories of ``store`` (default
    :func:`bag_typestore`)."""
    store = store or bag_typestore()

    def f(name: str) -> Callable[..., Any]:
        return factory(store, name)

    return MessageClasses(
        Detection2DArray=f("vision_msgs/msg/Detection2DArray"),
        Detection2D=f("vision_msgs/msg/Detection2D"),
        BoundingBox2D=f("vision_msgs/msg/BoundingBox2D"),
        ObjectHypothesisWithPose=f("vision_msgs/msg/ObjectHypothesisWithPose"),
        Detection3DArray=f("vision_msgs/msg/Detection3DArray"),
        Detection3D=f("vision_msgs/msg/Detection3D"),
        InstanceMaskArray=f("yolact_ros/msg/InstanceMaskArray"),
        InstanceMask=f("yolact_ros/msg/InstanceMask"),
        RegionOfInterest=f("sensor_msgs/msg/RegionOfInterest"),
        Image=f(IMAGE),
        LabelInfo=f("vision_msgs/msg/LabelInfo"),
        VisionClass=f("vision_msgs/msg/VisionClass"),
        uint8_array=_uint8,
    )


def header(stamp_ns: int, frame_id: str, store: Typestore | None = None):
    """A std_msgs/Header of this store (stamp from nanoseconds)."""
    store = store or bag_typestore()
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    time = factory(store, "builtin_interfaces/msg/Time")(sec=sec, nanosec=nanosec)
    return factory(store, "std_msgs/msg/Header")(stamp=time, frame_id=frame_id)
