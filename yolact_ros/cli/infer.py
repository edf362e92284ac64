"""``yolact infer``: segment images, folders of images and video files; write overlays and a
COCO-style ``results.json``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..evaluation.coco_results import category_mapping, merged_results
from .options import add_device_options, add_postprocess_options, device_settings

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yolact infer", description="Segment images, folders of images and video files.")
    p.add_argument("inputs", nargs="+", help="image files, folders, video files")
    p.add_argument(
        "--weights",
        required=True,
        help="a .pth checkpoint (official or from 'yolact train'); with --backend onnxruntime/openvino/"
        "auto also a .onnx file from 'yolact export' or an OpenVINO .xml from 'yolact quantize'",
    )
    p.add_argument("--config", default=None, help="config name; default: from the checkpoint or its file name")
    p.add_argument("--out", required=True, help="output folder (overlays, results.json)")
    add_postprocess_options(p)
    add_device_options(p)
    p.add_argument("--half", action="store_true", help="the same as --precision fp16")
    p.add_argument("--no-overlay", action="store_true", help="write only results.json")
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)

    import cv2
    from tqdm import tqdm

    from ..inference.onnx_format import OnnxBackendError
    from ..inference.segmenter import Segmenter
    from ..inference.visualize import draw_instances
    from ..model.checkpoint import CheckpointError

    try:
        inputs = collect_inputs(a.inputs)
        source = {"weights": a.weights, "config": a.config}
        if a.half:
            a.precision = "fp16"
        seg = Segmenter(
            **source, **device_settings(a), score_threshold=a.score_threshold, top_k=a.top_k, classes=a.classes or None
        )
        print(f"yolact infer: {seg.describe()}")
    except (CheckpointError, OnnxBackendError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"yolact infer: error: {exc}", file=sys.stderr)
        return 2
    if not inputs:
        print("yolact infer: error: no images or videos found in the inputs", file=sys.stderr)
        return 2
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cat_ids = category_mapping(seg.class_names)
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
                    results += merged_results(inst, image_id, cat_ids, f"{path.name}#{frame_no}")
                    image_id += 1
                    frame_no += 1
                    if not a.no_overlay:
                        if writer is None:
                            h, w = frame.shape[:2]
                            writer = cv2.VideoWriter(
                                str(out_dir / f"{path.stem}_overlay.mp4"),
                                cv2.VideoWriter_fourcc(*"mp4v"),  # type: ignore[attr-defined]  # OpenCV's legacy name, kept for 4.x: not in the 5.x stubs
                                fps,
                                (w, h),
                            )
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
        results += merged_results(inst, image_id, cat_ids, path.name)
        image_id += 1
        if not a.no_overlay:
            cv2.imwrite(str(out_dir / f"{path.stem}_overlay.jpg"), draw_instances(img, inst))
    with open(out_dir / "results.json", "w") as f:
        json.dump(results, f)
    print(
        f"{image_id} images/frames, {len(results)} instances -> {out_dir}"
        + (f" ({failed} inputs unreadable)" if failed else "")
    )
    return 1 if failed and image_id == 0 else 0
