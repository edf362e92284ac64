"""``yolact bag --coco``: one camera's frames as images plus COCO instances and results JSON files.

Per camera a folder ``<DIR>/<camera>/`` (``image`` for a single topic; ``/`` in a camera name
becomes ``_``) with ``images/<n>.png`` (the decoded frames, lossless so labels stay aligned),
``instances.json`` (COCO instances: images, categories, annotations with compressed-RLE
``segmentation``, ``bbox``, ``area``, ``score`` and ``iscrowd`` 0 — auto-labels to correct
and train on with ``yolact train``) and ``results.json`` (the COCO results of ``yolact infer``).
The JSON files are written by :meth:`CocoWriter.close`, atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..evaluation.coco_results import category_mapping, instances_to_coco_results, merged_results
from ..inference.instances import Instances

__all__ = ["CocoWriter", "camera_folder"]


def camera_folder(camera: str) -> str:
    """The folder name of a camera's COCO files."""
    return camera.replace("/", "_") if camera else "image"


class CocoWriter:
    """Collects one camera's frames and detections; :meth:`close` writes the JSON files."""

    def __init__(self, root: "str | Path", camera: str, topic: str, class_names: tuple[str, ...]):
        self.dir = Path(root) / camera_folder(camera)
        self.images_dir = self.dir / "images"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.topic = topic
        self.category_ids = category_mapping(class_names)
        self.categories = [
            {"id": int(cid), "name": str(name), "supercategory": "object"}
            for name, cid in zip(class_names, self.category_ids)
            if cid >= 0
        ]
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.results: list[dict] = []

    def add(self, image: np.ndarray, inst: Instances, stamp_ns: int) -> None:
        """One frame (the BGR or grey image given to the Segmenter) and its instances."""
        image_id = len(self.images) + 1
        file_name = f"{image_id:06d}.png"
        if not cv2.imwrite(str(self.images_dir / file_name), np.ascontiguousarray(image)):
            raise OSError(f"cannot write {self.images_dir / file_name}")
        height, width = image.shape[:2]
        self.images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "height": int(height),
                "width": int(width),
                "topic": self.topic,
                "stamp_ns": int(stamp_ns),
            }
        )
        boxes, masks = instances_to_coco_results(inst, image_id, self.category_ids)
        for box, mask in zip(boxes, masks):
            rle = {"size": mask["segmentation"]["size"], "counts": mask["segmentation"]["counts"].encode("ascii")}
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": image_id,
                    "category_id": mask["category_id"],
                    "segmentation": mask["segmentation"],
                    "area": float(mask_utils.area(rle)),
                    "bbox": box["bbox"],
                    "score": mask["score"],
                    "iscrowd": 0,
                }
            )
        self.results += merged_results(inst, image_id, self.category_ids, file_name)

    def close(self) -> None:
        """Write ``instances.json`` and ``results.json`` (each to a temporary name, then renamed)."""
        instances = {
            "info": {"description": f"yolact bag auto-labels of {self.topic}"},
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }
        for name, data in (("instances.json", instances), ("results.json", self.results)):
            tmp = self.dir / f".{name}.tmp"
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self.dir / name)
