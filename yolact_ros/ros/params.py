"""The node's parameters: one table of names, defaults, types, ranges and descriptions.

``config/yolact.yaml``, the launch file and the node all use the names defined here; the
static launch test checks that they agree. Default values of the inference settings come from
:mod:`yolact_ros.inference.defaults` (defined once for the Segmenter, the CLI, the benchmarks
and this table). Pure data plus validation: no rclpy or torch import, so it can be read
without a ROS runtime.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..inference import defaults

__all__ = ["ParamSpec", "PARAMS", "PARAM_NAMES", "RUNTIME_PARAMS", "LOAD_PARAMS", "validate_value"]


@dataclass(frozen=True)
class ParamSpec:
    """One parameter. ``kind`` is bool/int/float/str/str_list; ``runtime`` parameters may
    change while the node is configured or active, the others only while unconfigured
    (they take effect at the next configure)."""

    name: str
    default: Any
    kind: str
    description: str
    runtime: bool = False
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    constraints: str = ""


_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

PARAMS: tuple[ParamSpec, ...] = (
    # --- model (applied at configure) -------------------------------------------------------
    ParamSpec("weights", "", "str",
              "Path to the .pth weights (official YOLACT/YOLACT++ file or one written by yolact_ros). Required.",
              constraints="an existing file"),
    ParamSpec("config", "", "str",
              "Model config name (e.g. yolact_base, yolact_plus_resnet50); empty = read it from the "
              "checkpoint, else infer it from the weights file name as the original eval does."),
    ParamSpec("device", defaults.DEVICE, "str",
              "Inference device: auto (CUDA if available, else CPU), cpu, cuda or cuda:N.",
              constraints="auto | cpu | cuda | cuda:N"),
    ParamSpec("half", False, "bool", "Run the network in float16 (CUDA only; ignored with a warning on CPU)."),
    ParamSpec("num_threads", 0, "int", "CPU threads for PyTorch; 0 = PyTorch's default.", min=0, max=256),
    ParamSpec("warmup", True, "bool", "Run one dummy frame at configure so the first real frame is not slow."),
    # --- input (applied at activate) ----------------------------------------------------------
    ParamSpec("image_transport", "raw", "str",
              "Input: raw subscribes to `image` (sensor_msgs/Image), compressed to `image/compressed` "
              "(sensor_msgs/CompressedImage, JPEG/PNG).", choices=("raw", "compressed")),
    # --- detection (change at run time) -------------------------------------------------------
    ParamSpec("score_threshold", defaults.SCORE_THRESHOLD, "float", "Publish instances whose score is above this.",
              runtime=True, min=0.0, max=1.0),
    ParamSpec("top_k", defaults.TOP_K, "int", "At most this many instances per frame (highest scores first).",
              runtime=True, min=1, max=defaults.TOP_K_MAX),
    ParamSpec("nms_threshold", 0.0, "float",
              "Box IoU above which NMS suppresses the lower-scored detection; 0 = the model config's value.",
              runtime=True, min=0.0, max=1.0),
    ParamSpec("classes", [], "str_list",
              "Class names to keep (e.g. [person, car]); empty = all classes.", runtime=True),
    # --- outputs (change at run time) -----------------------------------------------------------
    ParamSpec("publish_masks", True, "bool", "Publish `masks` (InstanceMaskArray).", runtime=True),
    ParamSpec("publish_visualization", True, "bool",
              "Publish `visualization` (bgr8 overlay); it is only drawn while someone subscribes.",
              runtime=True),
    ParamSpec("visualization.mask_alpha", defaults.MASK_ALPHA, "float", "Opacity of the mask overlay.",
              runtime=True, min=0.0, max=1.0),
    ParamSpec("visualization.show_boxes", True, "bool", "Draw bounding boxes.", runtime=True),
    ParamSpec("visualization.show_labels", True, "bool", "Draw class names and scores.", runtime=True),
    ParamSpec("diagnostics_period", 1.0, "float", "Seconds between /diagnostics messages.",
              min=0.1, max=60.0),
    # --- lifecycle ------------------------------------------------------------------------------
    ParamSpec("autostart", True, "bool",
              "Configure and activate on start (a plain `ros2 run`/launch just works); false = wait for "
              "lifecycle transitions."),
)

PARAM_NAMES = tuple(p.name for p in PARAMS)
RUNTIME_PARAMS = frozenset(p.name for p in PARAMS if p.runtime)
LOAD_PARAMS = frozenset(p.name for p in PARAMS if not p.runtime)
_BY_NAME = {p.name: p for p in PARAMS}


def spec(name: str) -> ParamSpec:
    return _BY_NAME[name]


def validate_value(name: str, value: Any, class_names=None) -> str | None:
    """None if ``value`` is acceptable for parameter ``name``, else the reason it is not.

    Ranges are also enforced by rclpy from the descriptors; this adds the checks descriptors
    cannot express (device syntax, choices, class names)."""
    p = _BY_NAME.get(name)
    if p is None:
        return None
    if p.kind in ("int", "float") and (p.min is not None and value < p.min or p.max is not None and value > p.max):
        return f"{name} must be in [{p.min}, {p.max}], got {value}"
    if p.choices and value not in p.choices:
        return f"{name} must be one of {', '.join(p.choices)}, got {value!r}"
    if name == "device" and not _DEVICE_RE.match(str(value).strip().lower()):
        return f"device must be auto, cpu, cuda or cuda:N, got {value!r}"
    if name == "classes":
        values = [str(v) for v in value]
        if any(not v.strip() for v in values):
            return "classes must not contain empty names"
        if class_names is not None:
            unknown = [v for v in values if v not in class_names]
            if unknown:
                return f"unknown class name(s) {', '.join(map(repr, unknown))}; known: {', '.join(class_names)}"
    return None
