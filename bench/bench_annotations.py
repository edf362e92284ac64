"""Foxglove annotations vs the overlay image: cost per frame (build + serialize) and bytes per frame.

The same instances feed both, from one Segmenter run per frame at ``--size``: with ``--model
demo`` (default) the shipped demo model (models/demo/) on frames of the demo's camera scene
(shapes over scikit-image photos, ``yolact_ros.data.scene``; objects of realistic size), with
``--model reference`` a ``--config`` with the deterministic reference weights of
``yolact_ros.testing`` on scikit-image photos (15 small instances). Per frame:

- **overlay**: what the node does while ``visualization`` has a subscriber —
  ``draw_instances`` on the frame, the ``bgr8`` ``sensor_msgs/Image``, and its CDR
  serialization (what the middleware does to publish it);
- **annotations**: ``instances_to_annotations`` (``foxglove_msgs/ImageAnnotations``) and its
  serialization.

The two are alternated within each repetition (order swapped every other one), ``--repeat``
times per frame, in one process; figures are milliseconds of wall time (median, p95) on this
CPU, whose model is printed with them. Needs the built workspace (``source scripts/ros_env.sh``).

    python bench/bench_annotations.py                        # the demo model, 4 scene frames at 640x480
    python bench/bench_annotations.py --model reference      # reference weights on astronaut, coffee, chelsea
    python bench/bench_annotations.py --size 1280x720 --repeat 100 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEMO_WEIGHTS = REPO / "models" / "demo" / "yolact_synth_demo.pth"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["demo", "reference"], default="demo")
    p.add_argument(
        "--images", nargs="+", default=["astronaut", "coffee", "chelsea"], help="skimage.data names (reference)"
    )
    p.add_argument("--frames", nargs="+", type=int, default=[0, 160, 310, 460], help="scene frame indices (demo)")
    p.add_argument("--size", default="640x480", help="WIDTHxHEIGHT the photos are resized to")
    p.add_argument("--config", default="yolact_resnet50", help="the reference weights' config")
    p.add_argument("--score-threshold", type=float, default=None, help="default: the node's")
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--threads", type=int, default=2, help="torch threads for the one Segmenter run")
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args(argv)
    import torch
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from yolact_ros.data.photos import load_photo
    from yolact_ros.inference.visualize import draw_instances
    from yolact_ros.ros.annotations import instances_to_annotations, rclpy_classes
    from yolact_ros.ros.image_conversion import bgr_to_image, to_bgr3
    from yolact_ros.segmenter import Segmenter
    from yolact_ros.testing.reference_weights import reference_model

    torch.set_num_threads(a.threads)
    width, height = (int(v) for v in a.size.lower().split("x"))
    settings = {} if a.score_threshold is None else {"score_threshold": a.score_threshold}
    if a.model == "demo":
        from yolact_ros.data.scene import DemoScene

        seg = Segmenter(weights=DEMO_WEIGHTS, device="cpu", **settings)
        scene = DemoScene(seg.class_names, size=(width, height))
        frames = [(f"scene {i}", scene.frame(i)[0]) for i in a.frames]
        source = f"demo model {DEMO_WEIGHTS.name}"
    else:
        seg = Segmenter(model=reference_model(a.config), device="cpu", **settings)
        frames = [(n, cv2.resize(load_photo(n), (width, height), interpolation=cv2.INTER_AREA)) for n in a.images]
        source = f"{a.config} reference weights"
    classes = rclpy_classes()
    header = Header(frame_id="camera_optical")
    header.stamp.sec = 1

    def overlay(bgr, inst) -> int:
        return len(serialize_message(bgr_to_image(draw_instances(to_bgr3(bgr), inst, seg.class_names), header)))

    def annotations(bgr, inst) -> int:
        return len(serialize_message(instances_to_annotations(inst, header, seg.class_names, classes=classes)))

    variants = {"overlay": overlay, "annotations": annotations}
    print(
        f"# bench_annotations: CPU {cpu_model()}; {source}, {a.size}, "
        f"{a.repeat} alternated repetitions per frame; wall ms per frame (median / p95), bytes per frame"
    )
    rows = []
    for name, image in frames:
        bgr = np.ascontiguousarray(image)
        inst = seg(bgr)
        size = {k: f(bgr, inst) for k, f in variants.items()}  # warm-up, and the bytes
        times: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(a.repeat):
            for k in list(variants)[:: 1 if r % 2 == 0 else -1]:
                t0 = time.perf_counter()
                variants[k](bgr, inst)
                times[k].append((time.perf_counter() - t0) * 1000.0)
        for k in variants:
            ms = np.array(times[k])
            rows.append(
                {
                    "image": name,
                    "instances": len(inst),
                    "variant": k,
                    "median_ms": float(np.median(ms)),
                    "p95_ms": float(np.percentile(ms, 95)),
                    "bytes": size[k],
                }
            )
            print(
                f"{name:12s} {len(inst):3d} inst  {k:12s} {np.median(ms):8.2f} / {np.percentile(ms, 95):8.2f} ms"
                f"  {size[k]:9,d} B"
            )
    if a.json:
        a.json.write_text(json.dumps({"cpu": cpu_model(), "size": a.size, "source": source, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
