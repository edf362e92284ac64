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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from ..data.coco import DatasetError, load_coco
from .coco_results import category_mapping, instances_to_coco_results

log = logging.getLogger(__name__)

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
IOU_TYPES = (("box", "bbox"), ("mask", "segm"))


def coco_evaluate(
    coco_gt,
    box_results: list[dict],
    mask_results: list[dict],
    image_ids: Sequence[int] | None = None,
    verbose: bool = True,
) -> dict:
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


@dataclass
class Predictions:
    """COCO results of a segmenter on some images (:func:`predict`); shards of one set add up with ``+``."""

    box_results: list[dict] = field(default_factory=list)
    mask_results: list[dict] = field(default_factory=list)
    evaluated: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __add__(self, other: "Predictions") -> "Predictions":
        return Predictions(
            self.box_results + other.box_results,
            self.mask_results + other.mask_results,
            self.evaluated + other.evaluated,
            self.skipped + other.skipped,
            self.seconds + other.seconds,
        )


def eval_image_ids(coco, max_images: int | None = None) -> list[int]:
    """The images an evaluation scores, in order: all of the JSON's, or its first ``max_images``."""
    ids = sorted(coco.getImgIds())
    return ids[: int(max_images)] if max_images is not None else ids


def predict(segmenter, coco, images_dir: "str | Path", image_ids: Sequence[int], progress: bool = True) -> Predictions:
    """Run ``segmenter`` on ``image_ids`` of ``coco`` with the original's evaluation settings
    (score threshold 0, ``cfg.max_num_detections`` per image, on a copy: ``segmenter`` itself
    is not changed).  Missing, unreadable and mis-sized images are listed in ``skipped``."""
    images_dir = Path(images_dir)
    mapping = category_mapping(segmenter.class_names, coco)
    segmenter = segmenter.with_settings(score_threshold=0.0, top_k=int(segmenter.cfg.max_num_detections))
    out = Predictions()
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
            out.skipped.append(str(path))
            continue
        if image.shape[:2] != (info.get("height"), info.get("width")):
            # masks would not line up with the ground truth's RLE size
            out.skipped.append(
                f"{path} ({image.shape[1]}x{image.shape[0]}, JSON says {info.get('width')}x{info.get('height')})"
            )
            continue
        b, m = instances_to_coco_results(segmenter(image), image_id, mapping)
        out.box_results += b
        out.mask_results += m
        out.evaluated.append(image_id)
    out.seconds = time.perf_counter() - t0
    return out


def score(coco, predictions: Predictions, source: str = "the JSON", verbose: bool = True) -> dict:
    """:func:`coco_evaluate` of ``predictions`` plus ``num_images``, ``num_detections``,
    ``skipped_images`` and ``seconds_per_image``; no image read at all is an error."""
    p = predictions
    if p.skipped:
        log.warning(
            "skipped %d missing, unreadable or mis-sized images (e.g. %s)", len(p.skipped), ", ".join(p.skipped[:3])
        )
    if not p.evaluated:
        raise DatasetError(f"none of the {len(p.evaluated) + len(p.skipped)} images of {source} could be read")
    stats = coco_evaluate(coco, p.box_results, p.mask_results, p.evaluated, verbose=verbose)
    stats.update(
        num_images=len(p.evaluated),
        num_detections=len(p.mask_results),
        skipped_images=len(p.skipped),
        seconds_per_image=p.seconds / len(p.evaluated),
    )
    return stats


def evaluate(
    segmenter,
    ann_json: "str | Path",
    images_dir: "str | Path",
    results_json: "str | Path | None" = None,
    progress: bool = True,
    max_images: int | None = None,
    verbose: bool = True,
) -> dict:
    """Run ``segmenter`` on every image of ``ann_json`` and score it with COCOeval.

    The segmenter runs with score threshold 0 and ``cfg.max_num_detections`` (100)
    per image, as the original's evaluation (on a copy: ``segmenter`` itself is not changed).
    Image files that are missing, unreadable or of another size than the JSON says are
    skipped with a warning and left out of the evaluation.  ``results_json``: write the mask results there (standard
    COCO ``segm`` results) and the box results next to it as ``<stem>_bbox.json``.
    Returns :func:`coco_evaluate`'s dict plus ``num_images``, ``num_detections``,
    ``skipped_images`` and ``seconds_per_image``.
    """
    coco = load_coco(ann_json)
    predictions = predict(segmenter, coco, images_dir, eval_image_ids(coco, max_images), progress)
    if results_json is not None and predictions.evaluated:
        out = Path(results_json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(predictions.mask_results))
        out.with_name(out.stem + "_bbox" + (out.suffix or ".json")).write_text(json.dumps(predictions.box_results))
    return score(coco, predictions, f"{ann_json} in {images_dir}", verbose)
