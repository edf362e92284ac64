"""Write the replay bag: the synthetic camera scene as a rosbag2 (no ROS needed).

    python bench/make_replay_bag.py --out /tmp/scene_bag [--frames 60] [--rate 15] [--size 320x240]
        [--topic /camera/image_raw] [--storage mcap|sqlite3]

Frames of ``yolact_ros.data.scene.DemoScene`` as ``sensor_msgs/Image`` (``bgr8``), each with
header stamp = log time, from 2024-01-01 00:00 UTC (``yolact_ros.testing.replay_bag``). The bag
is generated, never committed; the same arguments give the same bag. Play it with
``ros2 bag play --clock 100 OUT`` (or ``bench/bench_replay.py --bag OUT``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolact_ros.testing.replay_bag import REPLAY_TOPIC, write_scene_bag  # noqa: E402 - after the path


def size_arg(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` as (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, got {text!r}")
    return w, h


def add_bag_arguments(ap: argparse.ArgumentParser) -> None:
    """The options that say which scene bag to write (shared with bench_replay.py)."""
    ap.add_argument("--frames", type=int, default=60, help="frames in the bag (default 60)")
    ap.add_argument("--rate", type=float, default=15.0, help="recorded frame rate in Hz (default 15)")
    ap.add_argument("--size", type=size_arg, default=(320, 240), help="WIDTHxHEIGHT (default 320x240)")
    ap.add_argument("--topic", default=REPLAY_TOPIC, help=f"image topic (default {REPLAY_TOPIC})")
    ap.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")


def write_from_args(out: Path, args: argparse.Namespace) -> Path:
    return write_scene_bag(
        out, frames=args.frames, rate=args.rate, size=args.size, topic=args.topic, storage=args.storage
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the bag directory to create (must not exist)")
    add_bag_arguments(ap)
    args = ap.parse_args(argv)
    if args.out.exists():
        print(f"error: {args.out} exists already", file=sys.stderr)
        return 2
    try:
        write_from_args(args.out, args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    w, h = args.size
    print(f"wrote {args.out}: {args.frames} frames {w}x{h} bgr8 at {args.rate:g} Hz on {args.topic} ({args.storage})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
