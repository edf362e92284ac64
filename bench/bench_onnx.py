"""onnxruntime (CPU) vs PyTorch (CPU) behind the same Segmenter, alternating in one process.

For each config: export the reference weights with ``yolact export``'s engine (timed, file
size), then run the torch backend (the optimized inference copy) and the onnxruntime backend
on the same image, alternating run by run (the order flips every round), and report the
median per stage -- preprocess, forward (the network), postprocess (detect + masks, the same
code for both) -- and the onnxruntime / torch ratio.  YOLACT++ configs are also run with the
``--dcn native`` export (ONNX DeformConv).  Threads: ``torch.set_num_threads(T)`` for torch (and
for the shared pre/post-processing), ``SessionOptions.intra_op_num_threads = T`` for onnxruntime
(plus the backend's ``session.intra_op.allow_spinning = 0``; other options at their defaults,
i.e. sequential execution, all graph optimisations).
Prints figures; asserts nothing.

    nice -n 10 .venv/bin/python bench/bench_onnx.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from yolact_ros.cli.bench import SETTINGS
from yolact_ros.data.photos import load_photo
from yolact_ros.inference.onnx_export import export_onnx
from yolact_ros.segmenter import Segmenter
from yolact_ros.testing.reference_weights import reference_model

COLUMNS = ("preprocess", "forward", "postprocess", "total")


def stage_times(seg: Segmenter) -> dict[str, float]:
    t = seg.timings
    return {
        "preprocess": t["preprocess"],
        "forward": t["forward"],
        "postprocess": t["detect"] + t["masks"],
        "total": t["total"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["yolact_resnet50", "yolact_plus_resnet50"])
    p.add_argument("--runs", type=int, default=5, help="timed alternations after one warm-up (median reported)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--image", default="astronaut", help="a skimage.data image name")
    p.add_argument(
        "--setting", choices=list(SETTINGS), default="default", help="post-processing settings (yolact bench's)"
    )
    a = p.parse_args()
    import onnxruntime

    torch.set_num_threads(a.threads)
    bgr = load_photo(a.image)
    print(
        f"# bench_onnx: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {a.threads} threads each, "
        f"{platform.processor() or platform.machine()}, image {a.image} {bgr.shape[1]}x{bgr.shape[0]}, "
        f"setting {a.setting}, median of {a.runs} alternated runs (ms), load average {os.getloadavg()[0]:.2f}"
    )
    rows, exports = [], []
    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as tmp:
        for cfg in a.configs:
            model = reference_model(cfg)
            variants = {"torch": Segmenter(model=model, device="cpu", **SETTINGS[a.setting])}
            modes = ["grid_sample", "native"] if model.cfg.backbone.dcn_layers else ["grid_sample"]
            for mode in modes:
                res = export_onnx(model, Path(tmp) / f"{cfg}_{mode}.onnx", dcn=mode)
                label = "onnxruntime" + (f" (dcn {mode})" if len(modes) > 1 else "")
                exports.append((cfg, res.info.dcn, res.seconds, res.size_bytes))
                variants[label] = Segmenter(
                    backend="onnxruntime", weights=res.path, device="cpu", num_threads=a.threads, **SETTINGS[a.setting]
                )
            samples = {k: {c: [] for c in COLUMNS} for k in variants}
            results = {k: seg(bgr) for k, seg in variants.items()}  # warm-up
            order = list(variants)
            for i in range(a.runs):
                for key in order if i % 2 == 0 else order[::-1]:
                    variants[key](bgr)
                    for c, v in stage_times(variants[key]).items():
                        samples[key][c].append(v)
            ref = results["torch"]
            torch_med = {c: statistics.median(samples["torch"][c]) for c in COLUMNS}
            for key in variants:
                med = {c: statistics.median(samples[key][c]) for c in COLUMNS}
                inst = results[key]
                same = len(inst) == len(ref) and np.array_equal(inst.class_ids, ref.class_ids)
                diff = float(np.abs(inst.scores - ref.scores).max(initial=0)) if same else float("nan")
                rows.append(
                    (
                        cfg,
                        key,
                        med,
                        med["forward"] / torch_med["forward"],
                        med["total"] / torch_med["total"],
                        len(inst),
                        diff,
                    )
                )
            del variants, model
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print("\n| config | dcn | export time | file size |\n|---|---|---|---|")
    for cfg, dcn, seconds, size in exports:
        print(f"| {cfg} | {dcn} | {seconds:.1f} s | {size / 2**20:.1f} MiB |")
    print()
    print(
        "| config | backend | "
        + " | ".join(COLUMNS)
        + " | forward ratio | total ratio | instances | max score diff vs torch |"
    )
    print("|---|---|" + "---|" * (len(COLUMNS) + 4))
    for cfg, key, med, fr, tr, n, diff in rows:
        print(
            f"| {cfg} | {key} | "
            + " | ".join(f"{med[c]:.1f}" for c in COLUMNS)
            + f" | {fr:.2f}x | {tr:.2f}x | {n} | {diff:.1e} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
