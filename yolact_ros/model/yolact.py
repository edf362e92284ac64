"""The YOLACT / YOLACT++ network."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone
from .checkpoint import load_into
from .config import YolactConfig, get_config
from .fpn import FPN
from .heads import MaskIoUNet, PredictionModule, gather_mask_iou, make_priors, make_proto_net


class Yolact(nn.Module):
    """Backbone + FPN + prototype net + shared prediction head (+ mask-IoU net for ++).

    ``forward(x)``: x float [N,3,S,S], already normalised, RGB, S = ``cfg.max_size``
    (other sizes work; priors follow the feature-map sizes).  Returns a dict:

    - ``loc``    [N,P,4]  box regressions (variances 0.1 / 0.2, relative to priors)
    - ``conf``   [N,P,C]  class scores: softmax in eval mode, raw logits in train mode (C incl. background 0)
    - ``mask``   [N,P,K]  mask coefficients after tanh (K = num_prototypes)
    - ``priors`` [P,4]    anchors (cx, cy, w, h) relative to the input
    - ``proto``  [N,Hp,Wp,K] prototypes after ReLU, channels last
    - ``segm``   [N,C-1,H3,W3] semantic segmentation logits on P3 (train mode only)

    The state_dict layout equals the original's ``Yolact.save_weights`` files.
    """

    #: YOLACT++ only (``cfg.use_maskiou``); absent otherwise
    maskiou_net: MaskIoUNet
    #: set only on the copies that :func:`yolact_ros.model.fuse.optimize_for_inference` makes
    channels_last: bool

    def __init__(self, cfg: YolactConfig):
        super().__init__()
        if cfg.use_maskiou and cfg.max_size < 256:
            # the mask-IoU net's five unpadded stride-2 convs need prototypes of >= 63 px
            raise ValueError(f"config {cfg.name!r}: YOLACT++ mask re-scoring needs max_size >= 256, got {cfg.max_size}")
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone)
        f = cfg.fpn_num_features
        self.proto_net = make_proto_net(f, cfg.num_prototypes, cfg.head_channels)
        if cfg.use_maskiou:
            self.maskiou_net = MaskIoUNet(cfg.num_classes - 1)
        in_channels = [self.backbone.channels[i] for i in cfg.backbone.selected_layers]
        self.fpn = FPN(in_channels, f, cfg.fpn_num_downsample)
        self.prediction_layers = nn.ModuleList(
            [PredictionModule(f, cfg.backbone.num_priors, cfg.num_classes, cfg.num_prototypes, cfg.head_channels)]
        )
        self.semantic_seg_conv = nn.Conv2d(f, cfg.num_classes - 1, 1)
        self._priors_cache: dict = {}

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.cfg.class_names

    def priors(self, sizes: list[tuple[int, int]], device, dtype=torch.float32) -> torch.Tensor:
        key = (tuple(sizes), str(device), dtype)
        pri = self._priors_cache.get(key)
        if pri is None:
            pri = torch.cat(
                [
                    make_priors(self.cfg.backbone, i, h, w, self.cfg.max_size, device, dtype)
                    for i, (h, w) in enumerate(sizes)
                ]
            )
            self._priors_cache = {key: pri}
        return pri

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone + FPN: network input [N,3,S,S] -> pyramid [P3..P7]."""
        feats = self.backbone(x)
        return self.fpn([feats[i] for i in self.cfg.backbone.selected_layers])

    def heads(self, feats: list[torch.Tensor], device=None) -> dict[str, torch.Tensor]:
        """Prototypes + shared prediction head on the pyramid (see ``forward`` for the outputs)."""
        proto = F.relu(self.proto_net(feats[0])).permute(0, 2, 3, 1).contiguous()
        head = self.prediction_layers[0]
        locs, confs, coeffs = [], [], []
        for p in feats:
            loc, conf, coeff = head(p)
            locs.append(loc)
            confs.append(conf)
            coeffs.append(coeff)
        out = {
            "loc": torch.cat(locs, 1),
            "conf": torch.cat(confs, 1),
            "mask": torch.cat(coeffs, 1),
            "priors": self.priors([(p.shape[-2], p.shape[-1]) for p in feats], device or feats[0].device),
            "proto": proto,
        }
        if self.training:
            out["segm"] = self.semantic_seg_conv(feats[0])
        else:
            out["conf"] = F.softmax(out["conf"], dim=-1)
        return out

    def mask_iou(self, masks: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """YOLACT++ mask scoring: predicted IoU of each cropped soft mask [D,h,w] (0..1, prototype
        resolution) for its class ``classes`` [D] (0-based) -> [D]."""
        return gather_mask_iou(self.maskiou_net, masks, classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.features(x), x.device)

    def load_checkpoint(self, path: "str | Path", strict: bool = True) -> "Yolact":
        """Load an official (or ``yolact train``) ``.pth`` file; see :func:`checkpoint.load_into`."""
        load_into(self, path, strict=strict)
        return self


def build_yolact(config: "str | YolactConfig") -> Yolact:
    """A YOLACT network for an official config name or a :class:`YolactConfig`, in eval mode, no weights."""
    return Yolact(get_config(config)).eval()
