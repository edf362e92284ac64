"""The one COCO-results encoder: :class:`~yolact_ros.inference.instances.Instances` ->
COCO ``bbox`` / ``segm`` result entries, and model classes -> COCO category ids.

Score convention (as the original's evaluation): box results carry ``inst.box_scores``
(the class confidence), mask results carry ``inst.scores`` (for YOLACT++ the mask-IoU
re-scored score; for YOLACT the two are equal).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from ..data.coco import DatasetError, object_categories
from ..model.config import COCO_CLASSES

log = logging.getLogger(__name__)

#: 0-based COCO class index -> official COCO category id (the 80 classes use ids 1..90 with gaps).
COCO_CATEGORY_IDS = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
    24,
    25,
    27,
    28,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    38,
    39,
    40,
    41,
    42,
    43,
    44,
    46,
    47,
    48,
    49,
    50,
    51,
    52,
    53,
    54,
    55,
    56,
    57,
    58,
    59,
    60,
    61,
    62,
    63,
    64,
    65,
    67,
    70,
    72,
    73,
    74,
    75,
    76,
    77,
    78,
    79,
    80,
    81,
    82,
    84,
    85,
    86,
    87,
    88,
    89,
    90,
)


def category_mapping(class_names: Sequence[str], coco=None) -> np.ndarray:
    """int64 [len(class_names)]: the category id of each 0-based model class (-1 = none).

    With a COCO ground truth (``coco``, a pycocotools ``COCO``), classes are matched by name.
    If no name matches but the counts are equal, classes map by position onto the
    categories sorted by id (an unused ``_background_`` placeholder category left out, as
    :class:`~yolact_ros.data.coco.CocoInstances` does), with a warning; otherwise
    :class:`DatasetError`.  Without one: the official COCO ids for the 80 COCO classes,
    else 1..N in class order.
    """
    if coco is None:
        if tuple(class_names) == COCO_CLASSES:
            return np.array(COCO_CATEGORY_IDS, dtype=np.int64)
        return np.arange(1, len(class_names) + 1, dtype=np.int64)
    cats = object_categories(coco)
    by_name = {str(c.get("name")): int(c["id"]) for c in cats}
    mapping = np.array([by_name.get(str(n), -1) for n in class_names], dtype=np.int64)
    if (mapping >= 0).any():
        missing = [c["name"] for c in cats if int(c["id"]) not in set(mapping.tolist())]
        if missing:
            log.warning("categories the model does not know (their AP will be 0): %s", ", ".join(map(str, missing)))
        return mapping
    if len(class_names) == len(cats):
        log.warning(
            "no class name of the model matches the JSON's categories; mapping by position (sorted category ids)"
        )
        return np.array([int(c["id"]) for c in cats], dtype=np.int64)
    raise DatasetError(
        f"the model's {len(class_names)} classes ({', '.join(list(class_names)[:5])}, ...) do not match the JSON's "
        f"{len(cats)} categories ({', '.join(str(c.get('name')) for c in cats[:5])}, ...)"
    )


def instances_to_coco_results(inst, image_id: int, category_ids: np.ndarray) -> tuple[list[dict], list[dict]]:
    """(box results, mask results) of one image's Instances, index-aligned with each other.

    Boxes are ``[x, y, w, h]`` pixels, masks compressed RLE; classes that map to no
    category (-1) are dropped.  Scores: see the module docstring.
    """
    if len(inst) == 0:
        return [], []
    cats = category_ids[np.asarray(inst.class_ids, np.int64)]
    keep = np.nonzero(cats >= 0)[0]
    if len(keep) == 0:
        return [], []
    boxes = np.asarray(inst.boxes, np.float64)[keep]
    masks = np.asarray(inst.masks)[keep].astype(np.uint8)
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    box_scores = np.asarray(inst.box_scores if inst.box_scores is not None else inst.scores, np.float64)[keep]
    scores = np.asarray(inst.scores, np.float64)[keep]
    box_results, mask_results = [], []
    for j in range(len(keep)):
        x1, y1, x2, y2 = boxes[j]
        cat = int(cats[keep[j]])
        box_results.append(
            {
                "image_id": int(image_id),
                "category_id": cat,
                "bbox": [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2), round(float(y2 - y1), 2)],
                "score": round(float(box_scores[j]), 5),
            }
        )
        rle = rles[j]
        mask_results.append(
            {
                "image_id": int(image_id),
                "category_id": cat,
                "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
                "score": round(float(scores[j]), 5),
            }
        )
    return box_results, mask_results


def merged_results(inst, image_id: int, category_ids: np.ndarray, file_name: str) -> list[dict]:
    """One entry per instance with both results merged (the ``results.json`` of ``yolact infer``
    and ``yolact bag --coco``): the mask entry's fields, ``bbox`` from the box entry,
    ``score`` = the final score, ``box_score`` = the class confidence, plus ``file_name`` and
    ``category_name``."""
    boxes, masks = instances_to_coco_results(inst, image_id, category_ids)
    keep = (
        np.nonzero(category_ids[np.asarray(inst.class_ids, np.int64)] >= 0)[0] if len(inst) else np.zeros(0, np.int64)
    )
    return [
        {
            **m,
            "bbox": b["bbox"],
            "box_score": b["score"],
            "file_name": file_name,
            "category_name": inst.class_names[int(inst.class_ids[i])],
        }
        for i, b, m in zip(keep, boxes, masks)
    ]
