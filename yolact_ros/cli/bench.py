"""``yolact bench``: per-stage CPU latency of the Segmenter (figures go to BENCHMARKS.md).

Prints figures, asserts nothing.  Uses the deterministic reference weights (no
trained checkpoint can be downloaded here), which give ~100 candidate detections
per image, i.e. a realistic worst case for the post-processing.  ``--backend onnxruntime``
first exports each config to a temporary ONNX file (onnxruntime times the network as one
``forward`` stage).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..inference import defaults
from ..inference.segmenter import STAGES, Segmenter
from ..model.golden_weights import reference_model

SETTINGS = {
    # the original's end-to-end measurement: every kept detection (up to 100) gets a full-size mask
    "all100": dict(score_threshold=0.0, top_k=defaults.TOP_K_MAX),
    # what the node runs by default
    "default": dict(score_threshold=defaults.SCORE_THRESHOLD, top_k=defaults.TOP_K),
}


def load_image(name: str) -> np.ndarray:
    import skimage.data

    rgb = getattr(skimage.data, name)()
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    return np.ascontiguousarray(rgb[:, :, :3][:, :, ::-1])


def reference_segmenter(cfg: str, backend: str = "torch", workdir: "str | Path | None" = None, threads: int = 2,
                        optimize: bool = True, **settings) -> Segmenter:
    """A CPU Segmenter with the reference weights of ``cfg``; for onnxruntime they are exported
    (fp32, default options) to ``workdir`` first."""
    if backend == "onnxruntime":
        from ..inference.onnx_export import export_onnx

        path = Path(workdir) / f"{cfg}.onnx"
        export_onnx(reference_model(cfg), path)
        return Segmenter(backend=backend, weights=path, device="cpu", num_threads=threads, **settings)
    return Segmenter(model=reference_model(cfg), device="cpu", optimize=optimize, **settings)


def run(configs, settings, image="astronaut", runs=5, threads=2, optimize=True, out=print, backend="torch") -> dict:
    torch.set_num_threads(threads)
    bgr = load_image(image)
    results = {}
    segs = {}
    with tempfile.TemporaryDirectory(prefix="yolact_bench_") as workdir:
        for cfg in configs:
            base = reference_segmenter(cfg, backend, workdir, threads, optimize)
            for s in settings:
                segs[(cfg, s)] = base.with_settings(**SETTINGS[s])
                segs[(cfg, s)](bgr)  # warm-up
    samples = {k: {st: [] for st in STAGES} for k in segs}
    counts = {}
    # alternate the variants run by run so machine noise hits them alike
    for _ in range(runs):
        for key, seg in segs.items():
            inst = seg(bgr)
            counts[key] = len(inst)
            for st in STAGES:
                samples[key][st].append(seg.timings[st])
    for (cfg, s), per_stage in samples.items():
        med = {st: statistics.median(v) for st, v in per_stage.items()}
        post = med["detect"] + med["masks"]
        results[f"{cfg}/{s}"] = {"median_ms": med, "instances": counts[(cfg, s)], "postprocess_share": post / med["total"]}
        out(
            f"{cfg:22s} {s:8s} n={counts[(cfg, s)]:3d}  "
            + "  ".join(f"{st}={med[st]:7.1f}" for st in STAGES)
            + f"  post={100 * post / med['total']:.1f}%"
        )
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="yolact bench", description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["yolact_resnet50", "yolact_plus_resnet50"])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--image", default="astronaut", help="a skimage.data image name")
    p.add_argument("--runs", type=int, default=5, help="timed runs per variant after one warm-up (median reported)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-optimize", action="store_true", help="run the checkpoint-layout module (no BN folding etc.)")
    p.add_argument("--backend", choices=defaults.BACKENDS, default=defaults.BACKEND,
                   help="torch (default) or onnxruntime (exports the reference weights to a temporary file first)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    a = p.parse_args(argv)
    print(f"# yolact bench: {a.backend} backend, torch {torch.__version__}, {a.threads} threads, "
          f"{platform.processor() or platform.machine()}, image {a.image}, median of {a.runs} runs (ms)")
    res = run(a.configs, a.settings, a.image, a.runs, a.threads, not a.no_optimize, backend=a.backend)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0
