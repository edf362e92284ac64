"""Benchmark of yolact_node on the real runtime (prints figures, asserts nothing).

    bash scripts/build_ws.sh && source scripts/ros_env.sh
    python bench/bench_node.py [--duration 60] [--rate 30] [--frames 8] [--max-size 550]

1. End-to-end latency (image stamp -> detections received by this client) and the node's own
   overhead (image conversion + message building + publishing, measured inside the node;
   also shown as end-to-end minus Segmenter time) at 640x480 and 1280x720 with >= 10 instances,
   one frame in flight at a time.
2. A stream at --rate Hz (faster than the model) for --duration s: latency must not grow
   (first 10 s vs last 10 s p50), frames are dropped instead of queued; then how long after
   the last frame /diagnostics reports the input stopped.
3. The Segmenter inside the node vs the bare Segmenter (same weights, settings, image and
   torch threads), alternated in rounds: a block of --frames frames sent back to back to the
   node (the next frame leaves when the previous output arrived, so the worker never idles
   longer than one round trip; the node's own per-frame Segmenter time is read from its
   diagnostics), then a block of calls of a bare Segmenter in this process, back to back,
   while the node idles. Pacing matters: on these VMs a Segmenter called after a 2 s pause
   is ~20 % slower than back to back, so both sides are paced the same way.

The node runs as a separate process exactly as launch starts it; the model is YOLACT ResNet-50
with the deterministic reference weights (no trained weights ship anywhere), score_threshold 0
and top_k 15 so every frame carries 15 instances.
"""

from __future__ import annotations

import argparse
import os

# The bare Segmenter of section 3 runs in this process: the same OpenMP setting as the node's
# (yolact_ros.ros.main sets it before torch loads), or spinning threads make it slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import signal
import sys
import tempfile
import time
from pathlib import Path

from yolact_ros.inference.cpu_memory import keep_freed_memory

keep_freed_memory()  # as the yolact CLI and the node do, before torch starts its threads

import cv2
import numpy as np

from yolact_ros.ros.diagnostics import Key, stamp_text, stamp_to_ns
from yolact_ros.ros.names import NODE_NAME
from yolact_ros.ros.node_process import NodeProcess, ros_problem
from yolact_ros.ros.stream_client import image_message
from yolact_ros.testing.node_client import Client

NS = "/yolact_bench"
NODE = NODE_NAME
CAMERA = "/bench_camera/image_raw"


def make_weights(directory: Path, max_size: int) -> Path:
    import torch

    from yolact_ros.model import OFFICIAL_CONFIGS, build_yolact
    from yolact_ros.model.checkpoint import save_checkpoint
    from yolact_ros.testing.reference_weights import apply_golden_weights

    torch.set_num_threads(1)
    cfg = OFFICIAL_CONFIGS["yolact_resnet50"]
    if max_size != cfg.max_size:
        cfg = cfg.replace(name=f"yolact_resnet50_{max_size}", max_size=max_size)
    model = build_yolact(cfg)
    apply_golden_weights(model)
    path = directory / f"{cfg.name}_bench.pth"
    save_checkpoint(model, path)
    return path


def frame(width: int, height: int) -> np.ndarray:
    """The astronaut photo (RGB) at width x height."""
    from yolact_ros.data.photos import load_photo

    return cv2.resize(load_photo("astronaut", rgb=True), (width, height), interpolation=cv2.INTER_AREA)


def rgb_msg(rgb: np.ndarray):
    return image_message(rgb, "rgb8", frame_id="bench")


def now_msg(client):
    return client.node.get_clock().now().to_msg()


def ms_since(client, stamp) -> float:
    return (client.node.get_clock().now().nanoseconds - stamp_to_ns(stamp)) / 1e6


def diag(client, pred=lambda v: True, timeout=15.0) -> dict:
    return client.latest_diagnostics(NODE, pred, timeout=timeout)


def latency_block(client, rgb: np.ndarray, frames: int) -> dict:
    """Sequential frames (one in flight); each paired with the node's own per-frame figures
    (the diagnostics' "last frame" values carry the frame's stamp)."""
    rows = []
    for _ in range(frames):
        msg = rgb_msg(rgb)
        msg.header.stamp = now_msg(client)
        dets, _ = client.send(msg, timeout=60.0, resend=30.0)
        e2e = ms_since(client, msg.header.stamp)
        key = stamp_text(msg.header.stamp)
        d = diag(client, lambda v, key=key: v.get(Key.LAST_STAMP) == key)
        rows.append(
            (
                e2e,
                float(d[Key.LAST_SEGMENTER]),
                float(d[Key.LAST_OVERHEAD]),
                float(d[Key.LAST_VISUALIZATION]),
                len(dets.detections),
                float(d[Key.LAST_OVERHEAD_CPU]),
            )
        )
    a = np.array(rows)
    return {
        "e2e_p50": float(np.median(a[:, 0])),
        "segmenter_p50": float(np.median(a[:, 1])),
        "e2e_minus_seg_p50": float(np.median(a[:, 0] - a[:, 1])),
        "node_overhead_p50": float(np.median(a[:, 2])),
        "node_overhead_max": float(np.max(a[:, 2])),
        "vis_p50": float(np.median(a[:, 3])),
        "instances": int(np.median(a[:, 4])),
        "overhead_cpu_p50": float(np.median(a[:, 5])),
    }


def stream(client, rgb: np.ndarray, rate: float, duration: float) -> dict:
    d0 = diag(client)
    seg_ms: dict = {}  # stamp text -> the node's Segmenter time for that frame
    sent = 0
    start = time.monotonic()
    period = 1.0 / rate
    next_t = start
    seen = set()
    results = []  # (t since start at publish, latency ms)
    stamps = {}
    msg = rgb_msg(rgb)
    while time.monotonic() - start < duration:
        now = time.monotonic()
        if now >= next_t:
            msg.header.stamp = now_msg(client)
            stamps[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = now - start
            client.publish(msg)
            sent += 1
            next_t += period
        client.spin_once(max(0.0, min(period, next_t - time.monotonic())))
        for d in client.detections[-5:]:
            key = (d.header.stamp.sec, d.header.stamp.nanosec)
            if key not in seen and key in stamps:
                seen.add(key)
                results.append((stamps[key], ms_since(client, d.header.stamp), stamp_text(d.header.stamp)))
        if len(client.detections) > 50:
            del client.detections[:-10]
            del client.masks[:]
        _collect_segmenter_times(client, seg_ms)
    # drain the frame in flight
    client.spin_until(lambda: False, 3.0)
    for d in client.detections:
        key = (d.header.stamp.sec, d.header.stamp.nanosec)
        if key not in seen and key in stamps:
            seen.add(key)
            results.append((stamps[key], ms_since(client, d.header.stamp), stamp_text(d.header.stamp)))
    _collect_segmenter_times(client, seg_ms)
    results.sort()
    first = [lat for t, lat, _ in results if t < 10.0]
    last = [lat for t, lat, _ in results if t >= duration - 10.0]
    # latency minus the frame's own Segmenter time: the waiting a queue would make grow
    wait_first = [lat - seg_ms[k] for t, lat, k in results if t < 10.0 and k in seg_ms]
    wait_last = [lat - seg_ms[k] for t, lat, k in results if t >= duration - 10.0 and k in seg_ms]
    d = diag(client)
    return {
        "sent": sent,
        "processed": len(results),
        "first10_p50": float(np.median(first)) if first else float("nan"),
        "last10_p50": float(np.median(last)) if last else float("nan"),
        "n_first": len(first),
        "n_last": len(last),
        "wait_first10_p50": float(np.median(wait_first)) if wait_first else float("nan"),
        "wait_last10_p50": float(np.median(wait_last)) if wait_last else float("nan"),
        "dropped": int(d[Key.FRAMES_DROPPED]) - int(d0[Key.FRAMES_DROPPED]),
        "received": int(d[Key.FRAMES_RECEIVED]) - int(d0[Key.FRAMES_RECEIVED]),
        "segmenter_p50_last5s": float(d[Key.SEGMENTER_P50]),
        "output_rate": len(results) / duration,
    }


def input_stop_seen(client, rgb: np.ndarray, rate: float = 15.0, frames: int = 30) -> float:
    """Seconds from the last frame of a short stream until /diagnostics reports the input
    stopped (input rate 0 and an "input stopped" status message)."""
    from yolact_ros.ros.diagnostics import status_name

    def stopped(values: dict) -> bool:
        messages = [st.message for arr in client.diagnostics[-3:] for st in arr.status if st.name == status_name(NODE)]
        return float(values[Key.INPUT_RATE]) == 0.0 and any("input stopped" in m for m in messages)

    msg = rgb_msg(rgb)
    del client.diagnostics[:]  # only reports from here on count
    sent, give_up = 0, time.monotonic() + 60.0
    running = lambda v: float(v[Key.INPUT_RATE]) > 0.0  # noqa: E731 - a one-line predicate
    while (sent < frames or not client.statuses(NODE, running)) and time.monotonic() < give_up:
        msg.header.stamp = now_msg(client)
        client.publish(msg)
        client.spin_once(1.0 / rate)
        sent += 1
    stopped_at = time.monotonic()
    del client.diagnostics[:]  # the reports of the running input are not the answer
    diag(client, stopped, timeout=30.0)
    return time.monotonic() - stopped_at


def node_vs_bare(
    client,
    rgb: np.ndarray,
    weights: Path,
    frames: int,
    rounds: int,
    threads: int,
    backend: str = "auto",
    precision: str = "auto",
) -> dict:
    """Medians of the node's per-frame Segmenter time and the bare Segmenter's, alternated."""
    import torch

    from yolact_ros.inference.segmenter import Segmenter

    # the node's threads: num_threads, or PyTorch's default in a fresh process (make_weights set 1 here)
    torch.set_num_threads(threads or os.cpu_count() or 1)
    bare = Segmenter(
        weights=str(weights),
        device="cpu",
        score_threshold=0.0,
        top_k=15,
        backend=backend,
        precision=precision,
        num_threads=threads or None,
    )
    bgr = rgb[:, :, ::-1]  # what the node gets from an rgb8 message: a BGR view
    for _ in range(2):
        bare(bgr)
    node_ms, bare_ms = [], []
    for _ in range(rounds):
        node_ms += [latency_block(client, rgb, 1)["segmenter_p50"] for _ in range(frames)]
        for _ in range(frames):
            bare(bgr)
            bare_ms.append(bare.timings["total"])
    return {"node": float(np.median(node_ms)), "bare": float(np.median(bare_ms)), "n": len(node_ms)}


def _collect_segmenter_times(client, out: dict) -> None:
    for values in client.statuses(NODE, lambda v: Key.LAST_STAMP in v):
        out[values[Key.LAST_STAMP]] = float(values[Key.LAST_SEGMENTER])
    del client.diagnostics[:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="checkpoint to run (default: YOLACT ResNet-50, reference weights)")
    ap.add_argument("--max-size", type=int, default=550, help="model input size for the default weights")
    ap.add_argument("--frames", type=int, default=8, help="frames per latency block")
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--num-threads", type=int, default=0, help="the node's `threads` parameter (0 = default)")
    ap.add_argument("--backend", default="auto", help="the node's `backend` parameter (default auto, the node's)")
    ap.add_argument("--precision", default="auto", help="the node's `precision` parameter (default auto)")
    args = ap.parse_args(argv)

    problem = ros_problem()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 1
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    tmp = Path(tempfile.mkdtemp(prefix="yolact_bench_"))
    os.environ.setdefault("ROS_LOG_DIR", str(tmp / "ros_log"))
    weights = Path(args.weights) if args.weights else make_weights(tmp, args.max_size)
    params = {
        "weights": weights,
        "device": "cpu",
        "score_threshold": 0.0,
        "top_k": 15,
        "threads": args.num_threads,
        "diagnostics_period": 0.5,
        "backend": args.backend,
        "precision": args.precision,
    }
    proc = NodeProcess(NODE, NS, params, remaps={"image": CAMERA})
    client = None
    try:
        if not proc.wait_for_output("active:", 300):
            print(proc.output, file=sys.stderr)
            return 1
        client = Client(NS, CAMERA)
        assert client.wait_for_node_input(60)
        network = next((ln.split("network: ", 1)[1] for ln in proc.output.splitlines() if "network: " in ln), "?")
        print(f"# network: {network}")
        print(
            f"# yolact_node benchmark: {weights.name}, CPU, torch threads "
            f"{args.num_threads or 'default'}, {os.cpu_count()} cores, ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')}"
        )
        print(
            "| input | instances | e2e latency p50 (ms) | Segmenter p50 (ms) | e2e - Segmenter (ms) "
            "| node overhead p50 (ms) | node overhead CPU time p50 (ms) |"
        )
        print("|---|---|---|---|---|---|---|")
        for w, h in ((640, 480), (1280, 720)):
            latency_block(client, frame(w, h), 2)  # warm up this size
            r = latency_block(client, frame(w, h), args.frames)
            print(
                f"| {w}x{h} rgb8 | {r['instances']} | {r['e2e_p50']:.1f} | {r['segmenter_p50']:.1f} | "
                f"{r['e2e_minus_seg_p50']:.1f} | {r['node_overhead_p50']:.2f} (max {r['node_overhead_max']:.2f}) | "
                f"{r['overhead_cpu_p50']:.2f} |",
                flush=True,
            )
        client.subscribe_visualization()
        client.spin_until(lambda: False, 2.0)
        r = latency_block(client, frame(640, 480), max(3, args.frames // 2))
        print(
            f"\nvisualization subscribed, 640x480: overlay drawing + publishing p50 {r['vis_p50']:.1f} ms "
            f"(not built when nobody subscribes)"
        )
        client.unsubscribe_visualization()
        client.spin_until(lambda: False, 2.0)

        nb = node_vs_bare(
            client, frame(640, 480), weights, args.frames, 3, args.num_threads, args.backend, args.precision
        )
        print(
            f"\n# Segmenter in the node vs bare, 640x480, back to back, 3 alternated rounds of {args.frames}: "
            f"node {nb['node']:.1f} ms, bare {nb['bare']:.1f} ms p50, node/bare {nb['node'] / nb['bare']:.3f}",
            flush=True,
        )

        print(f"\n# stream: 640x480 at {args.rate:g} Hz for {args.duration:g} s", flush=True)
        s = stream(client, frame(640, 480), args.rate, args.duration)
        print(
            f"sent {s['sent']}, node received {s['received']}, processed {s['processed']} "
            f"({s['output_rate']:.2f} Hz), dropped (replaced while busy) {s['dropped']}; "
            f"Segmenter p50 over the last 5 s {s['segmenter_p50_last5s']:.0f} ms"
        )
        print(
            f"latency p50 first 10 s: {s['first10_p50']:.1f} ms (n={s['n_first']}), "
            f"last 10 s: {s['last10_p50']:.1f} ms (n={s['n_last']})"
        )
        print(
            f"latency minus that frame's Segmenter time, p50 first 10 s: {s['wait_first10_p50']:.1f} ms, "
            f"last 10 s: {s['wait_last10_p50']:.1f} ms"
        )
        seen = input_stop_seen(client, frame(640, 480))
        print(
            f"\na stopped input shows in /diagnostics after {seen:.2f} s "
            f"(diagnostics_period {params['diagnostics_period']} s)"
        )
    finally:
        if client is not None:
            client.close()
        code = proc.stop(signal.SIGINT)
        print(f"\nnode exit code after SIGINT: {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
