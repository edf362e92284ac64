"""Feature pyramid with the original's layout (lateral / pred lists stored top level first)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FPN(nn.Module):
    """C3..C5 -> P3..P7 (256 channels).

    ``lat_layers[0]`` / ``pred_layers[0]`` act on C5 (reversed, as stored in the
    checkpoints).  Top-down: P5 = lat(C5); P4 = lat(C4) + up(P5); P3 likewise; then a
    3x3 conv + ReLU on each; P6 / P7 are stride-2 3x3 convs of P5 / P6, no ReLU.
    """

    def __init__(self, in_channels, num_features=256, num_downsample=2):
        super().__init__()
        self.lat_layers = nn.ModuleList([nn.Conv2d(c, num_features, 1) for c in reversed(in_channels)])
        self.pred_layers = nn.ModuleList([nn.Conv2d(num_features, num_features, 3, padding=1) for _ in in_channels])
        self.downsample_layers = nn.ModuleList(
            [nn.Conv2d(num_features, num_features, 3, padding=1, stride=2) for _ in range(num_downsample)]
        )

    def forward(self, convouts: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(convouts)
        lateral: list[torch.Tensor] = [None] * n  # type: ignore[list-item]
        x = None
        for i, lat_layer in enumerate(self.lat_layers):
            j = n - 1 - i
            y = lat_layer(convouts[j])
            if x is not None:
                y = y + F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=False)
            lateral[j] = x = y
        outs: list[torch.Tensor] = [None] * n  # type: ignore[list-item]  # every slot is filled below
        for i, pred_layer in enumerate(self.pred_layers):
            j = n - 1 - i
            outs[j] = F.relu(pred_layer(lateral[j]), inplace=True)
        for down in self.downsample_layers:
            outs.append(down(outs[-1]))
        return outs
