"""``yolact eval``: box and mask AP of a checkpoint on a COCO-format dataset (:mod:`yolact_ros.evaluation.coco_eval`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..data.coco import DatasetError
from ..evaluation.coco_eval import evaluate
from ..inference.onnx_format import OnnxBackendError
from ..inference.segmenter import Segmenter
from ..model.checkpoint import CheckpointError
from ..train.config_file import resolve_config
from .options import add_device_options, device_settings


def _config_arg(value: str | None):
    """--config: an official name or a YAML/JSON config file; None = from the checkpoint."""
    if not value:
        return None
    return resolve_config(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="yolact eval",
        description="Box and mask AP (COCOeval) of YOLACT weights on a COCO-format dataset.",
    )
    parser.add_argument(
        "--weights",
        required=True,
        help="checkpoint (.pth); with --backend onnxruntime/openvino/auto also a .onnx export or an "
        "OpenVINO .xml (e.g. from 'yolact quantize')",
    )
    parser.add_argument("--json", required=True, help="COCO-format instances JSON (ground truth)")
    parser.add_argument("--images", required=True, help="folder the JSON's file_name entries are relative to")
    parser.add_argument(
        "--config",
        default=None,
        help="official config name or config file (default: from the checkpoint or its file name)",
    )
    parser.add_argument(
        "--out", default=None, help="write COCO mask results here (box results go to <stem>_bbox.json next to it)"
    )
    add_device_options(parser)
    parser.add_argument("--max-images", type=int, default=None, help="evaluate only the first N images (by id)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        seg = Segmenter(config=_config_arg(args.config), weights=args.weights, **device_settings(args))
        stats = evaluate(
            seg,
            args.json,
            args.images,
            results_json=args.out,
            progress=not args.no_progress,
            max_images=args.max_images,
        )
    except (DatasetError, CheckpointError, OnnxBackendError, FileNotFoundError, KeyError, ValueError, OSError) as exc:
        print(f"yolact eval: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"\n{stats['num_images']} images, {stats['num_detections']} detections, "
        f"{stats['seconds_per_image'] * 1000:.0f} ms per image"
        + (f", {stats['skipped_images']} images skipped" if stats["skipped_images"] else "")
    )
    if args.out:
        print(f"results: {args.out}")
    print(f"box AP {stats['box_AP']:.2f}")
    print(f"mask AP {stats['mask_AP']:.2f}")
    return 0
