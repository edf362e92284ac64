"""One node serving N cameras (batched) vs N single-camera nodes (prints figures, asserts nothing).

    bash scripts/build_ws.sh && source scripts/ros_env.sh
    python bench/bench_cameras.py [--cameras 1 2 4] [--seconds 30] [--rate 15]
    python bench/bench_cameras.py --cameras 2 4 --variants shared --alternate-env YOLACT_ROS_KEEP_FREED_MEMORY=0

For each N, in one run and alternating: (a) one yolact_node with ``cameras: [cam0..camN-1]``
and (b) N yolact_nodes with one camera each, every camera publishing 640x480 frames of the
demo's moving scene at --rate Hz. Printed per configuration: processed frames/s per camera
and in total, latency (image stamp -> detections received here) p50/p95, and the resident
memory of the node processes together (VmRSS, sampled once a second, the maximum). CPU
threads: the one node gets --threads; each of the N nodes gets max(1, threads // N), so both
variants use the same cores. The model is the demo model (models/demo/yolact_synth_demo.pth).
With ``--alternate-env KEY=VALUE`` every configuration runs ``--rounds`` times as it is and
as many times with that variable added to the nodes' environment, alternated.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from yolact_ros.ros.node_process import NodeProcess, ros_problem
from yolact_ros.ros.stream_client import image_message
from yolact_ros.testing.node_client import StampRecorder

REPO = Path(__file__).resolve().parents[1]
NS = "/yolact_cams_bench"


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS"))
        except (FileNotFoundError, StopIteration):
            pass
    return total / 1024.0


def _frames(rate: float) -> list[np.ndarray]:
    from yolact_ros.data.scene import DemoScene

    scene = DemoScene(("disc", "rectangle", "triangle", "star"), size=(640, 480), rate=rate)
    return [np.ascontiguousarray(scene.frame(i)[0]) for i in range(int(rate * 2))]


def run(n: int, shared: bool, args, frames) -> dict:
    cams = [f"cam{i}" for i in range(n)]
    topics = {cam: f"/bench_cams/{cam}/image_raw" for cam in cams}
    if shared:
        procs = [
            NodeProcess(
                "multi",
                NS,
                {"weights": args.weights, "threads": args.threads, "cameras": cams},
                remaps={f"{cam}/image": topics[cam] for cam in cams},
                env=args.node_env,
            )
        ]
        outputs = {cam: f"{NS}/{cam}" for cam in cams}
    else:
        threads = max(1, args.threads // n)
        procs = [
            NodeProcess(
                f"single_{cam}",
                f"{NS}/{cam}",
                {"weights": args.weights, "threads": threads},
                remaps={"image": topics[cam]},
                env=args.node_env,
            )
            for cam in cams
        ]
        outputs = {cam: f"{NS}/{cam}" for cam in cams}
    clients = {cam: StampRecorder(outputs[cam], topics[cam]) for cam in cams}
    for c in clients.values():
        c.spin_in_background()
    try:
        for c in clients.values():
            if not c.wait_for_node_input(180):
                raise RuntimeError("a node did not come up:\n" + "\n".join(p.tail() for p in procs))
        msgs = [image_message(f, "bgr8", "bench_cam") for f in frames]
        period = 1.0 / args.rate
        warm_end = time.time() + 5.0  # the first seconds: warm-up, not counted
        end = warm_end + args.seconds
        rss = []
        k, t_next, next_sample = 0, time.monotonic(), 0.0
        while time.time() < end:
            for c in clients.values():
                msg = msgs[k % len(msgs)]
                msg.header.stamp = c.node.get_clock().now().to_msg()
                c.publish(msg)
            k += 1
            if time.time() >= next_sample:
                rss.append(_rss_mb([p.proc.pid for p in procs]))
                next_sample = time.time() + 1.0
            t_next += period
            time.sleep(max(0.0, t_next - time.monotonic()))
        time.sleep(1.5)
        per_cam, lat = [], []
        for c in clients.values():
            got = [(t, s) for t, s in c.received if warm_end <= s / 1e9 <= end]
            per_cam.append(len(got) / args.seconds)
            lat += [(t - s / 1e9) * 1000.0 for t, s in got]
        p50, p95 = np.percentile(lat, [50, 95]) if lat else (float("nan"), float("nan"))
        return {
            "fps_per_camera": float(np.mean(per_cam)),
            "fps_total": float(np.sum(per_cam)),
            "p50": float(p50),
            "p95": float(p95),
            "rss_mb": max(rss) if rss else float("nan"),
        }
    finally:
        for c in clients.values():
            c.close()
        for p in procs:
            p.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=15.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", default=str(REPO / "models" / "demo" / "yolact_synth_demo.pth"))
    ap.add_argument(
        "--node-env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="environment of the node processes, e.g. THP_MEM_ALLOC_ENABLE=1",
    )
    ap.add_argument("--variants", nargs="+", choices=("shared", "separate"), default=["shared", "separate"])
    ap.add_argument(
        "--alternate-env",
        metavar="KEY=VALUE",
        help="run each configuration also with this in the nodes' environment, alternated",
    )
    ap.add_argument("--rounds", type=int, default=1, help="repeats of each configuration (and its alternate)")
    args = ap.parse_args()
    args.node_env = dict(kv.split("=", 1) for kv in args.node_env)
    envs = [("", args.node_env)]
    if args.alternate_env:
        key, value = args.alternate_env.split("=", 1)
        envs.append((args.alternate_env, {**args.node_env, key: value}))
    problem = ros_problem()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 2
    frames = _frames(args.rate)
    print(
        f"{args.seconds:g} s per configuration after 5 s warm-up, {args.rate:g} Hz per camera, 640x480 bgr8, "
        f"demo model, {args.threads} threads in all" + (f", node env {args.node_env}" if args.node_env else "")
    )
    print(
        f"{'cameras':>7} {'variant':<18} {'fps/camera':>10} {'fps total':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'RSS MB':>8}  env"
    )
    for n in args.cameras:
        for shared in [v == "shared" for v in args.variants]:
            if n == 1 and not shared:
                continue  # the same thing
            for _ in range(args.rounds):
                for label, env in envs:
                    args.node_env = env
                    r = run(n, shared, args, frames)
                    variant = "one node, batched" if shared else f"{n} nodes"
                    print(
                        f"{n:>7} {variant:<18} {r['fps_per_camera']:>10.2f} {r['fps_total']:>9.2f} "
                        f"{r['p50']:>8.0f} {r['p95']:>8.0f} {r['rss_mb']:>8.0f}  {label}",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
