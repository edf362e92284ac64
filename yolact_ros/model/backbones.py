"""Backbones with the original's module names (so official state_dicts load).

Each backbone returns the list of every stage's output; ``channels`` lists
their channel counts.  ``self.layers`` is registered first on purpose: the
original registers it before the stem, so ``backbone.layers.*`` come first in
the checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .config import BackboneConfig
from .dcn import DCN

if TYPE_CHECKING:
    from typing import TypeAlias

    from .mobilenet import MobileNetV2Backbone

    #: what :func:`build_backbone` returns: each has ``layers`` (its stages) and ``channels``
    Backbone: TypeAlias = "ResNetBackbone | DarkNetBackbone | MobileNetV2Backbone"


class Bottleneck(nn.Module):
    """ResNet bottleneck (stride on the 3x3), optionally with a DCNv2 3x3."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, use_dcn=False):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        if use_dcn:
            self.conv2 = DCN(planes, planes, 3, stride=stride, padding=1, dilation=1)
        else:
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNetBackbone(nn.Module):
    """ResNet-50/101 trunk; ``dcn_layers[s]`` = how many of stage s's last blocks use DCN."""

    def __init__(self, layers, dcn_layers=(), dcn_interval=1):
        super().__init__()
        self.layers = nn.ModuleList()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        dcn_layers = tuple(dcn_layers) or (0,) * len(layers)
        self.inplanes = 64
        self.channels: list[int] = []
        for stage, blocks in enumerate(layers):
            self._make_layer(64 * 2**stage, blocks, 1 if stage == 0 else 2, dcn_layers[stage], dcn_interval)

    def _make_layer(self, planes, blocks, stride, dcn_layers, dcn_interval):
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
        # The original's rule for which blocks of a stage are deformable.
        blocks_list = [Bottleneck(self.inplanes, planes, stride, downsample, use_dcn=dcn_layers >= blocks)]
        self.inplanes = planes * 4
        for i in range(1, blocks):
            use_dcn = (i + dcn_layers) >= blocks and (i % dcn_interval == 0)
            blocks_list.append(Bottleneck(self.inplanes, planes, use_dcn=use_dcn))
        self.layers.append(nn.Sequential(*blocks_list))
        self.channels.append(planes * 4)

    def forward(self, x) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs


def darknet_conv(in_ch, out_ch, kernel_size, stride=1, padding=0):
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.LeakyReLU(0.1, inplace=True),
    )


class DarkNetBlock(nn.Module):
    expansion = 2

    def __init__(self, in_channels, channels):
        super().__init__()
        self.conv1 = darknet_conv(in_channels, channels, 1)
        self.conv2 = darknet_conv(channels, channels * 2, 3, padding=1)

    def forward(self, x):
        return self.conv2(self.conv1(x)) + x


class DarkNetBackbone(nn.Module):
    """DarkNet-53 as in YOLOv3: a strided 3x3 conv then residual blocks per stage."""

    def __init__(self, layers=(1, 2, 8, 8, 4)):
        super().__init__()
        self.layers = nn.ModuleList()
        self.in_channels = 32
        self.channels: list[int] = []
        for stage, blocks in enumerate(layers):
            channels = 32 * 2**stage
            stage_modules = [darknet_conv(self.in_channels, channels * 2, 3, stride=2, padding=1)]
            self.in_channels = channels * 2
            stage_modules += [DarkNetBlock(self.in_channels, channels) for _ in range(blocks)]
            self.layers.append(nn.Sequential(*stage_modules))
            self.channels.append(self.in_channels)
        self._preconv = darknet_conv(3, 32, 3, padding=1)

    def forward(self, x) -> list[torch.Tensor]:
        x = self._preconv(x)
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs


def build_backbone(cfg: BackboneConfig) -> Backbone:
    if cfg.kind == "resnet":
        return ResNetBackbone(cfg.layers, cfg.dcn_layers, cfg.dcn_interval)
    if cfg.kind == "darknet":
        return DarkNetBackbone(cfg.layers)
    if cfg.kind == "mobilenetv2":
        from .mobilenet import MobileNetV2Backbone  # training issue: small ImageNet-initialised backbone

        return MobileNetV2Backbone(cfg)
    raise ValueError(f"unknown backbone kind {cfg.kind!r} (expected resnet, darknet or mobilenetv2)")
