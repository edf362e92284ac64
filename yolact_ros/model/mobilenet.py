"""MobileNetV2 backbone (as YolactEdge uses it) built from torchvision's layers.

The trunk is ``torchvision.models.mobilenet_v2().features`` cut into stages.
``BackboneConfig.layers`` gives, for each stage, the index one past its last
torchvision feature block; the default ``(4, 7, 14, 18)`` yields the
stride-4/8/16/32 outputs with 24/32/96/320 channels, so ``selected_layers =
(1, 2, 3)`` feeds C3, C4, C5 to the FPN (the final 1x1 conv to 1280 channels,
block 18, is only used when a stage ends at 19).

Parameter names are ``layers.<stage>.<j>.*`` where ``j`` counts blocks inside the
stage; :func:`torchvision_key_map` maps torchvision's ``features.<k>.*`` names
onto them so ImageNet weights (``mobilenet_v2-b0353104.pth``) load directly.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .config import BackboneConfig

DEFAULT_STAGE_ENDS = (4, 7, 14, 18)
IMAGENET_FILE = "mobilenet_v2-b0353104.pth"
_NUM_FEATURE_BLOCKS = 19


def _stage_bounds(stage_ends) -> list[tuple[int, int]]:
    ends = tuple(int(e) for e in stage_ends)
    if not ends or any(b <= a for a, b in zip((0,) + ends, ends)) or ends[-1] > _NUM_FEATURE_BLOCKS:
        raise ValueError(
            f"mobilenetv2 backbone: layers must be strictly increasing block indices in 1..{_NUM_FEATURE_BLOCKS} "
            f"(stage ends, e.g. {DEFAULT_STAGE_ENDS}), got {stage_ends!r}"
        )
    starts = (0,) + ends[:-1]
    return list(zip(starts, ends))


def torchvision_key_map(stage_ends=DEFAULT_STAGE_ENDS) -> dict[str, str]:
    """Prefix map ``features.<k>.`` -> ``layers.<stage>.<j>.`` for this stage split."""
    out = {}
    for stage, (start, end) in enumerate(_stage_bounds(stage_ends)):
        for j, k in enumerate(range(start, end)):
            out[f"features.{k}."] = f"layers.{stage}.{j}."
    return out


class MobileNetV2Backbone(nn.Module):
    """MobileNetV2 trunk returning every stage's output (see module docstring)."""

    def __init__(self, cfg: BackboneConfig | None = None):
        super().__init__()
        from torchvision.models import mobilenet_v2

        stage_ends = tuple(cfg.layers) if cfg is not None and cfg.layers else DEFAULT_STAGE_ENDS
        self.stage_ends = stage_ends
        features = mobilenet_v2(weights=None).features
        self.layers = nn.ModuleList()
        self.channels: list[int] = []
        for start, end in _stage_bounds(stage_ends):
            blocks = [features[k] for k in range(start, end)]
            self.layers.append(nn.Sequential(*blocks))
            self.channels.append(_out_channels(blocks[-1]))

    def forward(self, x) -> list[torch.Tensor]:
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs

    def load_imagenet(self, state: dict) -> tuple[int, int]:
        """Load a torchvision ``mobilenet_v2`` state_dict (classifier dropped).

        Returns (tensors loaded, tensors of this backbone left at their init).
        Raises ValueError when the file is not a torchvision MobileNetV2.
        """
        key_map = torchvision_key_map(self.stage_ends)
        own = self.state_dict()
        mapped = {}
        for key, value in state.items():
            if key.startswith("classifier."):
                continue
            k = key.split(".")
            prefix = f"features.{k[1]}." if len(k) > 2 and k[0] == "features" else None
            if prefix is None:
                raise ValueError(f"not a torchvision MobileNetV2 state_dict (unexpected key {key!r})")
            if prefix not in key_map:  # blocks past the last stage (e.g. the 1280-channel conv)
                continue
            new_key = key_map[prefix] + key[len(prefix) :]
            if new_key not in own or own[new_key].shape != value.shape:
                raise ValueError(f"not a torchvision MobileNetV2 state_dict ({key!r} does not fit {new_key!r})")
            mapped[new_key] = value
        if not mapped:
            raise ValueError("not a torchvision MobileNetV2 state_dict (no backbone tensors found)")
        missing = [k for k in own if k not in mapped]
        self.load_state_dict(mapped, strict=False)
        return len(mapped), len(missing)


def _out_channels(block: nn.Module) -> int:
    if hasattr(block, "out_channels"):
        # an int attribute, which nn.Module.__getattr__ types as Tensor | Module
        return int(cast(int, block.out_channels))
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    return int(convs[-1].out_channels)
