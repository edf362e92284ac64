"""Data-parallel training throughput: 1 process vs N processes (torchrun), side by side (prints figures).

    python bench/bench_ddp.py [--configs demo resnet50] [--size 256] [--batch 4] [--steps 8] [--rounds 3]
                              [--nproc 2] [--device cpu|cuda]

On the CPU (default): 1 process x N threads against N processes x 1 thread (gloo), the same
global batch (``--batch``) and the same images, the variants alternated round by round.
On a machine with N GPUs (``--device cuda --nproc N``): 1 process on 1 GPU at the same
per-GPU batch against N processes on N GPUs (nccl), i.e. weak scaling, as training is used.

Per variant: iterations/s, images/s (median step over ``--steps`` timed steps after 2
warm-up steps, per round; the median of the rounds); for the distributed variant also

- ``exposed all-reduce``: step time minus the time of the same step under DDP's
  ``no_sync()`` (no gradient all-reduce), alternated step by step: what the gradient
  all-reduce adds to an iteration after DDP has overlapped it with the backward pass;
- ``raw all-reduce``: one all-reduce of a buffer as large as all gradients.

and the scaling efficiency: images/s of N processes / (N x images/s of 1 process at the
same per-device work), 100 % = perfect.  The data are synthetic images
(``yolact_ros.data.synth``) prepared once and kept in memory: the figures are the
network, the loss and the optimizer, not the image loading.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    "demo": str(REPO / "configs" / "synth_mobilenet.yaml"),
    "resnet50": "yolact_resnet50",
}


def _config_file(name: str, size: int, work: Path) -> Path:
    base = CONFIGS[name]
    path = work / f"{name}_{size}.yaml"
    if base.endswith(".yaml"):  # its own max_size and name replaced
        lines = [ln for ln in Path(base).read_text().splitlines() if not ln.startswith(("max_size:", "name:"))]
        text = "\n".join(lines) + f"\nmax_size: {size}\nname: bench_{name}\n"
    else:
        text = f"base: {base}\nname: bench_{name}\nmax_size: {size}\n"
    path.write_text(text)
    return path


# -- worker: one process of a variant (alone, or a torchrun rank) -----------------------------------
def worker(args) -> None:
    from yolact_ros.data.augment import EvalTransform, TransformedDataset, collate
    from yolact_ros.data.coco import CocoInstances
    from yolact_ros.train import distributed
    from yolact_ros.train.config_file import resolve_config
    from yolact_ros.train.trainer import Trainer, TrainOptions

    torch.set_num_threads(args.threads)
    dist, device = distributed.setup(args.device)
    cfg = resolve_config(args.config)
    data = CocoInstances(args.json, Path(args.json).parent / "images")
    cfg = cfg.replace(class_names=data.class_names)
    ds = TransformedDataset(data, EvalTransform(cfg))
    out = Path(tempfile.mkdtemp(prefix="bench_ddp_"))
    trainer = Trainer(
        cfg,
        ds,
        TrainOptions(
            out_dir=out,
            batch_size=args.batch * dist.world_size if args.weak else args.batch,
            device=device,
            num_workers=0,
            progress=False,
            freeze_bn=True,
        ),
        dist=dist,
    )
    sampler = distributed.GlobalBatchSampler(len(ds), trainer.opt.batch_size, 0, dist.rank, dist.world_size)
    it = iter(sampler)
    batches = [collate([ds[i] for i in next(it)]) for _ in range(4)]
    trainer._train_mode()

    def timed(k: int, no_sync: bool) -> float:
        images, targets = batches[k % len(batches)]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        if no_sync:
            with trainer.net.no_sync():
                trainer.step(images, targets, 1e-4)
        else:
            trainer.step(images, targets, 1e-4)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1000.0

    for k in range(2):
        timed(k, False)
    synced, unsynced = [], []
    for k in range(args.steps):
        synced.append(timed(k, False))
        if dist.enabled:
            unsynced.append(timed(k, True))
    result = {
        "world_size": dist.world_size,
        "threads": args.threads,
        "device_batch": trainer.device_batch,
        "global_batch": trainer.opt.batch_size,
        "step_ms": statistics.median(synced),
    }
    if dist.enabled:
        result["no_sync_ms"] = statistics.median(unsynced)
        grads = [p for p in trainer.model.parameters() if p.requires_grad]
        flat = torch.zeros(sum(p.numel() for p in grads), device=device)
        raw = []
        for _ in range(max(3, args.steps)):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            torch.distributed.all_reduce(flat)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            raw.append((time.perf_counter() - t0) * 1000.0)
        result["raw_allreduce_ms"] = statistics.median(raw)
        result["grad_mb"] = flat.numel() * 4 / 1e6
    if dist.is_main:
        print("RESULT " + json.dumps(result), flush=True)
    distributed.teardown(dist)


# -- driver: alternate the variants ---------------------------------------------------------------
def _run(cmd: list[str], env: dict) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{' '.join(cmd[:6])} ...: exit {proc.returncode}\n{proc.stderr[-3000:]}")


def cpu_summary() -> str:
    from yolact_ros.inference.capabilities import detect_cpu

    return detect_cpu().summary()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["demo", "resnet50"], choices=sorted(CONFIGS))
    p.add_argument("--size", type=int, default=256, help="input size (default 256)")
    p.add_argument("--batch", type=int, default=4, help="global batch on the CPU; per-GPU batch with --device cuda")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--weak", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0

    from yolact_ros.data.synth import make_synthetic_dataset

    cuda = args.device == "cuda"
    where = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if cuda else cpu_summary()
    print(f"# bench_ddp: {where}; torch {torch.__version__}; {os.cpu_count()} CPUs visible", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench_ddp_"))
    ann = make_synthetic_dataset(work / "data", n=64, seed=11, size=(args.size, args.size))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # CPU: the same global batch, all cores either way; GPU: the same batch per GPU (weak scaling)
    one_threads = args.nproc if not cuda else max(1, (os.cpu_count() or 1) // args.nproc)
    common = [
        "--worker",
        "--json",
        str(ann),
        "--steps",
        str(args.steps),
        "--device",
        args.device,
        "--batch",
        str(args.batch),
    ]
    for name in args.configs:
        cfg = _config_file(name, args.size, work)
        single = [
            sys.executable,
            str(Path(__file__).resolve()),
            *common,
            "--config",
            str(cfg),
            "--threads",
            str(one_threads),
        ]
        multi = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(args.nproc),
            str(Path(__file__).resolve()),
            *common,
            "--config",
            str(cfg),
            "--threads",
            str(1 if not cuda else one_threads),
            *(["--weak"] if cuda else []),
        ]
        ones, multis = [], []
        for r in range(args.rounds):
            order = [(single, ones), (multi, multis)] if r % 2 == 0 else [(multi, multis), (single, ones)]
            for cmd, sink in order:
                sink.append(_run(cmd, env))
        med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
        s_ms, m_ms = med(ones, "step_ms"), med(multis, "step_ms")
        s_img = ones[0]["global_batch"] / s_ms * 1000.0
        m_img = multis[0]["global_batch"] / m_ms * 1000.0
        exposed = m_ms - med(multis, "no_sync_ms")
        print(f"\n## {name} at {args.size} px, {args.rounds} rounds x {args.steps} steps, alternated")
        print("| variant | global batch | ms / iteration | iterations / s | images / s |")
        print("|---|---|---|---|---|")
        print(
            f"| 1 process x {one_threads} thread(s) | {ones[0]['global_batch']} | {s_ms:.0f} | {1000 / s_ms:.2f} | {s_img:.2f} |"
        )
        print(
            f"| {args.nproc} processes x {multis[0]['threads']} thread(s) ({'nccl' if cuda else 'gloo'}) | "
            f"{multis[0]['global_batch']} | {m_ms:.0f} | {1000 / m_ms:.2f} | {m_img:.2f} |"
        )
        print(
            f"gradients {multis[0]['grad_mb']:.1f} MB; exposed all-reduce {exposed:.1f} ms / iteration "
            f"({100 * exposed / m_ms:.0f} % of it); raw all-reduce of all gradients {med(multis, 'raw_allreduce_ms'):.1f} ms"
        )
        if cuda:
            print(
                f"scaling efficiency {100 * m_img / (args.nproc * s_img):.0f} % ({args.nproc} GPUs vs 1, same batch per GPU)"
            )
        else:
            print(
                f"{args.nproc} processes / 1 process: {m_img / s_img:.2f}x the images per second "
                f"(scaling efficiency over the same cores: {100 * m_img / s_img:.0f} %)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
