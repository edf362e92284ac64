"""From raw network outputs to :class:`Instances`, in two named steps.

1. :func:`select_detections`: decode the boxes, Fast NMS, score threshold, class filter,
   and the low-resolution masks of the survivors (what YOLACT++'s mask-IoU head needs);
2. :func:`to_instances`: YOLACT++ re-scoring with the mask-IoU predictions (computed by the
   network between the two steps: post-processing runs no network), top-k, masks pasted at
   the image's size, boxes in pixels.

Semantics follow the original YOLACT (``layers/functions/detection.py`` and
``layers/output_utils.py``); the implementation is built for speed: every step is a
batched tensor operation on the model's device, and masks are assembled and resized only
for the detections that are kept.  Box geometry (decode, IoU, crop) is
:mod:`yolact_ros.model.boxes`, shared with training.

Coordinates: boxes are relative (0..1) to the square network input until
:func:`to_instances` scales them to the original image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..model.boxes import box_iou, crop_masks, decode, sanitize_coordinates
from .defaults import MASK_THRESHOLD
from .instances import Instances


@dataclass(frozen=True)
class PostprocessSettings:
    """Everything post-processing needs besides the raw outputs.

    ``score_threshold``: keep scores strictly above (0 = keep all); ``top_k``: instances per
    image; ``class_keep``: bool [C-1] tensor on the outputs' device, or None for all classes
    (applied before top_k); the rest are the model config's NMS values.
    """

    score_threshold: float
    top_k: int
    nms_threshold: float
    conf_threshold: float
    nms_top_k: int
    max_num_detections: int
    cross_class_nms: bool = False
    class_keep: "torch.Tensor | None" = None


@dataclass
class Detections:
    """Detections of one image, sorted by descending ``scores``.

    boxes float [D,4] relative xyxy; coeffs [D,K]; classes int64 [D] (0-based, no background);
    scores [D] (class confidence); ``masks``: low-resolution soft masks [D,h,w] cropped by
    their boxes, or None until assembled.
    """

    boxes: torch.Tensor
    coeffs: torch.Tensor
    classes: torch.Tensor
    scores: torch.Tensor
    masks: "torch.Tensor | None" = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, idx: torch.Tensor) -> "Detections":
        masks = self.masks[idx] if self.masks is not None else None
        return Detections(self.boxes[idx], self.coeffs[idx], self.classes[idx], self.scores[idx], masks)


# -- step 1 -------------------------------------------------------------------------------------
def select_detections(out: dict, index: int, settings: PostprocessSettings, with_masks: bool = False) -> Detections:
    """Raw outputs (``Yolact.forward``'s dict, batched) of image ``index`` -> the detections
    that pass NMS, the score threshold and the class filter; ``with_masks``: also their
    low-res masks (YOLACT++ scores them; otherwise :func:`to_instances` assembles masks for
    the top-k only)."""
    s = settings
    dets = fast_nms(
        out["loc"][index],
        out["conf"][index],
        out["mask"][index],
        out["priors"],
        conf_thresh=s.conf_threshold,
        nms_thresh=s.nms_threshold,
        nms_top_k=s.nms_top_k,
        max_num_detections=s.max_num_detections,
        cross_class_nms=s.cross_class_nms,
    )
    if s.score_threshold > 0 or s.class_keep is not None:
        keep = torch.ones(len(dets), dtype=torch.bool, device=dets.scores.device)
        if s.score_threshold > 0:
            keep &= dets.scores > s.score_threshold
        if s.class_keep is not None:
            keep &= s.class_keep[dets.classes]
        # sync (a count): how many pass; one nonzero, then the tensors are indexed without a sync each
        dets = dets.select(keep.nonzero().squeeze(1))
    if with_masks:
        dets.masks = assemble_masks(out["proto"][index], dets.coeffs, dets.boxes)
    return dets


# -- step 2 -------------------------------------------------------------------------------------
def to_instances(
    dets: Detections,
    proto: torch.Tensor,
    height: int,
    width: int,
    settings: PostprocessSettings,
    class_names: tuple[str, ...],
    mask_iou: "torch.Tensor | None" = None,
) -> Instances:
    """Detections of one image (and its prototypes [h,w,K]) -> :class:`Instances` of a
    ``height`` x ``width`` image.

    ``mask_iou`` [D]: YOLACT++'s predicted IoU of each detection's mask for its class; the
    final score is then box score x mask IoU (as the original displays), re-thresholded and
    re-sorted.  Then the best ``top_k`` are kept and their masks pasted.
    """
    box_scores = scores = dets.scores
    if mask_iou is not None and len(dets):
        scores = box_scores * mask_iou
        keep = (
            scores > settings.score_threshold
            if settings.score_threshold > 0
            else torch.ones_like(scores, dtype=torch.bool)
        )
        # sync (a count): how many re-scored detections stay above the threshold
        order = torch.argsort(scores.masked_fill(~keep, float("-inf")), descending=True)[: int(keep.sum())]
    else:
        order = torch.arange(len(dets), device=scores.device)
    order = order[: settings.top_k]
    dets = dets.select(order)
    scores, box_scores = scores[order], box_scores[order]
    if len(dets):
        low_res = dets.masks if dets.masks is not None else assemble_masks(proto, dets.coeffs, dets.boxes)
        windows: list[np.ndarray | None] = [None] * len(dets)  # every slot is filled below
        origins = np.zeros((len(dets), 2), np.int64)
        for idx, group_t, group_origins_t in paste_mask_windows(low_res, height, width, dets.boxes):
            # sync: the final copy of the windows to the host
            group, group_origins = group_t.cpu().numpy(), group_origins_t.cpu().numpy()
            for k, i in enumerate(idx):
                windows[i] = group[k]
            origins[idx] = group_origins
    else:
        windows, origins = [], np.zeros((0, 2), np.int64)
    boxes = boxes_to_pixels(dets.boxes, height, width).float()
    table_t = torch.cat((boxes, scores.float()[:, None], box_scores.float()[:, None], dets.classes.float()[:, None]), 1)
    # sync: the final copy of the per-detection numbers, in one transfer (class ids < 2**24: exact in float32)
    table = table_t.cpu().numpy()
    return Instances(  # only the box-sized windows cross to the host
        boxes=np.ascontiguousarray(table[:, :4]),
        scores=np.ascontiguousarray(table[:, 4]),
        class_ids=table[:, 6].astype(np.int64),
        mask_windows=windows,
        mask_origins=origins,
        image_size=(height, width),
        box_scores=np.ascontiguousarray(table[:, 5]),
        class_names=class_names,
    )


# -- the parts ----------------------------------------------------------------------------------
def fast_nms(
    loc: torch.Tensor,
    conf: torch.Tensor,
    coeffs: torch.Tensor,
    priors: torch.Tensor,
    conf_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    nms_top_k: int = 200,
    max_num_detections: int = 100,
    cross_class_nms: bool = False,
) -> Detections:
    """Fast NMS on one image: loc [P,4], conf [P,C] (softmax, background at 0), coeffs [P,K].

    Priors whose best foreground score exceeds ``conf_thresh`` are candidates.
    Per class (or across classes), candidates are sorted, the best ``nms_top_k``
    kept, and a candidate survives if its IoU with every higher-scored one is
    <= ``nms_thresh`` (Fast NMS: suppressed boxes still suppress).  The survivors
    of all classes are sorted and the best ``max_num_detections`` returned.
    """
    # sync (a count): the number of candidate priors sets the shapes below
    cand = torch.nonzero(conf[:, 1:].max(dim=1).values > conf_thresh).squeeze(1)  # prior indices
    if cand.numel() == 0:
        dev = loc.device
        return Detections(
            loc.new_zeros((0, 4)),
            coeffs.new_zeros((0, coeffs.shape[1])),
            torch.zeros(0, dtype=torch.long, device=dev),
            conf.new_zeros((0,)),
        )
    scores = conf[cand, 1:].t()  # [C-1, M]
    top = min(nms_top_k, scores.shape[1])
    if cross_class_nms:
        best, classes = scores.max(dim=0)
        order = best.topk(top, sorted=True).indices
        prior_idx = cand[order]
        boxes = decode(loc[prior_idx], priors[prior_idx])
        iou = box_iou(boxes, boxes).triu_(diagonal=1)
        # sync (a count): how many survive
        kept = (iou.max(dim=0).values <= nms_thresh).nonzero().squeeze(1)[:max_num_detections]
        out = order[kept]
        return Detections(boxes[kept], coeffs[cand[out]], classes[out], best[out])

    # topk instead of a full sort: the same best nms_top_k per class, ~20x faster on CPU.
    # Only the selected candidates are decoded.
    scores, idx = scores.topk(top, dim=1, sorted=True)  # [C-1, top]
    prior_idx = cand[idx]
    boxes = decode(loc[prior_idx], priors[prior_idx])  # [C-1, top, 4]
    iou = box_iou(boxes, boxes).triu_(diagonal=1)
    keep = iou.max(dim=1).values <= nms_thresh  # [C-1, top]
    # sync (a count): how many survive; (class, rank) pairs in row-major order, as a boolean index gives
    classes, rank = keep.nonzero(as_tuple=True)
    kept_prior, kept_boxes, scores = prior_idx[classes, rank], boxes[classes, rank], scores[classes, rank]
    scores, order = scores.topk(min(max_num_detections, scores.shape[0]), sorted=True)
    return Detections(kept_boxes[order], coeffs[kept_prior[order]], classes[order], scores)


def assemble_masks(proto: torch.Tensor, coeffs: torch.Tensor, boxes: torch.Tensor, crop: bool = True) -> torch.Tensor:
    """Low-resolution soft masks: sigmoid(proto [h,w,K] @ coeffs [D,K]^T), cropped by boxes -> [D,h,w]."""
    h, w, k = proto.shape
    masks = torch.sigmoid(torch.matmul(coeffs, proto.reshape(h * w, k).t()).view(-1, h, w))
    if crop:
        masks = crop_masks(masks, boxes)
    return masks


def paste_masks(
    masks: torch.Tensor,
    height: int,
    width: int,
    boxes: torch.Tensor | None = None,
    threshold: float = MASK_THRESHOLD,
    chunk: int = 32,
) -> torch.Tensor:
    """Soft low-res masks [D,h,w] -> bool [D,height,width]: bilinear resize (align_corners=False), > threshold.

    With ``boxes`` (relative xyxy [D,4], the boxes the masks were cropped with) only a window
    around each box is resized — everything outside it is exactly zero after the crop — so
    the cost follows the instances' size instead of D x image size.  Without boxes the whole
    image is resized, in chunks so memory stays bounded.
    """
    d = masks.shape[0]
    out = torch.zeros((d, height, width), dtype=torch.bool, device=masks.device)
    if d == 0:
        return out
    if boxes is None:
        for start in range(0, d, chunk):
            part = masks[start : start + chunk].unsqueeze(0).float()
            out[start : start + chunk] = (
                F.interpolate(part, (height, width), mode="bilinear", align_corners=False)[0] > threshold
            )
        return out
    for idx, windows, origins in paste_mask_windows(masks, height, width, boxes, threshold):
        k, win_h, win_w = windows.shape
        xs = origins[:, :1] + torch.arange(win_w, device=masks.device)  # [k,win_w]
        ys = origins[:, 1:] + torch.arange(win_h, device=masks.device)  # [k,win_h]
        base = torch.tensor(idx, device=masks.device)[:, None, None] * (height * width)  # each mask's offset in out
        flat_idx = (base + ys[:, :, None] * width + xs[:, None, :]).view(-1)
        out.view(-1).scatter_(0, flat_idx, windows.reshape(-1))  # straight into out: no per-group full frame
    return out


def paste_mask_windows(
    masks: torch.Tensor,
    height: int,
    width: int,
    boxes: torch.Tensor,
    threshold: float = MASK_THRESHOLD,
    group: int = 16,
) -> list[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """Soft low-res masks [D,h,w] cropped with ``boxes`` (relative xyxy [D,4]) -> the
    ``height`` x ``width`` masks as box-sized windows, in groups of up to ``group`` instances
    of similar size: ``[(indices (list of k ints), windows bool [k,wh,ww], origins long [k,2] (x0, y0))]``.
    A group's windows share one size (its largest box's support), each shifted to lie inside
    the image. Outside its window a mask is exactly False, so the windows hold the same values
    as a full-image bilinear resize (align_corners=False) > ``threshold``. Runs on the masks'
    device; one host synchronisation: the window sizes (tensor shapes) must be known."""
    d, h, w = masks.shape
    sy, sx = height / h, width / w
    # the crop keeps low-res pixels inside box +-1 px; bilinear reads one more: 2 low-res px + 1 px margin
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], width, padding=int(2 * sx) + 2)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], height, padding=int(2 * sy) + 2)
    spans_dev = torch.stack((x2 - x1, y2 - y1), dim=1).ceil().long()
    # smallest windows first, ordered on the device: a group's indices need no host-to-device copy
    perm = torch.argsort(spans_dev[:, 0] * spans_dev[:, 1], stable=True)
    host = torch.cat((spans_dev, perm[:, None]), dim=1).tolist()  # the one sync: sizes and order together
    spans, order = [row[:2] for row in host], [row[2] for row in host]
    out = []
    for start in range(0, d, group):
        ids = order[start : start + group]
        win_w = int(min(width, max(spans[k][0] for k in ids) + 1))
        win_h = int(min(height, max(spans[k][1] for k in ids) + 1))
        idx = perm[start : start + group]
        # equal-size windows, shifted to lie inside the image (they still cover each box's support)
        x0 = x1[idx].floor().long().clamp(0, width - win_w)
        y0 = y1[idx].floor().long().clamp(0, height - win_h)
        xs = x0[:, None] + torch.arange(win_w, device=masks.device)  # [k,win_w]
        ys = y0[:, None] + torch.arange(win_h, device=masks.device)  # [k,win_h]
        # F.interpolate's source coordinate, expressed as grid_sample's normalised coordinate
        gx = (2.0 * ((xs.to(masks.dtype) + 0.5) * (w / width) - 0.5) + 1.0) / w - 1.0
        gy = (2.0 * ((ys.to(masks.dtype) + 0.5) * (h / height) - 0.5) + 1.0) / h - 1.0
        grid = torch.stack((gx[:, None, :].expand(-1, win_h, -1), gy[:, :, None].expand(-1, -1, win_w)), dim=-1)
        vals = F.grid_sample(
            masks[idx].unsqueeze(1).float(), grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        out.append((ids, vals[:, 0] > threshold, torch.stack((x0, y0), dim=1)))
    return out


def boxes_to_pixels(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Relative xyxy [D,4] -> pixel xyxy, ordered and clamped to the image."""
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], width)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], height)
    return torch.stack((x1, y1, x2, y2), dim=1)
