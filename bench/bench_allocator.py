"""CPU Segmenter throughput with glibc's default malloc settings vs :func:`keep_freed_memory`.

    python bench/bench_allocator.py                       # 640x480, batch 1 and 4, 3 rounds
    python bench/bench_allocator.py --size 1920x1080 --settings all100 --rounds 2
    python bench/bench_allocator.py --soak 150         # kept memory: resident size over mixed calls

The malloc settings are per process and cannot be undone, so each measurement is a fresh
worker process, and the two variants alternate (default, kept, default, kept, ...) in one
run of this script on the same image and weights. Each worker runs the Segmenter in a thread
of its own, as the node's inference worker does (glibc serves such a thread from another
arena than the main thread's), warms up, then times ``--calls`` back-to-back calls per batch
size, batch 1 and batch 4 alternated ``--blocks`` times. Printed: images/s (median over the
rounds of each worker's median), minor page faults per image, the worker's peak resident
size, and the kept/default ratios. ``--soak N``: one kept worker makes N calls that vary the
image size (320x240 to 1920x1080), top-k (15 or 100) and batch (1 or 3), and prints the peak
resident size per sixth of the calls: memory that is kept but never reused would show as
growth. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

MODES = ("default", "kept")


def worker(args) -> None:
    os.environ["YOLACT_ROS_KEEP_FREED_MEMORY"] = "1" if args.worker == "kept" else "0"
    from yolact_ros.inference.cpu_memory import keep_freed_memory

    applied = keep_freed_memory()  # before torch's threads, as the node and the CLI do
    import resource
    import threading
    import time

    import cv2

    from yolact_ros.cli.bench import SETTINGS
    from yolact_ros.data.photos import load_photo
    from yolact_ros.inference.segmenter import Segmenter
    from yolact_ros.testing.reference_weights import reference_model

    w, h = map(int, args.size.split("x"))
    image = cv2.resize(load_photo("astronaut"), (w, h))
    result = {"mode": args.worker, "applied": applied, "batches": {}}

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def run() -> None:
        seg = Segmenter(model=reference_model(args.config), device="cpu", **SETTINGS[args.settings])
        for batch in args.batches:  # warm-up: the first call of each size maps its memory
            seg([image] * batch)
        for _ in range(args.blocks):
            for batch in args.batches:
                f0, t0 = faults(), time.perf_counter()
                for _ in range(args.calls):
                    seg([image] * batch)
                dt, df = time.perf_counter() - t0, faults() - f0
                row = result["batches"].setdefault(str(batch), {"images_per_s": [], "faults_per_image": []})
                row["images_per_s"].append(args.calls * batch / dt)
                row["faults_per_image"].append(df / (args.calls * batch))

    thread = threading.Thread(target=run, name="inference")
    thread.start()
    thread.join()
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def soak(calls: int, config: str) -> None:
    from yolact_ros.inference.cpu_memory import keep_freed_memory

    applied = keep_freed_memory()
    import threading

    import cv2

    from yolact_ros.data.photos import load_photo
    from yolact_ros.inference.segmenter import Segmenter
    from yolact_ros.testing.reference_weights import reference_model

    def rss_mb() -> float:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS")) / 1024

    base = load_photo("astronaut")
    images = [cv2.resize(base, s) for s in ((640, 480), (1280, 720), (320, 240), (1920, 1080), (800, 600))]
    seg = Segmenter(model=reference_model(config), device="cpu", score_threshold=0.0)
    samples = []

    def run() -> None:
        for i in range(calls):
            seg.top_k = 15 if i % 3 == 0 else 100
            seg([images[i % len(images)]] * (3 if i % 4 == 0 else 1))
            samples.append(rss_mb())

    thread = threading.Thread(target=run, name="inference")
    thread.start()
    thread.join()
    print(f"{config}, {calls} mixed calls in a worker thread, memory kept: {applied}")
    step = max(1, calls // 6)
    for a in range(0, calls, step):
        print(f"calls {a + 1}-{min(calls, a + step)}: peak RSS {max(samples[a : a + step]):.0f} MB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="yolact_resnet50")
    ap.add_argument("--size", default="640x480", help="WxH of the input image")
    ap.add_argument("--settings", default="default", choices=("default", "all100"))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--rounds", type=int, default=3, help="worker pairs (default, kept), alternated")
    ap.add_argument("--blocks", type=int, default=2, help="timed blocks per batch size in a worker")
    ap.add_argument("--calls", type=int, default=3, help="Segmenter calls per timed block")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--soak", type=int, metavar="N", help="instead: N mixed calls with the memory kept")
    ap.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return 0
    if args.soak:
        soak(args.soak, args.config)
        return 0

    runs = {m: [] for m in MODES}
    passthrough = [
        f"--config={args.config}",
        f"--size={args.size}",
        f"--settings={args.settings}",
        f"--blocks={args.blocks}",
        f"--calls={args.calls}",
        "--batches",
        *map(str, args.batches),
    ]
    for r in range(args.rounds):
        for mode in MODES:
            proc = subprocess.run(
                [sys.executable, __file__, f"--worker={mode}", *passthrough], capture_output=True, text=True
            )
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode or line is None:
                print(f"worker {mode} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
                return 1
            runs[mode].append(json.loads(line[len("RESULT ") :]))
            print(f"round {r + 1}/{args.rounds} {mode}: done", file=sys.stderr, flush=True)

    def median(mode: str, batch: int, key: str) -> float:
        return statistics.median(statistics.median(w["batches"][str(batch)][key]) for w in runs[mode])

    print(
        f"{args.config}, {args.size}, {args.settings}, Segmenter in a worker thread, {args.rounds} alternated "
        f"rounds; glibc settings applied in 'kept': {all(w['applied'] for w in runs['kept'])}"
    )
    print(
        f"{'batch':>5} | {'default img/s':>13} | {'kept img/s':>10} | {'kept/default':>12} | "
        f"{'faults/img default':>18} | {'kept':>6}"
    )
    table = []
    for b in args.batches:
        d, k = median("default", b, "images_per_s"), median("kept", b, "images_per_s")
        fd, fk = median("default", b, "faults_per_image"), median("kept", b, "faults_per_image")
        table.append(
            dict(
                batch=b,
                default_images_per_s=d,
                kept_images_per_s=k,
                ratio=k / d,
                default_faults_per_image=fd,
                kept_faults_per_image=fk,
            )
        )
        print(f"{b:5d} | {d:13.3f} | {k:10.3f} | {k / d:12.3f} | {fd:18.0f} | {fk:6.0f}")
    for mode in MODES:
        base = median(mode, args.batches[0], "images_per_s")
        rel = ", ".join(f"batch {b}: {median(mode, b, 'images_per_s') / base:.3f}" for b in args.batches[1:])
        rss = statistics.median(w["max_rss_mb"] for w in runs[mode])
        print(f"{mode}: throughput relative to batch {args.batches[0]}: {rel}; peak RSS {rss:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"args": {k: v for k, v in vars(args).items() if k != "worker"}, "table": table, "workers": runs},
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
