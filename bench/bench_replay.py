"""Replay benchmark: yolact_node fed from a rosbag2 at its recorded rate, on the bag's clock.

    bash scripts/build_ws.sh && source scripts/ros_env.sh
    python bench/bench_replay.py [--bag DIR | --frames 150 --rate 15 --size 320x240]
        [--weights W | --max-size 550] [--backend auto] [--precision auto] [--num-threads 0]

Without ``--bag`` it writes the synthetic scene bag of ``bench/make_replay_bag.py`` (same
options) to a temporary directory, so the figure can be reproduced anywhere from the command
line alone. The node runs as launch starts it, with ``use_sim_time:=true`` and the default
(sensor-data) input QoS; the bag is played with its ``/clock`` at 100 Hz, at ``--play-rate``
x the recorded rate (default 1), by the player the replay tests use (the stand-in for
``ros2 bag play --clock 100``). Printed:

- frames played, received by the node, processed, and dropped (replaced in the node's
  one-frame mailbox while it was busy; plus frames lost in transport = played - received);
- end-to-end latency p50/p95: input stamp -> this client's receipt of the detections, both
  on the bag's timeline (the player's clock), in bag milliseconds (= wall ms at rate 1);
- the node process's CPU use over the playing (psutil: user + system time / wall time; 100 %
  = one core busy), the CPU model and core count.

Default model: YOLACT ResNet-50 with the deterministic reference weights (no trained weights
ship anywhere) at ``--max-size``, score_threshold 0 and top_k 15 (every frame carries 15
instances). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import numpy as np  # noqa: E402 - after the path
from bench_node import make_weights  # noqa: E402
from make_replay_bag import add_bag_arguments, write_from_args  # noqa: E402

from yolact_ros.ros.diagnostics import Key, stamp_to_ns  # noqa: E402
from yolact_ros.ros.names import NODE_NAME  # noqa: E402
from yolact_ros.ros.node_process import NodeProcess, ros_problem  # noqa: E402
from yolact_ros.testing.node_client import Client  # noqa: E402

NS = "/yolact_replay_bench"


class LatencyClient(Client):
    """Keeps, per detections message, (stamp, bag time at receipt) on the player's timeline."""

    def __init__(self, *args, **kwargs):
        self.player = None
        self.latencies_ns: list[tuple[int, int]] = []
        super().__init__(*args, **kwargs)

    def on_detections(self, msg) -> None:
        if self.player is not None:
            stamp = stamp_to_ns(msg.header.stamp)
            self.latencies_ns.append((stamp, self.player.timeline_ns() - stamp))

    def on_masks(self, msg) -> None:
        pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def bag_summary(bag: Path) -> tuple[int, float, str]:
    """(messages, recorded rate in Hz, topics) of a bag."""
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        n = sum(c.msgcount for c in reader.connections)
        span = reader.duration / 1e9
        topics = ", ".join(sorted({c.topic for c in reader.connections}))
    return n, (n - 1) / span if span > 0 and n > 1 else float("nan"), topics


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bag", type=Path, help="a rosbag2 directory to play (default: write the scene bag)")
    add_bag_arguments(ap)
    ap.add_argument("--play-rate", type=float, default=1.0, help="x the recorded rate (default 1)")
    ap.add_argument("--weights", help="checkpoint to run (default: YOLACT ResNet-50, reference weights)")
    ap.add_argument("--max-size", type=int, default=550, help="model input size for the default weights")
    ap.add_argument("--num-threads", type=int, default=0, help="the node's `threads` parameter (0 = default)")
    ap.add_argument("--backend", default="auto", help="the node's `backend` parameter (default auto)")
    ap.add_argument("--precision", default="auto", help="the node's `precision` parameter (default auto)")
    args = ap.parse_args(argv)
    args.frames = max(args.frames, 2)
    problem = ros_problem()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 1

    from yolact_ros.inference.capabilities import detect_cpu
    from yolact_ros.testing.replay import play_bag, wait_settled

    tmp = Path(tempfile.mkdtemp(prefix="yolact_replay_bench_"))
    os.environ.setdefault("ROS_LOG_DIR", str(tmp / "ros_log"))
    bag = args.bag or write_from_args(tmp / "scene_bag", args)
    n_bag, bag_hz, topics = bag_summary(bag)
    if "," in topics:
        print(f"error: {bag} holds several topics ({topics}); this benchmark plays one camera", file=sys.stderr)
        return 2
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
        "use_sim_time": True,
    }
    proc = NodeProcess(NODE_NAME, NS, params, remaps={"image": topics})
    client = None
    try:
        if not proc.wait_for_output("active:", 300):
            print(proc.output, file=sys.stderr)
            return 1
        network = next((ln.split("network: ", 1)[1] for ln in proc.output.splitlines() if "network: " in ln), "?")
        client = LatencyClient(NS, f"{NS}/unused_input")
        client.spin_in_background()
        marks: dict[str, float] = {}

        def on_start(player) -> None:
            client.player = player
            marks["cpu"], marks["wall"] = cpu_seconds(proc.proc.pid), time.monotonic()

        player, _ = play_bag(bag, client, rate=args.play_rate, on_start=on_start)
        # over the playing: the node may still be on its last frame, which adds < 1 frame's CPU
        cpu_s, wall_s = cpu_seconds(proc.proc.pid) - marks["cpu"], time.monotonic() - marks["wall"]
        time.sleep(1.5)  # the diagnostics (every 0.5 s, steady timer) count the last frames
        final = wait_settled(client, NODE_NAME, 1, timeout=120.0)
        received = int(final[Key.FRAMES_RECEIVED])
        lat_ms = np.array([lat for _, lat in client.latencies_ns], float) / 1e6

        print(f"# replay benchmark: CPU {detect_cpu().model}, {os.cpu_count()} cores")
        print(f"# network: {network}")
        print(
            f"# bag: {bag} — {n_bag} frames on {topics} at {bag_hz:.2f} Hz recorded, "
            f"played at {args.play_rate:g}x with /clock; node use_sim_time, sensor-data input QoS"
        )
        print(
            f"frames played {len(player.published)}, received by the node {received} "
            f"(lost in transport {len(player.published) - received}), processed {final[Key.FRAMES_PROCESSED]}, "
            f"dropped while busy {final[Key.FRAMES_DROPPED]}; detections received here {len(lat_ms)}"
        )
        if len(lat_ms):
            print(
                f"end-to-end latency (input stamp -> detections received, bag clock): "
                f"p50 {np.percentile(lat_ms, 50):.1f} ms, p95 {np.percentile(lat_ms, 95):.1f} ms, "
                f"max {lat_ms.max():.1f} ms"
            )
        print(
            f"node's own figures: segmenter p50 {final[Key.SEGMENTER_P50]} ms, input rate "
            f"{final[Key.INPUT_RATE]} Hz, output rate {final[Key.OUTPUT_RATE]} Hz (bag clock, last 5 s)"
        )
        print(
            f"node CPU while playing: {100.0 * cpu_s / wall_s:.0f} % of one core "
            f"({cpu_s:.1f} s CPU over {wall_s:.1f} s wall)"
        )
    finally:
        if client is not None:
            client.close()
        code = proc.stop(signal.SIGINT)
        print(f"node exit code after SIGINT: {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
