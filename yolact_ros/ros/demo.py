"""The demo: ``yolact_node`` fed a synthetic camera stream, its outputs recorded and summarised.

    python -m yolact_ros.ros.demo [--weights models/demo/yolact_synth_demo.pth] [--duration 30]
                                  [--rate 15] [--out out/demo]

(``make demo`` runs it after setting up the environment and building the workspace.)

1. Starts the installed ``yolact_node`` the way ``launch/segment.launch.py`` does: the shipped
   parameter file, ``weights``/``config``/``device``/``image_transport`` on top, node name
   ``yolact_node`` in namespace ``/yolact``, ``image`` remapped to ``/camera/image_raw``.
2. Plays a camera stream on ``/camera/image_raw`` (``sensor_msgs/Image``, ``bgr8``, sensor-data
   QoS, like a camera driver) at ``--rate`` Hz: shapes of the model's classes (drawn with the
   generator of the training data, :mod:`yolact_ros.data.synth`) moving and turning over real
   photos (``skimage.data``) seen by a slowly panning and zooming camera. Every frame has its own
   stamp (the time it is published) and the frame_id ``demo_camera``; its ground-truth masks are
   kept for scoring.
3. Records ``/yolact/detections``, ``/yolact/masks``, ``/yolact/visualization`` and the node's
   ``/diagnostics``. A CPU model is slower than the camera, so the node drops frames (it keeps
   only the newest one): a published frame counts as *processed* when detections with its
   stamp came back, otherwise as *dropped* — so ``processed + dropped == frames_in`` by
   construction, and it is checked, along with: every output carries the stamp and frame_id of
   a published frame, no frame is answered twice, masks are index-aligned with detections.
4. Stops the node with SIGINT and writes to ``--out``: ``frames/frame_NNNNN.jpg`` (the node's
   overlays, named by input frame index), ``overlay.mp4`` (those overlays at the rate they came
   out), ``preview.png`` (a contact sheet), ``frames.json`` (per input frame: stamp, ground
   truth, what came back; every stamp received per topic), ``node.log`` and ``summary.json``.

Exit code 0 when the run worked and every check held, 1 otherwise (the reason on stderr).
The scene part (:class:`DemoScene`) needs no ROS; rclpy is imported only to run the demo.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..data import synth

__all__ = ["DemoScene", "SceneObject", "StreamStats", "main", "run_demo"]

DEFAULT_WEIGHTS = "models/demo/yolact_synth_demo.pth"
DEFAULT_OUT = "out/demo"
NAMESPACE = "/yolact"
NODE_NAME = "yolact_node"
CAMERA_TOPIC = "/camera/image_raw"  # the launch file's default `image`
FRAME_ID = "demo_camera"
#: Colour photos bundled with scikit-image, large enough for a camera to pan over.
DEMO_BACKGROUNDS: tuple[str, ...] = ("coffee", "astronaut", "rocket", "chelsea", "motorcycle_left")
#: A ground-truth object counts for recall when at least this many of its pixels are visible.
MIN_GT_PIXELS = 300


class DemoError(RuntimeError):
    """The demo cannot run or its outputs are wrong; the message says why."""


# =================================================================================================
# the scene: a deterministic function of the frame index
# =================================================================================================
@dataclass
class SceneObject:
    """One object of a frame: its class and the mask of its visible pixels."""

    class_name: str
    visible: np.ndarray  # bool [H,W]

    @property
    def area(self) -> int:
        return int(self.visible.sum())


@dataclass
class _Mover:
    kind: str
    radius: float
    shape_seed: int
    texture: np.ndarray  # float32 [S,S,3] BGR, centred on the object
    alpha: float
    start: tuple[float, float]
    velocity: tuple[float, float]  # px/s
    spin: float  # rad/s


def _bounce(x0: float, v: float, t: float, lo: float, hi: float) -> float:
    """Position at time t of a point moving at v from x0, reflected at lo and hi."""
    span = hi - lo
    if span <= 0:
        return (lo + hi) / 2
    u = (x0 - lo + v * t) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


class DemoScene:
    """Frames of a camera looking at moving shapes over real photos.

    ``frame(i)`` depends only on (seed, i): the background photo changes every ``segment_s``
    seconds (a cut, as when the camera is pointed elsewhere) and a new set of ``objects``
    shapes starts with it; within a segment the camera pans and zooms slowly and the shapes
    glide, bounce at the borders (partly leaving the frame) and turn.
    """

    def __init__(self, classes: Sequence[str], size: tuple[int, int] = (640, 480), rate: float = 15.0,
                 seed: int = 0, segment_s: float = 10.0, objects: tuple[int, int] = (3, 5)):
        unknown = [c for c in classes if c not in synth.SHAPE_CLASSES]
        if unknown or not classes:
            raise ValueError(f"classes must be among {synth.SHAPE_CLASSES}, got {list(classes)}")
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.classes = tuple(classes)
        self.width, self.height = (int(v) for v in size)
        self.rate = float(rate)
        self.seed = int(seed)
        self.segment_s = float(segment_s)
        self.objects = objects
        self.photos = _load_photos()
        self._segments: dict[int, tuple[np.ndarray, dict, list[_Mover]]] = {}
        # sensor noise: a small bank of fixed patterns (drawing fresh noise per frame costs more
        # than the rest of the frame)
        rng = np.random.default_rng([self.seed, 7])
        self._noise = [rng.normal(0.0, 2.5, size=(self.height, self.width, 3)).round().astype(np.int16)
                       for _ in range(6)]

    # -- per segment ------------------------------------------------------------------------------
    def _segment(self, k: int):
        if k not in self._segments:
            if len(self._segments) > 4:
                self._segments.pop(min(self._segments))
            rng = np.random.default_rng([self.seed, k, 11])
            photo_index = (k + self.seed) % len(self.photos)
            ph, pw = self.photos[photo_index].shape[:2]
            # camera: a window of the frame's aspect ratio, panning from a to b while zooming
            aspect = self.width / self.height
            full_w = min(pw, ph * aspect)
            z0, z1 = rng.uniform(0.75, 0.95), rng.uniform(0.55, 0.75)
            if rng.random() < 0.5:
                z0, z1 = z1, z0
            cam = {"z": (z0 * full_w, z1 * full_w), "a": rng.random(2), "b": rng.random(2),
                   "tint": rng.uniform(0.85, 1.15, size=3).astype(np.float32)}
            movers = []
            base = min(self.width, self.height)
            n = int(rng.integers(self.objects[0], self.objects[1] + 1))
            kinds = list(rng.permutation(self.classes))  # each class once before any repeats
            while len(kinds) < n:
                kinds.append(self.classes[int(rng.integers(len(self.classes)))])
            for kind in kinds[:n]:
                r = base * math.exp(rng.uniform(math.log(0.08), math.log(0.2)))
                s = int(math.ceil(2.6 * r)) + 4
                speed = rng.uniform(0.08, 0.22) * base  # px/s
                heading = rng.uniform(0, 2 * math.pi)
                movers.append(_Mover(
                    kind=str(kind), radius=r, shape_seed=int(rng.integers(2**31)),
                    texture=synth.random_texture(rng, s, s).astype(np.float32),
                    alpha=float(rng.uniform(0.88, 1.0)),
                    start=(rng.uniform(r, self.width - r), rng.uniform(r, self.height - r)),
                    velocity=(speed * math.cos(heading), speed * math.sin(heading)),
                    spin=float(rng.uniform(-0.6, 0.6)),
                ))
            tinted = np.clip(self.photos[photo_index] * cam["tint"] + 0.5, 0, 255).astype(np.uint8)
            self._segments[k] = (tinted, cam, movers)
        return self._segments[k]

    # -- per frame --------------------------------------------------------------------------------
    def frame(self, index: int) -> tuple[np.ndarray, list[SceneObject]]:
        """(BGR uint8 [H,W,3], visible objects in paint order) of frame ``index``."""
        t = index / self.rate
        k = int(t // self.segment_s)
        tl = t - k * self.segment_s
        photo, cam, movers = self._segment(k)
        image = self._background(photo, cam, tl / self.segment_s)
        w, h = self.width, self.height
        painted: list[tuple[str, np.ndarray]] = []
        for m in movers:
            cx = _bounce(m.start[0], m.velocity[0], tl, 0.3 * m.radius, w - 0.3 * m.radius)
            cy = _bounce(m.start[1], m.velocity[1], tl, 0.3 * m.radius, h - 0.3 * m.radius)
            outer, hole = synth.shape_polygons(m.kind, np.random.default_rng(m.shape_seed), 0.0, 0.0, m.radius)
            turn = m.spin * tl
            outer = _turn(outer, turn) + (cx, cy)
            hole = _turn(hole, turn) + (cx, cy) if hole is not None else None
            mask = _paint(image, outer, hole, m.texture, cx, cy, m.alpha)
            if mask is None:
                continue
            for _, earlier in painted:
                earlier &= ~mask
            painted.append((m.kind, mask))
        # camera-ish finish, as the training images have: slight blur and sensor noise
        image = cv2.GaussianBlur(image, (0, 0), 0.6)
        image = cv2.add(image, self._noise[index % len(self._noise)], dtype=cv2.CV_8U)
        objects = [SceneObject(kind, mask) for kind, mask in painted if mask.sum() >= synth.MIN_VISIBLE_PIXELS]
        return image, objects

    def _background(self, photo: np.ndarray, cam: dict, u: float) -> np.ndarray:
        """BGR uint8 [H,W,3]: the camera window at progress u in [0,1) of its segment."""
        ph, pw = photo.shape[:2]
        ease = 0.5 - 0.5 * math.cos(math.pi * u)
        win_w = cam["z"][0] + (cam["z"][1] - cam["z"][0]) * ease
        win_h = win_w * self.height / self.width
        ax, ay = cam["a"] + (cam["b"] - cam["a"]) * ease
        cx = win_w / 2 + ax * (pw - win_w)
        cy = win_h / 2 + ay * (ph - win_h)
        s = win_w / self.width  # photo pixels per output pixel
        m = np.float32([[s, 0, cx - s * self.width / 2], [0, s, cy - s * self.height / 2]])
        return cv2.warpAffine(photo, m, (self.width, self.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)


def _turn(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _paint(image: np.ndarray, outer: np.ndarray, hole: np.ndarray | None, texture: np.ndarray,
           cx: float, cy: float, alpha: float) -> np.ndarray | None:
    """Fill the shape (polygon ``outer`` minus ``hole``, rasterised as the training data is) of
    ``image`` with ``texture`` centred at (cx, cy), in place; its full-frame bool mask, or None
    when it is outside the frame. Works on the shape's bounding box only."""
    h, w = image.shape[:2]
    x0, y0 = (max(int(math.floor(v)) - 1, 0) for v in outer.min(0))
    x1, y1 = min(int(math.ceil(outer[:, 0].max())) + 2, w), min(int(math.ceil(outer[:, 1].max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    local = synth.rasterize(outer - (x0, y0), x1 - x0, y1 - y0)
    if hole is not None:
        local &= ~synth.rasterize(hole - (x0, y0), x1 - x0, y1 - y0)
    if not local.any():
        return None
    ys, xs = np.nonzero(local)
    size = texture.shape[0]
    ty = np.clip(ys + y0 - int(round(cy)) + size // 2, 0, size - 1)
    tx = np.clip(xs + x0 - int(round(cx)) + size // 2, 0, size - 1)
    patch = image[y0:y1, x0:x1]
    blended = alpha * texture[ty, tx] + (1.0 - alpha) * patch[ys, xs].astype(np.float32)
    patch[ys, xs] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = local
    return mask


_PHOTOS: list[np.ndarray] = []


def _load_photos() -> list[np.ndarray]:
    if not _PHOTOS:
        import skimage.data

        for name in DEMO_BACKGROUNDS:
            try:
                rgb = np.asarray(getattr(skimage.data, name)())
            except Exception:  # noqa: BLE001 - a photo that would need a download: skip it
                continue
            if rgb.ndim == 3 and rgb.dtype == np.uint8:
                _PHOTOS.append(np.ascontiguousarray(cv2.cvtColor(rgb[:, :, :3], cv2.COLOR_RGB2BGR)))
        if not _PHOTOS:
            _PHOTOS.extend(synth.load_background_photos())
    return _PHOTOS


# =================================================================================================
# statistics of a finished run (pure: tested without ROS)
# =================================================================================================
@dataclass
class FrameRecord:
    index: int
    stamp_ns: int
    objects: list[tuple[str, dict]]  # ground truth: (class, COCO RLE of the visible mask)
    published_ns: int = 0


@dataclass
class Received:
    """What came back for one stamp."""

    detections: object = None
    detections_ns: int = 0  # system time when our callback saw it
    masks: object = None
    visualization: bool = False


@dataclass
class StreamStats:
    frames: list[FrameRecord] = field(default_factory=list)
    by_stamp: dict[int, int] = field(default_factory=dict)  # stamp_ns -> frame index
    received: dict[int, Received] = field(default_factory=dict)
    stamps_seen: dict[str, list[int]] = field(default_factory=lambda: {"detections": [], "masks": [], "visualization": []})
    foreign: dict[str, int] = field(default_factory=lambda: {"detections": 0, "masks": 0, "visualization": 0})
    frame_id_mismatch: dict[str, int] = field(default_factory=lambda: {"detections": 0, "masks": 0, "visualization": 0})
    duplicates: dict[str, int] = field(default_factory=lambda: {"detections": 0, "masks": 0, "visualization": 0})
    misaligned_masks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _ns_text(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def mask_from_message(item, height: int, width: int) -> np.ndarray:
    """Full-frame bool mask of an ``InstanceMask`` (its ROI and the cropped mono8 image)."""
    m = item.mask
    crop = np.frombuffer(m.data, np.uint8).reshape(m.height, m.step)[:, : m.width] > 127
    out = np.zeros((height, width), bool)
    r = item.roi
    out[r.y_offset:r.y_offset + r.height, r.x_offset:r.x_offset + r.width] = crop[: r.height, : r.width]
    return out


def score_frame(objects: list[tuple[str, dict]], dets, masks, height: int, width: int, iou_threshold: float = 0.5):
    """Greedy matching (by descending score) of a frame's detections to its ground truth by mask
    IoU and class. Returns (number of objects counted for recall, one (score, matched an object,
    matched a counted object, IoU) per detection). Greedy by score, so the matches of the
    detections above any score threshold are the same as if the others did not exist."""
    from pycocotools import mask as mask_utils

    gt = [(name, mask_utils.decode(rle).astype(bool)) for name, rle in objects]
    counted = [bool(g[1].sum() >= MIN_GT_PIXELS) for g in gt]
    dmasks = [mask_from_message(item, height, width) for item in masks.instances] if masks is not None else []
    names = [d.results[0].hypothesis.class_id if d.results else "" for d in dets.detections]
    scores = [float(d.results[0].hypothesis.score) if d.results else 0.0 for d in dets.detections]
    taken = [False] * len(gt)
    out = []
    for j in np.argsort(-np.asarray(scores, float), kind="stable") if scores else []:
        best, best_i = iou_threshold, -1
        for i, (name, g) in enumerate(gt):
            if j >= len(dmasks) or taken[i] or name != names[j]:
                continue
            union = np.logical_or(g, dmasks[j]).sum()
            iou = np.logical_and(g, dmasks[j]).sum() / union if union else 0.0
            if iou >= best:
                best, best_i = iou, i
        if best_i >= 0:
            taken[best_i] = True
        out.append((scores[j], best_i >= 0, best_i >= 0 and counted[best_i], float(best) if best_i >= 0 else 0.0))
    return int(sum(counted)), out


def _match_figures(n_gt: int, dets: list[tuple[float, bool, bool, float]], min_score: float) -> dict:
    kept = [d for d in dets if d[0] >= min_score]
    found = sum(1 for d in kept if d[2])
    matched = sum(1 for d in kept if d[1])
    ious = [d[3] for d in kept if d[2]]
    return {
        "min_score": min_score, "objects": n_gt, "objects_found": found,
        "recall": round(found / n_gt, 3) if n_gt else None,
        "detections": len(kept), "detections_matched": matched,
        "precision": round(matched / len(kept), 3) if kept else None,
        "mean_mask_iou_of_matches": round(float(np.mean(ious)), 3) if ious else None,
    }


def _percentile(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def summarise(stats: StreamStats, *, size: tuple[int, int], rate: float, stream_s: float, model: dict,
              diagnostics: dict, score_ground_truth: bool) -> tuple[dict, list[dict], list[str]]:
    """(summary, per-frame records, problems) of a finished run. ``problems`` lists every check
    that failed (empty: the run is good)."""
    width, height = size
    problems: list[str] = []
    frames_in = len(stats.frames)
    processed_idx = sorted(stats.by_stamp[s] for s, r in stats.received.items()
                           if r.detections is not None and s in stats.by_stamp)
    processed = set(processed_idx)
    frames_processed = len(processed)
    frames_dropped = frames_in - frames_processed  # every stamp that never came back
    if frames_processed + frames_dropped != frames_in or len(processed_idx) != frames_processed:
        problems.append("frame accounting does not add up")
    if frames_processed == 0:
        problems.append("no frame was processed: no detections came back for any published frame")
    for topic in ("detections", "masks", "visualization"):
        if stats.foreign[topic]:
            problems.append(f"{stats.foreign[topic]} {topic} message(s) carry a stamp that was never published")
        if stats.frame_id_mismatch[topic]:
            problems.append(f"{stats.frame_id_mismatch[topic]} {topic} message(s) carry another frame_id than {FRAME_ID!r}")
        if stats.duplicates[topic]:
            problems.append(f"{stats.duplicates[topic]} frame(s) answered twice on {topic}")
    if stats.misaligned_masks:
        problems.append(f"{stats.misaligned_masks} masks message(s) not index-aligned with their detections")

    latencies, per_frame, class_counts = [], [], {}
    n_inst = []
    gt_total = 0
    scored: list[tuple[float, bool, bool, float]] = []
    with_objects = with_objects_processed = with_objects_detected = 0
    for rec in stats.frames:
        r = stats.received.get(rec.stamp_ns)
        n_gt_here = sum(1 for _, rle in rec.objects if rle["area"] >= MIN_GT_PIXELS)
        row = {"index": rec.index, "stamp": _ns_text(rec.stamp_ns), "objects": [name for name, _ in rec.objects],
               "processed": rec.index in processed}
        with_objects += int(n_gt_here > 0)
        if r is not None and r.detections is not None:
            lat = (r.detections_ns - rec.stamp_ns) / 1e6
            latencies.append(lat)
            names = [d.results[0].hypothesis.class_id if d.results else "" for d in r.detections.detections]
            for n in names:
                class_counts[n] = class_counts.get(n, 0) + 1
            n_inst.append(len(names))
            row.update(latency_ms=round(lat, 2), detections=names,
                       scores=[round(float(d.results[0].hypothesis.score), 3) if d.results else 0.0
                               for d in r.detections.detections],
                       masks=len(r.masks.instances) if r.masks is not None else None,
                       visualization=r.visualization)
            if n_gt_here:
                with_objects_processed += 1
                with_objects_detected += int(len(names) > 0)
            if score_ground_truth:
                g, matches = score_frame(rec.objects, r.detections, r.masks, height, width)
                gt_total += g
                scored += matches
                row.update(objects_found=sum(1 for m in matches if m[2]), objects_counted=g)
        per_frame.append(row)

    n_masks = sum(1 for r in stats.received.values() if r.masks is not None)
    n_vis = sum(1 for r in stats.received.values() if r.visualization)
    summary = {
        "frames_in": frames_in,
        "frames_processed": frames_processed,
        "frames_dropped": frames_dropped,
        "latency_ms_p50": _percentile(latencies, 50),
        "latency_ms_p95": _percentile(latencies, 95),
        "instances_per_frame": round(float(np.mean(n_inst)), 3) if n_inst else 0.0,
        "accounting_ok": frames_processed + frames_dropped == frames_in,
        "checks_ok": not problems,
        "problems": problems,
        "latency": "image stamp (publish time) -> detections received by the demo client",
        "latency_ms_mean": round(float(np.mean(latencies)), 1) if latencies else None,
        "latency_ms_max": round(float(np.max(latencies)), 1) if latencies else None,
        "output_rate_hz": round(frames_processed / stream_s, 2) if stream_s > 0 else None,
        "instances_total": int(sum(n_inst)),
        "class_counts": dict(sorted(class_counts.items())),
        "frames_with_objects": with_objects,
        "frames_processed_with_objects": with_objects_processed,
        "frames_processed_with_objects_and_detections": with_objects_detected,
        "outputs_with_input_stamps": {
            "detections": frames_processed, "masks": n_masks, "visualization": n_vis,
            "all_stamps_published": not any(stats.foreign.values()),
            "all_frame_ids_match": not any(stats.frame_id_mismatch.values()),
        },
        "stream": {"topic": CAMERA_TOPIC, "encoding": "bgr8", "frame_id": FRAME_ID, "width": width,
                   "height": height, "rate_hz": rate, "duration_s": round(stream_s, 2),
                   "backgrounds": "skimage.data: " + ", ".join(DEMO_BACKGROUNDS)},
        "model": model,
    }
    node_counts = {k: diagnostics.get(k) for k in ("frames received", "frames processed", "frames dropped",
                                                   "frames rejected", "inference errors")}
    if node_counts["frames received"] is not None:
        received = int(node_counts["frames received"])
        summary["frames_dropped_detail"] = {
            "lost_before_node": frames_in - received,  # best-effort transport
            "dropped_by_node": int(node_counts["frames dropped"] or 0),  # a newer frame replaced it
            "rejected_by_node": int(node_counts["frames rejected"] or 0),
            "inference_errors": int(node_counts["inference errors"] or 0),
            "node_processed_not_received": int(node_counts["frames processed"] or 0) - frames_processed,
        }
    summary["node_diagnostics"] = {k: v for k, v in diagnostics.items() if not k.startswith("_")}
    if score_ground_truth:
        summary["ground_truth"] = {
            "rule": f"mask IoU >= 0.5 and same class; objects with >= {MIN_GT_PIXELS} visible pixels count",
            **_match_figures(gt_total, scored, 0.0),
            "score_at_least_0.5": _match_figures(gt_total, scored, 0.5),
        }
    return summary, per_frame, problems


# =================================================================================================
# running it on ROS
# =================================================================================================
class NodeProcess:
    """The installed ``yolact_node``, started as the launch file starts it; output echoed and logged."""

    def __init__(self, weights: Path, device: str, extra_params: Sequence[str], log_path: Path, echo: bool):
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory

        try:
            prefix = Path(get_package_prefix("yolact_ros"))
            share = Path(get_package_share_directory("yolact_ros"))
        except PackageNotFoundError:
            raise DemoError("the yolact_ros package is not built or not sourced: "
                            "bash scripts/build_ws.sh && source scripts/ros_env.sh") from None
        exe = prefix / "lib" / "yolact_ros" / "yolact_node"
        params = share / "config" / "yolact.yaml"
        for f in (exe, params):
            if not f.is_file():
                raise DemoError(f"{f} not found: rebuild the workspace (bash scripts/build_ws.sh)")
        self.cmd = [str(exe), "--ros-args", "--params-file", str(params),
                    "-p", f"weights:={weights}", "-p", "config:=''", "-p", f"device:={device}",
                    "-p", "image_transport:=raw"]
        for p in extra_params:
            self.cmd += ["-p", p]
        self.cmd += ["-r", f"__node:={NODE_NAME}", "-r", f"__ns:={NAMESPACE}",
                     "-r", f"image:={CAMERA_TOPIC}", "-r", f"image/compressed:={CAMERA_TOPIC}/compressed"]
        self.lines: list[str] = []
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self._echo = echo
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self._log.write(line + "\n")
            self._log.flush()
            if self._echo:
                print(f"  [node] {line}", flush=True)

    def seen(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def tail(self, n: int = 15) -> str:
        return "\n".join(self.lines[-n:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGINT (as Ctrl-C / launch does); SIGKILL after ``timeout``. The exit code, None if killed."""
        code: int | None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                code = None
        else:
            code = self.proc.returncode
        self._reader.join(5)
        self._log.close()
        return code


class _Client:
    """Our side in its own rclpy context: the camera publisher and the output subscribers."""

    def __init__(self, stats: StreamStats, frames_dir: Path, weights: Path):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2DArray

        from yolact_ros.msg import InstanceMaskArray

        self.stats = stats
        self.frames_dir = frames_dir
        self.weights = str(weights)
        from rclpy.signals import SignalHandlerOptions

        self.context = Context()
        # no rclpy signal handlers: Ctrl-C must reach the runner as KeyboardInterrupt, so it
        # stops the node and says "interrupted" instead of finding its context shut down
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(f"yolact_demo_camera_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        # a camera driver publishes best effort (sensor data QoS)
        self.pub = self.node.create_publisher(Image, CAMERA_TOPIC, qos_profile_sensor_data)
        reliable = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)
        self.subs = {
            "detections": self.node.create_subscription(
                Detection2DArray, f"{NAMESPACE}/detections", self._on_detections, reliable),
            "masks": self.node.create_subscription(InstanceMaskArray, f"{NAMESPACE}/masks", self._on_masks, reliable),
            "visualization": self.node.create_subscription(
                Image, f"{NAMESPACE}/visualization", self._on_visualization, QoSProfile(depth=10)),
        }
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.diagnostics: dict = {}
        self.diagnostics_count = 0
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except (ExternalShutdownException, Exception):  # noqa: BLE001 - shutting down
            pass

    # -- callbacks (executor thread) ----------------------------------------------------------------
    def _check(self, topic: str, header) -> Received | None:
        s = stamp_to_ns(header.stamp)
        st = self.stats
        with st.lock:
            st.stamps_seen[topic].append(s)
            if s not in st.by_stamp:
                st.foreign[topic] += 1
                return None
            if header.frame_id != FRAME_ID:
                st.frame_id_mismatch[topic] += 1
            return st.received.setdefault(s, Received())

    def _on_detections(self, msg) -> None:
        now = time.time_ns()
        r = self._check("detections", msg.header)
        if r is None:
            return
        with self.stats.lock:
            if r.detections is not None:
                self.stats.duplicates["detections"] += 1
            r.detections, r.detections_ns = msg, now
            if any(d.header.stamp != msg.header.stamp for d in msg.detections):
                self.stats.foreign["detections"] += 1
            self._check_alignment(r)

    def _on_masks(self, msg) -> None:
        r = self._check("masks", msg.header)
        if r is None:
            return
        with self.stats.lock:
            if r.masks is not None:
                self.stats.duplicates["masks"] += 1
            r.masks = msg
            self._check_alignment(r)

    def _check_alignment(self, r: Received) -> None:
        if r.detections is not None and r.masks is not None:
            ids_d = [d.id for d in r.detections.detections]
            ids_m = [m.id for m in r.masks.instances]
            if ids_d != ids_m:
                self.stats.misaligned_masks += 1

    def _on_visualization(self, msg) -> None:
        r = self._check("visualization", msg.header)
        if r is None:
            return
        from .image_conversion import ImageConversionError, image_to_bgr

        with self.stats.lock:
            if r.visualization:
                self.stats.duplicates["visualization"] += 1
            r.visualization = True
            index = self.stats.by_stamp[stamp_to_ns(msg.header.stamp)]
        try:
            bgr = image_to_bgr(msg)
        except ImageConversionError as exc:
            print(f"[demo] unreadable visualization image: {exc}", file=sys.stderr)
            return
        cv2.imwrite(str(self.frames_dir / f"frame_{index:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])

    def _on_diagnostics(self, msg) -> None:
        for st in msg.status:
            if not st.name.startswith(f"{NODE_NAME}:"):
                continue
            values = {kv.key: kv.value for kv in st.values}
            # another yolact_node in this ROS domain must not be mistaken for ours
            if values.get("input topic") != CAMERA_TOPIC or values.get("weights") != self.weights:
                continue
            values["_message"] = st.message
            self.diagnostics = values
            self.diagnostics_count += 1

    # -- main thread ----------------------------------------------------------------------------------
    def wait_for(self, predicate, timeout: float, node: NodeProcess | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if node is not None and not node.alive():
                return bool(predicate())
            time.sleep(0.05)
        return bool(predicate())

    def matched(self) -> bool:
        return (self.pub.get_subscription_count() > 0
                and all(s.get_publisher_count() > 0 for s in self.subs.values()))

    def publish(self, image: np.ndarray, stamp_ns: int) -> None:
        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import Image

        msg = Image()
        msg.header.stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
        msg.header.frame_id = FRAME_ID
        msg.height, msg.width = image.shape[:2]
        msg.encoding = "bgr8"
        msg.is_bigendian = 0
        msg.step = image.shape[1] * 3
        msg.data = image.tobytes()
        self.pub.publish(msg)

    def close(self) -> None:
        import rclpy

        try:
            self.executor.shutdown(timeout_sec=2.0)
            self._thread.join(5)
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.context)


def _model_info(weights: Path) -> dict:
    """Name, classes and training notes of a checkpoint (read without building the model)."""
    from ..segmenter import resolve_config

    try:
        cfg, (_, meta) = resolve_config(None, weights)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        text = str(exc).strip() or type(exc).__name__
        raise DemoError(f"cannot read the model: {text if str(weights) in text else f'{weights}: {text}'}") from None
    info = {"weights": str(weights), "config": cfg.name, "class_names": list(cfg.class_names),
            "input_size": cfg.max_size, "backbone": cfg.backbone.kind, "file_mb": round(weights.stat().st_size / 2**20, 1)}
    for key, value in meta.items():
        if key != "config_json" and isinstance(value, (str, int, float, bool)):
            info[key] = value
    return info


def _write_video(frames_dir: Path, out: Path, fps: float) -> dict:
    files = sorted(frames_dir.glob("frame_*.jpg"))
    if not files:
        return {"video": None, "video_frames": 0}
    first = cv2.imread(str(files[0]))
    h, w = first.shape[:2]
    writer = None
    # MPEG-4 part 2: the pip OpenCV wheels carry no H.264 encoder (asking for one only prints errors)
    fourcc = "mp4v"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        writer.release()
        return {"video": None, "video_frames": 0, "video_error": "OpenCV cannot write mp4 here"}
    n = 0
    for f in files:
        img = cv2.imread(str(f))
        if img is not None and img.shape[:2] == (h, w):
            writer.write(img)
            n += 1
    writer.release()
    return {"video": out.name, "video_frames": n, "video_fps": round(fps, 2), "video_codec": fourcc}


def _write_preview(frames_dir: Path, out: Path, prefer: list[int], tiles: int = 6) -> str | None:
    """A 3x2 contact sheet of overlays spread over the run (frames with detections first)."""
    files = {int(f.stem.split("_")[1]): f for f in frames_dir.glob("frame_*.jpg")}
    pool = [i for i in prefer if i in files] or sorted(files)
    if not pool:
        return None
    picks = [pool[int(round(k * (len(pool) - 1) / max(tiles - 1, 1)))] for k in range(min(tiles, len(pool)))]
    imgs = [cv2.imread(str(files[i])) for i in dict.fromkeys(picks)]
    imgs = [cv2.resize(im, (480, 360), interpolation=cv2.INTER_AREA) for im in imgs if im is not None]
    while len(imgs) % 3:
        imgs.append(np.zeros_like(imgs[0]))
    rows = [np.hstack(imgs[i:i + 3]) for i in range(0, len(imgs), 3)]
    cv2.imwrite(str(out), np.vstack(rows))
    return out.name


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


def run_demo(weights: Path, out_dir: Path, duration: float = 30.0, rate: float = 15.0,
             size: tuple[int, int] = (640, 480), seed: int = 0, device: str = "auto",
             node_params: Sequence[str] = (), startup_timeout: float = 300.0, echo_node: bool = True) -> dict:
    """Run the demo (see the module docstring); returns the summary. Raises DemoError when the
    demo cannot run; a run whose checks fail returns a summary with ``checks_ok`` false."""
    if not weights.is_file():
        raise DemoError(f"model not found: {weights} (the demo model ships as {DEFAULT_WEIGHTS}; "
                        "pass --weights FILE for another one)")
    if duration <= 0 or rate <= 0:
        raise DemoError(f"--duration and --rate must be > 0 (got {duration}, {rate})")
    try:
        import rclpy  # noqa: F401
        import vision_msgs.msg  # noqa: F401

        import yolact_ros.msg  # noqa: F401
    except ImportError as exc:
        raise DemoError(f"ROS 2 runtime not available ({exc}): bash scripts/build_ws.sh && "
                        "source scripts/ros_env.sh") from None

    out_dir.mkdir(parents=True, exist_ok=True)
    frames_dir = out_dir / "frames"
    frames_dir.mkdir(exist_ok=True)
    for old in list(frames_dir.glob("frame_*.jpg")) + [out_dir / n for n in ("overlay.mp4", "preview.png", "summary.json")]:
        old.unlink(missing_ok=True)  # a re-run must not mix with the previous one

    t_begin = time.monotonic()
    log = lambda text: print(f"[demo {time.monotonic() - t_begin:5.1f}s] {text}", flush=True)  # noqa: E731
    node = NodeProcess(weights.resolve(), device, node_params, out_dir / "node.log", echo_node)
    log("node: " + " ".join(node.cmd))
    client = None
    try:
        model = _model_info(weights.resolve())
        classes = [c for c in model["class_names"] if c in synth.SHAPE_CLASSES]
        score_gt = bool(classes)
        scene = DemoScene(classes or synth.DEFAULT_CLASSES, size=size, rate=rate, seed=seed)
        log(f"model {model['config']} ({', '.join(model['class_names'][:8])}{'...' if len(model['class_names']) > 8 else ''})"
            f"; scene classes: {', '.join(scene.classes)}")

        stats = StreamStats()
        client = _Client(stats, frames_dir, weights.resolve())
        t_start = time.monotonic()
        if not client.wait_for(lambda: node.seen("active:"), startup_timeout, node):
            if not node.alive():
                raise DemoError(f"yolact_node exited with code {node.proc.returncode} before becoming active:\n{node.tail()}")
            raise DemoError(f"yolact_node not active within {startup_timeout:.0f} s:\n{node.tail()}")
        log(f"node active after {time.monotonic() - t_start:.1f} s; waiting for discovery")
        if not client.wait_for(client.matched, 60.0, node):
            raise DemoError("the node's topics never matched ours within 60 s (discovery / ROS_DOMAIN_ID / "
                            "ROS_AUTOMATIC_DISCOVERY_RANGE?)")

        n_frames = max(1, int(round(duration * rate)))
        log(f"streaming {n_frames} frames {size[0]}x{size[1]} bgr8 at {rate:g} Hz on {CAMERA_TOPIC}")
        from pycocotools import mask as mask_utils

        image, objects = scene.frame(0)
        t0 = time.monotonic()
        last_stamp = 0
        for i in range(n_frames):
            slot = t0 + i / rate
            delay = slot - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not node.alive():
                raise DemoError(f"yolact_node died during the stream (exit code {node.proc.returncode}):\n{node.tail()}")
            stamp = max(time.time_ns(), last_stamp + 1)  # ROS time == system time (no sim time)
            last_stamp = stamp
            rles = []
            for obj in objects:
                rle = mask_utils.encode(np.asfortranarray(obj.visible.astype(np.uint8)))
                rles.append((obj.class_name, {"size": rle["size"], "counts": rle["counts"], "area": obj.area}))
            with stats.lock:
                stats.frames.append(FrameRecord(i, stamp, rles, stamp))
                stats.by_stamp[stamp] = i
            client.publish(image, stamp)
            if i + 1 < n_frames:
                image, objects = scene.frame(i + 1)
            if (i + 1) % max(1, int(rate * 5)) == 0:
                with stats.lock:
                    done = sum(1 for r in stats.received.values() if r.detections is not None)
                log(f"  {i + 1}/{n_frames} frames sent, {done} processed")
        stream_s = time.monotonic() - t0

        # drain: until the node is idle (every frame it received is accounted for) and all its
        # answers arrived, judged from a diagnostics message sent after the stream ended
        count_at_end = client.diagnostics_count

        def drained() -> bool:
            d = client.diagnostics
            if client.diagnostics_count < count_at_end + 2 or not d:
                return False
            recv, proc = int(d["frames received"]), int(d["frames processed"])
            idle = recv == proc + int(d["frames dropped"]) + int(d["frames rejected"]) + int(d["inference errors"])
            with stats.lock:
                got = sum(1 for r in stats.received.values() if r.detections is not None)
            return idle and got >= proc

        if not client.wait_for(drained, 60.0, node):
            log("warning: the node did not report idle within 60 s after the stream; "
                "frames without an answer are counted as dropped")
        else:
            log("node idle, all answers received")
        time.sleep(0.3)  # the masks / overlay of the last frame follow its detections
        diagnostics = dict(client.diagnostics)
    finally:
        code = node.stop()
        if client is not None:
            client.close()
    log(f"node stopped with SIGINT, exit code {code}")

    summary, per_frame, problems = summarise(
        stats, size=size, rate=rate, stream_s=stream_s, model=model, diagnostics=diagnostics,
        score_ground_truth=score_gt)
    if code != 0:
        problems.append(f"yolact_node exited with code {code} after SIGINT (expected 0)")
    summary["node_exit_code"] = code
    proc_idx = [row["index"] for row in per_frame if row.get("detections")]
    fps = min(rate, max(1.0, summary["output_rate_hz"] or 1.0))
    summary["outputs"] = {"frames_dir": "frames", "overlay_frames": len(list(frames_dir.glob("frame_*.jpg"))),
                          **_write_video(frames_dir, out_dir / "overlay.mp4", fps),
                          "preview": _write_preview(frames_dir, out_dir / "preview.png", proc_idx),
                          "per_frame": "frames.json", "node_log": "node.log"}
    summary["checks_ok"] = not problems
    summary["problems"] = problems
    log("outputs written")
    with stats.lock:
        seen = {k: [_ns_text(s) for s in v] for k, v in stats.stamps_seen.items()}
    (out_dir / "frames.json").write_text(json.dumps({"frames": per_frame, "stamps_received": seen}, indent=1) + "\n")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _print_summary(s: dict, out_dir: Path) -> None:
    print(f"[demo] frames in {s['frames_in']}, processed {s['frames_processed']}, dropped {s['frames_dropped']} "
          f"(processed + dropped == in: {s['accounting_ok']})")
    print(f"[demo] latency p50 {s['latency_ms_p50']} ms, p95 {s['latency_ms_p95']} ms; output "
          f"{s['output_rate_hz']} Hz; instances/frame {s['instances_per_frame']}; classes {s['class_counts']}")
    gt = s.get("ground_truth")
    if gt:
        hi = gt["score_at_least_0.5"]
        print(f"[demo] against the scene's ground truth (mask IoU >= 0.5, same class): recall {gt['recall']}, "
              f"precision {gt['precision']}, mean mask IoU {gt['mean_mask_iou_of_matches']}; "
              f"detections scoring >= 0.5: recall {hi['recall']}, precision {hi['precision']}")
    print(f"[demo] outputs in {out_dir}/: summary.json, {s['outputs'].get('video') or '(no video)'}, "
          f"{s['outputs'].get('preview') or '(no preview)'}, frames/ ({s['outputs']['overlay_frames']} overlays)")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m yolact_ros.ros.demo",
        description="Run yolact_node on a synthetic camera stream and record what comes out.")
    ap.add_argument("--weights", type=Path, default=None, help=f"model checkpoint (default: {DEFAULT_WEIGHTS})")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of camera stream (default 30)")
    ap.add_argument("--rate", type=float, default=15.0, help="camera frame rate in Hz (default 15)")
    ap.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    ap.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--seed", type=int, default=0, help="scene seed")
    ap.add_argument("--device", default="auto", help="node device: auto | cpu | cuda | cuda:N")
    ap.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                    help="extra node parameter, e.g. --param score_threshold:=0.3 (repeatable)")
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
        summary = run_demo(weights, args.out, duration=args.duration, rate=args.rate, size=(w, h), seed=args.seed,
                           device=args.device, node_params=args.param, startup_timeout=args.startup_timeout,
                           echo_node=not args.quiet_node)
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
