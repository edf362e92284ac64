"""Overlay drawing (OpenCV): masks, boxes and labels on a BGR image."""

from __future__ import annotations

import cv2
import numpy as np

from .defaults import MASK_ALPHA
from .instances import Instances


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per class (golden-ratio hue walk)."""
    hue = (int(class_id) * 0.618033988749895) % 1.0
    hsv = np.array([[[int(hue * 179), 200, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_instances(
    image_bgr: np.ndarray,
    inst: Instances,
    class_names: "tuple[str, ...] | None" = None,
    alpha: float = MASK_ALPHA,
    draw_boxes: bool = True,
    draw_labels: bool = True,
    draw_masks: bool = True,
) -> np.ndarray:
    """A new uint8 BGR image: ``image_bgr`` with each instance's mask tinted, box and "name score" label.

    Lower-scored instances are drawn first so the best ones end on top.
    """
    names = class_names or inst.class_names
    out = image_bgr.copy()
    if len(inst) == 0:
        return out
    order = np.argsort(inst.scores, kind="stable")
    if draw_masks:
        tint = out.astype(np.float32)
        for i in order:
            x0, y0, m = inst.mask_window(i)  # box-sized: only the window is touched
            region = tint[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]]
            m = m[: region.shape[0], : region.shape[1]]
            tint_color = np.array(class_color(inst.class_ids[i]), np.float32)
            region[m] = region[m] * (1.0 - alpha) + tint_color * alpha
        out = tint.astype(np.uint8)
    h, w = out.shape[:2]
    scale = max(0.4, min(h, w) / 900.0)
    thick = max(1, int(round(scale * 2)))
    for i in order:
        color = class_color(inst.class_ids[i])
        x1, y1, x2, y2 = (int(round(v)) for v in inst.boxes[i])
        if draw_boxes:
            cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        if draw_labels:
            cid = int(inst.class_ids[i])
            name = names[cid] if 0 <= cid < len(names) else str(cid)
            text = f"{name} {inst.scores[i]:.2f}"
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
            ty = max(th + base, y1)
            cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), color, -1)
            cv2.putText(out, text, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out
