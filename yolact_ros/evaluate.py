"""COCO-style evaluation: box and mask AP of a :class:`~yolact_ros.segmenter.Segmenter`.

``yolact eval --weights W --json J --images DIR [--config C] [--out results.json]``
runs the segmenter on every image of a COCO-format JSON (score threshold 0 and
``max_num_detections`` per image, as the original's evaluation), turns the
detections into COCO results (boxes as ``[x, y, w, h]`` pixels, masks as compressed
RLE, 0-based class ids mapped back to the JSON's category ids) and scores them with
pycocotools' ``COCOeval`` for ``bbox`` and ``segm``.  Its output ends with exactly::

    box AP <value>
    mask AP <value>

(0-100 scale).  The pieces are separate so they can be used and tested without a
model: :func:`category_mapping`, :func:`instances_to_coco_results`,
:func:`coco_evaluate`.
"""
from __future__ import annotations

import argparse
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
import numpy as np
from pycocotools import mask as mask_utils

from .data.coco import DatasetError, load_coco, object_categories

log = logging.getLogger(__name__)

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
IOU_TYPES = (("box", "bbox"), ("mask", "segm"))


def category_mapping(class_names: Sequence[str], coco) -> np.ndarray:
    """int64 [len(class_names)]: the JSON category id of each 0-based model class (-1 = not in the JSON).

    Classes are matched by name.  If no name matches but the counts are equal, classes
    map by position onto the categories sorted by id (an unused ``_background_``
    placeholder category left out, as :class:`~yolact_ros.data.coco.CocoInstances` does) (a model trained on this JSON with
    other names), with a warning.  Otherwise :class:`DatasetError`.
    """
    cats = object_categories(coco)
    by_name = {str(c.get("name")): int(c["id"]) for c in cats}
    mapping = np.array([by_name.get(str(n), -1) for n in class_names], dtype=np.int64)
    if (mapping >= 0).any():
        missing = [c["name"] for c in cats if int(c["id"]) not in set(mapping.tolist())]
        if missing:
            log.warning("categories the model does not know (their AP will be 0): %s", ", ".join(map(str, missing)))
        return mapping
    if len(class_names) == len(cats):
        log.warning("no class name of the model matches the JSON's categories; mapping by position (sorted category ids)")
        return np.array([int(c["id"]) for c in cats], dtype=np.int64)
    raise DatasetError(
        f"the model's {len(class_names)} classes ({', '.join(list(class_names)[:5])}, ...) do not match the JSON's "
        f"{len(cats)} categories ({', '.join(str(c.get('name')) for c in cats[:5])}, ...)"
    )


def instances_to_coco_results(inst, image_id: int, category_ids: np.ndarray) -> tuple[list[dict], list[dict]]:
    """(box results, mask results) of one image's :class:`~yolact_ros.instances.Instances`.

    Boxes score with ``inst.box_scores`` and masks with ``inst.scores`` (for YOLACT++
    the mask-IoU re-scored score), as the original's evaluation does.  Classes that
    map to no category (-1) are dropped.
    """
    n = len(inst)
    if n == 0:
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
        box_results.append({
            "image_id": int(image_id), "category_id": cat,
            "bbox": [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2), round(float(y2 - y1), 2)],
            "score": round(float(box_scores[j]), 5),
        })
        rle = rles[j]
        mask_results.append({
            "image_id": int(image_id), "category_id": cat,
            "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
            "score": round(float(scores[j]), 5),
        })
    return box_results, mask_results


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
    per image, as the original's evaluation (its settings are restored afterwards).
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
    saved = (segmenter.score_threshold, segmenter.top_k)
    segmenter.score_threshold = 0.0
    segmenter.top_k = int(segmenter.cfg.max_num_detections)
    box_results: list[dict] = []
    mask_results: list[dict] = []
    evaluated: list[int] = []
    skipped: list[str] = []
    iterator = image_ids
    if progress:
        from tqdm import tqdm

        iterator = tqdm(image_ids, desc="eval", unit="img", file=sys.stderr)
    t0 = time.perf_counter()
    try:
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
    finally:
        segmenter.score_threshold, segmenter.top_k = saved
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


def _config_arg(value: str | None):
    """--config: an official name or a YAML/JSON config file; None = from the checkpoint."""
    if not value:
        return None
    from .train.config_file import resolve_config

    return resolve_config(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="yolact eval",
        description="Box and mask AP (COCOeval) of YOLACT weights on a COCO-format dataset.",
    )
    parser.add_argument("--weights", required=True, help="checkpoint (.pth)")
    parser.add_argument("--json", required=True, help="COCO-format instances JSON (ground truth)")
    parser.add_argument("--images", required=True, help="folder the JSON's file_name entries are relative to")
    parser.add_argument("--config", default=None,
                        help="official config name or config file (default: from the checkpoint or its file name)")
    parser.add_argument("--out", default=None,
                        help="write COCO mask results here (box results go to <stem>_bbox.json next to it)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--max-images", type=int, default=None, help="evaluate only the first N images (by id)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .model.checkpoint import CheckpointError
    from .segmenter import Segmenter

    try:
        seg = Segmenter(config=_config_arg(args.config), weights=args.weights, device=args.device)
        stats = evaluate(seg, args.json, args.images, results_json=args.out, progress=not args.no_progress,
                         max_images=args.max_images)
    except (DatasetError, CheckpointError, FileNotFoundError, KeyError, ValueError, OSError) as exc:
        print(f"yolact eval: error: {exc}", file=sys.stderr)
        return 2
    print(f"\n{stats['num_images']} images, {stats['num_detections']} detections, "
          f"{stats['seconds_per_image'] * 1000:.0f} ms per image"
          + (f", {stats['skipped_images']} images skipped" if stats["skipped_images"] else ""))
    if args.out:
        print(f"results: {args.out}")
    print(f"box AP {stats['box_AP']:.2f}")
    print(f"mask AP {stats['mask_AP']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
