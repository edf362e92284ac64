"""The node's stop signals over the whole start-up: the long sweep (prints figures, asserts nothing).

    bash scripts/build_ws.sh && source scripts/ros_env.sh
    python bench/bench_signals.py [--per-case 40] [--seed S] [--models demo resnet50] [--threads 1]

For each model (the demo model; YOLACT ResNet-50 with the reference weights at 550 px) and each
cache state (cold: a fresh ``cache_dir`` per start; warm: one filled first), with the node's
default backend / precision (auto), the start-up time from exec to "active" is measured, then
``--per-case`` starts of each of SIGTERM and SIGINT are signalled at delays drawn uniformly over
[0, 1.1 x start-up] (seeded; the seed is printed).  Per case: how many exited 0, any other exit
codes, tracebacks or "terminate called", and the time from the signal to the exit (p50, max) --
the 1 s bound of docs/ros.md.  Exit status 1 if any start did not exit 0.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from yolact_ros.ros.node_process import NodeProcess, ros_problem
from yolact_ros.testing.node_client import wait_until_signals_held

NS = "/yolact_bench_signals"
DEMO = Path(__file__).resolve().parents[1] / "models" / "demo" / "yolact_synth_demo.pth"


def _start(params: dict) -> NodeProcess:
    proc = NodeProcess("sig", NS, params)
    wait_until_signals_held(proc)
    return proc


def sweep(weights: Path, cold: bool, per_case: int, rng: random.Random, threads: int, work: Path) -> dict:
    warm_dir = work / "warm"

    def params(i: int) -> dict:
        return {"weights": weights, "threads": threads, "cache_dir": str(work / f"cold_{i}" if cold else warm_dir)}

    for _ in range(1 if cold else 2):  # warm: the first start fills the cache, the second is measured
        proc = _start(params(-1))
        if not proc.wait_for_output("active:", 300):
            raise RuntimeError(f"the node never became active:\n{proc.output[-3000:]}")
        active_s = time.monotonic() - proc.started
        proc.stop()
    results = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        codes, exits, bad = [], [], []
        for i in range(per_case):
            delay = rng.uniform(0.0, active_s * 1.1)
            proc = _start(params(i))
            time.sleep(max(0.0, delay - (time.monotonic() - proc.started)))
            t0 = time.monotonic()
            proc.proc.send_signal(sig)
            code = proc.proc.wait(30)
            exits.append(time.monotonic() - t0)
            proc.wait(5)
            codes.append(code)
            out = proc.output
            if code != 0 or "Traceback" in out or "terminate called" in out:
                bad.append(f"{delay:.3f} s: exit {code}: {out[-400:]!r}")
        results[signal.Signals(sig).name] = {
            "n": per_case,
            "exit0": codes.count(0),
            "bad": bad,
            "exit_p50_ms": 1000 * float(np.median(exits)),
            "exit_max_ms": 1000 * float(np.max(exits)),
        }
    return {"active_s": active_s, "signals": results}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-case", type=int, default=40, help="signals per signal kind, model and cache state")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--models", nargs="+", default=["demo", "resnet50"], choices=["demo", "resnet50"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    problem = ros_problem()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 1
    seed = args.seed if args.seed is not None else time.time_ns() % 2**31
    rng = random.Random(seed)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    failed = False
    with tempfile.TemporaryDirectory(prefix="yolact_signals_") as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("ROS_LOG_DIR", str(tmp / "ros_log"))
        models = {}
        if "demo" in args.models:
            models["demo"] = DEMO
        if "resnet50" in args.models:
            from yolact_ros.model.checkpoint import save_checkpoint
            from yolact_ros.testing.reference_weights import reference_model

            models["resnet50"] = save_checkpoint(
                reference_model("yolact_resnet50"), tmp / "yolact_resnet50_54_800000.pth"
            )
        print(
            f"# bench_signals: seed {seed}, {args.per_case} per signal / model / cache state, backend auto, "
            f"{args.threads} thread(s), {os.cpu_count()} cores"
        )
        print("| model | cache | start-up to active (s) | signal | exit 0 | exit p50 (ms) | exit max (ms) |")
        print("|---|---|---|---|---|---|---|")
        for name, weights in models.items():
            for cold in (True, False):
                work = tmp / f"{name}_{'cold' if cold else 'warm'}"
                res = sweep(weights, cold, args.per_case, rng, args.threads, work)
                for sig, r in res["signals"].items():
                    print(
                        f"| {name} | {'cold' if cold else 'warm'} | {res['active_s']:.2f} | {sig} | {r['exit0']}/{r['n']} "
                        f"| {r['exit_p50_ms']:.0f} | {r['exit_max_ms']:.0f} |",
                        flush=True,
                    )
                    for line in r["bad"]:
                        print(f"  FAILED {line}")
                    failed |= bool(r["bad"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
