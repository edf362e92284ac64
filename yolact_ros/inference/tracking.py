"""Persistent instance ids across frames: :class:`Tracker` (no ROS).

What the ROS layer calls, once per processed frame, in frame order::

    tracker = Tracker(max_age=10, min_iou=0.3)      # one per camera stream
    ids = tracker.update(instances)                 # int64 [N], aligned with the instances

An id is an integer >= 1, new ids count up from 1 and are never reused. It follows one object
while the detections of consecutive frames overlap it:

- **assignment**: per class, the tracks and the detections of that class are paired by an
  optimal assignment (:func:`scipy.optimize.linear_sum_assignment`, maximising the summed
  IoU); a pair is accepted at IoU >= ``min_iou``. The tracks and detections left then get a
  second assignment by containment (mask intersection / the smaller mask), accepted at
  >= ``min_containment``: an object being occluded, or coming out from behind another,
  changes its visible area faster than IoU allows. Detections still unpaired may then continue
  an unpaired track of *another* class at IoU >= ``class_change_iou`` (a weak model flips the
  class of one object between frames; None disables this, so an id keeps its class).
  Unpaired detections start new tracks.
- **IoU**: mask IoU (``use_masks=True``), else box IoU (also for a pair where either mask has
  no pixel inside its box, as a weak detection's may). A track's mask is kept as its box crop
  on every ``mask_stride``-th pixel; mask IoU is computed only for pairs whose boxes overlap,
  on the overlap of their crops — cheap however large the image.
- **motion**: each track keeps a smoothed velocity of its box centre (pixels a frame; not
  updated from a box that changed its size by more than 25 %, as occlusion does); its mask
  and box are moved by it to the frame of the comparison, so a moving object that was missed
  for a few frames is still found where it has gone.
- **age**: a track not seen for more than ``max_age`` frames is forgotten; until then an object
  that comes back gets its old id. State is bounded: at most ``max_tracks`` tracks (the least
  recently seen go first), each a box crop.

Images of another size than the previous frame's (a new camera resolution) reset the tracks
(ids still count on). Masks are read inside their boxes (YOLACT crops its masks to the box).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .instances import Instances

__all__ = ["CropMask", "Tracker", "TrackState", "box_iou_np", "crop_intersection", "crop_iou", "mask_iou"]


@dataclass
class CropMask:
    """A mask as its box crop sampled every ``stride`` pixels: ``crop[i, j]`` is the full-frame
    pixel (y0 + i * stride, x0 + j * stride); x0, y0 are multiples of ``stride``."""

    x0: int
    y0: int
    crop: np.ndarray  # bool [h, w]
    stride: int
    area: int

    @staticmethod
    def from_instance(instances: Instances, j: int, box: np.ndarray, stride: int = 1) -> "CropMask":
        """Instance ``j``'s mask read inside ``box`` from its box-sized window (no full frame)."""
        h, w = instances.image_size
        x1, y1, x2, y2 = _box_region(box, w, h, stride)
        return CropMask._of(x1, y1, instances.mask_crop(j, x1, y1, max(x2 - x1, 0), max(y2 - y1, 0)), stride)

    @staticmethod
    def from_mask(mask: np.ndarray, box: np.ndarray | None = None, stride: int = 1) -> "CropMask":
        """From a full-frame bool mask [H,W], read inside ``box`` (x1, y1, x2, y2 pixels) or its own extent."""
        h, w = mask.shape
        if box is None:
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            if rows.size == 0:
                return CropMask(0, 0, np.zeros((0, 0), bool), stride, 0)
            x1, y1, x2, y2 = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
            x1, y1 = x1 - x1 % stride, y1 - y1 % stride
        else:
            x1, y1, x2, y2 = _box_region(box, w, h, stride)
        return CropMask._of(x1, y1, mask[y1:max(y2, y1), x1:max(x2, x1)], stride)

    @staticmethod
    def _of(x0: int, y0: int, region: np.ndarray, stride: int) -> "CropMask":
        """The crop of a mask's ``region`` whose top-left pixel is (x0, y0), on every ``stride``-th pixel."""
        crop = np.ascontiguousarray(region[::stride, ::stride])
        return CropMask(int(x0), int(y0), crop, stride, int(np.count_nonzero(crop)))


def _box_region(box, width: int, height: int, stride: int) -> tuple[int, int, int, int]:
    """Pixel xyxy covering ``box`` inside the image, its top-left corner on the stride grid."""
    x1, y1 = max(int(math.floor(box[0])), 0), max(int(math.floor(box[1])), 0)
    x2, y2 = min(int(math.ceil(box[2])), width), min(int(math.ceil(box[3])), height)
    return x1 - x1 % stride, y1 - y1 % stride, x2, y2


def crop_intersection(a: CropMask, b: CropMask, shift: tuple[int, int] = (0, 0)) -> int:
    """Pixels (samples) two crops of one stride share, ``a`` moved by ``shift`` (dx, dy) pixels
    (rounded to the stride)."""
    s = a.stride
    if b.stride != s:
        raise ValueError(f"crops of different strides ({s}, {b.stride})")
    if a.area == 0 or b.area == 0:
        return 0
    ax, ay = (a.x0 + s * int(round(shift[0] / s))) // s, (a.y0 + s * int(round(shift[1] / s))) // s
    bx, by = b.x0 // s, b.y0 // s
    x1, x2 = max(ax, bx), min(ax + a.crop.shape[1], bx + b.crop.shape[1])
    y1, y2 = max(ay, by), min(ay + a.crop.shape[0], by + b.crop.shape[0])
    if x2 <= x1 or y2 <= y1:
        return 0
    return int(np.count_nonzero(a.crop[y1 - ay:y2 - ay, x1 - ax:x2 - ax] & b.crop[y1 - by:y2 - by, x1 - bx:x2 - bx]))


def crop_iou(a: CropMask, b: CropMask, shift: tuple[int, int] = (0, 0)) -> float:
    """Mask IoU of two crops of one stride, ``a`` moved by ``shift`` (dx, dy) pixels. 0 when
    either is empty, never NaN."""
    inter = crop_intersection(a, b, shift)
    return inter / (a.area + b.area - inter) if inter else 0.0


def mask_iou(masks_a: np.ndarray, masks_b: np.ndarray, stride: int = 1) -> np.ndarray:
    """Mask IoU of every pair of full-frame bool masks [A,H,W] x [B,H,W] -> float64 [A,B]
    (the tracker's computation, on each mask's own extent)."""
    ca = [CropMask.from_mask(m, stride=stride) for m in masks_a]
    cb = [CropMask.from_mask(m, stride=stride) for m in masks_b]
    return np.array([[crop_iou(x, y) for y in cb] for x in ca], np.float64).reshape(len(ca), len(cb))


def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of x1y1x2y2 boxes [A,4] x [B,4] -> float64 [A,B], by
    :func:`yolact_ros.model.boxes.box_iou` (the one box IoU of the project)."""
    import torch

    from ..model.boxes import box_iou

    return box_iou(torch.from_numpy(np.asarray(a, np.float64).reshape(-1, 4)),
                   torch.from_numpy(np.asarray(b, np.float64).reshape(-1, 4))).numpy()


@dataclass
class TrackState:
    """One track: its id and class, its last box and mask, velocity (px/frame), frames since seen."""

    id: int
    class_id: int
    box: np.ndarray  # float64 [4] when last seen
    mask: CropMask | None
    velocity: np.ndarray  # float64 [2]
    misses: int = 0  # frames since it was last seen
    hits: int = 1  # frames it was seen in

    def predicted_shift(self) -> np.ndarray:
        """Where it has moved (dx, dy pixels) by the current frame since it was last seen."""
        return self.velocity * (self.misses + 1)


class Tracker:
    """Ids that persist across frames (module docstring: the method)."""

    def __init__(self, max_age: int = 10, min_iou: float = 0.3, use_masks: bool = True, mask_stride: int = 2,
                 min_containment: float = 0.6, velocity_smoothing: float = 0.5, max_tracks: int = 512,
                 class_change_iou: float | None = None):
        if max_age < 0 or not 0.0 < min_iou <= 1.0 or mask_stride < 1 or max_tracks < 1:
            raise ValueError(f"need max_age >= 0, 0 < min_iou <= 1, mask_stride >= 1, max_tracks >= 1 "
                             f"(got {max_age}, {min_iou}, {mask_stride}, {max_tracks})")
        if not 0.0 <= velocity_smoothing < 1.0:
            raise ValueError(f"velocity_smoothing must be in [0, 1), got {velocity_smoothing}")
        self.max_age = int(max_age)
        self.min_iou = float(min_iou)
        self.min_containment = float(min_containment)
        self.use_masks = bool(use_masks)
        self.mask_stride = int(mask_stride)
        self.velocity_smoothing = float(velocity_smoothing)
        self.max_tracks = int(max_tracks)
        self.class_change_iou = None if class_change_iou is None else float(class_change_iou)
        self.tracks: list[TrackState] = []
        self.next_id = 1
        self._image_size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.tracks)

    def reset(self) -> None:
        """Forget every track (ids keep counting up)."""
        self.tracks = []
        self._image_size = None

    def _pair_scores(self, tracks: list[TrackState], boxes: np.ndarray,
                     crops: list[CropMask | None]) -> tuple[np.ndarray, np.ndarray]:
        """(IoU, containment = intersection / the smaller area) of every track-detection pair."""
        if not tracks or boxes.shape[0] == 0:
            z = np.zeros((len(tracks), boxes.shape[0]))
            return z, z
        shifts = np.array([t.predicted_shift() for t in tracks])
        moved = np.array([t.box for t in tracks]) + np.concatenate([shifts, shifts], axis=1)
        iou = box_iou_np(moved, boxes)
        if not self.use_masks:
            return iou, np.zeros_like(iou)
        m_iou, contain = np.zeros_like(iou), np.zeros_like(iou)
        for i, j in zip(*np.nonzero(iou > 0)):
            a, b = tracks[i].mask, crops[j]
            if a is None or b is None or not a.area or not b.area:
                m_iou[i, j] = iou[i, j]  # no mask pixel inside the box to compare: the boxes decide
                continue
            inter = crop_intersection(a, b, tuple(shifts[i]))
            if inter:
                m_iou[i, j] = inter / (a.area + b.area - inter)
                contain[i, j] = inter / min(a.area, b.area)
        return m_iou, contain

    @staticmethod
    def _assign(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
        from scipy.optimize import linear_sum_assignment

        if score.size == 0:
            return []
        rows, cols = linear_sum_assignment(np.where(score >= threshold, score, 0.0), maximize=True)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if score[r, c] >= threshold]

    def _follow(self, t: TrackState, box: np.ndarray, crop: CropMask | None) -> None:
        """Track ``t`` was found at ``box`` this frame."""
        old_wh, new_wh = t.box[2:] - t.box[:2], box[2:] - box[:2]
        a = self.velocity_smoothing
        if np.all(np.abs(new_wh - old_wh) <= 0.25 * np.maximum(old_wh, 1.0)):
            step = (box[:2] + box[2:]) / 2 - (t.box[:2] + t.box[2:]) / 2
            t.velocity = a * t.velocity + (1 - a) * step / (t.misses + 1)
        else:  # the box changed shape (occlusion, the image border): its centre says little of the motion
            t.velocity = a * t.velocity
        t.box, t.mask, t.misses, t.hits = box.copy(), crop, -1, t.hits + 1

    def _class_changes(self, ids: np.ndarray, boxes: np.ndarray, classes: np.ndarray, crops: list) -> None:
        """Detections left unpaired may continue a track of another class that was not seen this
        frame, when they overlap it by IoU >= ``class_change_iou``: the model changed its mind
        about the class (the track takes the new class)."""
        det = np.flatnonzero(ids == 0)
        trk = [k for k, t in enumerate(self.tracks) if t.misses >= 0]  # not found this frame
        if not len(det) or not trk:
            return
        iou, _ = self._pair_scores([self.tracks[k] for k in trk], boxes[det], [crops[j] for j in det])
        for r, k in self._assign(iou, self.class_change_iou):
            t, j = self.tracks[trk[r]], det[k]
            self._follow(t, boxes[j], crops[j])
            t.class_id = int(classes[j])
            ids[j] = t.id

    def update(self, instances: Instances) -> np.ndarray:
        """The ids (int64 [N], >= 1) of this frame's instances; ages and forgets tracks."""
        n = len(instances)
        size = instances.image_size
        if self._image_size is not None and size != self._image_size:
            self.reset()
        self._image_size = size
        boxes = np.asarray(instances.boxes, np.float64).reshape(n, 4)
        classes = np.asarray(instances.class_ids).reshape(n)
        crops: list[CropMask | None] = [None] * n
        if self.use_masks:
            crops = [CropMask.from_instance(instances, j, boxes[j], self.mask_stride) for j in range(n)]
        ids = np.zeros(n, np.int64)
        for c in np.unique(classes):
            det = np.flatnonzero(classes == c)
            trk = [k for k, t in enumerate(self.tracks) if t.class_id == c]
            iou, contain = self._pair_scores([self.tracks[k] for k in trk], boxes[det], [crops[j] for j in det])
            pairs = self._assign(iou, self.min_iou)
            if self.use_masks and len(pairs) < min(len(trk), len(det)):
                # second chance for the rest: a mask mostly inside the other one (an object
                # being occluded or coming out from behind another changes its area fast)
                rest_r = [r for r in range(len(trk)) if r not in {p[0] for p in pairs}]
                rest_c = [k for k in range(len(det)) if k not in {p[1] for p in pairs}]
                sub = contain[np.ix_(rest_r, rest_c)]
                pairs += [(rest_r[r], rest_c[k]) for r, k in self._assign(sub, self.min_containment)]
            for r, k in pairs:
                t, j = self.tracks[trk[r]], det[k]
                self._follow(t, boxes[j], crops[j])
                ids[j] = t.id
        if self.class_change_iou is not None:
            self._class_changes(ids, boxes, classes, crops)
        for j in np.flatnonzero(ids == 0):
            self.tracks.append(TrackState(self.next_id, int(classes[j]), boxes[j].copy(), crops[j], np.zeros(2), -1))
            ids[j] = self.next_id
            self.next_id += 1
        for t in self.tracks:
            t.misses += 1  # a track seen this frame ends at 0
        self.tracks = [t for t in self.tracks if t.misses <= self.max_age]
        if len(self.tracks) > self.max_tracks:
            self.tracks = sorted(self.tracks, key=lambda t: t.misses)[:self.max_tracks]
        return ids
