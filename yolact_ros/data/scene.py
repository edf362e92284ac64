"""A synthetic camera stream with ground truth: shapes moving over real photos (no ROS).

:class:`DemoScene` renders frame ``i`` of a camera looking at shapes of the training data's
classes (drawn with :mod:`yolact_ros.data.synth`'s generator, so a model trained on that data
knows them) gliding, bouncing and turning over photos bundled with scikit-image, while the
camera slowly pans and zooms. Each frame comes with the visible mask of every object, in paint
order. The demo (:mod:`yolact_ros.ros.demo`) plays it to ``yolact_node``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from . import synth
from .photos import load_photo

__all__ = ["DemoScene", "SceneObject", "SCENE_PHOTOS", "load_scene_photos"]

#: Colour photos bundled with scikit-image, large enough for a camera to pan over.
SCENE_PHOTOS: tuple[str, ...] = ("coffee", "astronaut", "rocket", "chelsea", "motorcycle_left")


@dataclass
class SceneObject:
    """One object of a frame: its class, the mask of its visible pixels and its identity.

    ``object_id`` is the same for one moving shape in every frame it is seen in and differs
    between shapes (also across segments): the ground truth of tracking. -1 when unknown.
    """

    class_name: str
    visible: np.ndarray  # bool [H,W]
    object_id: int = -1

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


#: object ids of segment k are k * _IDS_PER_SEGMENT + the shape's index in it
_IDS_PER_SEGMENT = 1000


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
    glide, bounce at the borders (partly leaving the frame) and turn. ``size`` is (width, height).
    """

    def __init__(
        self,
        classes: Sequence[str],
        size: tuple[int, int] = (640, 480),
        rate: float = 15.0,
        seed: int = 0,
        segment_s: float = 10.0,
        objects: tuple[int, int] = (3, 5),
    ):
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
        self.photos = load_scene_photos()
        self._segments: dict[int, tuple[np.ndarray, dict, list[_Mover]]] = {}
        # sensor noise: a small bank of fixed patterns (drawing fresh noise per frame costs more
        # than the rest of the frame)
        rng = np.random.default_rng([self.seed, 7])
        self._noise = [
            rng.normal(0.0, 2.5, size=(self.height, self.width, 3)).round().astype(np.int16) for _ in range(6)
        ]

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
            cam = {
                "z": (z0 * full_w, z1 * full_w),
                "a": rng.random(2),
                "b": rng.random(2),
                "tint": rng.uniform(0.85, 1.15, size=3).astype(np.float32),
            }
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
                movers.append(
                    _Mover(
                        kind=str(kind),
                        radius=r,
                        shape_seed=int(rng.integers(2**31)),
                        texture=synth.random_texture(rng, s, s).astype(np.float32),
                        alpha=float(rng.uniform(0.88, 1.0)),
                        start=(rng.uniform(r, self.width - r), rng.uniform(r, self.height - r)),
                        velocity=(speed * math.cos(heading), speed * math.sin(heading)),
                        spin=float(rng.uniform(-0.6, 0.6)),
                    )
                )
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
        painted: list[tuple[str, np.ndarray, int]] = []
        for n, m in enumerate(movers):
            cx = _bounce(m.start[0], m.velocity[0], tl, 0.3 * m.radius, w - 0.3 * m.radius)
            cy = _bounce(m.start[1], m.velocity[1], tl, 0.3 * m.radius, h - 0.3 * m.radius)
            outer, hole = synth.shape_polygons(m.kind, np.random.default_rng(m.shape_seed), 0.0, 0.0, m.radius)
            turn = m.spin * tl
            outer = synth.rotate(outer, turn) + (cx, cy)
            hole = synth.rotate(hole, turn) + (cx, cy) if hole is not None else None
            mask = _paint(image, outer, hole, m.texture, cx, cy, m.alpha)
            if mask is None:
                continue
            for _, earlier, _ in painted:
                earlier &= ~mask
            painted.append((m.kind, mask, k * _IDS_PER_SEGMENT + n))
        # camera-ish finish, as the training images have: slight blur and sensor noise
        image = cv2.GaussianBlur(image, (0, 0), 0.6)
        image = cv2.add(image, self._noise[index % len(self._noise)], dtype=cv2.CV_8U)
        objects = [
            SceneObject(kind, mask, oid) for kind, mask, oid in painted if mask.sum() >= synth.MIN_VISIBLE_PIXELS
        ]
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
        m = np.array([[s, 0, cx - s * self.width / 2], [0, s, cy - s * self.height / 2]], dtype=np.float32)
        return cv2.warpAffine(
            photo,
            m,
            (self.width, self.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )


def _paint(
    image: np.ndarray,
    outer: np.ndarray,
    hole: np.ndarray | None,
    texture: np.ndarray,
    cx: float,
    cy: float,
    alpha: float,
) -> np.ndarray | None:
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


def load_scene_photos() -> list[np.ndarray]:
    """The :data:`SCENE_PHOTOS` that load offline, as BGR uint8 [H,W,3]; the training data's
    backgrounds when none does. Not cached: a scene loads them once."""
    photos = []
    for name in SCENE_PHOTOS:
        try:
            photos.append(load_photo(name))
        except Exception:  # noqa: BLE001 - a photo that would need a download: skip it
            continue
    return photos or synth.load_background_photos()
