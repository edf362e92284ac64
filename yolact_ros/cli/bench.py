"""``yolact bench``: per-stage CPU latency of the Segmenter, backends and precisions side by side.

Prints figures, asserts nothing.  Each variant (``backend:precision``, e.g. ``torch:fp32
openvino:bf16``) is built once per config; the variants and settings alternate call by call in
one process, so every ratio to the first variant is measured side by side.  Uses the
deterministic reference weights (no trained checkpoint can be downloaded here), which give ~100
candidate detections per image, a realistic worst case for the post-processing; or
``--weights`` for a real checkpoint / a quantized OpenVINO model.  ``onnxruntime`` first
exports the network to a temporary ONNX file; ``openvino`` converts into the model cache (so
``yolact bench --weights W --variants auto:auto`` also pre-builds the cache the node will use).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from ..data.photos import load_photo
from ..inference import defaults
from ..inference.capabilities import detect_cpu
from ..inference.segmenter import STAGES, Segmenter

SETTINGS = {
    # the original's end-to-end measurement: every kept detection (up to 100) gets a full-size mask
    "all100": dict(score_threshold=0.0, top_k=defaults.TOP_K_MAX),
    # what the node runs by default
    "default": dict(score_threshold=defaults.SCORE_THRESHOLD, top_k=defaults.TOP_K),
}


def _reference_model(cfg: str):
    """The reference weights (test support, imported only here and only when benchmarked)."""
    from ..testing.reference_weights import reference_model

    return reference_model(cfg)


def _quantized_reference(cfg: str, workdir: Path) -> Path:
    """The reference weights quantized to int8 (test support, imported only when benchmarked)."""
    from ..testing.reference_weights import quantized_reference

    return quantized_reference(cfg, workdir)


def reference_segmenter(
    cfg: str,
    backend: str = "torch",
    workdir: "str | Path | None" = None,
    threads: int = 2,
    optimize: bool = True,
    precision: str = "fp32",
    weights=None,
    cache_dir=None,
    **settings,
) -> Segmenter:
    """A CPU Segmenter with the reference weights of ``cfg`` (or ``weights``); for onnxruntime
    they are exported (fp32, default options) to ``workdir`` first."""
    common = dict(device="cpu", num_threads=threads, precision=precision, cache_dir=cache_dir, **settings)
    if weights is None and precision == "int8":
        assert workdir is not None  # the int8 and onnxruntime variants write files there
        weights = _quantized_reference(cfg, Path(workdir))
    if weights is not None:
        return Segmenter(weights=weights, backend=backend, optimize=optimize, **common)
    if backend == "onnxruntime":
        from ..inference.onnx_export import export_onnx

        assert workdir is not None  # the int8 and onnxruntime variants write files there
        path = Path(workdir) / f"{cfg}.onnx"
        export_onnx(_reference_model(cfg), path, dcn="native")  # onnxruntime runs DeformConv natively
        return Segmenter(backend=backend, weights=path, **common)
    return Segmenter(model=_reference_model(cfg), backend=backend, optimize=optimize, **common)


def parse_variant(text: str) -> tuple[str, str]:
    """``backend[:precision]`` -> (backend, precision); precision defaults to ``fp32`` (``auto`` for backend auto)."""
    backend, _, precision = text.partition(":")
    precision = precision or ("auto" if backend == "auto" else "fp32")
    if backend not in defaults.BACKENDS or precision not in defaults.PRECISIONS:
        raise argparse.ArgumentTypeError(
            f"variant {text!r}: use BACKEND:PRECISION with a backend of "
            f"{', '.join(defaults.BACKENDS)} and a precision of {', '.join(defaults.PRECISIONS)}"
        )
    return backend, precision


def run(
    configs,
    settings,
    image="astronaut",
    runs=5,
    threads=2,
    optimize=True,
    out=print,
    backend="torch",
    variants=None,
    size=None,
    weights=None,
    cache_dir=None,
) -> dict:
    """Alternated medians per (config, setting, variant); ``size`` (w, h) resizes the image."""
    torch.set_num_threads(threads)
    bgr = load_photo(image)
    if size is not None:
        import cv2

        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
    variants = list(variants or [(backend, "fp32")])
    results = {}
    segs = {}
    with tempfile.TemporaryDirectory(prefix="yolact_bench_") as workdir:
        for cfg in configs:
            for be, prec in variants:
                base = reference_segmenter(cfg, be, workdir, threads, optimize, prec, weights, cache_dir)
                out(f"# {cfg} {be}:{prec} -> {base.describe()}")
                for s in settings:
                    segs[(cfg, s, f"{be}:{prec}")] = seg = base.with_settings(**SETTINGS[s])
                    seg(bgr)  # warm-up
    samples: dict[tuple[str, str, str], dict[str, list[float]]] = {k: {st: [] for st in STAGES} for k in segs}
    counts = {}
    keys = list(segs)
    # alternate the variants call by call, rotating the order each round, so machine noise hits them alike
    for r in range(runs):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            seg = segs[key]
            inst = seg(bgr)
            counts[key] = len(inst)
            for st in STAGES:
                samples[key][st].append(seg.timings[st])
    for (cfg, s, v), per_stage in samples.items():
        med = {st: statistics.median(x) for st, x in per_stage.items()}
        first = statistics.median(samples[(cfg, s, keys[0][2])]["total"])
        post = med["detect"] + med["masks"]
        results[f"{cfg}/{s}/{v}"] = {
            "median_ms": med,
            "instances": counts[(cfg, s, v)],
            "postprocess_share": post / med["total"],
            "x_first": med["total"] / first,
            "precision_run": segs[(cfg, s, v)].precision,
        }
        out(
            f"{cfg:22s} {s:8s} {v:18s} ran={segs[(cfg, s, v)].precision:5s} n={counts[(cfg, s, v)]:3d}  "
            + "  ".join(f"{st}={med[st]:7.1f}" for st in STAGES)
            + f"  post={100 * post / med['total']:.1f}%  x{keys[0][2]}={med['total'] / first:.3f}"
        )
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="yolact bench", description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["yolact_resnet50", "yolact_plus_resnet50"])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--image", default="astronaut", help="a skimage.data image name")
    p.add_argument("--size", default=None, help="resize the image to WxH first, e.g. 1280x720")
    p.add_argument("--runs", type=int, default=5, help="timed runs per variant after one warm-up (median reported)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-optimize", action="store_true", help="run the checkpoint-layout module (no BN folding etc.)")
    p.add_argument(
        "--backend",
        choices=defaults.BACKENDS,
        default=defaults.BACKEND,
        help="one variant with this backend in fp32 (see --variants)",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        type=parse_variant,
        default=None,
        help="BACKEND:PRECISION variants alternated in one process, e.g. torch:fp32 openvino:bf16 "
        "torch:bf16 auto:auto; ratios are to the first",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="a checkpoint / .onnx / .xml instead of the reference weights "
        "(its config is used; --configs then names it only)",
    )
    p.add_argument("--cache-dir", default=None, help="the OpenVINO model cache (default: the per-user one)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    a = p.parse_args(argv)
    size = tuple(int(v) for v in a.size.lower().split("x")) if a.size else None
    configs = a.configs[:1] if a.weights else a.configs
    print(
        f"# yolact bench: torch {torch.__version__}, {a.threads} threads, CPU {detect_cpu().summary()}, image {a.image}"
        f"{f' at {size[0]}x{size[1]}' if size else ''}, median of {a.runs} alternated runs (ms)"
    )
    res = run(
        configs,
        a.settings,
        a.image,
        a.runs,
        a.threads,
        not a.no_optimize,
        backend=a.backend,
        variants=a.variants,
        size=size,
        weights=a.weights,
        cache_dir=a.cache_dir,
    )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0
