"""An inference-only copy of a :class:`Yolact` that computes the same function faster.

- BatchNorm (eval statistics) is folded into the preceding convolution (plain or DCN).
- The three sibling 3x3 convs of the prediction head run as one convolution with the
  concatenated weights (one larger GEMM instead of three), split afterwards.
- Weights use the channels-last memory layout that oneDNN's CPU kernels prefer.

The original module (and its official state_dict) is left untouched; outputs
differ only by float32 rounding (well inside the reference tolerances).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, cast

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .dcn import DCN
from .heads import PredictionModule

if TYPE_CHECKING:
    from .yolact import Yolact


def _fold_bn_into_dcn(dcn: DCN, bn: nn.BatchNorm2d) -> DCN:
    assert bn.running_var is not None and bn.running_mean is not None  # track_running_stats: see _fold
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        dcn.weight.mul_(scale.view(-1, 1, 1, 1))
        dcn.bias.copy_((dcn.bias - bn.running_mean) * scale + bn.bias)
    return dcn


def _fold(conv: nn.Module, bn: nn.Module) -> nn.Module | None:
    if not isinstance(bn, nn.BatchNorm2d) or not bn.track_running_stats:
        return None
    if isinstance(conv, DCN):
        return _fold_bn_into_dcn(conv, bn)
    if isinstance(conv, nn.Conv2d):
        return fuse_conv_bn_eval(conv, bn)
    return None


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every (conv -> BatchNorm) pair in place: Bottleneck convN/bnN and Sequential neighbours."""
    for child in module.children():
        fold_batchnorm(child)
    for i in (1, 2, 3):
        conv, bn = getattr(module, f"conv{i}", None), getattr(module, f"bn{i}", None)
        if conv is not None and bn is not None:
            fused = _fold(conv, bn)
            if fused is not None:
                setattr(module, f"conv{i}", fused)
                setattr(module, f"bn{i}", nn.Identity())
    if isinstance(module, nn.Sequential):
        keys = list(module._modules)
        for a, b in zip(keys, keys[1:]):
            fused = _fold(module._modules[a], module._modules[b])
            if fused is not None:
                module._modules[a] = fused
                module._modules[b] = nn.Identity()
    return module


class FusedPredictionModule(nn.Module):
    """PredictionModule with bbox / conf / mask convs merged into one conv (same outputs)."""

    def __init__(self, head: PredictionModule):
        super().__init__()
        self.num_classes, self.mask_dim = head.num_classes, head.mask_dim
        self.upfeature = head.upfeature
        a = head.num_priors
        self.splits = (a * 4, a * head.num_classes, a * head.mask_dim)
        layers = (head.bbox_layer, head.conf_layer, head.mask_layer)
        merged = nn.Conv2d(head.bbox_layer.in_channels, sum(self.splits), 3, padding=1)
        assert merged.bias is not None  # nn.Conv2d's default bias=True
        with torch.no_grad():
            merged.weight.copy_(torch.cat([layer.weight for layer in layers]))
            merged.bias.copy_(torch.cat([layer.bias for layer in layers]))
        self.merged = merged

    def forward(self, x):
        y = self.merged(self.upfeature(x))
        n = y.shape[0]
        loc, conf, coeff = torch.split(y, self.splits, dim=1)
        loc = loc.permute(0, 2, 3, 1).reshape(n, -1, 4)
        conf = conf.permute(0, 2, 3, 1).reshape(n, -1, self.num_classes)
        coeff = torch.tanh(coeff.permute(0, 2, 3, 1).reshape(n, -1, self.mask_dim))
        return loc, conf, coeff


def optimize_for_inference(model: Yolact, channels_last: bool = True) -> Yolact:
    """A faster eval-only copy of ``model`` (a Yolact); the original is not modified."""
    net = copy.deepcopy(model).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    fold_batchnorm(net.backbone)
    net.prediction_layers[0] = FusedPredictionModule(cast(PredictionModule, net.prediction_layers[0]))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.channels_last = channels_last
    return net
