"""Synthetic COCO-format instance segmentation data: textured shapes over real photos.

``yolact synth --out DIR --n N --seed S`` writes ``DIR/annotations.json`` and
``DIR/images/000000.jpg ...``.  Each image is a random crop of a photo bundled with
scikit-image (no download) with 1..``max_objects`` shapes pasted on it.  The class
of an object is its *shape* only (disc, rectangle, triangle, star, ring); colour,
texture, size, rotation and aspect vary independently, so the colour says nothing
about the class.  Later shapes occlude earlier ones; a placement is retried when it
would hide too much of an existing object, so every visible object is annotated.

Ground truth and pixels agree exactly: each shape is a polygon in continuous pixel
coordinates rasterised by pycocotools, and the image is painted through that very
mask.  Objects that are not occluded are written as their polygon; occluded ones
(and rings, which have a hole) as compressed RLE of the visible pixels — so both
COCO mask formats appear.  Category ids start at 1, as in COCO.

Deterministic: image ``i`` is drawn from ``numpy.random.default_rng([seed, i])``,
so a seed always gives the same files and another seed gives a held-out set.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from .photos import load_photo

log = logging.getLogger(__name__)

#: Every shape class this generator can draw, in category-id order.
SHAPE_CLASSES: tuple[str, ...] = ("disc", "rectangle", "triangle", "star", "ring")
#: Classes used when none are asked for.
DEFAULT_CLASSES: tuple[str, ...] = ("disc", "rectangle", "triangle", "star")
DEFAULT_SIZE: tuple[int, int] = (320, 240)  # (width, height)

#: Real photographs bundled with scikit-image (loaded offline) used as backgrounds.
BACKGROUND_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "motorcycle_left",
    "camera",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "brick",
    "grass",
    "gravel",
    "coins",
    "moon",
    "page",
    "text",
    "clock",
)

MIN_VISIBLE_FRACTION = 0.4  # an occluded object keeps at least this share of its own area
MIN_VISIBLE_PIXELS = 60


@dataclass(frozen=True)
class SynthOptions:
    """How the generated images look.  ``size`` is (width, height) in pixels."""

    size: tuple[int, int] = DEFAULT_SIZE
    classes: tuple[str, ...] = DEFAULT_CLASSES
    min_objects: int = 1
    max_objects: int = 6
    min_radius: float = 0.07  # object radius range, as a fraction of min(width, height)
    max_radius: float = 0.30
    jpeg_quality: int = 92

    def validate(self) -> None:
        w, h = self.size
        if w < 32 or h < 32:
            raise ValueError(f"image size must be at least 32x32, got {w}x{h}")
        unknown = [c for c in self.classes if c not in SHAPE_CLASSES]
        if unknown or not self.classes:
            raise ValueError(f"unknown or no classes {list(self.classes)}; choose from {', '.join(SHAPE_CLASSES)}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"duplicate classes in {list(self.classes)}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if not 0 < self.min_radius <= self.max_radius:
            raise ValueError(f"need 0 < min_radius <= max_radius, got {self.min_radius}, {self.max_radius}")


# -- backgrounds --------------------------------------------------------------------------------
_PHOTO_CACHE: dict[str, np.ndarray] = {}


def load_background_photos() -> list[np.ndarray]:
    """The bundled skimage photos as BGR uint8 arrays (those that fail to load are skipped)."""
    photos = []
    for name in BACKGROUND_PHOTOS:
        if name not in _PHOTO_CACHE:
            try:
                _PHOTO_CACHE[name] = load_photo(name)
            except Exception as exc:  # noqa: BLE001 - a photo that would need a download (any error): skip it
                log.debug("skimage.data.%s unavailable: %s", name, exc)
                continue
        photos.append(_PHOTO_CACHE[name])
    if not photos:
        raise RuntimeError("no scikit-image photo could be loaded for the backgrounds (is scikit-image installed?)")
    return photos


def random_background(rng: np.random.Generator, photos: Sequence[np.ndarray], width: int, height: int) -> np.ndarray:
    """A random crop (random scale, flip and tint) of one photo, resized to width x height."""
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.35, 1.0)
    cw = max(16, int(pw * scale))
    ch = max(16, min(ph, int(cw * height / width)))
    cw = min(pw, cw)
    x0 = int(rng.integers(0, pw - cw + 1))
    y0 = int(rng.integers(0, ph - ch + 1))
    crop = photo[y0 : y0 + ch, x0 : x0 + cw]
    bg = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if cw > width else cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        bg = bg[:, ::-1]
    tint = rng.uniform(0.75, 1.2, size=3)
    return np.clip(bg.astype(np.float32) * tint, 0, 255)


# -- shapes -------------------------------------------------------------------------------------
def rotate(points: np.ndarray, angle: float) -> np.ndarray:
    """Points [M,2] (x, y) turned by ``angle`` radians about the origin: x' = x cos - y sin, y' = x sin + y cos."""
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def shape_polygons(
    kind: str, rng: np.random.Generator, cx: float, cy: float, r: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """(outer polygon [M,2], hole polygon or None) of a shape of radius ~r centred at (cx, cy)."""
    angle = rng.uniform(0, 2 * math.pi)
    if kind in ("disc", "ring"):
        t = np.linspace(0, 2 * math.pi, 72, endpoint=False)
        aspect = rng.uniform(0.8, 1.0) if kind == "disc" else rng.uniform(0.9, 1.0)
        unit = np.stack([np.cos(t), np.sin(t) * aspect], 1)
        outer = rotate(unit * r, angle)
        hole = rotate(unit * r * rng.uniform(0.45, 0.65), angle) if kind == "ring" else None
        return outer + (cx, cy), (hole + (cx, cy)) if hole is not None else None
    if kind == "rectangle":
        aspect = math.exp(rng.uniform(math.log(0.45), math.log(1.0)))
        unit = np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]], dtype=np.float64)
        return rotate(unit * r * 0.9, angle) + (cx, cy), None
    if kind == "triangle":
        base = np.array([0.0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.25, 0.25, size=3)
        unit = np.stack([np.cos(base), np.sin(base)], 1) * rng.uniform(0.85, 1.1, size=(3, 1))
        return rotate(unit * r * 1.1, angle) + (cx, cy), None
    if kind == "star":
        points = int(rng.integers(5, 7))
        inner = rng.uniform(0.38, 0.55)
        t = np.arange(2 * points) * math.pi / points
        radius = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
        unit = np.stack([np.cos(t) * radius, np.sin(t) * radius], 1)
        return rotate(unit * r * 1.1, angle) + (cx, cy), None
    raise ValueError(f"unknown shape {kind!r}")


def _round2(points: np.ndarray) -> np.ndarray:
    return np.array([round(float(v), 2) for v in points.reshape(-1)]).reshape(points.shape)


def rasterize(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """Polygon [M,2] in continuous pixel coordinates -> bool [H,W], exactly as pycocotools decodes it."""
    rle = mask_utils.merge(mask_utils.frPyObjects([polygon.reshape(-1).tolist()], height, width))
    return mask_utils.decode(rle).astype(bool)


# -- textures -----------------------------------------------------------------------------------
def _random_colour(rng: np.random.Generator) -> np.ndarray:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(40, 256), rng.integers(50, 256)]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def random_texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A float32 [H,W,3] BGR fill: solid, gradient, stripes, checker or blotches, with shading."""
    a, b = _random_colour(rng), _random_colour(rng)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = int(rng.integers(5))
    if kind == 0:  # solid
        w = np.zeros((height, width), np.float32)
    elif kind == 1:  # linear gradient
        ang = rng.uniform(0, 2 * math.pi)
        proj = xx * math.cos(ang) + yy * math.sin(ang)
        w = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
    elif kind == 2:  # stripes
        ang = rng.uniform(0, math.pi)
        period = rng.uniform(4, 18)
        w = 0.5 + 0.5 * np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * 2 * math.pi / period)
    elif kind == 3:  # checker
        cell = int(rng.integers(4, 14))
        w = (((xx // cell) + (yy // cell)) % 2).astype(np.float32)
    else:  # smooth blotches
        low = rng.random((max(2, height // 24), max(2, width // 24))).astype(np.float32)
        w = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    tex = a[None, None] * (1 - w[..., None]) + b[None, None] * w[..., None]
    # directional shading, as a light from one side
    ang = rng.uniform(0, 2 * math.pi)
    shade = (xx * math.cos(ang) + yy * math.sin(ang)) / max(width, height)
    shade = 1.0 + rng.uniform(0.0, 0.5) * (shade - shade.mean())
    return tex * shade[..., None]


# -- one image ----------------------------------------------------------------------------------
@dataclass
class _Object:
    category: int  # index into options.classes
    full: np.ndarray  # bool [H,W]: the whole shape (inside the frame)
    visible: np.ndarray  # bool [H,W]: what is not hidden by later objects
    polygon: np.ndarray | None  # the exact outline, when the shape has no hole


def render_image(
    rng: np.random.Generator, photos: Sequence[np.ndarray], options: SynthOptions
) -> tuple[np.ndarray, list[_Object]]:
    """One BGR uint8 image and its objects (visible masks, in paint order)."""
    width, height = options.size
    image = random_background(rng, photos, width, height)
    wanted = int(rng.integers(options.min_objects, options.max_objects + 1))
    objects: list[_Object] = []
    base = min(width, height)
    for _ in range(wanted):
        for _attempt in range(25):
            kind_index = int(rng.integers(len(options.classes)))
            kind = options.classes[kind_index]
            r = base * math.exp(rng.uniform(math.log(options.min_radius), math.log(options.max_radius)))
            # the centre may sit a little outside the frame: truncated objects, as in real data
            cx = rng.uniform(-0.15 * r, width + 0.15 * r)
            cy = rng.uniform(-0.15 * r, height + 0.15 * r)
            outer, hole = shape_polygons(kind, rng, cx, cy, r)
            outer = _round2(outer)  # what the JSON stores, so the pixels match the annotation exactly
            full = rasterize(outer, width, height)
            if hole is not None:
                full &= ~rasterize(hole, width, height)
            if full.sum() < MIN_VISIBLE_PIXELS * 2:
                continue
            if all(
                (o.visible & ~full).sum() >= max(MIN_VISIBLE_FRACTION * o.full.sum(), MIN_VISIBLE_PIXELS)
                for o in objects
            ):
                break
        else:
            continue  # could not place this object without hiding another one
        texture = random_texture(rng, width, height)
        alpha = rng.uniform(0.85, 1.0)  # a touch of translucency keeps the background's grain
        image[full] = alpha * texture[full] + (1 - alpha) * image[full]
        for o in objects:
            o.visible &= ~full
        objects.append(_Object(kind_index, full, full.copy(), outer if hole is None else None))
    # camera-ish finish: slight blur and sensor noise
    sigma = rng.uniform(0.3, 0.9)
    image = cv2.GaussianBlur(image, (0, 0), sigma)
    image += rng.normal(0, rng.uniform(1.0, 5.0), size=image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), objects


def _annotation(obj: _Object, ann_id: int, image_id: int, category_id: int, width: int, height: int) -> dict:
    polygon = obj.polygon
    in_frame = (
        polygon is not None
        and bool((obj.visible == obj.full).all())  # unoccluded
        and bool(
            (polygon[:, 0] >= 0).all()
            and (polygon[:, 0] <= width).all()
            and (polygon[:, 1] >= 0).all()
            and (polygon[:, 1] <= height).all()
        )
    )
    rle = mask_utils.encode(np.asfortranarray(obj.visible.astype(np.uint8)))
    if in_frame:
        assert polygon is not None  # in_frame implies a polygon
        segmentation: list | dict = [[float(v) for v in polygon.reshape(-1)]]
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    else:
        segmentation = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": segmentation,
        "area": float(mask_utils.area(rle)),
        "bbox": [x, y, w, h],
        "iscrowd": 0,
    }


def make_synthetic_dataset(
    out_dir: "str | Path",
    n: int,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    classes: Sequence[str] | None = None,
    options: SynthOptions | None = None,
    progress: bool = False,
) -> Path:
    """Write ``n`` images to ``out_dir/images/`` and ``out_dir/annotations.json``; returns the JSON's path.

    ``size`` is (width, height); ``classes`` a subset of :data:`SHAPE_CLASSES`
    (default :data:`DEFAULT_CLASSES`).  ``options`` overrides both when given.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    if options is None:
        options = SynthOptions(
            size=(int(size[0]), int(size[1])), classes=tuple(classes) if classes else DEFAULT_CLASSES
        )
    options.validate()
    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    photos = load_background_photos()
    width, height = options.size
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(options.classes)]
    images: list[dict] = []
    annotations: list[dict] = []
    indices = range(int(n))
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="synth", unit="img")
    for i in indices:
        rng = np.random.default_rng([int(seed), i])
        image, objects = render_image(rng, photos, options)
        file_name = f"{i:06d}.jpg"
        if not cv2.imwrite(str(images_dir / file_name), image, [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality]):
            raise OSError(f"could not write {images_dir / file_name}")
        image_id = i + 1
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for obj in objects:
            if obj.visible.sum() == 0:
                continue
            annotations.append(_annotation(obj, len(annotations) + 1, image_id, obj.category + 1, width, height))
    dataset = {
        "info": {
            "description": "yolact_ros synthetic shapes over scikit-image photos",
            "seed": int(seed),
            "generator": "yolact_ros.data.synth",
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    ann_path = out / "annotations.json"
    ann_path.write_text(json.dumps(dataset))
    return ann_path
