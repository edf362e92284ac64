"""``yolact synth``: write a synthetic COCO-format instance dataset (:mod:`yolact_ros.data.synth`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from ..data.synth import DEFAULT_CLASSES, DEFAULT_SIZE, SHAPE_CLASSES, SynthOptions, make_synthetic_dataset


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 320x240, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="yolact synth",
        description="Write a synthetic COCO-format instance segmentation dataset (shapes over real photos).",
    )
    parser.add_argument("--out", required=True, help="output folder (gets annotations.json and images/)")
    parser.add_argument("--n", type=int, default=100, help="number of images (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; another seed gives a held-out set")
    parser.add_argument("--size", type=_parse_size, default=DEFAULT_SIZE, help="WIDTHxHEIGHT (default 320x240)")
    parser.add_argument(
        "--classes",
        nargs="+",
        default=list(DEFAULT_CLASSES),
        help=f"shape classes to draw, from {' '.join(SHAPE_CLASSES)} (default: {' '.join(DEFAULT_CLASSES)})",
    )
    parser.add_argument("--max-objects", type=int, default=SynthOptions.max_objects, help="objects per image at most")
    args = parser.parse_args(argv)
    options = SynthOptions(size=args.size, classes=tuple(args.classes), max_objects=args.max_objects)
    try:
        options.validate()
        if args.n < 1:
            raise ValueError(f"--n must be positive, got {args.n}")
        path = make_synthetic_dataset(args.out, args.n, args.seed, options=options, progress=True)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"yolact synth: error: {exc}")
        return 2
    data = json.loads(path.read_text())
    print(
        f"wrote {len(data['images'])} images, {len(data['annotations'])} instances of "
        f"{len(data['categories'])} classes ({', '.join(c['name'] for c in data['categories'])}) to {path}"
    )
    return 0
