"""Segmenter per-stage times on a GPU (CUDA events) or the CPU: a table and a JSON file.

    python bench/bench_gpu.py --preset device --json out/bench_gpu.json      # on a CUDA machine
    python bench/bench_gpu.py --preset tiny --device cpu                     # the CPU path, same table

End to end = BGR uint8 on the host -> boxes, scores and box-sized masks on the host (one
Segmenter call). Stage times are the Segmenter's own: CUDA events on a GPU (recorded in
stream order, read once the results are on the host; never a bare ``perf_counter``),
``perf_counter`` on the CPU. Each row: median (and p90) over ``--frames`` calls after
``--warmup`` calls, back to back on the same image (the astronaut, resized), the reference
weights (no trained weights needed: the timing does not depend on them, the number of
instances does, so ``all100`` keeps 100). Batch 4: four copies of the image in one call; the
table gives per-call and per-image figures. On CUDA every batch-1 row is also run with the
network as a CUDA graph (``+G``; ``cuda_graph_used`` false in the JSON if the capture fell
back to eager). Asserts nothing.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time

import cv2
import numpy as np
import torch

from yolact_ros.cli.bench import SETTINGS, load_image
from yolact_ros.inference.segmenter import STAGES, Segmenter
from yolact_ros.model.golden_weights import reference_model

PRESETS = {
    # the full matrix of issue 13
    "full": dict(configs=["yolact_resnet50", "yolact_base", "yolact_plus_resnet50", "yolact_plus_base"],
                 precisions=["fp32", "tf32", "fp16"], batches=[1, 4], sizes=["640x480", "1920x1080"],
                 settings=["default", "all100"], frames=50, warmup=10),
    # what scripts/gpu_check.sh runs on a lent GPU (a few minutes): the two ResNet-50 configs
    "device": dict(configs=["yolact_resnet50", "yolact_plus_resnet50"],
                   precisions=["fp32", "tf32", "fp16"], batches=[1, 4], sizes=["640x480", "1920x1080"],
                   settings=["default", "all100"], frames=50, warmup=10),
    # the dry run on a CPU: the same steps, seconds
    "tiny": dict(configs=["yolact_resnet50"], precisions=["fp32"], batches=[1, 2], sizes=["320x240"],
                 settings=["default"], frames=2, warmup=1),
}


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_row(seg: Segmenter, image: np.ndarray, batch: int, frames: int, warmup: int) -> dict:
    call = [image] * batch if batch > 1 else image
    for _ in range(warmup):
        seg(call)
    samples = {s: [] for s in STAGES}
    instances = 0
    wall = time.perf_counter()
    for _ in range(frames):
        out = seg(call)  # returns with the results on the host: the wall clock below is host->host
        instances = len(out[0] if batch > 1 else out)
        for s in STAGES:
            samples[s].append(seg.timings[s])
    wall = (time.perf_counter() - wall) / frames * 1000.0
    row = {f"{s}_ms": statistics.median(v) for s, v in samples.items()}
    row["total_p90_ms"] = _p(samples["total"], 90)
    row["wall_ms"] = wall
    row["images_per_s"] = batch * 1000.0 / row["total_ms"]
    row["postprocess_share"] = (row["detect_ms"] + row["masks_ms"]) / row["total_ms"]
    row["instances"] = instances
    if seg.device.type == "cuda":
        row["cuda_memory_allocated_mb"] = torch.cuda.memory_allocated(seg.device) / 2**20
        row["cuda_max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(seg.device) / 2**20
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=list(PRESETS), default="device")
    ap.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    ap.add_argument("--configs", nargs="+")
    ap.add_argument("--precisions", nargs="+")
    ap.add_argument("--batches", nargs="+", type=int)
    ap.add_argument("--sizes", nargs="+", help="WxH")
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS))
    ap.add_argument("--frames", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (the CPU path)")
    ap.add_argument("--json", help="write the rows here")
    a = ap.parse_args(argv)
    plan = dict(PRESETS[a.preset])
    for key in plan:
        if getattr(a, key, None):
            plan[key] = getattr(a, key)
    torch.set_num_threads(a.threads)
    from yolact_ros.inference.segmenter import resolve_device

    device = resolve_device(a.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# bench_gpu: {name}; torch {torch.__version__}; preset {a.preset}; median of {plan['frames']} calls "
          f"after {plan['warmup']} (ms; stage times from {'CUDA events' if device.type == 'cuda' else 'perf_counter'})",
          flush=True)
    header = (f"{'config':21s} {'prec':4s} {'b':>1s} {'size':>9s} {'set':7s} {'inst':>4s} {'pre':>6s} {'fwd':>7s} "
              f"{'detect':>6s} {'masks':>6s} {'total':>7s} {'p90':>7s} {'img/s':>7s} {'post%':>5s}")
    print(header, flush=True)
    base = load_image("astronaut")
    rows = []
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f)
    for config in plan["configs"]:
        model = reference_model(config)
        for precision in plan["precisions"]:
            if device.type != "cuda" and precision != "fp32":
                continue  # the CPU runs fp32 only
            graph_modes = [False, True] if device.type == "cuda" and plan.get("graphs", True) else [False]
            segs = {(s, g): Segmenter(model=model, device=str(device), precision=precision, cuda_graph=g,
                                      **SETTINGS[s]) for s in plan["settings"] for g in graph_modes}
            for size, setting, batch, graph in itertools.product(plan["sizes"], plan["settings"], plan["batches"],
                                                                 graph_modes):
                if graph and batch != 1:
                    continue  # graphs side by side with eager at batch 1
                w, h = (int(v) for v in size.lower().split("x"))
                image = cv2.resize(base, (w, h), interpolation=cv2.INTER_LINEAR)
                seg = segs[(setting, graph)]
                row = {"config": config, "precision": precision, "batch": batch, "size": size, "settings": setting,
                       "cuda_graph": graph, "device": name, **run_row(seg, image, batch, plan["frames"], plan["warmup"])}
                row["cuda_graph_used"] = bool(seg.cuda_graph)
                rows.append(row)
                if a.json:  # after every row: a step that runs out of time keeps what it measured
                    with open(a.json, "w") as f:
                        json.dump(rows, f, indent=1)
                print(f"{config[:19] + ('+G' if graph else ''):21s} {precision:4s} {batch:>1d} {size:>9s} {setting:7s} {row['instances']:>4d} "
                      f"{row['preprocess_ms']:6.2f} {row['forward_ms']:7.2f} {row['detect_ms']:6.2f} "
                      f"{row['masks_ms']:6.2f} {row['total_ms']:7.2f} {row['total_p90_ms']:7.2f} "
                      f"{row['images_per_s']:7.1f} {100 * row['postprocess_share']:5.1f}", flush=True)
            del segs
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if a.json:
        print(f"wrote {len(rows)} rows to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
