"""Prediction head, prototype net, mask-IoU net and anchors."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import BackboneConfig


class PredictionModule(nn.Module):
    """Shared head: 3x3 conv + ReLU, then box / class / coefficient 3x3 convs.

    Output rows are ordered ((y * W + x) * num_priors + a), matching the priors.
    """

    def __init__(self, in_channels, num_priors, num_classes, mask_dim, width=256):
        super().__init__()
        self.num_priors, self.num_classes, self.mask_dim = num_priors, num_classes, mask_dim
        self.upfeature = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True))
        self.bbox_layer = nn.Conv2d(width, num_priors * 4, 3, padding=1)
        self.conf_layer = nn.Conv2d(width, num_priors * num_classes, 3, padding=1)
        self.mask_layer = nn.Conv2d(width, num_priors * mask_dim, 3, padding=1)

    def forward(self, x):
        x = self.upfeature(x)
        n = x.shape[0]
        loc = self.bbox_layer(x).permute(0, 2, 3, 1).reshape(n, -1, 4)
        conf = self.conf_layer(x).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes)
        coeff = torch.tanh(self.mask_layer(x).permute(0, 2, 3, 1).reshape(n, -1, self.mask_dim))
        return loc, conf, coeff


class Interpolate(nn.Module):
    def __init__(self, scale_factor):
        super().__init__()
        self.scale_factor = scale_factor

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)


def make_proto_net(in_channels=256, num_prototypes=32, width=256) -> nn.Sequential:
    """3x(3x3 conv, ReLU), 2x bilinear up, ReLU, 3x3 conv, ReLU, 1x1 conv (indices as the checkpoints)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(inplace=True),
        Interpolate(2),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, num_prototypes, 1),
    )


class MaskIoUNet(nn.Module):
    """YOLACT++ mask re-scoring: predicts each mask's IoU per class from the cropped low-res mask.

    Input [K,1,h,w] in 0..1; output [K, num_classes-1].
    """

    def __init__(self, num_fg_classes):
        super().__init__()
        layers = []
        in_ch = 1
        for out_ch in (8, 16, 32, 64, 128):
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride=2), nn.ReLU(inplace=True)]
            in_ch = out_ch
        layers += [nn.Conv2d(in_ch, num_fg_classes, 1), nn.ReLU(inplace=True)]
        self.maskiou_net = nn.Sequential(*layers)

    def forward(self, x):
        x = self.maskiou_net(x)
        return x.amax(dim=(2, 3))  # global max pool (as a reduction: exports to ONNX at any size)


def gather_mask_iou(maskiou_net, masks: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Predicted IoU of each soft mask [D,h,w] for its own class ``classes`` [D] (0-based) -> [D].

    ``maskiou_net``: any callable [D,1,h,w] -> [D, num_classes-1] (the :class:`MaskIoUNet`, or the
    same net run by another runtime)."""
    if masks.shape[0] == 0:
        return masks.new_zeros((0,))
    pred = maskiou_net(masks.unsqueeze(1))
    return pred.gather(1, classes.view(-1, 1)).squeeze(1)


def make_priors(
    cfg: BackboneConfig, level: int, conv_h: int, conv_w: int, max_size: int, device=None, dtype=torch.float32
) -> torch.Tensor:
    """Anchors of one pyramid level as [conv_h*conv_w*num_priors, 4] (cx, cy, w, h), relative.

    Order: row-major locations; per location scale-major, then aspect ratio.
    """
    sizes = []
    for scale in cfg.pred_scales[level]:
        for ar in cfg.pred_aspect_ratios:
            r = math.sqrt(ar)
            w = scale * r / max_size
            h = w if cfg.use_square_anchors else scale / r / max_size
            sizes.append((w, h))
    wh = torch.tensor(sizes, dtype=torch.float64)  # [A,2]
    ys, xs = torch.meshgrid(
        torch.arange(conv_h, dtype=torch.float64), torch.arange(conv_w, dtype=torch.float64), indexing="ij"
    )
    cx = ((xs + 0.5) / conv_w).reshape(-1, 1, 1).expand(-1, len(sizes), 1)
    cy = ((ys + 0.5) / conv_h).reshape(-1, 1, 1).expand(-1, len(sizes), 1)
    priors = torch.cat((cx, cy, wh.unsqueeze(0).expand(cx.shape[0], -1, -1)), dim=2).reshape(-1, 4)
    return priors.to(device=device, dtype=dtype)
