"""Identity switches of the Tracker behind the demo model on the demo's synthetic scene.

Runs ``models/demo/yolact_synth_demo.pth`` through the Segmenter on N frames of
:class:`yolact_ros.data.scene.DemoScene` (15 Hz), tracks its detections with
:class:`yolact_ros.inference.tracking.Tracker` and scores the ids against the scene's ground
truth identities (detections matched to objects by mask IoU >= 0.5). Prints figures as JSON;
asserts nothing.

    nice -n 10 .venv/bin/python bench/bench_tracking.py --frames 150 [--cross-class-nms] [--seeds 0 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO / "models" / "demo" / "yolact_synth_demo.pth"


def run(
    frames: int = 150,
    weights: "str | Path" = DEFAULT_WEIGHTS,
    size: tuple[int, int] = (640, 480),
    seed: int = 0,
    rate: float = 15.0,
    max_age: int = 10,
    min_iou: float = 0.3,
    threads: int | None = 2,
    cross_class_nms: bool = False,
    variants: dict | None = None,
) -> dict:
    """Figures of one run: identity switches / matched object-frames, and how much was detected.

    ``cross_class_nms``: the Segmenter's option that keeps one detection per object whatever
    its class; without it the demo model often returns an object twice under two classes, and
    the ground-truth match alternates between the two tracks (an id switch each time)."""
    from yolact_ros.data.scene import DemoScene
    from yolact_ros.evaluation.tracking import IdentityScore
    from yolact_ros.inference.segmenter import Segmenter
    from yolact_ros.inference.tracking import Tracker

    seg = Segmenter(weights=str(weights), device="cpu", num_threads=threads, cross_class_nms=cross_class_nms)
    scene = DemoScene(seg.class_names, size=size, rate=rate, seed=seed)
    # the same detections through both variants: ids kept within a class only, or also when the
    # model changes an object's class (class_change_iou)
    variants = variants or {"within_class": {}, "class_change_iou_0.5": {"class_change_iou": 0.5}}
    trackers = {k: Tracker(**{"max_age": max_age, "min_iou": min_iou, **v}) for k, v in variants.items()}
    scores = {k: IdentityScore(min_iou=0.5) for k in variants}
    t_seg = t_track = 0.0
    detections = 0
    for i in range(frames):
        image, objects = scene.frame(i)
        t0 = time.perf_counter()
        inst = seg(image)
        t1 = time.perf_counter()
        all_ids = {k: tr.update(inst) for k, tr in trackers.items()}
        t2 = time.perf_counter()
        t_seg, t_track = t_seg + t1 - t0, t_track + (t2 - t1) / len(trackers)
        detections += len(inst)
        gt = np.stack([o.visible for o in objects]) if objects else np.zeros((0, size[1], size[0]), bool)
        for k, ids in all_ids.items():
            scores[k].update([o.object_id for o in objects], gt, ids, inst.masks, inst.class_ids)
    out = {k: sc.summary() for k, sc in scores.items()}
    score = next(iter(scores.values()))
    out.update(
        {
            "detections": detections,
            "ids_given": {k: tr.next_id - 1 for k, tr in trackers.items()},
            "recall_at_iou50": round(score.matched / max(score.objects, 1), 4),
            "segmenter_ms_per_frame": round(1000 * t_seg / frames, 1),
            "tracker_ms_per_frame": round(1000 * t_track / frames, 2),
            "frames_at_hz": rate,
            "size": list(size),
            "seed": seed,
            "max_age": max_age,
            "min_iou": min_iou,
            "cross_class_nms": cross_class_nms,
        }
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="scene seeds; the switches are summed")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--max-age", type=int, default=10)
    ap.add_argument("--min-iou", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--cross-class-nms", action="store_true", help="the Segmenter's cross-class NMS (one detection an object)"
    )
    ap.add_argument(
        "--class-change-iou",
        type=float,
        nargs="+",
        default=[0.3, 0.5],
        help="tracker variants besides 'ids keep their class'",
    )
    a = ap.parse_args(argv)
    variants = {"within_class": {}, **{f"class_change_iou_{v:g}": {"class_change_iou": v} for v in a.class_change_iou}}
    runs = [
        run(
            a.frames,
            a.weights,
            (a.width, a.height),
            seed,
            max_age=a.max_age,
            min_iou=a.min_iou,
            threads=a.threads,
            cross_class_nms=a.cross_class_nms,
            variants=variants,
        )
        for seed in a.seeds
    ]
    totals = {}
    for k in variants:
        switches = sum(r[k]["identity_switches"] for r in runs)
        matched = sum(r[k]["matched_object_frames"] for r in runs)
        totals[k] = {
            "identity_switches": switches,
            "matched_object_frames": matched,
            "switch_rate": round(switches / max(matched, 1), 5),
            "switches_with_class_change": sum(r[k]["switches_with_class_change"] for r in runs),
        }
    print(json.dumps({"seeds": a.seeds, "per_seed": runs, "totals": totals}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
