"""Custom model configs as YAML files (no Python editing).

A file starts from an official config and overrides what users change::

    base: yolact_resnet50          # any name in OFFICIAL_CONFIGS (default yolact_resnet50)
    name: my_robot_parts           # default: the file name without extension
    class_names: [gear, bolt, nut] # or: num_classes: 3 (counts foreground classes only)
    max_size: 400                  # anchors follow unless backbone.pred_scales is given
    fpn_num_features: 128
    nms_thresh: 0.5                # any other top-level YolactConfig field
    backbone:
      kind: mobilenetv2            # resnet | darknet | mobilenetv2 (new kind -> its defaults)
      pred_scales: [[24], [48], [96], [192], [384]]
      pred_aspect_ratios: [1, 0.5, 2]
    train:                         # any TrainConfig field
      lr: 0.001
      max_iter: 20000
      lr_steps: [12000, 16000]

Unknown keys are errors (with the list of valid ones), so a typo never silently
does nothing.  ``class_names`` may be omitted: ``yolact train`` then takes the names
from the training JSON.  Only this module reads YAML; the model layer receives a
plain :class:`~yolact_ros.model.config.YolactConfig`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..model.config import OFFICIAL_CONFIGS, BackboneConfig, TrainConfig, YolactConfig, get_config
from ..model.mobilenet import DEFAULT_STAGE_ENDS, IMAGENET_FILE

DEFAULT_BASE = "yolact_resnet50"

#: What a backbone kind starts from when a file switches to it.
BACKBONE_DEFAULTS: dict[str, dict[str, Any]] = {
    "resnet": dict(
        layers=(3, 4, 6, 3),
        selected_layers=(1, 2, 3),
        dcn_layers=(),
        dcn_interval=1,
        input_transform="mean_std",
        pretrained_init_file="resnet50-19c8e357.pth",
    ),
    "darknet": dict(
        layers=(1, 2, 8, 8, 4),
        selected_layers=(2, 3, 4),
        dcn_layers=(),
        dcn_interval=1,
        input_transform="unit",
        pretrained_init_file="darknet53.pth",
    ),
    "mobilenetv2": dict(
        layers=DEFAULT_STAGE_ENDS,
        selected_layers=(1, 2, 3),
        dcn_layers=(),
        dcn_interval=1,
        input_transform="mean_std",
        pretrained_init_file=IMAGENET_FILE,
    ),
}


class ConfigFileError(ValueError):
    """A config file is missing, not YAML, or has invalid content."""


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _tuples(value):
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


def _check_keys(section: str, data: Mapping, allowed, source: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigFileError(
            f"{source}: unknown key(s) {unknown} in {section}; valid keys: {', '.join(sorted(allowed))}"
        )


def _coerce(section: str, name: str, value, default, source: str):
    """Value from YAML -> the type of the dataclass default (lists -> tuples, ints -> floats)."""
    value = _tuples(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigFileError(f"{source}: {section}.{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigFileError(f"{source}: {section}.{name} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigFileError(f"{source}: {section}.{name} must be an integer, got {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigFileError(f"{source}: {section}.{name} must be a string, got {value!r}")
        return value
    if isinstance(default, tuple) and not isinstance(value, tuple):
        raise ConfigFileError(f"{source}: {section}.{name} must be a list, got {value!r}")
    return value


def config_from_mapping(data: Mapping, source: str = "config", default_name: str = "custom") -> YolactConfig:
    """Build a :class:`YolactConfig` from an already parsed mapping (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise ConfigFileError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    data = dict(data)
    top_fields = _fields(YolactConfig)
    allowed = (set(top_fields) - {"backbone", "train"}) | {"base", "num_classes", "backbone", "train"}
    _check_keys("the top level", data, allowed, source)
    base_name = data.pop("base", DEFAULT_BASE)
    try:
        base = get_config(str(base_name))
    except KeyError:
        raise ConfigFileError(
            f"{source}: unknown base {base_name!r}; official configs: {', '.join(OFFICIAL_CONFIGS)}"
        ) from None

    changes: dict[str, Any] = {"name": str(data.pop("name", default_name)), "official_checkpoint": ""}
    if "class_names" in data and "num_classes" in data:
        raise ConfigFileError(f"{source}: give class_names or num_classes, not both")
    if "class_names" in data:
        names = data.pop("class_names")
        if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigFileError(f"{source}: class_names must be a non-empty list of strings")
        if len(set(names)) != len(names):
            raise ConfigFileError(f"{source}: duplicate entries in class_names")
        changes["class_names"] = tuple(names)
    if "num_classes" in data:
        n = data.pop("num_classes")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigFileError(f"{source}: num_classes (foreground classes) must be a positive integer, got {n!r}")
        changes["class_names"] = tuple(f"class_{i}" for i in range(1, n + 1))

    backbone_data = data.pop("backbone", None) or {}
    train_data = data.pop("train", None) or {}
    for key, value in data.items():
        changes[key] = _coerce("", key, value, getattr(base, key), source)
    max_size = changes.get("max_size", base.max_size)
    if not isinstance(max_size, int) or max_size < 32:
        raise ConfigFileError(f"{source}: max_size must be an integer >= 32, got {max_size!r}")

    changes["backbone"] = _backbone(base, backbone_data, max_size, source)
    if not isinstance(train_data, Mapping):
        raise ConfigFileError(f"{source}: train must be a mapping")
    _check_keys("train", train_data, _fields(TrainConfig), source)
    train_changes = {k: _coerce("train", k, v, getattr(base.train, k), source) for k, v in train_data.items()}
    changes["train"] = dataclasses.replace(base.train, **train_changes)
    cfg = base.replace(**changes)
    validate(cfg, source)
    return cfg


def _backbone(base: YolactConfig, data: Mapping, max_size: int, source: str) -> BackboneConfig:
    if not isinstance(data, Mapping):
        raise ConfigFileError(f"{source}: backbone must be a mapping")
    _check_keys("backbone", data, _fields(BackboneConfig), source)
    data = dict(data)
    bb = base.backbone
    kind = data.get("kind", bb.kind)
    if kind not in BACKBONE_DEFAULTS:
        raise ConfigFileError(f"{source}: backbone.kind must be one of {', '.join(BACKBONE_DEFAULTS)}, got {kind!r}")
    if kind != bb.kind:
        bb = dataclasses.replace(bb, kind=kind, **BACKBONE_DEFAULTS[kind])
    changes = {k: _coerce("backbone", k, v, getattr(bb, k), source) for k, v in data.items()}
    if "pred_scales" not in changes and max_size != base.max_size:
        # anchors are in input pixels: keep them proportional to the input, as im400/im700 do
        f = max_size / base.max_size
        changes["pred_scales"] = tuple(tuple(float(s) * f for s in level) for level in bb.pred_scales)
    if "pred_scales" in changes:
        changes["pred_scales"] = tuple(
            tuple(float(s) for s in (level if isinstance(level, tuple) else (level,)))
            for level in changes["pred_scales"]
        )
    if "pred_aspect_ratios" in changes:
        changes["pred_aspect_ratios"] = tuple(float(r) for r in changes["pred_aspect_ratios"])
    return dataclasses.replace(bb, **changes)


def validate(cfg: YolactConfig, source: str = "config") -> None:
    """Consistency checks a model build would otherwise fail on obscurely."""
    bb = cfg.backbone
    levels = len(bb.selected_layers) + cfg.fpn_num_downsample
    if len(bb.pred_scales) != levels:
        raise ConfigFileError(
            f"{source}: backbone.pred_scales has {len(bb.pred_scales)} levels but the FPN makes {levels} "
            f"(len(selected_layers) + fpn_num_downsample)"
        )
    if len({len(s) for s in bb.pred_scales}) != 1 or any(s <= 0 for level in bb.pred_scales for s in level):
        raise ConfigFileError(f"{source}: every pred_scales level needs the same number of positive scales")
    if not bb.pred_aspect_ratios or any(r <= 0 for r in bb.pred_aspect_ratios):
        raise ConfigFileError(f"{source}: pred_aspect_ratios must be positive numbers")
    if cfg.fpn_num_features < 1 or cfg.num_prototypes < 1:
        raise ConfigFileError(f"{source}: fpn_num_features and num_prototypes must be positive")
    if not 0 <= cfg.train.negative_iou_threshold <= cfg.train.positive_iou_threshold <= 1:
        raise ConfigFileError(f"{source}: need 0 <= train.negative_iou_threshold <= train.positive_iou_threshold <= 1")
    if bb.input_transform not in ("mean_std", "unit"):
        raise ConfigFileError(f"{source}: backbone.input_transform must be mean_std or unit")
    if list(cfg.train.lr_steps) != sorted(cfg.train.lr_steps):
        raise ConfigFileError(f"{source}: train.lr_steps must be increasing")
    try:
        import torch

        from ..model.yolact import Yolact

        with torch.device("meta"):
            model = Yolact(cfg)
        if max(bb.selected_layers) >= len(model.backbone.channels) or min(bb.selected_layers) < 0:
            raise ConfigFileError(
                f"{source}: backbone.selected_layers {list(bb.selected_layers)} out of range for "
                f"{len(model.backbone.channels)} stages"
            )
    except ConfigFileError:
        raise
    except (ValueError, TypeError, IndexError) as exc:
        raise ConfigFileError(f"{source}: the model cannot be built from this config ({exc})") from None


def load_config(path: "str | Path") -> YolactConfig:
    """Read a YAML (or JSON) config file; raises :class:`ConfigFileError` with the reason."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigFileError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        data = {}
    return config_from_mapping(data, source=str(path), default_name=path.stem)


def resolve_config(value: "str | Path | YolactConfig") -> YolactConfig:
    """``--config``: a :class:`YolactConfig`, an official name, or a .yaml/.yml/.json file."""
    if isinstance(value, YolactConfig):
        return value
    text = str(value)
    if text.lower().endswith((".yaml", ".yml", ".json")) or Path(text).is_file():
        return load_config(text)
    try:
        return get_config(text)
    except KeyError as exc:
        raise ConfigFileError(str(exc.args[0])) from None
