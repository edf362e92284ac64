"""The ``yolact`` command: ``infer``, ``bench``, ``train``, ``eval``, ``synth``.

Subcommands are imported lazily so ``yolact infer`` does not load the trainer.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

SUBCOMMANDS = {
    "infer": ("yolact_ros.cli", "infer_main", "segment images, folders and videos; write overlays + COCO results JSON"),
    "bench": ("yolact_ros.benchmark", "main", "per-stage CPU latency of the Segmenter"),
    "train": ("yolact_ros.train.cli", "main", "train on a COCO-format dataset"),
    "eval": ("yolact_ros.evaluate", "main", "box / mask AP on a COCO-format dataset"),
    "synth": ("yolact_ros.data.synth", "main", "write a synthetic COCO-format instance dataset"),
}

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}

# 0-based COCO class index -> official COCO category id (the 80 classes use ids 1..90 with gaps)
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
    35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: yolact {" + ",".join(SUBCOMMANDS) + "} ...\n")
        for name, (_, _, helptext) in SUBCOMMANDS.items():
            print(f"  {name:6s} {helptext}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"yolact: unknown command {name!r}; choose from {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    module, func, _ = SUBCOMMANDS[name]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(getattr(importlib.import_module(module), func)(rest) or 0)


def collect_inputs(paths: list[str]) -> list[Path]:
    """Files named directly, plus the images and videos inside named folders (sorted)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"input {p} does not exist")
    return out


def category_ids(class_names: tuple[str, ...]) -> list[int]:
    from .model.config import COCO_CLASSES

    if tuple(class_names) == COCO_CLASSES:
        return list(COCO_CATEGORY_IDS)
    return list(range(1, len(class_names) + 1))


def coco_results(inst, image_id: int, cat_ids: list[int], file_name: str) -> list[dict]:
    """COCO results entries (bbox xywh, RLE segmentation) for one image's Instances."""
    import numpy as np
    from pycocotools import mask as mask_util

    if len(inst) == 0:
        return []
    rles = mask_util.encode(np.asfortranarray(inst.masks.transpose(1, 2, 0).astype(np.uint8)))
    out = []
    for i in range(len(inst)):
        x1, y1, x2, y2 = (float(v) for v in inst.boxes[i])
        rle = rles[i]
        out.append({
            "image_id": image_id,
            "file_name": file_name,
            "category_id": cat_ids[int(inst.class_ids[i])],
            "category_name": inst.class_names[int(inst.class_ids[i])],
            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
            "score": round(float(inst.scores[i]), 5),
            "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
        })
    return out


def infer_main(argv) -> int:
    p = argparse.ArgumentParser(prog="yolact infer", description="Segment images, folders of images and video files.")
    p.add_argument("inputs", nargs="+", help="image files, folders, video files")
    p.add_argument("--weights", required=True,
                   help="a .pth checkpoint (official or from 'yolact train'); 'reference' = untrained deterministic test weights")
    p.add_argument("--config", default=None, help="config name; default: from the checkpoint or its file name")
    p.add_argument("--out", required=True, help="output folder (overlays, results.json)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--score-threshold", type=float, default=0.15)
    p.add_argument("--top-k", type=int, default=15)
    p.add_argument("--classes", nargs="*", default=None, help="keep only these class names")
    p.add_argument("--half", action="store_true", help="fp16 on CUDA")
    p.add_argument("--no-overlay", action="store_true", help="write only results.json")
    a = p.parse_args(argv)

    import cv2
    from tqdm import tqdm

    from .model.checkpoint import CheckpointError
    from .segmenter import Segmenter
    from .visualize import draw_instances

    weights = None if a.weights == "reference" else a.weights
    config = a.config or (None if weights else "yolact_resnet50")
    try:
        inputs = collect_inputs(a.inputs)
        seg = Segmenter(config=config, weights=weights, device=a.device, score_threshold=a.score_threshold,
                        top_k=a.top_k, classes=a.classes or None, half=a.half)
    except (CheckpointError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"yolact infer: error: {exc}", file=sys.stderr)
        return 2
    if not inputs:
        print("yolact infer: error: no images or videos found in the inputs", file=sys.stderr)
        return 2
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cat_ids = category_ids(seg.class_names)
    results: list[dict] = []
    failed = 0
    image_id = 0
    for path in tqdm(inputs, desc="inputs", unit="file"):
        if path.suffix.lower() in VIDEO_EXTS:
            cap = cv2.VideoCapture(str(path))
            if not cap.isOpened():
                print(f"warning: cannot open video {path}", file=sys.stderr)
                failed += 1
                continue
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
            writer = None
            with tqdm(total=total, desc=path.name, unit="frame", leave=False) as bar:
                frame_no = 0
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    inst = seg(frame)
                    results += coco_results(inst, image_id, cat_ids, f"{path.name}#{frame_no}")
                    image_id += 1
                    frame_no += 1
                    if not a.no_overlay:
                        if writer is None:
                            h, w = frame.shape[:2]
                            writer = cv2.VideoWriter(str(out_dir / f"{path.stem}_overlay.mp4"),
                                                     cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                        writer.write(draw_instances(frame, inst))
                    bar.update(1)
            cap.release()
            if writer is not None:
                writer.release()
            continue
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            print(f"warning: cannot read image {path}", file=sys.stderr)
            failed += 1
            continue
        inst = seg(img)
        results += coco_results(inst, image_id, cat_ids, path.name)
        image_id += 1
        if not a.no_overlay:
            cv2.imwrite(str(out_dir / f"{path.stem}_overlay.jpg"), draw_instances(img, inst))
    with open(out_dir / "results.json", "w") as f:
        json.dump(results, f)
    print(f"{image_id} images/frames, {len(results)} instances -> {out_dir}" + (f" ({failed} inputs unreadable)" if failed else ""))
    return 1 if failed and image_id == 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
