"""``yolact bag``: segment image topics of a recorded rosbag2 offline and write the node's outputs to a new bag.

No ROS install needed (rosbags reads and writes sqlite3 and MCAP bags). docs/recorded_data.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .. import signals
from ..inference import defaults
from ..interfaces.fields import CLASS_ID_FORMATS
from ..interfaces.names import NAMESPACE
from .options import add_device_options, add_postprocess_options, device_settings

#: Seconds a Ctrl-C waits for the running batch and the closing of the bag (a second one ends at once).
INTERRUPT_GRACE_S = 30.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="yolact bag",
        description="Segment image topics of a rosbag2 (sqlite3 or MCAP) and write detections, masks, label_info "
        "(and detections_3d with depth) to a new bag, named as the node names them (docs/recorded_data.md).",
    )
    p.add_argument("--in", dest="input", required=True, help="the input bag (a rosbag2 folder)")
    p.add_argument("--out", required=True, help="the output bag folder (must not exist)")
    p.add_argument(
        "--topic",
        action="append",
        required=True,
        help="an image topic (sensor_msgs/Image or CompressedImage); repeat for several cameras",
    )
    p.add_argument("--weights", required=True, help="a .pth checkpoint (or .onnx / OpenVINO .xml with --backend)")
    p.add_argument("--config", default=None, help="config name; default: from the checkpoint or its file name")
    add_postprocess_options(p)
    add_device_options(p)
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="output storage (default mcap)")
    p.add_argument("--copy-inputs", action="store_true", help="also copy the input topics into the output bag")
    p.add_argument(
        "--depth-topic",
        action="append",
        default=[],
        help="registered depth image (16UC1/32FC1) of each camera, in --topic order: adds detections_3d",
    )
    p.add_argument(
        "--camera-info-topic", action="append", default=[], help="CameraInfo of each depth topic, in --topic order"
    )
    p.add_argument(
        "--depth-tolerance",
        type=float,
        default=defaults.DEPTH_TOLERANCE_S,
        help=f"seconds between a colour frame's stamp and its depth frame's (default {defaults.DEPTH_TOLERANCE_S}, "
        "the node's depth_tolerance)",
    )
    p.add_argument("--coco", default=None, metavar="DIR", help="also write per camera frames + COCO JSON here")
    p.add_argument("--batch-size", type=int, default=4, help="frames per network forward (default 4)")
    p.add_argument("--namespace", default=NAMESPACE, help=f"namespace of the output topics (default {NAMESPACE})")
    p.add_argument(
        "--class-id-format",
        choices=CLASS_ID_FORMATS,
        default=CLASS_ID_FORMATS[0],
        help="Detection2D class_id: the class name or its index (the node's class_id_format)",
    )
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        from ..bag.segment import BagError, BagJob, segment_bag
    except ImportError as exc:
        print(
            f"yolact bag: error: {exc.name or exc} is missing: pip install 'yolact_ros[bag]' (rosbags)", file=sys.stderr
        )
        return 2
    from tqdm import tqdm

    from ..inference.onnx_format import OnnxBackendError
    from ..inference.segmenter import Segmenter
    from ..model.checkpoint import CheckpointError

    job = BagJob(
        input=Path(a.input),
        output=Path(a.out),
        topics=a.topic,
        depth_topics=a.depth_topic,
        info_topics=a.camera_info_topic,
        storage=a.storage,
        copy_inputs=a.copy_inputs,
        namespace=a.namespace,
        class_id_format=a.class_id_format,
        batch_size=a.batch_size,
        coco_dir=Path(a.coco) if a.coco else None,
        depth_tolerance=a.depth_tolerance,
    )
    try:
        seg = Segmenter(
            weights=a.weights,
            config=a.config,
            **device_settings(a),
            score_threshold=a.score_threshold,
            top_k=a.top_k,
            classes=a.classes or None,
        )
    except (CheckpointError, OnnxBackendError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"yolact bag: error: {exc}", file=sys.stderr)
        return 2
    print(f"yolact bag: {seg.describe()}")
    # Ctrl-C from here: the running batch ends, what is done is written, the bag is closed
    signals.mark_started(INTERRUPT_GRACE_S)
    start = time.perf_counter()
    with tqdm(desc="frames", unit="frame", dynamic_ncols=True) as bar:
        try:
            summary = segment_bag(
                seg,
                job,
                on_frame=lambda: bar.update(1),
                warn=lambda text: bar.write(f"warning: {text}", file=sys.stderr),
                on_total=lambda total: setattr(bar, "total", total),
                stop=signals.requested,
            )
        except BagError as exc:
            bar.close()
            print(f"yolact bag: error: {exc}", file=sys.stderr)
            return 2
    seconds = time.perf_counter() - start
    frames = sum(c.segmented for _, _, c, _ in summary.cameras)
    print(
        f"yolact bag: {frames} frames in {seconds:.1f} s ({frames / max(seconds, 1e-9):.1f} frames/s), "
        f"{summary.written} messages -> {job.output}" + (f", COCO files in {job.coco_dir}" if job.coco_dir else "")
    )
    for line in summary.lines():
        print(f"  {line}")
    if signals.requested():
        return signals.exit_code_for(signals.received() or 2)
    return 1 if summary.stopped else 0
