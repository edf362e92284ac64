"""What 3D and tracking add to a frame: instances_in_3d (+ points) + Tracker.update (+ the ROS messages).

A synthetic RGB-D sequence (``yolact_ros.testing.rgbd``): ``--instances`` solids (spheres, boxes,
cylinders) in front of a tilted plane, moving a few pixels a frame, rendered at ``--size``
with the defects of a real sensor (holes, flying pixels, noise). Instances are the ground-truth
masks as box-sized windows, the form the Segmenter returns. Every stage runs on the same
frames, the stages alternated within each frame, ``--repeat`` passes over the sequence; the
figures are per frame (median and p95, milliseconds of wall time on this CPU).

    python bench/bench_depth.py                      # 640x480, 15 instances, 16UC1 depth
    python bench/bench_depth.py --json out.json
    python bench/bench_depth.py --accuracy --seeds 0 10   # the accuracy table of docs/depth_tracking.md
    python bench/bench_depth.py --against 82fff75    # 3D and tracker of this tree vs a git revision's, alternated

``--accuracy`` measures instead, against the exact ground truth of the ray-cast scenes of
``random_solids`` (6 solids 40-130 px across, 0.8-2.5 m, in front of a tilted plane at 4 m):
the centre error / distance and the x, y size errors vs the visible extent, for clean 16UC1
and 32FC1 depth, with holes + flying pixels + noise, and with depth at half resolution.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolact_ros.inference.depth import PinholeCamera, depth_to_metres, instances_in_3d  # noqa: E402
from yolact_ros.inference.tracking import Tracker  # noqa: E402
from yolact_ros.testing.revisions import import_revision  # noqa: E402
from yolact_ros.testing.rgbd import Solid, random_solids, render_rgbd  # noqa: E402


def sequence(n: int, frames: int, width: int, height: int, seed: int = 0):
    """``frames`` (instances, depth 16UC1, camera) of ``n`` solids drifting sideways."""
    f = 525.0 * width / 640.0
    cam = PinholeCamera(f, f, (width - 1) / 2, (height - 1) / 2, width, height)
    rng = np.random.default_rng(seed)
    solids = random_solids(cam, n, rng, min_pixels=30, size=(0.08, 0.22), margin_px=2)
    velocity = rng.uniform(-0.004, 0.004, (len(solids), 2))  # metres a frame: 1-2 px at 1.5 m
    out = []
    for k in range(frames):
        moved = [
            Solid(s.kind, (s.centre[0] + k * v[0], s.centre[1] + k * v[1], s.centre[2]), s.size, s.colour)
            for s, v in zip(solids, velocity)
        ]
        fr = render_rgbd(moved, cam, holes=0.03, flying_pixels=0.3, depth_noise=0.001, seed=k)
        out.append((fr.instances(), fr.depth_mm, cam))
    return out


def _message_builders():
    """The ROS layer's message builders, when the ROS message packages can be imported (else None)."""
    try:
        from std_msgs.msg import Header

        from yolact_ros.ros.messages import instances_to_detections_3d, points_to_cloud
    except ImportError:
        return None

    def build(inst, placed, ids):
        header = Header(frame_id="depth_optical")
        instances_to_detections_3d(inst, placed, header, inst.class_names, ids=ids)
        points_to_cloud(placed.points, header, ids=ids)

    return build


def run(
    n: int = 15, frames: int = 20, size: tuple[int, int] = (640, 480), repeat: int = 5, points_step: int = 4
) -> dict:
    seq = sequence(n, frames, *size)
    build = _message_builders()
    stages = {"instances_in_3d (16UC1 as it comes)": [], "instances_in_3d + points": [], "tracker": []}
    if build is not None:
        stages["Detection3DArray + PointCloud2"] = []
    totals = []
    counts = [len(inst) for inst, _, _ in seq]
    for k in range(repeat + 1):  # pass 0 warms up (imports, caches) and is not counted
        tracker = Tracker(max_age=10)
        if k == 0:
            for inst, depth_mm, cam in seq[:3]:
                instances_in_3d(inst, depth_mm, cam, encoding="16UC1", points_step=points_step)
                tracker.update(inst)
            continue
        for inst, depth_mm, cam in seq:
            t1 = time.perf_counter()
            instances_in_3d(inst, depth_mm, cam, encoding="16UC1")
            t2 = time.perf_counter()
            placed = instances_in_3d(inst, depth_mm, cam, encoding="16UC1", points_step=points_step)
            t3 = time.perf_counter()
            ids = tracker.update(inst)
            t4 = time.perf_counter()
            if build is not None:
                build(inst, placed, ids)
            t5 = time.perf_counter()
            for name, dt in zip(stages, (t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                stages[name].append(dt * 1000.0)
            totals.append((t3 - t2 + t4 - t3 + t5 - t4) * 1000.0)
    stages["total: 3D with points + tracker" + (" + messages" if build is not None else "")] = totals
    return {
        "size": f"{size[0]}x{size[1]}",
        "instances_per_frame": [min(counts), max(counts)],
        "frames": frames,
        "repeat": repeat,
        "points_step": points_step,
        "ms": {k: {"median": float(np.median(v)), "p95": float(np.percentile(v, 95))} for k, v in stages.items()},
    }


def accuracy(seeds: range) -> dict:
    """Worst (and median) errors per depth variant over the scenes of ``seeds``."""
    cam = PinholeCamera(525.0, 523.0, 319.3, 241.2, 640, 480)
    half = cam.scaled_to(320, 240)
    rows: dict[str, dict[str, list]] = {}
    for seed in seeds:
        solids = random_solids(cam, 6, np.random.default_rng(seed), min_pixels=40)
        clean = render_rgbd(solids, cam)
        noisy = render_rgbd(solids, cam, holes=0.1, flying_pixels=0.6, depth_noise=0.0015, seed=seed)
        low = render_rgbd(solids, cam, depth_camera=half)
        inst = clean.instances()
        kinds = np.array([s.kind for s in solids])
        visible = clean.visible_hi - clean.visible_lo
        dist = np.linalg.norm(clean.centres, axis=1)
        reference = instances_in_3d(inst, depth_to_metres(clean.depth_m, "32FC1"), cam).centres
        for name, raw, enc, vs_clean in (
            ("clean, 16UC1 mm", clean.depth_mm, "16UC1", False),
            ("clean, 32FC1 m", clean.depth_m, "32FC1", False),
            ("holes + flying pixels + noise, 16UC1", noisy.depth_mm, "16UC1", True),
            ("holes + flying pixels + noise, 32FC1", noisy.depth_m, "32FC1", True),
            ("depth at 320x240, masks at 640x480", low.depth_m, "32FC1", False),
        ):
            r = instances_in_3d(inst, depth_to_metres(raw, enc), cam)
            ref = reference if vs_clean else clean.surface_centres
            e = np.abs(r.box_sizes[:, :2] / visible[:, :2] - 1)
            row = rows.setdefault(name, {"centre": [], "spheres_boxes": [], "cylinders_y": [], "cylinders_x": []})
            row["centre"] += list(np.linalg.norm(r.centres - ref, axis=1) / dist)
            row["spheres_boxes"] += list(e[kinds != "cylinder"].ravel())
            row["cylinders_y"] += list(e[kinds == "cylinder", 1])
            row["cylinders_x"] += list(e[kinds == "cylinder", 0])
    return {
        name: {
            k: {
                "max": float(np.max(v)),
                "median": float(np.median(v)),
                "within_5pct": float(np.mean(np.array(v) <= 0.05)),
            }
            for k, v in row.items()
        }
        for name, row in rows.items()
    }


def _revision_modules(rev: str, into: Path):
    """``rev``'s depth and tracking modules, imported beside this tree's (the depth module is
    ``inference/depth`` or, in a flat package, ``depth``)."""
    import importlib

    pkg = import_revision(rev, into).__name__
    for prefix in (f"{pkg}.inference", pkg):
        try:
            return importlib.import_module(f"{prefix}.depth"), importlib.import_module(f"{prefix}.tracking")
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(f"no depth module in {rev}")


def against(rev: str, n: int = 15, frames: int = 10, size: tuple[int, int] = (640, 480), repeat: int = 5) -> dict:
    """instances_in_3d (16UC1 depth, as the node gets it) and Tracker.update of this tree and of
    ``rev``'s depth and tracking modules (imported from git beside this tree's), alternated
    frame by frame on the same frames. A revision whose instances_in_3d needs metres gets
    depth_to_metres inside its timing, as its node did."""
    tmp = tempfile.TemporaryDirectory(prefix="bench_depth_rev_")  # the exported revision, until the process ends
    old, old_tracking = _revision_modules(rev, Path(tmp.name))
    takes_raw = "encoding" in old.instances_in_3d.__code__.co_varnames
    seq = sequence(n, frames, *size)
    t = {"3d": [], "3d_rev": [], "tracker": [], "tracker_rev": []}

    def old_3d(inst, depth_mm, cam):
        if takes_raw:
            return old.instances_in_3d(inst, depth_mm, cam, encoding="16UC1")
        return old.instances_in_3d(inst, old.depth_to_metres(depth_mm, "16UC1"), cam)

    for r in range(repeat):
        trackers = Tracker(max_age=10), old_tracking.Tracker(max_age=10)
        for j, (inst, depth_mm, cam) in enumerate(seq):
            calls = {
                "3d": (instances_in_3d, (inst, depth_mm, cam), {"encoding": "16UC1"}),
                "3d_rev": (old_3d, (inst, depth_mm, cam), {}),
                "tracker": (trackers[0].update, (inst,), {}),
                "tracker_rev": (trackers[1].update, (inst,), {}),
            }
            # each pair in both orders, every other frame: the second call of a pair runs on warmer caches
            first = (r + j) % 2 == 0
            for k in (
                ("3d", "3d_rev", "tracker", "tracker_rev") if first else ("3d_rev", "3d", "tracker_rev", "tracker")
            ):
                fn, args, kwargs = calls[k]
                t0 = time.perf_counter()
                fn(*args, **kwargs)
                t[k].append(time.perf_counter() - t0)
    med = {k: 1000 * float(np.median(v)) for k, v in t.items()}
    return {
        "rev": rev,
        "frames": frames * repeat,
        "ms": med,
        "ratio_3d": med["3d"] / med["3d_rev"],
        "ratio_tracker": med["tracker"] / med["tracker_rev"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=15)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--size", default="640x480", help="WxH")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--points-step", type=int, default=4)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--accuracy", action="store_true", help="print the accuracy table instead of timing")
    ap.add_argument(
        "--seeds",
        type=int,
        nargs=2,
        default=[0, 10],
        metavar=("FIRST", "END"),
        help="--accuracy: the scene seeds FIRST..END-1",
    )
    ap.add_argument(
        "--against", metavar="REV", help="time instances_in_3d and the tracker of this tree against a git revision's"
    )
    args = ap.parse_args(argv)
    if args.against:
        w, h = (int(v) for v in args.size.lower().split("x"))
        res = against(args.against, args.instances, args.frames, (w, h), args.repeat)
        ms = res["ms"]
        print(f"{args.instances} instances at {w}x{h}, {res['frames']} frames, alternated (median ms):")
        print(
            f"  instances_in_3d  this tree {ms['3d']:.2f}  {args.against} {ms['3d_rev']:.2f}  ratio {res['ratio_3d']:.3f}"
        )
        print(
            f"  Tracker.update   this tree {ms['tracker']:.2f}  {args.against} {ms['tracker_rev']:.2f}  "
            f"ratio {res['ratio_tracker']:.3f}"
        )
        return 0
    if args.accuracy:
        res = accuracy(range(*args.seeds))
        print(f"seeds {args.seeds[0]}..{args.seeds[1] - 1}: worst (median) | share within 5 %")
        print("| depth image | centre error / distance | size x, y: spheres & boxes | cylinders y | cylinders x |")
        print("|---|---|---|---|---|")
        for name, r in res.items():
            cells = [f"{100 * r['centre']['max']:.2f} % ({100 * r['centre']['median']:.2f} %)"]
            cells += [
                f"{100 * r[k]['max']:.1f} % ({100 * r[k]['within_5pct']:.0f} %)"
                for k in ("spheres_boxes", "cylinders_y", "cylinders_x")
            ]
            print(f"| {name} | " + " | ".join(cells) + " |")
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
        return 0
    w, h = (int(v) for v in args.size.lower().split("x"))
    res = run(args.instances, args.frames, (w, h), args.repeat, args.points_step)
    lo, hi = res["instances_per_frame"]
    print(
        f"{res['size']}, {lo}-{hi} instances a frame, {res['frames']} frames x {res['repeat']} passes, "
        f"points every {res['points_step']} px"
    )
    print("| stage | median ms | p95 ms |\n|---|---|---|")
    for name, v in res["ms"].items():
        print(f"| {name} | {v['median']:.2f} | {v['p95']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
