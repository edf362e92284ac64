"""Model set-up before training: the heads' initial weights, frozen BatchNorm, fixed backbone stages."""

from __future__ import annotations

from torch import nn

from ..model.yolact import Yolact


def init_head_weights(model: Yolact) -> None:
    """The original's init for everything outside the backbone: Xavier-uniform convs, zero biases."""
    for name, module in model.named_modules():
        if name.startswith("backbone"):
            continue
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


#: the original freezes BatchNorm below this many images per device
FREEZE_BN_BELOW = 6


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm in eval mode with frozen affine parameters (the original does this below 6 images per device)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


def fix_backbone_stages(model: Yolact, stages: int) -> None:
    """Keep the first ``stages`` backbone stages fixed (no gradient; a ResNet stem goes with
    stage 0)."""
    for layer in model.backbone.layers[:stages]:
        for p in layer.parameters():
            p.requires_grad_(False)
    if stages and hasattr(model.backbone, "conv1"):
        for name in ("conv1", "bn1"):
            for p in getattr(model.backbone, name).parameters():
                p.requires_grad_(False)


def hold_fixed_stages(model: Yolact, stages: int) -> None:
    """The first ``stages`` backbone stages in eval mode: their running statistics stay fixed too."""
    for layer in model.backbone.layers[:stages]:
        layer.eval()
