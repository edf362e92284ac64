"""Soak benchmark of yolact_node: N minutes of a camera at --rate Hz (prints figures, asserts nothing).

    bash scripts/build_ws.sh && source scripts/ros_env.sh
    python bench/bench_soak.py --minutes 10 [--rate 30] [--bad-every 50] [--transport raw]

The node runs as launch starts it, with the demo model (models/demo/yolact_synth_demo.pth)
on the demo's moving synthetic scene at 640x480. Every --bad-every-th frame is a bad one
(alternating an unknown encoding and a truncated row step; with --transport compressed, a
truncated JPEG), so the rejection and throttled-logging paths soak too. Sampled once a second:
the node's resident memory (VmRSS) and the latency of each detections message (its image
stamp -> received here). Printed: first minute vs last minute (RSS, latency p50/p95, output
rate), the node's own counters at the end, and how many lines the node logged.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from yolact_ros.ros.diagnostics import Key
from yolact_ros.ros.names import NODE_NAME
from yolact_ros.ros.node_process import NodeProcess, ros_problem
from yolact_ros.ros.stream_client import image_message
from yolact_ros.testing.node_client import StampRecorder

NS = "/yolact_soak"
NODE = NODE_NAME
CAMERA = "/soak_camera/image_raw"
REPO = Path(__file__).resolve().parents[1]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS")) / 1024.0


def _frames(n: int, rate: float) -> list[np.ndarray]:
    from yolact_ros.data.scene import DemoScene

    scene = DemoScene(("disc", "rectangle", "triangle", "star"), size=(640, 480), rate=rate)
    return [np.ascontiguousarray(scene.frame(i)[0]) for i in range(n)]


def _summary(name: str, lat_ms: list[float], rss: list[float], seconds: float) -> str:
    if not lat_ms:
        return f"{name}: no output"
    p50, p95 = np.percentile(lat_ms, [50, 95])
    return (
        f"{name}: RSS median {np.median(rss):7.1f} MB (max {max(rss):7.1f})  latency p50 {p50:7.1f} ms  "
        f"p95 {p95:7.1f} ms  output {len(lat_ms) / seconds:5.2f} Hz ({len(lat_ms)} frames)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--bad-every", type=int, default=50, help="every N-th frame is a bad one (0 = none)")
    ap.add_argument("--transport", choices=("raw", "compressed"), default="raw")
    ap.add_argument("--weights", default=str(REPO / "models" / "demo" / "yolact_synth_demo.pth"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    problem = ros_problem()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 2
    compressed = args.transport == "compressed"
    topic = CAMERA + ("/compressed" if compressed else "")
    proc = NodeProcess(
        NODE,
        NS,
        {"weights": args.weights, "threads": args.threads, "image_transport": args.transport},
        remaps={"image": CAMERA, "image/compressed": CAMERA + "/compressed"},
    )
    client = StampRecorder(NS, topic, compressed=compressed)
    client.spin_in_background()
    try:
        if not client.wait_for_node_input(120):
            print("the node did not come up:\n" + proc.tail(), file=sys.stderr)
            return 1
        frames = _frames(int(args.rate * 4), args.rate)  # a 4 s loop of the moving scene
        if compressed:
            from sensor_msgs.msg import CompressedImage

            msgs = [CompressedImage(format="jpeg", data=cv2.imencode(".jpg", f)[1].tobytes()) for f in frames]
            bad = [CompressedImage(format="jpeg", data=bytes(msgs[0].data[: len(msgs[0].data) // 3]))]
        else:
            msgs = [image_message(f, "bgr8", "soak_cam") for f in frames]
            wrong = image_message(frames[0], "bgr8", "soak_cam")
            wrong.encoding = "yuv422_yuy2"
            short = image_message(frames[0], "bgr8", "soak_cam")
            short.step = short.width
            bad = [wrong, short]
        period = 1.0 / args.rate
        duration = args.minutes * 60.0
        print(
            f"soak: {args.minutes:g} min at {args.rate:g} Hz, 640x480 {args.transport}, bad frame every "
            f"{args.bad_every or 'never'}, node pid {proc.proc.pid}, {args.threads} threads",
            flush=True,
        )
        rss: list[tuple[float, float]] = []
        start = time.time()
        next_sample = start
        sent = bad_sent = 0
        t_next = time.monotonic()
        while time.time() - start < duration:
            if args.bad_every and sent % args.bad_every == args.bad_every - 1:
                msg = bad[bad_sent % len(bad)]
                bad_sent += 1
            else:
                msg = msgs[sent % len(msgs)]
            msg.header.stamp = client.node.get_clock().now().to_msg()
            client.publish(msg)
            sent += 1
            now = time.time()
            if now >= next_sample:
                rss.append((now - start, _rss_mb(proc.proc.pid)))
                next_sample += 1.0
                if int(now - start) % 60 == 0 and len(rss) > 1:
                    print(
                        f"  {int(now - start) // 60:3d} min: RSS {rss[-1][1]:.1f} MB, {len(client.received)} outputs",
                        flush=True,
                    )
            t_next += period
            time.sleep(max(0.0, t_next - time.monotonic()))
        end = time.time()
        time.sleep(2.0)
        status = client.latest_diagnostics(NODE, timeout=10)
        lat = [(t - start, (t - s / 1e9) * 1000.0) for t, s in client.received if s > 0]
        first = [ms for t, ms in lat if t < 60.0]
        last = [ms for t, ms in lat if t >= (end - start) - 60.0]
        print(_summary("first minute", first, [m for t, m in rss if t < 60.0], 60.0))
        print(_summary("last minute ", last, [m for t, m in rss if t >= (end - start) - 60.0], 60.0))
        print(
            f"sent {sent} frames ({bad_sent} bad); node: received {status[Key.FRAMES_RECEIVED]}, processed "
            f"{status[Key.FRAMES_PROCESSED]}, dropped {status[Key.FRAMES_DROPPED]}, rejected "
            f"{status[Key.FRAMES_REJECTED]}, inference errors {status[Key.INFERENCE_ERRORS]}"
        )
        lines = proc.output.splitlines()
        warnings = sum("[WARN]" in ln for ln in lines)
        print(f"node log: {len(lines)} lines ({warnings} warnings) in {args.minutes:g} min")
        return 0
    finally:
        client.close()
        code = proc.stop()
        print(f"node exit code after SIGINT: {code}")


if __name__ == "__main__":
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    sys.exit(main())
