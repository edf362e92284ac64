"""What a segmenter answered to a stream of published frames: bookkeeping, checks, scores (no ROS).

:class:`StreamStats` records every frame as it is published (stamp, ground-truth masks) and
every answer as it arrives (detections, masks, overlay — already taken out of their messages
by the caller), counting what must never happen: a stamp that was never published, another
frame_id, a frame answered twice, masks not index-aligned with their detections.
:func:`summarise` turns a finished record into the figures of the run: a published frame is
*processed* when detections with its stamp came back and *dropped* otherwise, so
``processed + dropped == frames_in`` by construction; latency; instances; and, with ground
truth, recall and precision by mask IoU (:func:`score_frame`).

Stamps are integer nanoseconds; masks are bool [H,W] numpy arrays.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from pycocotools import mask as mask_utils

__all__ = [
    "Answer",
    "Detection",
    "FrameRecord",
    "MIN_GT_PIXELS",
    "NodeCounts",
    "StreamStats",
    "TOPICS",
    "match_figures",
    "ns_text",
    "score_frame",
    "summarise",
]

#: A ground-truth object counts for recall when at least this many of its pixels are visible.
MIN_GT_PIXELS = 300
#: The outputs recorded per frame.
TOPICS = ("detections", "masks", "visualization")


def ns_text(ns: int) -> str:
    """Nanoseconds -> "seconds.nanoseconds" (nine digits), as stamps are written."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


class Detection(NamedTuple):
    """One detection of an answer: its id, class name and score."""

    id: str
    class_name: str
    score: float


@dataclass
class FrameRecord:
    """A published frame: index, stamp and ground truth (class, COCO RLE of the visible mask
    with its ``area`` in pixels)."""

    index: int
    stamp_ns: int
    objects: list[tuple[str, dict]]


@dataclass
class Answer:
    """What came back for one stamp."""

    detections: list[Detection] | None = None  # None: no detections (yet)
    received_ns: int = 0  # system time when the detections arrived
    mask_ids: list[str] | None = None  # None: no masks (yet)
    decode_masks: Callable[[], list[np.ndarray]] | None = None  # -> the masks, full-frame bool [H,W]
    topics: set[str] = field(default_factory=set)  # the TOPICS that answered

    @property
    def visualization(self) -> bool:
        return "visualization" in self.topics


@dataclass(frozen=True)
class NodeCounts:
    """The segmenter's own frame counters (since it started)."""

    received: int
    processed: int
    dropped: int  # replaced by a newer frame before the model was free
    rejected: int
    errors: int

    @property
    def idle(self) -> bool:
        """Every frame it received is accounted for: none is waiting or in the model."""
        return self.received == self.processed + self.dropped + self.rejected + self.errors


def _counters() -> dict[str, int]:
    return dict.fromkeys(TOPICS, 0)


@dataclass
class StreamStats:
    """The record of a stream; safe to fill from a publishing thread and a receiving thread."""

    frame_id: str = ""  # the frame_id every answer must carry
    frames: list[FrameRecord] = field(default_factory=list)
    by_stamp: dict[int, int] = field(default_factory=dict)  # stamp_ns -> frame index
    received: dict[int, Answer] = field(default_factory=dict)
    stamps_seen: dict[str, list[int]] = field(default_factory=lambda: {t: [] for t in TOPICS})
    foreign: dict[str, int] = field(default_factory=_counters)  # answers with a stamp never published
    frame_id_mismatch: dict[str, int] = field(default_factory=_counters)
    duplicates: dict[str, int] = field(default_factory=_counters)  # frames answered twice
    misaligned_masks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- publishing side --------------------------------------------------------------------------
    def add_frame(self, index: int, stamp_ns: int, objects: Iterable[tuple[str, np.ndarray]] = ()) -> None:
        """A frame about to be published, with its ground truth: (class, visible bool mask [H,W])."""
        rles = []
        for name, visible in objects:
            rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
            rles.append((name, {"size": rle["size"], "counts": rle["counts"], "area": int(visible.sum())}))
        with self.lock:
            self.frames.append(FrameRecord(index, stamp_ns, rles))
            self.by_stamp[stamp_ns] = index

    # -- receiving side ---------------------------------------------------------------------------
    def _answer(self, topic: str, stamp_ns: int, frame_id: str) -> Answer | None:
        """The answer of a published stamp that ``topic`` just brought, counting what is wrong
        with it; None for a stamp never published. The lock is held."""
        self.stamps_seen[topic].append(stamp_ns)
        if stamp_ns not in self.by_stamp:
            self.foreign[topic] += 1
            return None
        if frame_id != self.frame_id:
            self.frame_id_mismatch[topic] += 1
        r = self.received.setdefault(stamp_ns, Answer())
        if topic in r.topics:
            self.duplicates[topic] += 1
        r.topics.add(topic)
        return r

    def _check_alignment(self, r: Answer) -> None:
        if r.detections is not None and r.mask_ids is not None and [d.id for d in r.detections] != r.mask_ids:
            self.misaligned_masks += 1

    def on_detections(
        self,
        stamp_ns: int,
        frame_id: str,
        received_ns: int,
        detections: Sequence[Detection],
        items_carry_stamp: bool = True,
    ) -> None:
        """Detections arrived; ``items_carry_stamp``: every detection has the array's stamp."""
        with self.lock:
            r = self._answer("detections", stamp_ns, frame_id)
            if r is not None:
                r.detections, r.received_ns = list(detections), received_ns
                self.foreign["detections"] += int(not items_carry_stamp)
                self._check_alignment(r)

    def on_masks(
        self, stamp_ns: int, frame_id: str, ids: Sequence[str], decode: Callable[[], list[np.ndarray]]
    ) -> None:
        """Masks arrived: their ids, and how to decode them (later, when scoring)."""
        with self.lock:
            r = self._answer("masks", stamp_ns, frame_id)
            if r is not None:
                r.mask_ids, r.decode_masks = list(ids), decode
                self._check_alignment(r)

    def on_visualization(self, stamp_ns: int, frame_id: str) -> int | None:
        """An overlay arrived; the index of its frame, None when the stamp was never published."""
        with self.lock:
            r = self._answer("visualization", stamp_ns, frame_id)
            return None if r is None else self.by_stamp[stamp_ns]

    def processed(self) -> int:
        """How many published frames have their detections back."""
        with self.lock:
            return sum(1 for r in self.received.values() if r.detections is not None)

    def stamps_received(self) -> dict[str, list[str]]:
        """Every stamp received, per topic, as text."""
        with self.lock:
            return {k: [ns_text(s) for s in v] for k, v in self.stamps_seen.items()}


# =================================================================================================
# scoring against ground truth
# =================================================================================================
def score_frame(
    objects: list[tuple[str, dict]],
    detections: Sequence[Detection],
    masks: Sequence[np.ndarray],
    iou_threshold: float = 0.5,
) -> tuple[int, list[tuple[float, bool, bool, float]]]:
    """Greedy matching (by descending score) of a frame's detections to its ground truth by mask
    IoU and class; ``masks[j]`` is the full-frame mask of ``detections[j]``. Returns (number of
    objects counted for recall, one (score, matched an object, matched a counted object, IoU)
    per detection). Greedy by score, so the matches of the detections above any score threshold
    are the same as if the others did not exist."""
    gt = [(name, mask_utils.decode(rle).astype(bool)) for name, rle in objects]
    counted = [bool(g.sum() >= MIN_GT_PIXELS) for _, g in gt]
    scores = [float(d.score) for d in detections]
    taken = [False] * len(gt)
    out = []
    for j in np.argsort(-np.asarray(scores, float), kind="stable") if scores else []:
        best, best_i = iou_threshold, -1
        for i, (name, g) in enumerate(gt):
            if j >= len(masks) or taken[i] or name != detections[j].class_name:
                continue
            union = np.logical_or(g, masks[j]).sum()
            iou = np.logical_and(g, masks[j]).sum() / union if union else 0.0
            if iou >= best:
                best, best_i = iou, i
        if best_i >= 0:
            taken[best_i] = True
        out.append((scores[j], best_i >= 0, best_i >= 0 and counted[best_i], float(best) if best_i >= 0 else 0.0))
    return int(sum(counted)), out


def match_figures(n_gt: int, dets: list[tuple[float, bool, bool, float]], min_score: float) -> dict:
    """Recall, precision and mean IoU of the matches (from :func:`score_frame`) scoring >= min_score."""
    kept = [d for d in dets if d[0] >= min_score]
    found = sum(1 for d in kept if d[2])
    matched = sum(1 for d in kept if d[1])
    ious = [d[3] for d in kept if d[2]]
    return {
        "min_score": min_score,
        "objects": n_gt,
        "objects_found": found,
        "recall": round(found / n_gt, 3) if n_gt else None,
        "detections": len(kept),
        "detections_matched": matched,
        "precision": round(matched / len(kept), 3) if kept else None,
        "mean_mask_iou_of_matches": round(float(np.mean(ious)), 3) if ious else None,
    }


# =================================================================================================
# the summary of a finished run
# =================================================================================================
def _percentile(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def _problems(stats: StreamStats, frames_processed: int) -> list[str]:
    problems = []
    if frames_processed == 0:
        problems.append("no frame was processed: no detections came back for any published frame")
    for topic in TOPICS:
        if stats.foreign[topic]:
            problems.append(f"{stats.foreign[topic]} {topic} message(s) carry a stamp that was never published")
        if stats.frame_id_mismatch[topic]:
            problems.append(
                f"{stats.frame_id_mismatch[topic]} {topic} message(s) carry another frame_id than {stats.frame_id!r}"
            )
        if stats.duplicates[topic]:
            problems.append(f"{stats.duplicates[topic]} frame(s) answered twice on {topic}")
    if stats.misaligned_masks:
        problems.append(f"{stats.misaligned_masks} masks message(s) not index-aligned with their detections")
    return problems


def summarise(
    stats: StreamStats,
    *,
    size: tuple[int, int],
    stream_s: float,
    stream: dict | None = None,
    model: dict | None = None,
    node_counts: NodeCounts | None = None,
    diagnostics: dict | None = None,
    score_ground_truth: bool = False,
) -> tuple[dict, list[dict], list[str]]:
    """(summary, per-frame records, problems) of a finished run. ``problems`` lists every check
    that failed (empty: the run is good). ``size`` is (width, height); ``stream`` (what was
    played), ``model`` and ``diagnostics`` (the segmenter's last report) are copied into the
    summary; ``node_counts`` explain the dropped frames."""
    processed_idx = sorted(
        stats.by_stamp[s] for s, r in stats.received.items() if r.detections is not None and s in stats.by_stamp
    )
    processed = set(processed_idx)
    frames_in, frames_processed = len(stats.frames), len(processed)
    frames_dropped = frames_in - frames_processed  # every stamp that never came back
    problems = _problems(stats, frames_processed)
    if frames_processed + frames_dropped != frames_in or len(processed_idx) != frames_processed:
        problems.insert(0, "frame accounting does not add up")

    latencies, per_frame, n_inst = [], [], []
    class_counts: dict[str, int] = {}
    gt_total = 0
    scored: list[tuple[float, bool, bool, float]] = []
    with_objects = with_objects_processed = with_objects_detected = 0
    for rec in stats.frames:
        r = stats.received.get(rec.stamp_ns)
        n_gt_here = sum(1 for _, rle in rec.objects if rle["area"] >= MIN_GT_PIXELS)
        row = {
            "index": rec.index,
            "stamp": ns_text(rec.stamp_ns),
            "objects": [name for name, _ in rec.objects],
            "processed": rec.index in processed,
        }
        with_objects += int(n_gt_here > 0)
        if r is not None and r.detections is not None:
            lat = (r.received_ns - rec.stamp_ns) / 1e6
            latencies.append(lat)
            names = [d.class_name for d in r.detections]
            for n in names:
                class_counts[n] = class_counts.get(n, 0) + 1
            n_inst.append(len(names))
            row.update(
                latency_ms=round(lat, 2),
                detections=names,
                scores=[round(float(d.score), 3) for d in r.detections],
                masks=len(r.mask_ids) if r.mask_ids is not None else None,
                visualization=r.visualization,
            )
            if n_gt_here:
                with_objects_processed += 1
                with_objects_detected += int(len(names) > 0)
            if score_ground_truth:
                masks = r.decode_masks() if r.decode_masks is not None else []
                g, matches = score_frame(rec.objects, r.detections, masks)
                gt_total += g
                scored += matches
                row.update(objects_found=sum(1 for m in matches if m[2]), objects_counted=g)
        per_frame.append(row)

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
            "detections": frames_processed,
            "masks": sum(1 for r in stats.received.values() if r.mask_ids is not None),
            "visualization": sum(1 for r in stats.received.values() if r.visualization),
            "all_stamps_published": not any(stats.foreign.values()),
            "all_frame_ids_match": not any(stats.frame_id_mismatch.values()),
        },
        "stream": {**(stream or {}), "width": size[0], "height": size[1], "duration_s": round(stream_s, 2)},
        "model": model or {},
    }
    if node_counts is not None:
        summary["frames_dropped_detail"] = {
            "lost_before_node": frames_in - node_counts.received,  # best-effort transport
            "dropped_by_node": node_counts.dropped,  # a newer frame replaced it
            "rejected_by_node": node_counts.rejected,
            "inference_errors": node_counts.errors,
            "node_processed_not_received": node_counts.processed - frames_processed,
        }
    summary["node_diagnostics"] = dict(diagnostics or {})
    if score_ground_truth:
        summary["ground_truth"] = {
            "rule": f"mask IoU >= 0.5 and same class; objects with >= {MIN_GT_PIXELS} visible pixels count",
            **match_figures(gt_total, scored, 0.0),
            "score_at_least_0.5": match_figures(gt_total, scored, 0.5),
        }
    return summary, per_frame, problems
