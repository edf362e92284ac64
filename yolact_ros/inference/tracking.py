"""Persistent instance ids across frames: :class:`Tracker` (no ROS).

What the ROS layer calls, once per processed frame, in frame order::

    tracker = Tracker(max_age=10, min_iou=0.3)      # one per camera stream
    ids = tracker.update(instances)                 # int64 [N], aligned with the instances

An id is an integer >= 1, new ids count up from 1 and are never reused. It follows one object
while the detections of consecutive frames overlap it. Each frame, the tracks and the
detections are paired in three stages, each an optimal assignment
(:func:`scipy.optimize.linear_sum_assignment`, maximising the summed score) among the tracks
and detections the stages before left unpaired:

1. **mask IoU**: a pair of one class is accepted at IoU >= ``min_iou``. With
   ``class_change_iou`` set, a pair of two classes is accepted at IoU >= ``class_change_iou``
   and competes in the same assignment, its score lowered by ``class_change_margin`` (a weak
   model flips the class of one object between frames: the track continues and takes the
   detection's class, also when a detection of its own class overlaps it clearly less, as a
   duplicate detection may; at about equal overlap its own class wins). None (the default):
   an id keeps its class, and a detection of another class is another object.
2. **containment** (mask intersection / the smaller mask) >= ``min_containment``, one class
   (ties, a mask inside two others, go to the better IoU): an object being occluded, or coming
   out from behind another, changes its visible area faster than IoU allows.
3. **box IoU** >= ``min_box_iou`` (None: no third stage) of the track's predicted box with the
   detection's box, one class (any class with ``class_change_iou`` set): the last chance for an
   object whose mask changed too much (partly hidden, split, badly segmented) or that was missed
   for a few frames and moved on.

Detections left unpaired start new tracks.

- **IoU**: mask IoU (``use_masks=True``), else box IoU (also for a pair where either mask has
  no pixel inside its box, as a weak detection's may). A track's mask is kept as its box crop
  on every ``mask_stride``-th pixel; mask IoU is computed only for pairs whose boxes overlap
  (and, without ``class_change_iou``, of one class), on the overlap of their crops — cheap
  however large the image. Box IoU is :func:`box_iou_np` (the project's one box IoU), one
  call for all tracks x detections, made only in a frame that needs it (stage 3 with
  overlapping boxes left, an empty mask, ``use_masks=False``).
- **motion**: each track keeps a smoothed velocity of its box centre (pixels a frame,
  exponential smoothing by ``velocity_smoothing``; a box that changed its width or height by
  more than 25 %, as occlusion and the image border do, only decays it); its mask and box are
  moved by it to the frame of the comparison, so a moving object that was missed for a few
  frames is still found where it has gone.
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

#: Frames a track survives without a match: an object hidden for fewer frames keeps its id.
MAX_AGE = 10

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
    def from_instance(instances: Instances, j: int, box, stride: int = 1) -> "CropMask":
        """Instance ``j``'s mask inside ``box`` (x1, y1, x2, y2), sampled straight from its mask
        window (no full frame, no copy of the region): the samples of the box region that lie
        inside the window — outside it the mask is False — on the stride grid of the image."""
        h, w = instances.image_size
        s = stride
        x1, y1, x2, y2 = _box_region(box, w, h, s)
        x0, y0 = (int(v) for v in instances.mask_origins[j])
        win = instances.mask_windows[j]
        if x1 < x0:  # the first sample column inside the window
            x1 += -(-(x0 - x1) // s) * s
        if y1 < y0:
            y1 += -(-(y0 - y1) // s) * s
        x2, y2 = min(x2, x0 + win.shape[1]), min(y2, y0 + win.shape[0])
        if x2 <= x1 or y2 <= y1:
            return CropMask(x1, y1, np.zeros((0, 0), bool), s, 0)
        crop = win[y1 - y0 : y2 - y0 : s, x1 - x0 : x2 - x0 : s].copy()
        return CropMask(x1, y1, crop, s, int(np.count_nonzero(crop)))

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
        return CropMask._of(x1, y1, mask[y1 : max(y2, y1), x1 : max(x2, x1)], stride)

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
    return _shared(
        a,
        (a.x0 + s * int(round(shift[0] / s))) // s,
        (a.y0 + s * int(round(shift[1] / s))) // s,
        b,
        b.x0 // s,
        b.y0 // s,
    )


def _shared(a: CropMask, ax: int, ay: int, b: CropMask, bx: int, by: int) -> int:
    """Samples two crops share, their corners at (ax, ay) and (bx, by) in samples of their stride."""
    ah, aw = a.crop.shape
    bh, bw = b.crop.shape
    x1, x2 = max(ax, bx), min(ax + aw, bx + bw)
    y1, y2 = max(ay, by), min(ay + ah, by + bh)
    if x2 <= x1 or y2 <= y1:
        return 0
    return int(
        np.count_nonzero(a.crop[y1 - ay : y2 - ay, x1 - ax : x2 - ax] & b.crop[y1 - by : y2 - by, x1 - bx : x2 - bx])
    )


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

    return box_iou(
        torch.from_numpy(np.asarray(a, np.float64).reshape(-1, 4)),
        torch.from_numpy(np.asarray(b, np.float64).reshape(-1, 4)),
    ).numpy()


class _PairScores:
    """Scores of tracks (their predicted boxes, [T, 4]) x detections (boxes [N, 4])."""

    def __init__(self, moved: np.ndarray, boxes: np.ndarray):
        self.moved, self.boxes = moved, boxes
        # boxes that overlap (box IoU > 0: positive width and height of the intersection)
        a, b = moved[:, None, :], boxes[None, :, :]
        self.overlap = (np.maximum(a[..., 0], b[..., 0]) < np.minimum(a[..., 2], b[..., 2])) & (
            np.maximum(a[..., 1], b[..., 1]) < np.minimum(a[..., 3], b[..., 3])
        )
        self.iou = np.zeros(self.overlap.shape)
        self.contain = np.zeros(self.overlap.shape)
        self._box_iou: np.ndarray | None = None

    def box_iou(self) -> np.ndarray:
        """Box IoU [T, N] (computed on the first call)."""
        if self._box_iou is None:
            t, n = self.overlap.shape
            self._box_iou = box_iou_np(self.moved, self.boxes) if t and n else np.zeros((t, n))
        return self._box_iou


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

    def __init__(
        self,
        max_age: int = MAX_AGE,
        min_iou: float = 0.3,
        use_masks: bool = True,
        mask_stride: int = 2,
        min_containment: float = 0.6,
        velocity_smoothing: float = 0.5,
        max_tracks: int = 512,
        class_change_iou: float | None = None,
        class_change_margin: float = 0.05,
        min_box_iou: float | None = 0.1,
    ):
        if max_age < 0 or not 0.0 < min_iou <= 1.0 or mask_stride < 1 or max_tracks < 1:
            raise ValueError(
                f"need max_age >= 0, 0 < min_iou <= 1, mask_stride >= 1, max_tracks >= 1 "
                f"(got {max_age}, {min_iou}, {mask_stride}, {max_tracks})"
            )
        if not 0.0 < min_containment <= 1.0:
            raise ValueError(f"min_containment must be in (0, 1], got {min_containment}")
        if not 0.0 <= class_change_margin < 1.0:
            raise ValueError(f"class_change_margin must be in [0, 1), got {class_change_margin}")
        if not 0.0 <= velocity_smoothing < 1.0:
            raise ValueError(f"velocity_smoothing must be in [0, 1), got {velocity_smoothing}")
        for name, v in (("class_change_iou", class_change_iou), ("min_box_iou", min_box_iou)):
            if v is not None and not 0.0 < v <= 1.0:
                raise ValueError(f"{name} must be None or in (0, 1], got {v}")
        self.max_age = int(max_age)
        self.min_iou = float(min_iou)
        self.min_containment = float(min_containment)
        self.use_masks = bool(use_masks)
        self.mask_stride = int(mask_stride)
        self.velocity_smoothing = float(velocity_smoothing)
        self.max_tracks = int(max_tracks)
        self.class_change_iou = None if class_change_iou is None else float(class_change_iou)
        self.class_change_margin = float(class_change_margin)
        self.min_box_iou = None if min_box_iou is None else float(min_box_iou)
        self.tracks: list[TrackState] = []
        self.next_id = 1
        self._image_size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.tracks)

    def reset(self) -> None:
        """Forget every track (ids keep counting up)."""
        self.tracks = []
        self._image_size = None

    def update(self, instances: Instances) -> np.ndarray:
        """The ids (int64 [N], >= 1) of this frame's instances; ages and forgets tracks."""
        n = len(instances)
        size = instances.image_size
        if self._image_size is not None and size != self._image_size:
            self.reset()
        self._image_size = size
        boxes = np.asarray(instances.boxes, np.float64).reshape(n, 4)
        classes = np.asarray(instances.class_ids).reshape(n).astype(np.int64)
        crops: list[CropMask | None] = [None] * n
        if self.use_masks:
            crops = [CropMask.from_instance(instances, j, boxes[j], self.mask_stride) for j in range(n)]
        same = np.array([t.class_id for t in self.tracks], np.int64)[:, None] == classes[None, :]
        crossing = self.class_change_iou is not None
        scores = self._pair_scores(boxes, crops, None if crossing else same)
        iou = scores.iou
        if crossing:
            ok = np.where(same, iou >= self.min_iou, iou >= self.class_change_iou)
            # a class change must overlap clearly better than a detection of the track's class
            pairs = self._assign(np.where(same, iou, np.maximum(iou - self.class_change_margin, 1e-9)), ok)
        else:
            ok = same & (iou >= self.min_iou)
            pairs = self._assign(iou, ok)
        free_t, free_d = np.ones(len(self.tracks), bool), np.ones(n, bool)
        for r, j in pairs:
            free_t[r] = free_d[j] = False
        if self.use_masks and free_t.any() and free_d.any():
            # ties (a mask inside two others) go to the better IoU
            ok = same & (scores.contain >= self.min_containment) & free_t[:, None] & free_d[None, :]
            for r, j in self._assign(scores.contain + 1e-6 * iou, ok):
                pairs.append((r, j))
                free_t[r] = free_d[j] = False
        if self.min_box_iou is not None and free_t.any() and free_d.any():
            ok = scores.overlap & free_t[:, None] & free_d[None, :]
            if not crossing:
                ok &= same
            if ok.any():  # box IoU > 0 needs overlapping boxes
                box_iou = scores.box_iou()
                pairs += self._assign(box_iou, ok & (box_iou >= self.min_box_iou))
        ids = np.zeros(n, np.int64)
        for r, j in pairs:
            t = self.tracks[r]
            self._follow(t, boxes[j], crops[j])
            t.class_id = int(classes[j])
            ids[j] = t.id
        for j in np.flatnonzero(ids == 0).tolist():
            self.tracks.append(TrackState(self.next_id, int(classes[j]), boxes[j].copy(), crops[j], np.zeros(2), -1))
            ids[j] = self.next_id
            self.next_id += 1
        for t in self.tracks:
            t.misses += 1  # a track seen this frame ends at 0
        self.tracks = [t for t in self.tracks if t.misses <= self.max_age]
        if len(self.tracks) > self.max_tracks:
            self.tracks = sorted(self.tracks, key=lambda t: t.misses)[: self.max_tracks]
        return ids

    def _pair_scores(
        self, boxes: np.ndarray, crops: list[CropMask | None], wanted: np.ndarray | None = None
    ) -> "_PairScores":
        """Every track, moved by its predicted shift, against every detection ([T, N] each):
        whether the boxes overlap, IoU, containment (intersection / the smaller area) and, on
        demand, box IoU (:func:`box_iou_np`, one call). Mask IoU only for the pairs whose
        boxes overlap (and that ``wanted`` allows, bool [T, N]), on the overlap of their crops."""
        nt = len(self.tracks)
        s = self.mask_stride
        moved, geo = [], []
        for t in self.tracks:
            dx, dy = t.predicted_shift().tolist()
            x1, y1, x2, y2 = t.box.tolist()
            moved.append((x1 + dx, y1 + dy, x2 + dx, y2 + dy))
            m = t.mask  # its crop's corner in samples, moved by the shift rounded to the stride
            geo.append(
                None
                if m is None or not m.area
                else ((m.x0 + s * int(round(dx / s))) // s, (m.y0 + s * int(round(dy / s))) // s, m)
            )
        out = _PairScores(np.array(moved, np.float64).reshape(nt, 4), boxes)
        if not self.use_masks:
            out.iou = out.box_iou()
            return out
        todo = out.overlap if wanted is None else out.overlap & wanted
        dgeo = [None if b is None or not b.area else (b.x0 // s, b.y0 // s, b) for b in crops]
        iou, contain = out.iou, out.contain
        for r, k in zip(*(v.tolist() for v in np.nonzero(todo))):
            ga, gb = geo[r], dgeo[k]
            if ga is None or gb is None:
                iou[r, k] = out.box_iou()[r, k]  # no mask pixel inside the box to compare: the boxes decide
                continue
            ax, ay, a = ga
            bx, by, b = gb
            if a.stride != s or b.stride != s:
                raise ValueError(f"crops of different strides ({a.stride}, {b.stride}), the tracker's is {s}")
            inter = _shared(a, ax, ay, b, bx, by)
            if inter:
                iou[r, k] = inter / (a.area + b.area - inter)
                contain[r, k] = inter / min(a.area, b.area)
        return out

    @staticmethod
    def _assign(score: np.ndarray, ok: np.ndarray) -> list[tuple[int, int]]:
        """The allowed pairs (``ok``) of an optimal assignment maximising the summed ``score``
        of the allowed pairs."""
        if score.size == 0 or not ok.any():
            return []
        if ok.sum(0).max() <= 1 and ok.sum(1).max() <= 1:
            # at most one allowed pair per row and column: all of them are the optimum
            return [(r, c) for r, c in zip(*(v.tolist() for v in np.nonzero(ok)))]
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(np.where(ok, score, 0.0), maximize=True)
        return [(r, c) for r, c in zip(rows.tolist(), cols.tolist()) if ok[r, c]]

    def _follow(self, t: TrackState, box: np.ndarray, crop: CropMask | None) -> None:
        """Track ``t`` was found at ``box`` this frame."""
        ox1, oy1, ox2, oy2 = t.box.tolist()
        nx1, ny1, nx2, ny2 = box.tolist()
        ow, oh, nw, nh = ox2 - ox1, oy2 - oy1, nx2 - nx1, ny2 - ny1
        a = self.velocity_smoothing
        vx, vy = t.velocity.tolist()
        if abs(nw - ow) <= 0.25 * max(ow, 1.0) and abs(nh - oh) <= 0.25 * max(oh, 1.0):
            k = t.misses + 1  # frames since it was last seen
            sx, sy = (nx1 + nx2) / 2 - (ox1 + ox2) / 2, (ny1 + ny2) / 2 - (oy1 + oy2) / 2
            t.velocity = np.array((a * vx + (1 - a) * sx / k, a * vy + (1 - a) * sy / k))
        else:  # the box changed shape (occlusion, the image border): its centre says little of the motion
            t.velocity = np.array((a * vx, a * vy))
        t.box, t.mask, t.misses, t.hits = box.copy(), crop, -1, t.hits + 1
