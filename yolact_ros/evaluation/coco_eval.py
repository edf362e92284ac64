"""COCO-style evaluation: box and mask AP of a :class:`~yolact_ros.inference.segmenter.Segmenter`.

:func:`evaluate` (behind ``yolact eval --weights W --json J --images DIR``, see
:mod:`yolact_ros.cli.eval`) runs the segmenter on every image of a COCO-format JSON (score threshold 0 and
``max_num_detections`` per image, as the original's evaluation), turns the
detections into COCO results (boxes as ``[x, y, w, h]`` pixels, masks as compressed
RLE, 0-based class ids mapped back to the JSON's category ids) and scores them with
pycocotools' ``COCOeval`` for ``bbox`` and ``segm``.  Its output ends with exactly::

    box AP <value>
    mask AP <value>

(0-100 scale).  The pieces are separate so they can be used and tested without a
model: :func:`~.coco_results.category_mapping`, :func:`~.coco_results.instances_to_coco_results`
(the package's one COCO-results encoder) and :func:`coco_evaluate`.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import cv2

from ..data.coco import DatasetError, load_coco
from .coco_results import category_mapping, instances_to_coco_results

log = logging.getLogger(__name__)

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
IOU_TYPES = (("box", "bbox"), ("mask", "segm"))


def coco_evaluate(coco_gt, box_results: list[dict], mask_results: list[dict], image_ids: Sequence[int] | None = None,
                  verbose: bool = True) -> dict:
    """COCOeval of box and mask results on ``image_ids`` (default: all images of ``coco_gt``).

    Returns ``box_AP``, ``box_AP50``, ``box_AP75``, ``box_APs``, ``box_APm``, ``box_APl``
    and the same with ``mask_``, on a 0-100 scale; -1 where COCO has no ground truth
    to score (e.g. no small objects).  No detections at all score 0, not an error.
    Prints COCO's summary tables when ``verbose``.
    """
    from pycocotools.cocoeval import COCOeval

    ids = sorted(int(i) for i in (image_ids if image_ids is not None else coco_gt.getImgIds()))
    id_set = set(ids)
    has_gt = any(not a.get("iscrowd", 0) for i in ids for a in coco_gt.imgToAnns.get(i, []))
    out: dict = {}
    for prefix, iou_type in IOU_TYPES:
        results = box_results if iou_type == "bbox" else mask_results
        results = [r for r in results if int(r["image_id"]) in id_set]
        if not results or not ids:
            value = 0.0 if has_gt else -1.0
            stats = [value] * len(STAT_NAMES)
            if verbose:
                print(f"\n{iou_type}: no detections" + ("" if has_gt else " and no ground truth"))
        else:
            sink = io.StringIO()
            with contextlib.redirect_stdout(sink):  # pycocotools prints progress noise
                coco_dt = coco_gt.loadRes(copy.deepcopy(results))  # loadRes edits what it is given
                ev = COCOeval(coco_gt, coco_dt, iou_type)
                ev.params.imgIds = ids
                ev.evaluate()
                ev.accumulate()
            table = io.StringIO()
            with contextlib.redirect_stdout(table):
                ev.summarize()
            if verbose:
                print(f"\n{iou_type}:")
                print(table.getvalue().rstrip())
            stats = [float(v) * 100.0 if v >= 0 else -1.0 for v in ev.stats[: len(STAT_NAMES)]]
        for name, v in zip(STAT_NAMES, stats):
            out[f"{prefix}_{name}"] = v
    return out


def evaluate(segmenter, ann_json: "str | Path", images_dir: "str | Path", results_json: "str | Path | None" = None,
             progress: bool = True, max_images: int | None = None, verbose: bool = True) -> dict:
    """Run ``segmenter`` on every image of ``ann_json`` and score it with COCOeval.

    The segmenter runs with score threshold 0 and ``cfg.max_num_detections`` (100)
    per image, as the original's evaluation (on a copy: ``segmenter`` itself is not changed).
    Image files that are missing, unreadable or of another size than the JSON says are
    skipped with a warning and left out of the evaluation.  ``results_json``: write the mask results there (standard
    COCO ``segm`` results) and the box results next to it as ``<stem>_bbox.json``.
    Returns :func:`coco_evaluate`'s dict plus ``num_images``, ``num_detections``,
    ``skipped_images`` and ``seconds_per_image``.
    """
    images_dir = Path(images_dir)
    coco = load_coco(ann_json)
    mapping = category_mapping(segmenter.class_names, coco)
    image_ids = sorted(coco.getImgIds())
    if max_images is not None:
        image_ids = image_ids[: int(max_images)]
    # the original's evaluation settings, on a copy that shares the network: the caller's
    # Segmenter is never changed
    segmenter = segmenter.with_settings(score_threshold=0.0, top_k=int(segmenter.cfg.max_num_detections))
    box_results: list[dict] = []
    mask_results: list[dict] = []
    evaluated: list[int] = []
    skipped: list[str] = []
    iterator = image_ids
    if progress:
        from tqdm import tqdm

        iterator = tqdm(image_ids, desc="eval", unit="img", file=sys.stderr)
    t0 = time.perf_counter()
    for image_id in iterator:
        info = coco.imgs[image_id]
        path = images_dir / str(info.get("file_name", ""))
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if image is None:
            skipped.append(str(path))
            continue
        if image.shape[:2] != (info.get("height"), info.get("width")):
            # masks would not line up with the ground truth's RLE size
            skipped.append(f"{path} ({image.shape[1]}x{image.shape[0]}, JSON says {info.get('width')}x{info.get('height')})")
            continue
        inst = segmenter(image)
        b, m = instances_to_coco_results(inst, image_id, mapping)
        box_results += b
        mask_results += m
        evaluated.append(image_id)
    seconds = time.perf_counter() - t0
    if skipped:
        log.warning("skipped %d missing, unreadable or mis-sized images (e.g. %s)", len(skipped), ", ".join(skipped[:3]))
    if not evaluated:
        raise DatasetError(f"none of the {len(image_ids)} images of {ann_json} could be read from {images_dir}")
    if results_json is not None:
        out = Path(results_json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(mask_results))
        out.with_name(out.stem + "_bbox" + (out.suffix or ".json")).write_text(json.dumps(box_results))
    stats = coco_evaluate(coco, box_results, mask_results, evaluated, verbose=verbose)
    stats.update(
        num_images=len(evaluated),
        num_detections=len(mask_results),
        skipped_images=len(skipped),
        seconds_per_image=seconds / len(evaluated),
    )
    return stats
