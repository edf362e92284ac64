"""SSD-style matching of priors to ground truth.

Coordinates: priors are (cx, cy, w, h) relative to the square network input (as
:func:`yolact_ros.model.heads.make_priors` makes them); ground-truth boxes are
relative x1, y1, x2, y2.  The regression targets are :func:`yolact_ros.model.boxes.encode`,
which :func:`yolact_ros.model.boxes.decode` undoes at inference time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model.boxes import box_area, box_intersection, box_iou, encode, point_form

__all__ = ["Match", "crowd_overlap", "match"]


def crowd_overlap(priors_xyxy: torch.Tensor, crowd: torch.Tensor) -> torch.Tensor:
    """Share of each prior covered by each crowd box: intersection / prior area -> [P,C].

    As in the original, a prior lying inside a crowd region scores 1 whatever the
    crowd box's size, so it is neither trained as background nor as an object.
    """
    return box_intersection(priors_xyxy, crowd) / box_area(priors_xyxy)[:, None].clamp(min=1e-12)


@dataclass
class Match:
    """Result of :func:`match` for one image (P priors).

    ``conf``: int64 [P] class target, 0 = background, c+1 = class c, -1 = ignored
    (neutral IoU band or inside a crowd region).  ``gt_index``: int64 [P] index of
    the matched (non-crowd) ground truth, valid where ``conf > 0``.  ``loc``:
    float [P,4] regression targets (meaningful where ``conf > 0``).  ``overlap``:
    [P] IoU with the matched ground truth (2.0 for forced matches).
    """

    conf: torch.Tensor
    gt_index: torch.Tensor
    loc: torch.Tensor
    overlap: torch.Tensor

    @property
    def positive(self) -> torch.Tensor:
        return self.conf > 0


def match(
    priors: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    crowd_boxes: torch.Tensor | None = None,
    pos_thresh: float = 0.5,
    neg_thresh: float = 0.4,
    crowd_thresh: float = 0.7,
) -> Match:
    """Assign every prior a target, as the original YOLACT (SSD) does.

    - each prior takes the ground truth it overlaps most; IoU >= ``pos_thresh`` makes
      it positive, IoU < ``neg_thresh`` background, in between it is ignored;
    - each ground truth is additionally forced onto its best prior (greedily, best
      pair first), so no object goes unmatched;
    - a background or ignored prior whose area lies more than ``crowd_thresh``
      inside a crowd box is ignored (never trained as background); crowd boxes are
      never matched as positives (``crowd_thresh >= 1`` turns this off).

    priors [P,4] (cx,cy,w,h); gt_boxes [K,4] relative xyxy (non-crowd), gt_labels
    int64 [K] 0-based; crowd_boxes [C,4] or None.
    """
    num_priors = priors.shape[0]
    device = priors.device
    priors_xyxy = point_form(priors)
    k = gt_boxes.shape[0]
    if k == 0:
        conf = torch.zeros(num_priors, dtype=torch.long, device=device)
        gt_index = torch.zeros(num_priors, dtype=torch.long, device=device)
        loc = torch.zeros((num_priors, 4), dtype=priors.dtype, device=device)
        overlap = torch.zeros(num_priors, dtype=priors.dtype, device=device)
    else:
        overlaps = box_iou(gt_boxes.to(priors.dtype), priors_xyxy)  # [K,P]
        overlap, gt_index = overlaps.max(0)
        # Force-match: repeatedly take the globally best (gt, prior) pair and retire both.
        work = overlaps.clone()
        for _ in range(k):
            best_per_gt, best_prior = work.max(1)
            j = int(best_per_gt.argmax())
            if best_per_gt[j] < 0:
                break
            i = int(best_prior[j])
            work[:, i] = -1
            work[j, :] = -1
            overlap[i] = 2.0
            gt_index[i] = j
        conf = gt_labels.to(device)[gt_index] + 1
        conf[overlap < pos_thresh] = -1
        conf[overlap < neg_thresh] = 0
        loc = encode(gt_boxes.to(priors.dtype)[gt_index], priors)
    if crowd_boxes is not None and crowd_boxes.shape[0] > 0 and crowd_thresh < 1:
        best_crowd = crowd_overlap(priors_xyxy, crowd_boxes.to(priors.dtype)).max(1).values
        conf[(conf <= 0) & (best_crowd > crowd_thresh)] = -1
    return Match(conf=conf, gt_index=gt_index, loc=loc, overlap=overlap)
