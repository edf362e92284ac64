"""The demo: ``yolact_node`` fed a synthetic camera stream, its outputs recorded and summarised.

    python -m yolact_ros.ros.demo [--weights models/demo/yolact_synth_demo.pth] [--duration 30]
                                  [--rate 15] [--out out/demo]

(``make demo`` runs it after setting up the environment and building the workspace.)

1. Starts the installed ``yolact_node`` the way ``launch/segment.launch.py`` does
   (:class:`~yolact_ros.ros.node_process.NodeProcess`): the shipped parameter file,
   ``weights``/``config``/``device``/``image_transport`` on top, node name ``yolact_node`` in
   namespace ``/yolact``, ``image`` remapped to ``/camera/image_raw``.
2. Plays a camera stream on ``/camera/image_raw`` (``sensor_msgs/Image``, ``bgr8``, sensor-data
   QoS, like a camera driver) at ``--rate`` Hz: the frames of :class:`yolact_ros.data.scene.DemoScene`,
   shapes of the model's classes moving and turning over real photos (``skimage.data``) seen by
   a slowly panning and zooming camera. Every frame has its own stamp (the time it is published)
   and the frame_id ``demo_camera``; its ground-truth masks are kept for scoring.
3. Records ``/yolact/detections``, ``/yolact/masks``, ``/yolact/visualization`` and the node's
   ``/diagnostics`` into a :class:`yolact_ros.evaluation.stream.StreamStats`. A CPU model is
   slower than the camera, so the node drops frames (it keeps only the newest one): a published
   frame counts as *processed* when detections with its stamp came back, otherwise as
   *dropped* — so ``processed + dropped == frames_in`` by construction, and it is checked,
   along with: every output carries the stamp and frame_id of a published frame, no frame is
   answered twice, masks are index-aligned with detections.
4. Stops the node with SIGINT and writes to ``--out``: ``frames/frame_NNNNN.jpg`` (the node's
   overlays, named by input frame index), ``overlay.mp4`` (those overlays at the rate they came
   out), ``preview.png`` (a contact sheet), ``frames.json`` (per input frame: stamp, ground
   truth, what came back; every stamp received per topic), ``node.log`` and ``summary.json``.

Exit code 0 when the run worked and every check held, 1 otherwise (the reason on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2

from ..data import synth
from ..data.scene import SCENE_PHOTOS, DemoScene
from ..evaluation.stream import Detection, NodeCounts, StreamStats, summarise
from ..interfaces.names import NAMESPACE
from .demo_media import write_preview, write_video
from .diagnostics import Key, stamp_to_ns
from .names import NODE_NAME
from .node_process import NodeProcess, ros_problem
from .stream_client import StreamClient, image_message, ns_to_stamp

__all__ = ["DemoError", "main", "run_demo"]

DEFAULT_WEIGHTS = "models/demo/yolact_synth_demo.pth"
DEFAULT_OUT = "out/demo"
CAMERA_TOPIC = "/camera/image_raw"  # the launch file's default `image`
FRAME_ID = "demo_camera"


class DemoError(RuntimeError):
    """The demo cannot run or its outputs are wrong; the message says why."""


class _Recorder(StreamClient):
    """The camera and the recorder: each answer goes into ``stats`` as it arrives (on the
    client's spinning thread), each overlay into ``frames_dir``."""

    def __init__(self, stats: StreamStats, frames_dir: Path):
        self.stats = stats
        self.frames_dir = frames_dir
        super().__init__(NAMESPACE, CAMERA_TOPIC, visualization=True, name=f"yolact_demo_camera_{os.getpid()}")

    def on_detections(self, msg) -> None:
        now = time.time_ns()
        dets = [
            Detection(d.id, d.results[0].hypothesis.class_id, float(d.results[0].hypothesis.score))
            if d.results
            else Detection(d.id, "", 0.0)
            for d in msg.detections
        ]
        self.stats.on_detections(
            stamp_to_ns(msg.header.stamp),
            msg.header.frame_id,
            now,
            dets,
            items_carry_stamp=all(d.header.stamp == msg.header.stamp for d in msg.detections),
        )

    def on_masks(self, msg) -> None:
        from .messages import full_frame_mask

        h, w = msg.image_height, msg.image_width
        self.stats.on_masks(
            stamp_to_ns(msg.header.stamp),
            msg.header.frame_id,
            [m.id for m in msg.instances],
            lambda: [full_frame_mask(item, h, w) for item in msg.instances],
        )

    def on_visualization(self, msg) -> None:
        index = self.stats.on_visualization(stamp_to_ns(msg.header.stamp), msg.header.frame_id)
        if index is None:
            return
        from .image_conversion import ImageConversionError, image_to_bgr

        try:
            bgr = image_to_bgr(msg)
        except ImageConversionError as exc:
            print(f"[demo] unreadable visualization image: {exc}", file=sys.stderr)
            return
        cv2.imwrite(str(self.frames_dir / f"frame_{index:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])


def _node_counts(values: dict) -> NodeCounts | None:
    """The frame counters of one diagnostics report; None without them."""
    if Key.FRAMES_RECEIVED not in values:
        return None
    return NodeCounts(
        received=int(values[Key.FRAMES_RECEIVED]),
        processed=int(values[Key.FRAMES_PROCESSED]),
        dropped=int(values[Key.FRAMES_DROPPED]),
        rejected=int(values[Key.FRAMES_REJECTED]),
        errors=int(values[Key.INFERENCE_ERRORS]),
    )


def _model_info(weights: Path) -> dict:
    """Name, classes and training notes of a checkpoint (read without building the model)."""
    from ..inference.segmenter import resolve_config

    try:
        cfg, (_, meta) = resolve_config(None, weights)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        text = str(exc).strip() or type(exc).__name__
        raise DemoError(f"cannot read the model: {text if str(weights) in text else f'{weights}: {text}'}") from None
    info = {
        "weights": str(weights),
        "config": cfg.name,
        "class_names": list(cfg.class_names),
        "input_size": cfg.max_size,
        "backbone": cfg.backbone.kind,
        "file_mb": round(weights.stat().st_size / 2**20, 1),
    }
    for key, value in meta.items():
        if key != "config_json" and isinstance(value, (str, int, float, bool)):
            info[key] = value
    return info


def _default_weights() -> Path:
    """models/demo/... relative to the working directory, else to the source checkout."""
    cand = Path(DEFAULT_WEIGHTS)
    if cand.is_file():
        return cand.resolve()
    ws = os.environ.get("YOLACT_ROS_WS")
    roots = ([Path(ws)] if ws else []) + [Path(__file__).resolve().parents[2]]
    for root in roots:
        if (root / DEFAULT_WEIGHTS).is_file():
            return (root / DEFAULT_WEIGHTS).resolve()
    return cand.resolve()


# -- the run --------------------------------------------------------------------------------------
def _stream(client: _Recorder, node: NodeProcess, scene: DemoScene, n_frames: int, log: Callable[[str], None]) -> float:
    """Publish ``n_frames`` frames of ``scene`` at its rate, each recorded just before; the seconds it took."""
    rate = scene.rate
    image, objects = scene.frame(0)
    t0 = time.monotonic()
    last_stamp = 0
    for i in range(n_frames):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if not node.alive():
            raise DemoError(f"yolact_node died during the stream (exit code {node.proc.returncode}):\n{node.tail()}")
        stamp = max(time.time_ns(), last_stamp + 1)  # ROS time == system time (no sim time)
        last_stamp = stamp
        client.stats.add_frame(i, stamp, [(obj.class_name, obj.visible) for obj in objects])
        msg = image_message(image, "bgr8", FRAME_ID)
        msg.header.stamp = ns_to_stamp(stamp)
        client.publish(msg)
        if i + 1 < n_frames:
            image, objects = scene.frame(i + 1)
        if (i + 1) % max(1, int(rate * 5)) == 0:
            log(f"  {i + 1}/{n_frames} frames sent, {client.stats.processed()} processed")
    return time.monotonic() - t0


def _drain(client: _Recorder, node: NodeProcess, weights: Path, log: Callable[[str], None]) -> dict:
    """Wait until the node is idle (every frame it received is accounted for) and all its
    answers arrived, judged from a diagnostics report sent after the stream ended; the node's
    last report."""

    def ours(values: dict) -> bool:  # another yolact_node in this ROS domain must not count
        return values.get(Key.INPUT_TOPIC) == CAMERA_TOPIC and values.get(Key.WEIGHTS) == str(weights)

    reports_at_end = len(client.statuses(NODE_NAME, ours))

    def drained() -> bool:
        reports = client.statuses(NODE_NAME, ours)
        counts = _node_counts(reports[-1]) if len(reports) >= reports_at_end + 2 else None
        return counts is not None and counts.idle and client.stats.processed() >= counts.processed

    if client.spin_until(drained, 60.0, abort=lambda: not node.alive()):
        log("node idle, all answers received")
    else:
        log(
            "warning: the node did not report idle within 60 s after the stream; "
            "frames without an answer are counted as dropped"
        )
    time.sleep(0.3)  # the masks / overlay of the last frame follow its detections
    reports = client.statuses(NODE_NAME, ours)
    return reports[-1] if reports else {}


def run_demo(
    weights: Path,
    out_dir: Path,
    duration: float = 30.0,
    rate: float = 15.0,
    size: tuple[int, int] = (640, 480),
    seed: int = 0,
    device: str = "auto",
    node_params: Sequence[str] = (),
    startup_timeout: float = 300.0,
    echo_node: bool = True,
) -> dict:
    """Run the demo (see the module docstring); returns the summary. Raises DemoError when the
    demo cannot run; a run whose checks fail returns a summary with ``checks_ok`` false.
    ``node_params``: extra ``name:=value`` node parameters."""
    if not weights.is_file():
        raise DemoError(
            f"model not found: {weights} (the demo model ships as {DEFAULT_WEIGHTS}; "
            "pass --weights FILE for another one)"
        )
    if duration <= 0 or rate <= 0:
        raise DemoError(f"--duration and --rate must be > 0 (got {duration}, {rate})")
    problem = ros_problem()
    if problem:
        raise DemoError(
            f"ROS 2 runtime not available ({problem}): bash scripts/build_ws.sh && source scripts/ros_env.sh"
        )
    weights = weights.resolve()

    out_dir.mkdir(parents=True, exist_ok=True)
    frames_dir = out_dir / "frames"
    frames_dir.mkdir(exist_ok=True)
    for old in list(frames_dir.glob("frame_*.jpg")) + [
        out_dir / n for n in ("overlay.mp4", "preview.png", "summary.json")
    ]:
        old.unlink(missing_ok=True)  # a re-run must not mix with the previous one

    t_begin = time.monotonic()
    log = lambda text: print(f"[demo {time.monotonic() - t_begin:5.1f}s] {text}", flush=True)  # noqa: E731
    params = {
        "weights": weights,
        "config": "",
        "device": device,
        "image_transport": "raw",
        **dict(p.split(":=", 1) for p in node_params),
    }
    node = NodeProcess(
        NODE_NAME,
        NAMESPACE,
        params,
        remaps={"image": CAMERA_TOPIC, "image/compressed": f"{CAMERA_TOPIC}/compressed"},
        log_path=out_dir / "node.log",
        echo="  [node] " if echo_node else None,
    )
    log("node: " + " ".join(node.cmd))
    stats = StreamStats(frame_id=FRAME_ID)
    client = None
    try:
        model = _model_info(weights)
        classes = [c for c in model["class_names"] if c in synth.SHAPE_CLASSES]
        score_gt = bool(classes)
        scene = DemoScene(classes or synth.DEFAULT_CLASSES, size=size, rate=rate, seed=seed)
        log(
            f"model {model['config']} ({', '.join(model['class_names'][:8])}{'...' if len(model['class_names']) > 8 else ''})"
            f"; scene classes: {', '.join(scene.classes)}"
        )

        client = _Recorder(stats, frames_dir)
        client.spin_in_background()
        t_start = time.monotonic()
        if not node.wait_for_output("active:", startup_timeout):
            if not node.alive():
                raise DemoError(
                    f"yolact_node exited with code {node.proc.returncode} before becoming active:\n{node.tail()}"
                )
            raise DemoError(f"yolact_node not active within {startup_timeout:.0f} s:\n{node.tail()}")
        log(f"node active after {time.monotonic() - t_start:.1f} s; waiting for discovery")
        if not client.spin_until(client.outputs_matched, 60.0, abort=lambda: not node.alive()):
            raise DemoError(
                "the node's topics never matched ours within 60 s (discovery / ROS_DOMAIN_ID / "
                "ROS_AUTOMATIC_DISCOVERY_RANGE?)"
            )

        n_frames = max(1, int(round(duration * rate)))
        log(f"streaming {n_frames} frames {size[0]}x{size[1]} bgr8 at {rate:g} Hz on {CAMERA_TOPIC}")
        stream_s = _stream(client, node, scene, n_frames, log)
        diagnostics = _drain(client, node, weights, log)
    finally:
        code = node.stop(timeout=30.0)
        if client is not None:
            client.close()
    log(f"node stopped with SIGINT, exit code {code}")

    summary, per_frame, problems = summarise(
        stats,
        size=size,
        stream_s=stream_s,
        model=model,
        node_counts=_node_counts(diagnostics),
        diagnostics=diagnostics,
        score_ground_truth=score_gt,
        stream={
            "topic": CAMERA_TOPIC,
            "encoding": "bgr8",
            "frame_id": FRAME_ID,
            "rate_hz": rate,
            "backgrounds": "skimage.data: " + ", ".join(SCENE_PHOTOS),
        },
    )
    if code != 0:
        problems.append(f"yolact_node exited with code {code} after SIGINT (expected 0)")
    summary["node_exit_code"] = code
    proc_idx = [row["index"] for row in per_frame if row.get("detections")]
    fps = min(rate, max(1.0, summary["output_rate_hz"] or 1.0))
    summary["outputs"] = {
        "frames_dir": "frames",
        "overlay_frames": len(list(frames_dir.glob("frame_*.jpg"))),
        **write_video(frames_dir, out_dir / "overlay.mp4", fps),
        "preview": write_preview(frames_dir, out_dir / "preview.png", proc_idx),
        "per_frame": "frames.json",
        "node_log": "node.log",
    }
    summary["checks_ok"] = not problems
    summary["problems"] = problems
    log("outputs written")
    (out_dir / "frames.json").write_text(
        json.dumps({"frames": per_frame, "stamps_received": stats.stamps_received()}, indent=1) + "\n"
    )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _print_summary(s: dict, out_dir: Path) -> None:
    print(
        f"[demo] frames in {s['frames_in']}, processed {s['frames_processed']}, dropped {s['frames_dropped']} "
        f"(processed + dropped == in: {s['accounting_ok']})"
    )
    print(
        f"[demo] latency p50 {s['latency_ms_p50']} ms, p95 {s['latency_ms_p95']} ms; output "
        f"{s['output_rate_hz']} Hz; instances/frame {s['instances_per_frame']}; classes {s['class_counts']}"
    )
    gt = s.get("ground_truth")
    if gt:
        hi = gt["score_at_least_0.5"]
        print(
            f"[demo] against the scene's ground truth (mask IoU >= 0.5, same class): recall {gt['recall']}, "
            f"precision {gt['precision']}, mean mask IoU {gt['mean_mask_iou_of_matches']}; "
            f"detections scoring >= 0.5: recall {hi['recall']}, precision {hi['precision']}"
        )
    print(
        f"[demo] outputs in {out_dir}/: summary.json, {s['outputs'].get('video') or '(no video)'}, "
        f"{s['outputs'].get('preview') or '(no preview)'}, frames/ ({s['outputs']['overlay_frames']} overlays)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m yolact_ros.ros.demo",
        description="Run yolact_node on a synthetic camera stream and record what comes out.",
    )
    ap.add_argument("--weights", type=Path, default=None, help=f"model checkpoint (default: {DEFAULT_WEIGHTS})")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of camera stream (default 30)")
    ap.add_argument("--rate", type=float, default=15.0, help="camera frame rate in Hz (default 15)")
    ap.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    ap.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--seed", type=int, default=0, help="scene seed")
    ap.add_argument("--device", default="auto", help="node device: auto | cpu | cuda | cuda:N")
    ap.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra node parameter, e.g. --param score_threshold:=0.3 (repeatable)",
    )
    ap.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for the node to be active")
    ap.add_argument("--quiet-node", action="store_true", help="do not echo the node's log (still in node.log)")
    args = ap.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
        if w < 64 or h < 64:
            raise ValueError
    except ValueError:
        print(f"[demo] error: --size must be WxH with both >= 64, got {args.size!r}", file=sys.stderr)
        return 2
    for p in args.param:
        if ":=" not in p:
            print(f"[demo] error: --param must look like name:=value, got {p!r}", file=sys.stderr)
            return 2
    weights = args.weights if args.weights is not None else _default_weights()
    try:
        summary = run_demo(
            weights,
            args.out,
            duration=args.duration,
            rate=args.rate,
            size=(w, h),
            seed=args.seed,
            device=args.device,
            node_params=args.param,
            startup_timeout=args.startup_timeout,
            echo_node=not args.quiet_node,
        )
    except DemoError as exc:
        print(f"[demo] error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[demo] interrupted", file=sys.stderr)
        return 130
    _print_summary(summary, args.out)
    if not summary["checks_ok"]:
        for p in summary["problems"]:
            print(f"[demo] FAILED: {p}", file=sys.stderr)
        return 1
    print("[demo] all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
