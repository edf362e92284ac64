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
back to eager). The variants of one config, size, settings and batch (precisions, graph or
eager) are timed side by side: their calls alternate, so the ratios between them (``x1st``,
``speedup_vs_first`` in the JSON: against fp32 eager) are fair in one run. Asserts nothing;
a group that raises (e.g. out of GPU memory) is reported and skipped, the rest still run, and
the exit status is then 1.
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

from yolact_ros.cli.bench import SETTINGS
from yolact_ros.data.photos import load_photo
from yolact_ros.inference.segmenter import STAGES, Segmenter
from yolact_ros.testing.reference_weights import reference_model

PRESETS = {
    # the full matrix: every size, batch, precision and graph mode
    "full": dict(
        configs=["yolact_resnet50", "yolact_base", "yolact_plus_resnet50", "yolact_plus_base"],
        precisions=["fp32", "tf32", "fp16"],
        batches=[1, 4],
        sizes=["640x480", "1920x1080"],
        settings=["default", "all100"],
        frames=50,
        warmup=10,
    ),
    # what scripts/gpu_check.sh runs on a lent GPU (a few minutes): the two ResNet-50 configs
    "device": dict(
        configs=["yolact_resnet50", "yolact_plus_resnet50"],
        precisions=["fp32", "tf32", "fp16"],
        batches=[1, 4],
        sizes=["640x480", "1920x1080"],
        settings=["default", "all100"],
        frames=50,
        warmup=10,
    ),
    # the dry run on a CPU: the same steps, seconds
    "tiny": dict(
        configs=["yolact_resnet50"],
        precisions=["fp32"],
        batches=[1, 2],
        sizes=["320x240"],
        settings=["default"],
        frames=2,
        warmup=1,
    ),
}


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _variants(plan: dict, device: torch.device, batch: int) -> list[tuple[str, bool]]:
    """(precision, cuda_graph) pairs timed side by side: the CPU runs fp32 only; graphs at batch 1."""
    precisions = plan["precisions"] if device.type == "cuda" else [p for p in plan["precisions"] if p == "fp32"]
    graphs = [False, True] if device.type == "cuda" and batch == 1 else [False]
    return [(p, g) for p in precisions for g in graphs]


def run_group(segs: dict, image: np.ndarray, batch: int, frames: int, warmup: int) -> dict:
    """Time every Segmenter of ``segs`` on the same input, alternated call by call (the order
    rotates each round), so machine and clock drift hit all alike. One row per key."""
    call = [image] * batch if batch > 1 else image
    keys = list(segs)
    working = {}
    for key in keys:
        cuda = segs[key].device.type == "cuda"
        if cuda:  # the memory one call needs on top of what is already allocated (weights, other nets)
            torch.cuda.synchronize(segs[key].device)
            before = torch.cuda.memory_allocated(segs[key].device)
            torch.cuda.reset_peak_memory_stats(segs[key].device)
        for _ in range(max(warmup, 1)):
            segs[key](call)
        if cuda:
            working[key] = (torch.cuda.max_memory_allocated(segs[key].device) - before) / 2**20
    samples = {k: {s: [] for s in STAGES + ("wall",)} for k in keys}
    instances = {}
    for i in range(frames):
        for key in keys[i % len(keys) :] + keys[: i % len(keys)]:
            seg = segs[key]
            t0 = time.perf_counter()
            out = seg(call)  # returns with the results on the host: a host->host wall time
            samples[key]["wall"].append((time.perf_counter() - t0) * 1000.0)
            instances[key] = len(out[0] if batch > 1 else out)
            for s in STAGES:
                samples[key][s].append(seg.timings[s])
    rows = {}
    for key in keys:
        seg, got = segs[key], samples[key]
        row = {f"{s}_ms": statistics.median(got[s]) for s in STAGES}
        row["total_p90_ms"] = _p(got["total"], 90)
        row["wall_ms"] = statistics.median(got["wall"])
        row["images_per_s"] = batch * 1000.0 / row["total_ms"]
        row["postprocess_share"] = (row["detect_ms"] + row["masks_ms"]) / row["total_ms"]
        row["instances"] = instances[key]
        row["cuda_graph_used"] = bool(seg.cuda_graph)
        if key in working:
            row["cuda_call_peak_mb"] = working[key]
        rows[key] = row
    reference = rows[keys[0]]["total_ms"]  # the first variant: fp32, eager
    for row in rows.values():
        row["speedup_vs_first"] = reference / row["total_ms"]
    return rows


#: the GPU targets on an H200-class GPU: end to end host->host, batch 1, top 15, fp16 (frames/s)
TARGET_FPS = {"yolact_resnet50": 300.0, "yolact_plus_resnet50": 200.0}
TARGET_POST_SHARE = 0.15
TARGET_FP32_OVER_FP16 = 2.0


def target_lines(rows: list[dict]) -> list[str]:
    """The GPU targets, read off the rows (batch 1, top 15, each size): fp16 frames/s,
    post-processing share, fp32 time / fp16 time (alternated, so a fair ratio), and what the
    CUDA graph gains per precision. Rows that are missing (the CPU runs fp32 only) say so.
    On CUDA also the GPU memory: one network's weights, and each call's peak above what was
    allocated before it (batch N: N cameras' frames in one call, as the node batches them)."""

    def find(config, precision, size, graph=False):
        return next(
            (
                r
                for r in rows
                if r["config"] == config
                and r["precision"] == precision
                and r["size"] == size
                and r["batch"] == 1
                and r["settings"] == "default"
                and r["cuda_graph"] == graph
            ),
            None,
        )

    lines = []
    for config in sorted({r["config"] for r in rows}):
        for size in sorted({r["size"] for r in rows}, key=lambda v: int(v.split("x")[0])):
            fp16, fp32 = find(config, "fp16", size), find(config, "fp32", size)
            head = f"{config} {size} batch 1 top 15:"
            if fp16 is None:
                lines.append(f"{head} no fp16 row (CUDA only)")
                continue
            target = TARGET_FPS.get(config)
            fps = 1000.0 / fp16["total_ms"]
            parts = [
                f"fp16 {fps:.0f} frames/s"
                + (f" (target >= {target:.0f}: {'met' if fps >= target else 'NOT met'})" if target else "")
            ]
            graphed = find(config, "fp16", size, True)
            if graphed is not None:
                parts.append(f"fp16 as a CUDA graph {1000.0 / graphed['total_ms']:.0f} frames/s")
            share = fp16["postprocess_share"]
            parts.append(
                f"post-processing {100 * share:.1f} % (target <= {100 * TARGET_POST_SHARE:.0f} %: "
                f"{'met' if share <= TARGET_POST_SHARE else 'NOT met'})"
            )
            if fp32 is not None:
                ratio = fp32["total_ms"] / fp16["total_ms"]
                parts.append(
                    f"fp32/fp16 time {ratio:.2f} (target <= {TARGET_FP32_OVER_FP16:.0f}: "
                    f"{'met' if ratio <= TARGET_FP32_OVER_FP16 else 'NOT met'})"
                )
            for precision in ("fp32", "tf32", "fp16"):
                eager, graph = find(config, precision, size), find(config, precision, size, True)
                if eager and graph:
                    used = "" if graph["cuda_graph_used"] else " (capture fell back to eager)"
                    parts.append(f"graph/eager {precision} {eager['total_ms'] / graph['total_ms']:.2f}x{used}")
            lines.append(f"{head} " + "; ".join(parts))
        for precision in ("fp32", "fp16"):
            peaks = [
                f"batch {r['batch']} {r['size']} {r['settings']} {r['cuda_call_peak_mb']:.0f} MB"
                for r in rows
                if r["config"] == config
                and r["precision"] == precision
                and not r["cuda_graph"]
                and "cuda_call_peak_mb" in r
            ]
            net = next(
                (
                    r["cuda_network_mb"]
                    for r in rows
                    if r["config"] == config and r["precision"] == precision and "cuda_network_mb" in r
                ),
                None,
            )
            if peaks and net is not None:
                lines.append(
                    f"{config} {precision} GPU memory: the network {net:.0f} MB (once, shared by every "
                    f"camera); a call's peak on top: " + ", ".join(peaks)
                )
    return lines


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
    print(
        f"# bench_gpu: {name}; torch {torch.__version__}; preset {a.preset}; median of {plan['frames']} calls "
        f"after {plan['warmup']}, the variants of a row group alternated call by call (ms; stage times from "
        f"{'CUDA events' if device.type == 'cuda' else 'perf_counter'}; x1st = the group's first row's total / "
        f"this row's)",
        flush=True,
    )
    header = (
        f"{'config':21s} {'prec':4s} {'b':>1s} {'size':>9s} {'set':7s} {'inst':>4s} {'pre':>6s} {'fwd':>7s} "
        f"{'detect':>6s} {'masks':>6s} {'total':>7s} {'p90':>7s} {'img/s':>7s} {'post%':>5s} {'x1st':>5s}"
    )
    print(header, flush=True)
    base = load_photo("astronaut")
    rows, failures = [], []
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f)
    for config in plan["configs"]:
        model = reference_model(config)
        # one network per (precision, graph); the settings share it (with_settings: no weight copy)
        nets, weights_mb = {}, {}
        for v in _variants(plan, device, 1):
            before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
            nets[v] = Segmenter(model=model, device=str(device), precision=v[0], cuda_graph=v[1])
            if device.type == "cuda":
                weights_mb[v] = (torch.cuda.memory_allocated(device) - before) / 2**20
        for size, setting, batch in itertools.product(plan["sizes"], plan["settings"], plan["batches"]):
            w, h = (int(v) for v in size.lower().split("x"))
            image = cv2.resize(base, (w, h), interpolation=cv2.INTER_LINEAR)
            segs = {v: nets[v].with_settings(**SETTINGS[setting]) for v in _variants(plan, device, batch)}
            try:
                group = run_group(segs, image, batch, plan["frames"], plan["warmup"])
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory: report it, measure the rest
                failures.append(f"{config} {size} {setting} batch {batch}: {type(exc).__name__}: {exc}")
                print(f"# FAILED {failures[-1]}", flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            for (precision, graph), row in group.items():
                row = {
                    "config": config,
                    "precision": precision,
                    "batch": batch,
                    "size": size,
                    "settings": setting,
                    "cuda_graph": graph,
                    "device": name,
                    **row,
                }
                if (precision, graph) in weights_mb:
                    row["cuda_network_mb"] = weights_mb[(precision, graph)]
                rows.append(row)
                if a.json:  # after every row: a step that runs out of time keeps what it measured
                    with open(a.json, "w") as f:
                        json.dump(rows, f, indent=1)
                print(
                    f"{config[:19] + ('+G' if graph else ''):21s} {precision:4s} {batch:>1d} {size:>9s} "
                    f"{setting:7s} {row['instances']:>4d} {row['preprocess_ms']:6.2f} {row['forward_ms']:7.2f} "
                    f"{row['detect_ms']:6.2f} {row['masks_ms']:6.2f} {row['total_ms']:7.2f} "
                    f"{row['total_p90_ms']:7.2f} {row['images_per_s']:7.1f} {100 * row['postprocess_share']:5.1f} "
                    f"{row['speedup_vs_first']:5.2f}",
                    flush=True,
                )
        del nets
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print("# targets")
    for line in target_lines(rows):
        print(line)
    if a.json:
        print(f"wrote {len(rows)} rows to {a.json}")
    for line in failures:
        print(f"FAILED {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
