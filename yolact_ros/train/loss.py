"""The YOLACT / YOLACT++ training loss (paper + original implementation).

Terms (weights from :class:`~yolact_ros.model.config.TrainConfig`):

- ``box``:     Smooth-L1 on the encoded boxes of positive priors (``bbox_alpha`` 1.5);
- ``conf``:    softmax cross-entropy on positives plus the hardest negatives, 3 per
               positive (OHEM, ``ohem_negpos_ratio``), weight ``conf_alpha`` 1;
- ``mask``:    per-pixel BCE of the assembled mask sigmoid(proto @ coeffs) against the
               ground-truth mask at prototype resolution, cropped by the ground-truth
               box and normalised by that box's area (``mask_alpha`` 6.125);
- ``segm``:    semantic segmentation auxiliary loss, BCE of ``segm`` logits against the
               union of each class's masks, per pixel (``semantic_segmentation_alpha``);
- ``maskiou``: YOLACT++ only: Smooth-L1 between ``maskiou_net``'s prediction for the
               mask's class and the IoU of the binarised predicted mask with the
               ground truth (``maskiou_alpha``; ground truths smaller than
               ``discard_mask_area`` prototype pixels are left out).

``box``, ``conf``, ``mask`` and ``maskiou`` are divided by the number of positives in
the batch, ``segm`` by the batch size, as the original does.  Under data parallelism
the batch is the global one: ``sum_counts`` sums those two counts over the ranks, and
each rank's terms are its share of the global loss.  All arithmetic runs in
float32 even under autocast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..model.boxes import crop_masks
from ..model.config import YolactConfig
from .match import match

LOSS_NAMES = ("box", "conf", "mask", "segm", "maskiou")


def ohem_conf_loss(conf: torch.Tensor, conf_t: torch.Tensor, negpos_ratio: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy over positives and hard negatives.

    conf [N,P,C] logits, conf_t [N,P] (0 background, >0 class+1, -1 ignored).
    Per image, negatives are ranked by their background loss -log p(bg) and the top
    ``negpos_ratio`` x (#positives) are kept (at most P-1).  Returns (loss, mask of
    the negatives picked [N,P]).
    """
    pos = conf_t > 0
    with torch.no_grad():
        bg_loss = torch.logsumexp(conf, dim=-1) - conf[..., 0]
        bg_loss = bg_loss.masked_fill(pos | (conf_t < 0), 0.0)
        # rank of every prior by its background loss (0 = hardest)
        order = bg_loss.argsort(dim=1, descending=True)
        rank = order.argsort(dim=1)
        num_neg = (negpos_ratio * pos.long().sum(1, keepdim=True)).clamp(max=conf.shape[1] - 1)
        neg = (rank < num_neg) & ~pos & (conf_t >= 0)
    keep = pos | neg
    loss = F.cross_entropy(conf[keep], conf_t[keep], reduction="sum") if keep.any() else conf.sum() * 0.0
    return loss, neg


def semantic_targets(labels: torch.Tensor, masks: torch.Tensor, num_fg: int, size: tuple[int, int]) -> torch.Tensor:
    """[num_fg,h,w] per-class union of the masks [K,S,S] downsampled to ``size`` (bilinear, > 0.5)."""
    target = masks.new_zeros((num_fg,) + tuple(size), dtype=torch.float32)
    if masks.shape[0]:
        small = F.interpolate(masks[None].float(), size, mode="bilinear", align_corners=False)[0].gt(0.5).float()
        for c in labels.unique().tolist():
            target[c] = small[labels == c].amax(0)
    return target


def mask_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks pred [n,h,w] and gt [n,h,w] (0/1 floats) -> [n]."""
    inter = (pred * gt).sum((1, 2))
    union = pred.sum((1, 2)) + gt.sum((1, 2)) - inter
    return inter / union.clamp(min=1.0)


class YolactLoss(nn.Module):
    """``loss(out, targets, maskiou_net=None) -> dict`` of the terms above plus ``total``.

    ``out``: the model's train-mode output dict (``loc``, ``conf`` logits, ``mask``,
    ``priors``, ``proto``, ``segm``).  ``targets``: one dict per image with ``boxes``
    float [K,4] relative xyxy, ``labels`` int64 [K] 0-based, ``masks`` [K,S,S] {0,1},
    ``iscrowd`` bool [K] (optional).  ``maskiou_net``: the model's mask-IoU net for
    YOLACT++ configs (the ``maskiou`` term is 0 without it).  ``sum_counts``: sums a
    tensor over all data-parallel ranks (:meth:`yolact_ros.train.distributed.Dist.sum`);
    None for one process.
    """

    def __init__(
        self,
        cfg: YolactConfig,
        generator: torch.Generator | None = None,
        sum_counts: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.t = cfg.train
        self.num_classes = cfg.num_classes
        self.generator = generator
        self.sum_counts = sum_counts

    def forward(self, out: dict, targets: list[dict], maskiou_net: nn.Module | None = None) -> dict[str, torch.Tensor]:
        t = self.t
        loc = out["loc"].float()
        conf = out["conf"].float()
        coeffs = out["mask"].float()
        priors = out["priors"].float()
        proto = out["proto"].float()
        batch, num_priors = loc.shape[:2]
        if len(targets) != batch:
            raise ValueError(f"got {len(targets)} targets for a batch of {batch}")
        device = loc.device

        conf_t = torch.zeros((batch, num_priors), dtype=torch.long, device=device)
        loc_t = torch.zeros((batch, num_priors, 4), device=device)
        matches = []
        gts = []
        for b, target in enumerate(targets):
            boxes = target["boxes"].to(device=device, dtype=torch.float32).reshape(-1, 4)
            labels = target["labels"].to(device=device, dtype=torch.long).reshape(-1)
            masks = target["masks"].to(device=device)
            crowd = target.get("iscrowd")
            crowd = (
                crowd.to(device=device, dtype=torch.bool).reshape(-1)
                if crowd is not None
                else torch.zeros_like(labels, dtype=torch.bool)
            )
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes - 1):
                raise ValueError(f"label out of range [0, {self.num_classes - 2}] in target {b}: {labels.tolist()}")
            m = match(
                priors,
                boxes[~crowd],
                labels[~crowd],
                boxes[crowd],
                t.positive_iou_threshold,
                t.negative_iou_threshold,
                t.crowd_iou_threshold,
            )
            conf_t[b] = m.conf
            loc_t[b] = m.loc
            matches.append(m)
            gts.append((boxes[~crowd], labels[~crowd], masks[~crowd]))
        pos = conf_t > 0
        counts = torch.tensor([float(pos.sum()), float(batch)], dtype=torch.float64, device=device)
        if self.sum_counts is not None:
            counts = self.sum_counts(counts)
        total_pos = max(int(counts[0]), 1)
        total_batch = int(counts[1])

        losses: dict[str, torch.Tensor] = {}
        if pos.any():
            losses["box"] = F.smooth_l1_loss(loc[pos], loc_t[pos], reduction="sum") * t.bbox_alpha
        else:
            losses["box"] = loc.sum() * 0.0
        conf_loss, _ = ohem_conf_loss(conf, conf_t, t.ohem_negpos_ratio)
        losses["conf"] = conf_loss * t.conf_alpha
        mask_loss, maskiou_loss = self._mask_losses(proto, coeffs, matches, gts, maskiou_net)
        losses["mask"] = mask_loss * t.mask_alpha
        losses["maskiou"] = maskiou_loss * t.maskiou_alpha
        for k in ("box", "conf", "mask", "maskiou"):
            losses[k] = losses[k] / total_pos
        if "segm" in out and t.semantic_segmentation_alpha > 0:
            losses["segm"] = self._semantic_loss(out["segm"].float(), gts) / total_batch * t.semantic_segmentation_alpha
        else:
            losses["segm"] = loc.sum() * 0.0
        losses["total"] = cast(torch.Tensor, sum(losses[k] for k in LOSS_NAMES))  # never empty: not the int 0
        return losses

    def _mask_losses(self, proto, coeffs, matches, gts, maskiou_net):
        t = self.t
        _, h, w, k = proto.shape
        mask_loss = proto.sum() * 0.0 + coeffs.sum() * 0.0
        iou_inputs, iou_targets, iou_labels = [], [], []
        for b, (m, (boxes, labels, masks)) in enumerate(zip(matches, gts)):
            pos_idx = torch.nonzero(m.positive, as_tuple=False).squeeze(1)
            num_pos = pos_idx.numel()
            if num_pos == 0:
                continue
            if num_pos > t.masks_to_train:
                perm = torch.randperm(num_pos, generator=self.generator)[: t.masks_to_train].to(pos_idx.device)
                pos_idx = pos_idx[perm]
            gt_idx = m.gt_index[pos_idx]
            with torch.no_grad():
                gt_small = (
                    F.interpolate(masks[None].float(), (h, w), mode="bilinear", align_corners=False)[0].gt(0.5).float()
                )
                mask_t = gt_small[gt_idx]  # [n,h,w]
                gt_boxes = boxes[gt_idx]
                crop = crop_masks(torch.ones_like(mask_t), gt_boxes)
            logits = torch.einsum("hwk,nk->nhw", proto[b], coeffs[b, pos_idx])
            bce = F.binary_cross_entropy_with_logits(logits, mask_t, reduction="none") * crop
            box_area = ((gt_boxes[:, 2] - gt_boxes[:, 0]) * w) * ((gt_boxes[:, 3] - gt_boxes[:, 1]) * h)
            per_mask = bce.sum((1, 2)) / box_area.clamp(min=1.0)
            mask_loss = mask_loss + per_mask.sum() * (num_pos / pos_idx.numel())

            if maskiou_net is not None:
                with torch.no_grad():
                    # the mask-IoU head learns to score masks; it must not reshape them
                    soft = torch.sigmoid(logits.detach()) * crop
                    select = mask_t.sum((1, 2)) > t.discard_mask_area
                if select.any():
                    iou_inputs.append(soft[select])
                    iou_targets.append(mask_iou(soft[select].gt(0.5).float(), mask_t[select]))
                    iou_labels.append(labels[gt_idx][select])
        maskiou_loss = proto.sum() * 0.0
        if maskiou_net is not None:
            maskiou_loss = maskiou_loss + sum(p.sum() * 0.0 for p in maskiou_net.parameters())
            if iou_inputs:
                x = torch.cat(iou_inputs)[:, None]
                pred = maskiou_net(x).float().gather(1, torch.cat(iou_labels)[:, None]).squeeze(1)
                maskiou_loss = maskiou_loss + F.smooth_l1_loss(pred, torch.cat(iou_targets), reduction="sum")
        return mask_loss, maskiou_loss

    def _semantic_loss(self, segm: torch.Tensor, gts) -> torch.Tensor:
        n, c, h, w = segm.shape
        loss = segm.sum() * 0.0
        for b, (_, labels, masks) in enumerate(gts):
            with torch.no_grad():
                target = semantic_targets(labels, masks, c, (h, w))
            loss = loss + F.binary_cross_entropy_with_logits(segm[b], target, reduction="sum")
        return loss / (h * w)


__all__ = ["YolactLoss", "LOSS_NAMES", "ohem_conf_loss", "semantic_targets", "mask_iou"]
