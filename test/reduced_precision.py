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
#: bf16 keeps 8 significant bits (fp16 11): mask edges of the untrained reference weights, whose
#: soft masks hover near the 0.5 threshold over large areas, move further. The bf16 rule: the
#: same matching, and at most this share of the matched masks outside the mask rule above.
#: Measured on the CPU (torch autocast, reference weights, astronaut): 1 of 100 (R50, IoU 0.70 at
#: 296 px) and 3 of 100 (YOLACT++: IoU 0.85, 0.79, 0.52 at 1815, 143 and 94 px); OpenVINO bf16: 0.
BF16_MAX_MASK_OUTLIERS = 0.05


def matched_fraction(
    ref: Instances, other: Instances, max_score_diff: float = MAX_SCORE_DIFF
) -> tuple[float, list[str]]:
    """(share of ``ref``'s detections matched in ``other``, problems with the matched masks)."""
    problems = []
    if len(ref) == 0:
        return 1.0, problems
    iou = (
        box_iou(torch.from_numpy(ref.boxes), torch.from_numpy(other.boxes)).numpy()
        if len(other)
        else np.zeros((len(ref), 0))
    )
    used, matched = set(), 0
    for i in range(len(ref)):
        ok = [
            j
            for j in np.argsort(-iou[i])
            if j not in used
            and iou[i, j] >= 0.9
            and other.class_ids[j] == ref.class_ids[i]
            and abs(other.scores[j] - ref.scores[i]) <= max_score_diff
        ]
        if not ok:
            continue
        j = ok[0]
        used.add(j)
        a, b = ref.masks[i], other.masks[j]
        union, differ = int(np.logical_or(a, b).sum()), int(np.logical_xor(a, b).sum())
        if differ > max((1 - MIN_MASK_IOU) * union, MASK_SLACK_PX):  # IoU >= MIN_MASK_IOU, or a tiny mask
            problems.append(f"detection {i}: masks differ in {differ} of {union} pixels (IoU {1 - differ / union:.3f})")
        matched += 1
    return matched / len(ref), problems
