"""COCO-format instance segmentation datasets, read with pycocotools.

:class:`CocoInstances` checks the whole annotation file when it is built, so that
bad data is reported once, up front, with names — not as an exception deep inside a
DataLoader worker halfway through training:

- images whose file is missing or unreadable, or whose size differs from the JSON,
  are skipped;
- annotations that are empty or degenerate (no polygon with 3 points, zero mask
  area, a box under one pixel, an unknown category, a malformed segmentation) are
  skipped;
- images left with no usable annotation are skipped unless ``keep_empty=True``
  (training needs objects; the original YOLACT also trains only on images with
  annotations).  Crowd-only images count as empty.

What was skipped is counted in ``ds.skipped`` (reason -> count) and logged once as a
warning with a few example names.  ``strict=True`` raises :class:`DatasetError`
instead.  Category ids (any integers, in any order) map to contiguous 0-based labels
in ascending id order; ``class_names`` follows the same order.  A category named
``_background_`` / ``__background__`` / ``background`` that no annotation uses (labelme2coco
writes one) is ignored: YOLACT adds its own background class.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

log = logging.getLogger(__name__)


#: Category names that mean "background" in some converters; ignored when no annotation uses them.
BACKGROUND_NAMES = frozenset({"_background_", "__background__", "background"})


class DatasetError(ValueError):
    """A COCO-format dataset that cannot be used as asked (the message names the file)."""


def load_coco(ann_json: "str | Path"):
    """``pycocotools.coco.COCO`` for a file, with a clear error for a missing or malformed one."""
    from pycocotools.coco import COCO

    path = Path(ann_json)
    if not path.is_file():
        raise DatasetError(f"annotation file not found: {path}")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable JSON file ({exc})") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("categories"), list)
    ):
        raise DatasetError(f"{path}: not a COCO instances file (needs 'images' and 'categories' lists)")
    data.setdefault("annotations", [])
    for key in ("images", "annotations", "categories"):
        for entry in data[key]:
            if not isinstance(entry, dict) or "id" not in entry:
                raise DatasetError(f"{path}: every entry of '{key}' needs an 'id' (found {str(entry)[:80]})")
    for ann in data["annotations"]:
        if "image_id" not in ann or "category_id" not in ann:
            raise DatasetError(f"{path}: annotation {ann['id']} lacks image_id or category_id")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        coco.createIndex()
    return coco


def object_categories(coco) -> list[dict]:
    """The JSON's categories sorted by id, without an unused background placeholder.

    labelme2coco and Detectron-style files list a ``_background_`` category; YOLACT
    has its own background class, so such a category is left out when no annotation uses it.
    """
    used = {a["category_id"] for a in coco.dataset["annotations"]}
    cats = sorted(coco.dataset["categories"], key=lambda c: c["id"])
    return [c for c in cats if not (str(c.get("name")) in BACKGROUND_NAMES and c["id"] not in used)]


def annotation_rle(ann: dict, height: int, width: int):
    """The annotation's mask as one compressed RLE, or None if its segmentation is unusable.

    Handles polygons (list of flat [x1,y1,x2,y2,...] lists; ones with under 3 points
    are dropped), uncompressed RLE (``counts`` a list) and compressed RLE.
    """
    seg = ann.get("segmentation")
    try:
        if isinstance(seg, list):
            polys = [p for p in seg if isinstance(p, (list, tuple)) and len(p) >= 6 and len(p) % 2 == 0]
            if not polys:
                return None
            return mask_utils.merge(mask_utils.frPyObjects([list(map(float, p)) for p in polys], height, width))
        if isinstance(seg, dict) and "counts" in seg and "size" in seg:
            if list(seg["size"]) != [height, width]:
                return None
            if isinstance(seg["counts"], list):
                return mask_utils.frPyObjects(seg, height, width)
            counts = seg["counts"].encode("ascii") if isinstance(seg["counts"], str) else seg["counts"]
            return {"size": [height, width], "counts": counts}
    except (TypeError, ValueError, OverflowError):
        return None
    return None


def _image_size_on_disk(path: str) -> tuple[int, int] | None:
    """(height, width) from the file header, or None if it cannot be read as an image."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except Exception:  # noqa: BLE001 - Pillow raises many types for a file it cannot read; the caller reports it
        return None


class CocoInstances:
    """A COCO-format instance dataset: ``ds[i] -> (image_bgr, target)``.

    ``image_bgr``: uint8 [H,W,3] (grey and BGRA files are converted).
    ``target``: ``boxes`` float32 [K,4] x1,y1,x2,y2 in pixels (from the JSON ``bbox``,
    clipped to the image), ``labels`` int64 [K] 0-based (index into ``class_names``),
    ``masks`` uint8 [K,H,W] in {0,1}, ``iscrowd`` bool [K], ``image_id`` int (the JSON's).
    Crowd annotations are kept with ``iscrowd`` True (the loss ignores matches to them).

    Parameters: ``ann_json``, ``images_dir`` (``file_name`` is relative to it),
    ``keep_empty`` (keep images without usable non-crowd annotations), ``check_images``
    (read every image header up front to catch missing/unreadable files and size
    mismatches; when False only existence is checked), ``strict`` (raise
    :class:`DatasetError` on the first problem instead of skipping).
    """

    def __init__(
        self,
        ann_json: "str | Path",
        images_dir: "str | Path",
        keep_empty: bool = False,
        check_images: bool = True,
        strict: bool = False,
    ):
        self.ann_json = Path(ann_json)
        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise DatasetError(f"images folder not found: {self.images_dir}")
        self.coco = coco = load_coco(self.ann_json)
        cats = object_categories(coco)
        if not cats:
            raise DatasetError(f"{self.ann_json}: no categories")
        self.category_ids: tuple[int, ...] = tuple(int(c["id"]) for c in cats)
        self.class_names: tuple[str, ...] = tuple(str(c.get("name", c["id"])) for c in cats)
        self.cat_to_label: dict[int, int] = {cid: i for i, cid in enumerate(self.category_ids)}
        self.skipped: Counter = Counter()
        examples: dict[str, list[str]] = {}

        def skip(reason: str, what: str) -> None:
            if strict:
                raise DatasetError(f"{self.ann_json}: {reason}: {what}")
            self.skipped[reason] += 1
            examples.setdefault(reason, [])
            if len(examples[reason]) < 3:
                examples[reason].append(what)

        self._items: list[tuple[dict, list[dict]]] = []  # (image info, usable annotations with 'rle' removed)
        for image_id in sorted(coco.imgs):
            info = coco.imgs[image_id]
            name = str(info.get("file_name", ""))
            path = str(self.images_dir / name)
            try:
                height, width = int(info["height"]), int(info["width"])
            except (KeyError, TypeError, ValueError):
                skip("image without width/height", name or f"image id {image_id}")
                continue
            if not name or not os.path.isfile(path):
                skip("missing image file", path)
                continue
            if check_images:
                size = _image_size_on_disk(path)
                if size is None:
                    skip("unreadable image file", path)
                    continue
                if size != (height, width):
                    skip(
                        "image size differs from the JSON", f"{path} is {size[1]}x{size[0]}, JSON says {width}x{height}"
                    )
                    continue
            anns = []
            for ann in coco.imgToAnns.get(image_id, []):
                problem = self._check_annotation(ann, height, width)
                if problem:
                    skip(problem, f"annotation {ann['id']} of {name}")
                    continue
                anns.append(ann)
            if not keep_empty and not any(not a.get("iscrowd", 0) for a in anns):
                skip("image without usable annotations", name)
                continue
            self._items.append((info, anns))
        if self.skipped:
            details = "; ".join(
                f"{reason}: {n} (e.g. {', '.join(examples[reason])})" for reason, n in self.skipped.items()
            )
            log.warning("%s: skipped %s", self.ann_json, details)
        if not self._items:
            raise DatasetError(
                f"{self.ann_json}: no usable images in {self.images_dir}"
                + (f" (skipped: {dict(self.skipped)})" if self.skipped else "")
            )

    def _check_annotation(self, ann: dict, height: int, width: int) -> str | None:
        """Why an annotation is unusable, or None."""
        if ann["category_id"] not in self.cat_to_label:
            return "annotation with an unknown category_id"
        bbox = ann.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            return "annotation without a bbox"
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            return "annotation with a malformed bbox"
        x1, y1 = max(x, 0.0), max(y, 0.0)
        x2, y2 = min(x + w, float(width)), min(y + h, float(height))
        if not (np.isfinite([x, y, w, h]).all() and x2 - x1 >= 1.0 and y2 - y1 >= 1.0):
            return "degenerate annotation (box under 1 pixel or outside the image)"
        rle = annotation_rle(ann, height, width)
        if rle is None:
            return "degenerate annotation (no usable polygon or RLE)"
        if mask_utils.area(rle) <= 0:
            return "degenerate annotation (empty mask)"
        return None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def image_ids(self) -> list[int]:
        return [int(info["id"]) for info, _ in self._items]

    def image_path(self, index: int) -> Path:
        return self.images_dir / self._items[index][0]["file_name"]

    def read_image(self, index: int) -> np.ndarray:
        """The image as BGR uint8 [H,W,3]; a clear error naming the file if it cannot be read."""
        path = self.image_path(index)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"cannot read image {path}")
        return image

    def target(self, index: int) -> dict:
        """The annotations of item ``index`` as arrays (see the class docstring)."""
        info, anns = self._items[index]
        height, width = int(info["height"]), int(info["width"])
        k = len(anns)
        boxes = np.zeros((k, 4), np.float32)
        labels = np.zeros((k,), np.int64)
        masks = np.zeros((k, height, width), np.uint8)
        iscrowd = np.zeros((k,), bool)
        for j, ann in enumerate(anns):
            x, y, w, h = (float(v) for v in ann["bbox"])
            boxes[j] = (max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height))
            labels[j] = self.cat_to_label[ann["category_id"]]
            masks[j] = mask_utils.decode(annotation_rle(ann, height, width))
            iscrowd[j] = bool(ann.get("iscrowd", 0))
        return {"boxes": boxes, "labels": labels, "masks": masks, "iscrowd": iscrowd, "image_id": int(info["id"])}

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index %= len(self)
        image = self.read_image(index)
        target = self.target(index)
        if image.shape[:2] != target["masks"].shape[1:]:
            raise DatasetError(
                f"{self.image_path(index)} is {image.shape[1]}x{image.shape[0]}, "
                f"but {self.ann_json} says {target['masks'].shape[2]}x{target['masks'].shape[1]}"
            )
        return image, target

    def __repr__(self) -> str:
        return (
            f"CocoInstances({str(self.ann_json)!r}, {len(self)} images, {len(self.class_names)} classes"
            + (f", skipped {dict(self.skipped)}" if self.skipped else "")
            + ")"
        )
