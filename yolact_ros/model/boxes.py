"""Box geometry shared by training and inference: the prior box coding, IoU, coordinate
sanitising and mask cropping.

Coordinate frames: priors are (cx, cy, w, h) relative (0..1) to the square network input
(as :func:`yolact_ros.model.heads.make_priors` makes them); boxes are relative x1, y1, x2, y2
unless a function says pixels.  ``encode`` (training targets) and ``decode`` (inference)
use the same :data:`VARIANCES` and are exact inverses.
"""

from __future__ import annotations

import torch

#: SSD's box-coding variances: centre offsets are scaled by 0.1, log-sizes by 0.2.
VARIANCES = (0.1, 0.2)

__all__ = [
    "VARIANCES",
    "point_form",
    "encode",
    "decode",
    "box_area",
    "box_intersection",
    "box_iou",
    "sanitize_coordinates",
    "crop_masks",
]


def point_form(priors: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) [...,4] -> (x1, y1, x2, y2)."""
    return torch.cat((priors[..., :2] - priors[..., 2:] / 2, priors[..., :2] + priors[..., 2:] / 2), dim=-1)


def encode(boxes: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Regression targets of relative xyxy boxes [P,4] w.r.t. priors [P,4] (cx,cy,w,h); inverse of :func:`decode`."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    wh = (boxes[..., 2:] - boxes[..., :2]).clamp(min=1e-6)
    g_cxcy = (centre - priors[..., :2]) / (VARIANCES[0] * priors[..., 2:])
    g_wh = torch.log(wh / priors[..., 2:]) / VARIANCES[1]
    return torch.cat((g_cxcy, g_wh), dim=-1)


def decode(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Box regressions loc [...,P,4] + priors [P,4] (cx,cy,w,h) -> relative xyxy [...,P,4]."""
    cxcy = priors[..., :2] + loc[..., :2] * VARIANCES[0] * priors[..., 2:]
    wh = priors[..., 2:] * torch.exp(loc[..., 2:] * VARIANCES[1])
    x1y1 = cxcy - wh / 2
    return torch.cat((x1y1, x1y1 + wh), dim=-1)


def _planes(boxes: torch.Tensor) -> list[torch.Tensor]:
    # contiguous per-coordinate planes: every op below is then a plain broadcast (fast on CPU)
    return [boxes[..., i].contiguous() for i in range(4)]


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of xyxy boxes [...,N,4] -> [...,N] (0 for inverted boxes)."""
    x1, y1, x2, y2 = _planes(boxes)
    return (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)


def box_intersection(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection area of every pair: xyxy a [...,A,4], b [...,B,4] -> [...,A,B]."""
    ax1, ay1, ax2, ay2 = _planes(a)
    bx1, by1, bx2, by2 = _planes(b)
    iw = torch.minimum(ax2[..., :, None], bx2[..., None, :]) - torch.maximum(ax1[..., :, None], bx1[..., None, :])
    ih = torch.minimum(ay2[..., :, None], by2[..., None, :]) - torch.maximum(ay1[..., :, None], by1[..., None, :])
    return iw.clamp_(min=0).mul_(ih.clamp_(min=0))


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every pair: xyxy a [...,A,4], b [...,B,4] (same leading dims) -> [...,A,B].

    No crowd handling; 0 where both boxes are empty (never NaN).
    """
    inter = box_intersection(a, b)
    union = box_area(a)[..., :, None] + box_area(b)[..., None, :] - inter
    return inter / union.clamp(min=1e-12)


def sanitize_coordinates(x1: torch.Tensor, x2: torch.Tensor, size: int, padding: int = 0):
    """Relative coordinate pair -> pixels, ordered, padded and clamped to [0, size]."""
    x1 = x1 * size
    x2 = x2 * size
    lo = torch.minimum(x1, x2)
    hi = torch.maximum(x1, x2)
    return (lo - padding).clamp(min=0), (hi + padding).clamp(max=size)


def crop_masks(masks: torch.Tensor, boxes: torch.Tensor, padding: int = 1) -> torch.Tensor:
    """Zero each mask [K,h,w] outside its relative box [K,4] (padded by ``padding`` mask pixels)."""
    k, h, w = masks.shape
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], w, padding)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], h, padding)
    cols = torch.arange(w, device=masks.device, dtype=boxes.dtype).view(1, 1, w)
    rows = torch.arange(h, device=masks.device, dtype=boxes.dtype).view(1, h, 1)
    inside_x = (cols >= x1.view(k, 1, 1)) & (cols < x2.view(k, 1, 1))
    inside_y = (rows >= y1.view(k, 1, 1)) & (rows < y2.view(k, 1, 1))
    return masks * (inside_x & inside_y).to(masks.dtype)
