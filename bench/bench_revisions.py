"""Segmenter latency of this working tree vs another git revision, alternated in one process.

    .venv/bin/python bench/bench_revisions.py --rev HEAD~1 [--configs yolact_resnet50 ...] [--runs 7] \
        [--size 1920x1080] [--stages total masks] [--backend openvino --precision bf16|int8]

With ``--backend``/``--precision`` both sides run that backend (each converts into its own
fresh model cache; int8 quantizes the reference weights with each side's own engine).  The
other revision's ``yolact_ros`` package is imported beside this tree's
(:mod:`yolact_ros.testing.revisions`), and both are called in turn on the same image with the
same reference weights: machine noise hits both alike and the ratio is a fair speed comparison.
Prints per-config medians (ms) and the ratio this/rev; asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import tempfile
from pathlib import Path

from yolact_ros.inference.cpu_memory import keep_freed_memory

keep_freed_memory()  # as the yolact CLI and the node do, before torch starts its threads

import torch

from yolact_ros.cli.bench import SETTINGS
from yolact_ros.data.photos import load_photo
from yolact_ros.testing.revisions import import_revision, short_name


def revision_segmenter(pkg, config: str, settings: dict, workdir: Path, **backend):
    """A Segmenter of the package ``pkg`` (this tree's or another revision's) with the reference
    weights, whichever API it has; ``backend``: backend / precision / cache_dir keywords."""
    try:
        module = importlib.import_module(f"{pkg.__name__}.inference.segmenter")
    except ModuleNotFoundError:  # a flat package: weights=None meant the reference weights
        if backend:
            raise ValueError(f"{pkg.__name__} has one backend only; leave out --backend/--precision") from None
        module = importlib.import_module(f"{pkg.__name__}.segmenter")
        return module.Segmenter(config=config, weights=None, device="cpu", **settings)
    for where in ("testing.reference_weights", "model.golden_weights"):  # the weights' home by revision
        try:
            weights = importlib.import_module(f"{pkg.__name__}.{where}")
        except ModuleNotFoundError:
            continue
        if backend.get("precision") == "int8":
            path = weights.quantized_reference(config, workdir)
            return module.Segmenter(weights=path, device="cpu", **backend, **settings)
        return module.Segmenter(model=weights.reference_model(config), device="cpu", **backend, **settings)
    raise ModuleNotFoundError(f"no reference weights in {pkg.__name__}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", default="HEAD~1", help="git revision to compare with (default HEAD~1)")
    p.add_argument("--configs", nargs="+", default=["yolact_resnet50", "yolact_plus_resnet50"])
    p.add_argument("--settings", nargs="+", default=["all100", "default"], choices=list(SETTINGS))
    p.add_argument("--image", default="astronaut", help="a skimage.data image name")
    p.add_argument("--runs", type=int, default=7, help="timed rounds after one warm-up (medians reported)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", default="", help="resize the image to WxH first (e.g. 1920x1080)")
    p.add_argument("--stages", nargs="+", default=["total"], help="Segmenter timing stages to report")
    p.add_argument("--backend", help="run both sides on this backend (default: the Segmenter's, torch)")
    p.add_argument("--precision", help="and this precision (default fp32)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    bgr = load_photo(a.image)
    if a.size:
        import cv2

        w, h = (int(v) for v in a.size.lower().split("x"))
        bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    rev = short_name(a.rev)
    with tempfile.TemporaryDirectory() as tmp:
        pkg = import_revision(a.rev, Path(tmp))
        this = importlib.import_module("yolact_ros")
        variants = {}
        for cfg in a.configs:
            for s in a.settings:
                for name, package in (("this", this), (rev, pkg)):
                    work = Path(tmp) / f"{name}-{cfg}"
                    work.mkdir(exist_ok=True)
                    backend = {k: v for k, v in (("backend", a.backend), ("precision", a.precision)) if v}
                    if backend:
                        backend.update(cache_dir=work / "cache", num_threads=a.threads)
                    variants[(cfg, s, name)] = revision_segmenter(package, cfg, SETTINGS[s], work, **backend)
        for seg in variants.values():
            seg(bgr)  # warm-up
        samples = {k: [] for k in variants}
        counts = {}
        for _ in range(a.runs):  # alternate variant by variant, round by round
            for key, seg in variants.items():
                counts[key] = len(seg(bgr))
                samples[key].append(dict(seg.timings))
    print(
        f"# this tree vs {a.rev} ({rev}): torch {torch.__version__}, {a.threads} threads, image {a.image} "
        f"backend {a.backend or 'torch'} {a.precision or 'fp32'} ({variants[(a.configs[0], a.settings[0], 'this')].describe()}), "
        f"{bgr.shape[1]}x{bgr.shape[0]}, median of {a.runs} alternated runs (ms)"
    )
    for cfg in a.configs:
        for s in a.settings:
            same = counts[(cfg, s, "this")] == counts[(cfg, s, rev)]
            for stage in a.stages:
                mine = statistics.median(t[stage] for t in samples[(cfg, s, "this")])
                theirs = statistics.median(t[stage] for t in samples[(cfg, s, rev)])
                print(
                    f"{cfg:22s} {s:8s} {stage:8s} this={mine:7.1f}  {rev}={theirs:7.1f}  "
                    f"this/{rev}={mine / theirs:5.3f}  instances {counts[(cfg, s, 'this')]}/{counts[(cfg, s, rev)]}"
                    + ("" if same else "  (DIFFERENT)")
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
