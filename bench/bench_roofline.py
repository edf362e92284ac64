"""How close each CPU backend runs the network to what this CPU can do, and what each speed
target (a time as a fraction of the original's, :data:`TARGETS`) would need.  Prints figures;
asserts nothing.

Three measurements, all in one process, alternated where they are compared:

1. **Work.**  The network's multiply-adds at its input size (``torch.utils.flop_counter`` on the
   checkpoint-layout model; 1 multiply-add = 2 FLOP), per part (backbone, FPN, protonet,
   prediction heads).  Post-processing is not counted: it is not convolution work.
2. **What the CPU does at best.**  Chains of plain convolutions with the network's own layer
   shapes (``--shapes``) compiled by each runtime and precision; the best GFLOP/s over the shapes
   is that runtime's *measured peak* on this CPU.  Not a datasheet figure: what the same
   library, threads and precision reach on the easiest layers of this very network.
3. **The network.**  The Segmenter's ``forward`` stage (and its whole call) per variant, on the
   same image; achieved GFLOP/s = work / forward time, as a fraction of the measured peak.

With ``--original PATH`` (a checkout of github dbolya/yolact, run with ``bench_original.py``'s
CPU shims) the original is timed end to end in the same rounds, and each target ratio in
:data:`TARGETS` is turned into the GFLOP/s the network would need: target x original = the end-to-end
budget; minus our own non-network time = the forward budget; work / forward budget = the
throughput needed, printed as a multiple of the measured peak.  A multiple above 1 means no
software change of that precision reaches the target on this CPU without doing less work.

    .venv/bin/python bench/bench_roofline.py --configs yolact_resnet50 --rounds 5
    .venv/bin/python bench/bench_roofline.py --original /tmp/yolact_orig --configs yolact_resnet50 yolact_plus_resnet50 yolact_base
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from yolact_ros.inference.cpu_memory import keep_freed_memory

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_original as bo  # noqa: E402 - the original's CPU shims and its end-to-end call (same folder)

#: the project's CPU speed targets, end to end, as a fraction of the original's time (the CPU they
#: are for, precision, configs, ratio)
TARGETS = [
    ("native bf16", "bf16", ("yolact_resnet50",), 0.12),
    ("native bf16", "bf16", ("yolact_plus_resnet50", "yolact_base"), 0.15),
    ("native bf16", "int8", ("yolact_resnet50",), 0.08),
    ("no native bf16", "int8", ("yolact_resnet50",), 0.35),
    ("no native bf16", "fp32", ("yolact_resnet50",), 0.55),
]

#: conv layers of the networks (in_ch, out_ch, kernel, feature size at 550 px): the protonet and
#: head convs (P3, 69x69), a ResNet stage-2 3x3 (138x138) and a stage-4 1x1 (35x35)
DEFAULT_SHAPES = ["256,256,3,69", "64,64,3,138", "1024,256,1,35", "512,512,3,18"]

PARTS = ("backbone", "fpn", "proto_net", "prediction_layers")


def network_work(model: nn.Module, size: int) -> dict[str, float]:
    """GFLOP of one forward at ``size`` x ``size``, in all and per top-level part."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, size, size))
    per_module = counter.get_flop_counts()
    out = {"total": counter.get_total_flops() / 1e9}
    for part in PARTS:
        # a part called as a whole (backbone) or, for a ModuleList (the shared heads), its items
        hits = [k for k in per_module if k.split(".")[1:] == [part]] or [
            k for k in per_module if k.split(".")[1:2] == [part] and k.count(".") == 2
        ]
        out[part] = sum(sum(per_module[k].values()) for k in hits) / 1e9
    return out


class ConvChain(nn.Module):
    """``depth`` convolutions of one shape (same padding), each followed by a ReLU."""

    def __init__(self, cin: int, cout: int, k: int, depth: int):
        super().__init__()
        layers = [nn.Conv2d(cin, cout, k, padding=k // 2)]
        layers += [nn.Conv2d(cout, cout, k, padding=k // 2) for _ in range(depth - 1)]
        self.layers = nn.ModuleList(layers)
        self.gflop = 0.0

    def forward(self, x):
        for conv in self.layers:
            x = torch.relu(conv(x))
        return x


def _chain(spec: str, depth: int):
    cin, cout, k, hw = (int(v) for v in spec.split(","))
    torch.manual_seed(0)
    chain = ConvChain(cin, cout, k, depth).eval()
    gflop = 2 * hw * hw * k * k * (cin * cout + (depth - 1) * cout * cout) / 1e9
    return chain, torch.randn(1, cin, hw, hw), gflop


def peak_runners(spec: str, variants, threads: int, depth: int, workdir: Path) -> tuple[float, dict]:
    """Callables running one conv chain per variant (``backend:precision``), and its GFLOP."""
    chain, x, gflop = _chain(spec, depth)
    runners = {}
    for be, prec in variants:
        if be == "torch":
            if prec == "bf16":
                runners[f"{be}:{prec}"] = lambda: _torch_bf16(chain, x)
            elif prec == "fp32":
                runners[f"{be}:{prec}"] = lambda: _torch_fp32(chain, x)
        elif be == "openvino":
            runners[f"{be}:{prec}"] = _openvino_runner(chain, x, prec, threads, workdir)
    return gflop, runners


def _torch_fp32(chain, x):
    with torch.no_grad():
        chain(x)


def _torch_bf16(chain, x):
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        chain(x)


def _openvino_runner(chain, x, prec: str, threads: int, workdir: Path):
    import openvino as ov

    model = ov.convert_model(chain, example_input=x)
    if prec == "int8":
        import nncf

        calib = [np.random.default_rng(i).standard_normal(x.shape).astype(np.float32) for i in range(4)]
        model = nncf.quantize(model, nncf.Dataset(calib), preset=nncf.QuantizationPreset.PERFORMANCE)
    hint = {"fp32": "f32", "bf16": "bf16", "int8": "bf16"}[prec]  # int8 layers run int8; the rest as auto would
    compiled = ov.Core().compile_model(
        model,
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": hint,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": threads,
        },
    )
    request, data = compiled.create_infer_request(), x.numpy()
    return lambda: request.infer([data])


def alternate(calls: dict, rounds: int) -> dict[str, float]:
    """Median ms per callable after one warm-up call each, alternated (``bench_original``'s rule)."""
    for fn in calls.values():
        fn()
    return {name: statistics.median(ms) for name, ms in bo.alternated_ms(calls, rounds).items()}


def measure_peaks(shapes, variants, threads, depth, rounds, workdir, out=print) -> dict[str, float]:
    """Best GFLOP/s over ``shapes`` per variant (all variants alternated on each shape)."""
    best: dict[str, float] = {}
    for spec in shapes:
        gflop, runners = peak_runners(spec, variants, threads, depth, workdir)
        ms = alternate(runners, rounds)
        cells = []
        for name, t in ms.items():
            rate = gflop / (t / 1e3)
            best[name] = max(best.get(name, 0.0), rate)
            cells.append(f"{name} {t:7.2f} ms = {rate:6.0f} GFLOP/s")
        out(f"# conv chain {spec} (in,out,k,size) x{depth}, {gflop:.2f} GFLOP: " + "; ".join(cells))
    return best


def bench_config(cfg: str, variants, bgr, workdir: Path, peaks: dict, mods, threads: int, rounds: int) -> dict:
    """One config: its work, each variant's forward and total (and the original's) alternated,
    and, with the original, what each of :data:`TARGETS` would need."""
    from yolact_ros.cli.bench import reference_segmenter
    from yolact_ros.model.config import get_config
    from yolact_ros.testing.reference_weights import reference_model

    size = get_config(cfg).max_size
    segs = {f"{b}:{q}": reference_segmenter(cfg, b, workdir, threads, precision=q) for b, q in variants}
    work = network_work(reference_model(cfg).eval(), size)
    print(
        f"# {cfg}: {work['total']:.1f} GFLOP a forward at {size} px ("
        + ", ".join(f"{k} {work[k]:.1f}" for k in PARTS)
        + ")"
    )
    calls = {name: (lambda s=s: s(bgr)) for name, s in segs.items()}
    if mods is not None:
        from yolact_ros.cli.bench import SETTINGS
        from yolact_ros.model.checkpoint import save_checkpoint

        weights = save_checkpoint(reference_model(cfg), workdir / f"{cfg}_54_800000.pth")
        orig = bo.Original(mods, cfg, weights)
        thr, k = SETTINGS["default"]["score_threshold"], SETTINGS["default"]["top_k"]
        calls["original"] = lambda: orig(bgr, thr, k)
    stages = {name: {"forward": [], "total": []} for name in segs}
    wrapped = {}
    for name, fn in calls.items():

        def call(name=name, fn=fn):
            fn()
            if name in segs:
                for st in ("forward", "total"):
                    stages[name][st].append(segs[name].timings[st])

        wrapped[name] = call
    wall = alternate(wrapped, rounds)
    rows = {}
    for name, seg in segs.items():
        fwd = statistics.median(stages[name]["forward"][-rounds:])
        total = statistics.median(stages[name]["total"][-rounds:])
        rate = work["total"] / (fwd / 1e3)
        peak = peaks.get(name)
        rows[name] = dict(forward_ms=fwd, total_ms=total, gflops=rate, of_peak=rate / peak if peak else None)
        if "original" in wall:
            rows[name]["x_original"] = total / wall["original"]
        print(
            f"{cfg:22s} {name:14s} ran={seg.precision:5s} forward {fwd:7.1f} ms = {rate:5.0f} GFLOP/s"
            + (f" ({100 * rate / peak:3.0f} % of its peak)" if peak else "")
            + f"   total {total:7.1f} ms"
            + (f" = {total / wall['original']:.3f}x the original" if "original" in wall else "")
        )
    entry = {"work_gflop": work, "variants": rows}
    if "original" in wall:
        entry["original_ms"] = wall["original"]
        print(f"{cfg:22s} {'original':14s} total {wall['original']:7.1f} ms (end to end, default settings)")
        entry["targets"] = []
        for cpu_kind, prec, cfgs, ratio in TARGETS:
            # the fastest variant of that precision
            ran = [n for n in rows if n.endswith(":" + prec) and n in peaks]
            if cfg not in cfgs or not ran:
                continue
            name = min(ran, key=lambda n: rows[n]["total_ms"])
            r = rows[name]
            budget = ratio * wall["original"]
            fwd_budget = budget - (r["total_ms"] - r["forward_ms"])
            need = work["total"] / (fwd_budget / 1e3) if fwd_budget > 0 else float("inf")
            entry["targets"].append(
                dict(
                    cpu=cpu_kind,
                    precision=prec,
                    ratio=ratio,
                    budget_ms=budget,
                    forward_budget_ms=fwd_budget,
                    needed_gflops=need,
                    x_peak=need / peaks[name],
                    now=r["x_original"],
                )
            )
            print(
                f"  target ({cpu_kind}) {prec} <= {ratio:.2f}x: {budget:.0f} ms end to end, "
                f"{fwd_budget:.0f} ms for the forward -> {need:.0f} GFLOP/s = {need / peaks[name]:.2f}x "
                f"the measured {name} peak (now {r['x_original']:.3f}x)"
            )
    return entry


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["yolact_resnet50"])
    p.add_argument(
        "--variants",
        nargs="+",
        default=["torch:fp32", "torch:bf16", "openvino:fp32", "openvino:bf16", "openvino:int8"],
        help="backend:precision (torch fp32/bf16, openvino fp32/bf16/int8)",
    )
    p.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES, help="conv shapes in,out,kernel,size")
    p.add_argument("--depth", type=int, default=4, help="convolutions per chain")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--image", default="astronaut")
    p.add_argument("--size", default="512x512", help="the image is resized to WxH first")
    p.add_argument("--original", help="checkout of github dbolya/yolact: time it too and size the targets")
    p.add_argument("--json", help="also write the figures to this JSON file")
    a = p.parse_args(argv)

    keep_freed_memory()
    torch.set_num_threads(a.threads)
    from yolact_ros.cli.bench import parse_variant
    from yolact_ros.inference.capabilities import detect_cpu

    variants = [parse_variant(v) for v in a.variants]
    print(f"# CPU: {detect_cpu().summary()}; torch {torch.__version__}; threads {a.threads}")
    bgr = bo.load_bgr(a.image, a.size)
    report: dict = {"cpu": detect_cpu().summary(), "threads": a.threads, "configs": {}}
    with tempfile.TemporaryDirectory(prefix="yolact_roofline_") as tmp:
        workdir = Path(tmp)
        peaks = measure_peaks(a.shapes, variants, a.threads, a.depth, a.rounds, workdir)
        report["peak_gflops"] = peaks
        print("# measured peak (best conv chain): " + "; ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
        mods = bo.import_original(a.original) if a.original else None
        for cfg in a.configs:
            report["configs"][cfg] = bench_config(cfg, variants, bgr, workdir, peaks, mods, a.threads, a.rounds)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
