"""The reduced-precision rule (tf32, fp16, bf16, int8 networks against fp32), defined once.

At least ``MIN_MATCHED`` of the fp32 detections have a partner of the same class with box IoU
>= 0.9 and |score difference| <= 0.02, and matched masks overlap by IoU >= ``MIN_MASK_IOU``
or, for small masks, differ in at most ``MASK_SLACK_PX`` pixels.  Why these numbers (the fp16
dry run on 6 configs x 3 photos): test_cuda.py's docstring; bf16 on the CPU: docs/cpu.md.
"""
from __future__ import annotations

import numpy as np
import torch

from yolact_ros.inference.instances import Instances
from yolact_ros.model.boxes import box_iou

#: the share of fp32 detections that must be matched
MIN_MATCHED = 0.90
MIN_MASK_IOU = 0.85
#: matched masks may differ in this many pixels even where that is over 1 - MIN_MASK_IOU of their union
MASK_SLACK_PX = 16
MAX_SCORE_DIFF = 0.02
#: bf16 keeps 8 significant bits (fp16 11): mask edges move further. Measured on the CPU (torch
#: autocast, yolact_plus_resnet50 on the astronaut, reference weights): matched masks of IoU 0.847
#: (1815 px), 0.79 (143 px) and 0.52 (94 px, 45 px differ); OpenVINO bf16 stayed inside the fp16 rule.
BF16_MIN_MASK_IOU = 0.75
BF16_MASK_SLACK_PX = 64


def matched_fraction(ref: Instances, other: Instances, max_score_diff: float = MAX_SCORE_DIFF,
                     min_mask_iou: float = MIN_MASK_IOU, slack_px: int = MASK_SLACK_PX) -> tuple[float, list[str]]:
    """(share of ``ref``'s detections matched in ``other``, problems with the matched masks)."""
    problems = []
    if len(ref) == 0:
        return 1.0, problems
    iou = box_iou(torch.from_numpy(ref.boxes), torch.from_numpy(other.boxes)).numpy() if len(other) else \
        np.zeros((len(ref), 0))
    used, matched = set(), 0
    for i in range(len(ref)):
        ok = [j for j in np.argsort(-iou[i]) if j not in used and iou[i, j] >= 0.9
              and other.class_ids[j] == ref.class_ids[i] and abs(other.scores[j] - ref.scores[i]) <= max_score_diff]
        if not ok:
            continue
        j = ok[0]
        used.add(j)
        a, b = ref.masks[i], other.masks[j]
        union, differ = int(np.logical_or(a, b).sum()), int(np.logical_xor(a, b).sum())
        if differ > max((1 - min_mask_iou) * union, slack_px):  # IoU >= min_mask_iou, or a tiny mask
            problems.append(f"detection {i}: masks differ in {differ} of {union} pixels "
                            f"(IoU {1 - differ / union:.3f})")
        matched += 1
    return matched / len(ref), problems
