"""The original YOLACT (github dbolya/yolact) and this project side by side on the CPU.

One process, the same reference weights (``golden_weights.reference_model``, written in the
official checkpoint layout and loaded by both), the same BGR uint8 image, calls alternated one
by one (the order rotates every round).  End to end on both sides: image in, classes, scores,
boxes and masks out.  The original runs as its ``eval.py --image`` does (``FastBaseTransform``,
``net(batch)``, ``postprocess(..., score_threshold)`` with box re-scoring, then the best
``top_k``); ours is ``Segmenter(weights=..., backend=..., precision=...)``.  Masks stay in each
side's own form (the original: a full-frame tensor, as eval.py draws it; ours: box-sized windows)
unless ``--full-masks`` makes both return full-frame numpy bool arrays.

Before timing, the detections of each variant are compared with the original's (same class,
box IoU >= 0.9, score within 1e-3; differing mask pixels counted; ``matched_any_score`` drops
the score rule).  An fp32 variant matching fewer than 95 % makes the exit status 1 (reduced
precisions are only reported), as does a requested variant that cannot be built (reported as
UNAVAILABLE; the others still run).

Get the original outside this repository, e.g.
    git --git-dir=<mirror of dbolya/yolact> archive HEAD | tar -x -C /tmp/yolact_orig
and run
    .venv/bin/python bench/bench_original.py --original /tmp/yolact_orig --configs yolact_resnet50 --rounds 3
    .venv/bin/python bench/bench_original.py --original /tmp/yolact_orig --variants torch:fp32 openvino:bf16 \\
        --settings default all100 --size 1280x720 --json out.json

Nothing in the checkout is modified: every CPU shim the original needs is here (``.cuda()`` as a
no-op, ``torch.cuda.current_device``, a ``dcn_v2`` module built on ``torchvision.ops.deform_conv2d``,
a ``pycocotools`` stub when that package is missing, and, only if this torch cannot build them,
``nn.Module`` in place of the TorchScript base classes of its FPN and mask-IoU net).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.modules.utils import _pair
from torchvision.ops import deform_conv2d

MIN_MATCH = 0.95  # fp32 sanity rule


# -- shims for the original ---------------------------------------------------------------------
class DCN(nn.Module):
    """Stand-in for the original's ``external/DCNv2`` ``DCN`` (modulated deformable conv, DCNv2
    layout and parameter names: ``weight``, ``bias``, ``conv_offset_mask``)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation=1, deformable_groups=1):
        super().__init__()
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        bound = 1 / math.sqrt(in_channels * self.kernel_size[0] * self.kernel_size[1])
        nn.init.uniform_(self.weight, -bound, bound)
        channels = deformable_groups * 3 * self.kernel_size[0] * self.kernel_size[1]
        self.conv_offset_mask = nn.Conv2d(in_channels, channels, self.kernel_size, self.stride, self.padding, bias=True)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x):
        o1, o2, mask = torch.chunk(self.conv_offset_mask(x), 3, dim=1)
        return deform_conv2d(
            x,
            torch.cat((o1, o2), dim=1),
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=torch.sigmoid(mask),
        )


@contextlib.contextmanager
def cpu_shims(no_jit: bool = False):
    """What the original needs to import and build on a CPU-only torch; undone on exit.
    ``no_jit``: its FPN / FastMaskIoUNet become plain modules (they subclass
    ``torch.jit.ScriptModule`` with a ``script_method`` forward whenever <= 1 GPU is present)."""
    patches = [
        (torch.Tensor, "cuda", lambda self, *a, **k: self),
        (nn.Module, "cuda", lambda self, *a, **k: self),
        (torch.cuda, "current_device", lambda: 0),
    ]
    if no_jit:
        patches += [(torch.jit, "ScriptModule", nn.Module), (torch.jit, "script_method", lambda fn, *a: fn)]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, value in patches:
        setattr(obj, name, value)
    try:
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


def import_original(root: str) -> types.SimpleNamespace:
    """The original's modules, imported from the checkout at ``root`` (once)."""
    sys.modules.setdefault("dcn_v2", types.SimpleNamespace(DCN=DCN))
    try:
        import pycocotools.mask  # noqa: F401  (data/coco.py imports it; only training uses it)
    except ImportError:
        stub = types.ModuleType("pycocotools")
        stub.mask = types.ModuleType("pycocotools.mask")
        sys.modules.update({"pycocotools": stub, "pycocotools.mask": stub.mask})
    sys.path.insert(0, str(Path(root).resolve()))
    for no_jit in (False, True):  # its own TorchScript modules first; plain ones if this torch refuses them
        try:
            with cpu_shims(no_jit), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import data.config as config  # noqa: E402 - the checkout's modules, importable only now
                import yolact
                from layers.output_utils import postprocess
                from utils.augmentations import FastBaseTransform

                yolact.FPN([512, 1024, 2048]), yolact.FastMaskIoUNet()  # scripted (if so) when built
            break
        except Exception as exc:  # noqa: BLE001
            if no_jit:
                raise
            print(f"# original: TorchScript modules failed ({type(exc).__name__}: {exc}); using nn.Module instead")
            for name in [
                n for n in sys.modules if n.split(".")[0] in ("yolact", "backbone", "layers", "utils", "data")
            ]:
                del sys.modules[name]
    return types.SimpleNamespace(
        config=config,
        Yolact=yolact.Yolact,
        postprocess=postprocess,
        FastBaseTransform=FastBaseTransform,
        jit=yolact.use_jit and not no_jit,
    )


class Original:
    """The original on one config, called like eval.py's ``evalimage`` / ``prep_display``."""

    def __init__(self, mods, config: str, weights: Path):
        self.mods, self.cfg = mods, mods.config.cfg
        with cpu_shims(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.set_default_tensor_type("torch.FloatTensor")  # eval.py without --cuda
            mods.config.set_cfg(config + "_config")
            self.cfg.mask_proto_debug = False
            self.net = mods.Yolact()
            self.net.load_weights(str(weights))
            self.net.eval()
            self.net.detect.use_fast_nms, self.net.detect.use_cross_class_nms = True, False
            self.transform = mods.FastBaseTransform()

    def __call__(self, bgr: np.ndarray, score_threshold: float, top_k: int, full_masks: bool = False) -> dict:
        h, w = bgr.shape[:2]
        with torch.no_grad():
            batch = self.transform(torch.from_numpy(bgr).float().unsqueeze(0))
            preds = self.net(batch)
            save, self.cfg.rescore_bbox = self.cfg.rescore_bbox, True  # as prep_display
            try:
                t = self.mods.postprocess(preds, w, h, score_threshold=score_threshold)
            finally:
                self.cfg.rescore_bbox = save
            if t[1].numel() == 0:
                return _empty(h, w)
            idx = t[1].argsort(0, descending=True)[:top_k]
            classes, scores, boxes = [x[idx].cpu().numpy() for x in t[:3]]
            masks = t[3][idx]
        below = np.flatnonzero(scores < score_threshold)  # prep_display stops at the first one
        n = int(below[0]) if len(below) else len(scores)
        masks = masks[:n].numpy().astype(bool) if full_masks else masks[:n]
        return dict(classes=classes[:n], scores=scores[:n], boxes=boxes[:n], masks=masks)


def _empty(h, w) -> dict:
    return dict(
        classes=np.zeros(0, np.int64),
        scores=np.zeros(0, np.float32),
        boxes=np.zeros((0, 4)),
        masks=np.zeros((0, h, w), bool),
    )


# -- ours ---------------------------------------------------------------------------------------
def ours_call(seg, bgr: np.ndarray, full_masks: bool = False) -> dict:
    inst = seg(bgr)
    return dict(classes=inst.class_ids, scores=inst.scores, boxes=inst.boxes, masks=inst.masks if full_masks else inst)


def parse_variants(specs) -> list[tuple[str, str]]:
    """``["torch:fp32", "openvino"]`` -> ``[("torch", "fp32"), ("openvino", "fp32")]`` (``yolact bench``'s syntax)."""
    from yolact_ros.cli.bench import parse_variant

    try:
        return [parse_variant(spec) for spec in specs]
    except Exception as exc:  # noqa: BLE001 - argparse.ArgumentTypeError and ValueError
        raise ValueError(str(exc)) from None


# -- checks and reporting -----------------------------------------------------------------------
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), (inter == union).astype(float))


def compare_detections(ref: dict, mine: dict, iou_min: float = 0.9, score_tol: float = 1e-3) -> dict:
    """Greedy matching in ``ref`` score order: same class, score within ``score_tol``, box IoU >=
    ``iou_min`` (best IoU; boxes floored to whole pixels first).  ``total`` = the larger count, so
    extras on either side count as misses; ``mask_px_diff`` = differing pixels of the matched
    pairs' full-frame bool masks."""
    n_ref, n_mine = len(ref["scores"]), len(mine["scores"])
    # boxes as the original's integer pixels (it truncates with .long(); ours keeps sub-pixels)
    ious = box_iou(np.floor(np.asarray(ref["boxes"], np.float64)), np.floor(np.asarray(mine["boxes"], np.float64)))
    used = np.zeros(n_mine, bool)
    matched, px = 0, 0
    for i in np.argsort(-np.asarray(ref["scores"]), kind="stable"):
        ok = (
            (
                ~used
                & (np.asarray(mine["classes"]) == ref["classes"][i])
                & (np.abs(np.asarray(mine["scores"], np.float64) - float(ref["scores"][i])) <= score_tol)
                & (ious[i] >= iou_min)
            )
            if n_mine
            else np.zeros(0, bool)
        )
        if ok.any():
            j = int(np.argmax(np.where(ok, ious[i], -1)))
            used[j] = True
            matched += 1
            px += int(np.count_nonzero(np.asarray(ref["masks"][i], bool) != np.asarray(mine["masks"][j], bool)))
    total = max(n_ref, n_mine)
    return dict(
        matched=matched,
        total=total,
        match_fraction=matched / total if total else 1.0,
        mask_px_diff=px,
        n_original=n_ref,
        n_ours=n_mine,
    )


def load_bgr(name: str, size: str | None) -> np.ndarray:
    from yolact_ros.data.photos import load_photo

    bgr = load_photo(name)
    if size:
        import cv2

        w, h = (int(v) for v in size.lower().split("x"))
        bgr = np.ascontiguousarray(cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR))
    return bgr


def make_segmenter(weights: Path, backend: str, precision: str, threads: int, workdir: Path, config: str):
    """``Segmenter`` for a variant: the ``.pth`` file; onnxruntime gets a ``yolact export`` of
    it, int8 the same weights quantized by ``yolact quantize``'s engine (on scikit-image photos
    other than the benchmark's own, ``yolact_ros.testing.reference_weights.quantized_reference``)."""
    from yolact_ros.inference.segmenter import Segmenter
    from yolact_ros.testing.reference_weights import quantized_reference

    kw = dict(device="cpu", backend=backend, precision=precision, num_threads=threads, score_threshold=0.15, top_k=15)
    if precision == "int8":
        return Segmenter(weights=quantized_reference(config, workdir), **kw)
    if backend != "onnxruntime":
        return Segmenter(weights=weights, **kw)
    onnx = workdir / f"{config}.onnx"
    if not onnx.exists():
        from yolact_ros.inference.onnx_export import export_onnx
        from yolact_ros.testing.reference_weights import reference_model

        export_onnx(reference_model(config), onnx, dcn="native")  # DeformConv: onnxruntime runs it natively
    return Segmenter(weights=onnx, **kw)


def alternated_ms(calls: dict, rounds: int) -> dict[str, list[float]]:
    """Wall-clock ms of each callable, ``rounds`` times, called one by one in turn with the order
    rotated every round, so that machine noise hits them alike."""
    names = list(calls)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            calls[name]()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def bench_config(a, mods, config: str, bgr: np.ndarray, workdir: Path, out=print) -> list[dict]:
    from yolact_ros.cli.bench import SETTINGS
    from yolact_ros.model.checkpoint import save_checkpoint
    from yolact_ros.testing.reference_weights import reference_model

    weights = save_checkpoint(reference_model(config), workdir / f"{config}_54_800000.pth")
    orig = Original(mods, config, weights)
    segs, rows = {}, []
    for b, p in parse_variants(a.variants):
        try:
            segs[f"{b}:{p}"] = make_segmenter(weights, b, p, a.threads, workdir, config)
        except Exception as exc:  # noqa: BLE001 - e.g. a backend or precision this checkout lacks
            out(f"{config:22s} {'-':8s} {b + ':' + p:18s} UNAVAILABLE: {type(exc).__name__}: {exc}")
            rows.append(dict(config=config, variant=f"{b}:{p}", sanity_ok=False, error=f"{type(exc).__name__}: {exc}"))
    if not segs:
        return rows
    for setting in a.settings:
        s = SETTINGS[setting]
        thr, k = s["score_threshold"], s["top_k"]
        variants = {name: seg.with_settings(**s) for name, seg in segs.items()}
        ref = orig(bgr, thr, k, full_masks=True)  # sanity check; doubles as the warm-up
        checks = {}
        for name, seg in variants.items():
            mine = ours_call(seg, bgr, full_masks=True)
            checks[name] = compare_detections(ref, mine)
            checks[name]["matched_any_score"] = compare_detections(ref, mine, score_tol=math.inf)["matched"]
        calls = {"original": lambda thr=thr, k=k: orig(bgr, thr, k, a.full_masks)}
        calls.update({name: lambda seg=seg: ours_call(seg, bgr, a.full_masks) for name, seg in variants.items()})
        times = alternated_ms(calls, a.rounds)
        orig_ms = statistics.median(times["original"])
        for name in variants:
            ours_ms = statistics.median(times[name])
            c = checks[name]
            fp32 = name.split(":")[1] == "fp32"
            ok = c["match_fraction"] >= MIN_MATCH or not fp32
            rows.append(
                dict(
                    config=config,
                    setting=setting,
                    variant=name,
                    original_ms=round(orig_ms, 2),
                    ours_ms=round(ours_ms, 2),
                    ratio=round(ours_ms / orig_ms, 4),
                    speedup=round(orig_ms / ours_ms, 3),
                    sanity_ok=ok,
                    **c,
                )
            )
            out(
                f"{config:22s} {setting:8s} {name:18s} original {orig_ms:8.1f} ms  ours {ours_ms:8.1f} ms  "
                f"ours/original {ours_ms / orig_ms:6.3f} ({orig_ms / ours_ms:5.2f}x)  match {c['matched']}/{c['total']} "
                f"(dets {c['n_original']}/{c['n_ours']}), mask px diff {c['mask_px_diff']}"
                + ("" if ok else f"  SANITY FAILED (< {MIN_MATCH:.0%})")
                + ("" if fp32 else f"  [reduced precision, not checked; {c['matched_any_score']} match by class + box]")
            )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--original", required=True, help="checkout of github dbolya/yolact (not modified)")
    p.add_argument("--configs", nargs="+", default=["yolact_resnet50", "yolact_plus_resnet50", "yolact_base"])
    p.add_argument("--settings", nargs="+", default=["default", "all100"], choices=["default", "all100"])
    p.add_argument(
        "--variants", nargs="+", default=["torch:fp32"], help="BACKEND:PRECISION of ours, e.g. torch:fp32 openvino:bf16"
    )
    p.add_argument("--image", default="astronaut", help="a skimage.data image name")
    p.add_argument("--size", help="resize the image to WxH first, e.g. 1280x720")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7, help="timed calls per side (median reported)")
    p.add_argument("--full-masks", action="store_true", help="both sides return full-frame numpy bool masks")
    p.add_argument("--json", help="also write the rows to this JSON file")
    a = p.parse_args(argv)
    parse_variants(a.variants)
    torch.set_num_threads(a.threads)
    bgr = load_bgr(a.image, a.size)
    import torchvision

    from yolact_ros.inference.capabilities import detect_cpu

    print(
        f"# bench_original: {detect_cpu().summary()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, {a.threads} threads"
    )
    print(
        f"# image {a.image} {bgr.shape[1]}x{bgr.shape[0]}, median of {a.rounds} alternated rounds, "
        f"masks {'full-frame numpy' if a.full_masks else 'native form'}"
    )
    mods = import_original(a.original)
    print(f"# original: {a.original} (its FPN / mask-IoU net {'TorchScript' if mods.jit else 'plain nn.Module'})")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_original_") as tmp:
        for config in a.configs:
            rows += bench_config(a, mods, config, bgr, Path(tmp))
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                dict(
                    cpu=detect_cpu().summary(),
                    torch=torch.__version__,
                    image=a.image,
                    size=f"{bgr.shape[1]}x{bgr.shape[0]}",
                    threads=a.threads,
                    rounds=a.rounds,
                    full_masks=a.full_masks,
                    rows=rows,
                ),
                indent=1,
            )
        )
    failed = [r for r in rows if not r["sanity_ok"]]
    if failed:
        print(
            f"# FAILED: {len(failed)} row(s) with a variant unavailable or fp32 detections matching the original "
            f"below {MIN_MATCH:.0%}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
