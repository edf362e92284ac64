"""A synthetic RGB-D camera with ground truth: solids at known 3D poses in front of a plane (no ROS).

:func:`render_rgbd` ray-casts spheres, axis-aligned boxes and upright cylinders (axis along the
camera's y) in front of a tilted background plane through a known pinhole camera, and returns
an :class:`RGBDFrame`: a BGR uint8 colour image, the depth image in both ROS encodings
(``32FC1`` metres and ``16UC1`` millimetres), the camera, the visible mask of every solid and
each solid's true centre and size. Depth defects of real sensors can be added: holes (0 and
NaN) and flying pixels along silhouettes (depths between the object and what lies behind it).
:func:`random_solids` places solids that do not overlap in the image, each at least a given
number of pixels across. Frames are the optical frame of the camera (x right, y down,
z forward), in metres — those of :mod:`yolact_ros.inference.depth`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..inference.depth import PinholeCamera
from ..inference.instances import Instances

__all__ = ["KINDS", "RGBDFrame", "Solid", "random_solids", "render_rgbd"]

#: The solids :func:`render_rgbd` draws.
KINDS = ("sphere", "box", "cylinder")
_SUPERSAMPLE = 4  # rays a pixel side for the visible extents


@dataclass(frozen=True)
class Solid:
    """A solid at ``centre`` (metres, optical frame) with extents ``size`` (x, y, z): a sphere
    (all three equal: the diameter), an axis-aligned box, or a cylinder with its axis along y
    (size = diameter, height, diameter)."""

    kind: str
    centre: tuple[float, float, float]
    size: tuple[float, float, float]
    colour: tuple[int, int, int] = (40, 160, 220)  # BGR

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if min(self.size) <= 0:
            raise ValueError(f"size must be > 0, got {self.size}")
        if self.kind == "sphere" and not (self.size[0] == self.size[1] == self.size[2]):
            raise ValueError(f"a sphere's size is its diameter three times, got {self.size}")
        if self.kind == "cylinder" and self.size[0] != self.size[2]:
            raise ValueError(f"a cylinder's x and z sizes are its diameter, got {self.size}")


@dataclass
class RGBDFrame:
    """One rendered frame; index i of ``masks``, ``centres``, ``sizes`` is ``solids[i]``.

    - ``image``     uint8 [H,W,3] BGR, at ``camera``'s size
    - ``depth_m``   float32 [h,w] metres (32FC1), 0 or NaN at holes, at ``depth_camera``'s size
    - ``depth_mm``  uint16 [h,w] millimetres (16UC1), 0 at holes
    - ``masks``     bool [N,H,W] visible pixels of each solid (colour resolution)
    - ``centres``, ``sizes`` float64 [N,3] the solids' true centres and extents
    - ``surface_centres`` float64 [N,3] per-axis median of the exact (noise-free, full
      resolution) 3D points of each solid's visible pixels; zeros for a solid not seen
    - ``visible_lo``, ``visible_hi`` float64 [N,3] the extent of each solid's visible surface
      (ray-cast at 4x4 rays a pixel); it is the solid's own extent in x and y for an unoccluded
      box, less for a sphere or cylinder off the optical axis (the camera sees a cap turned
      towards it), and only the front part of it in z; zeros for a solid not seen
    """

    image: np.ndarray
    depth_m: np.ndarray
    depth_mm: np.ndarray
    camera: PinholeCamera
    depth_camera: PinholeCamera
    masks: np.ndarray
    solids: list[Solid]
    centres: np.ndarray
    sizes: np.ndarray
    surface_centres: np.ndarray
    visible_lo: np.ndarray
    visible_hi: np.ndarray

    def instances(self, class_names: tuple[str, ...] = KINDS) -> Instances:
        """The ground truth as :class:`Instances` (score 1, box = the mask's extent, class = kind),
        masks box-sized as the Segmenter returns them (``masks`` still gives the full frames)."""
        n = len(self.solids)
        boxes = np.zeros((n, 4), np.float32)
        windows, origins = [], np.zeros((n, 2), np.int64)
        for i, m in enumerate(self.masks):
            ys, xs = np.nonzero(m)
            if ys.size:
                x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
                boxes[i] = (x1, y1, x2, y2)
                windows.append(m[y1:y2, x1:x2].copy())
                origins[i] = (x1, y1)
            else:
                windows.append(np.zeros((0, 0), bool))
        return Instances(
            boxes=boxes,
            scores=np.ones(n, np.float32),
            class_ids=np.array([class_names.index(s.kind) for s in self.solids], np.int64),
            mask_windows=windows,
            mask_origins=origins,
            image_size=self.masks.shape[1:],
            class_names=tuple(class_names),
        )


def _rays(
    camera: PinholeCamera, u: np.ndarray | None = None, v: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ray directions (dx, dy) [len(v), len(u)] float64 with dz = 1 (a hit at parameter t has
    depth z = t) through pixel coordinates u (columns) and v (rows), every pixel by default."""
    u = np.arange(camera.width, dtype=np.float64) if u is None else np.asarray(u, np.float64)
    v = np.arange(camera.height, dtype=np.float64) if v is None else np.asarray(v, np.float64)
    dx = (u - camera.cx) / camera.fx
    dy = (v - camera.cy) / camera.fy
    shape = (v.size, u.size)
    return np.broadcast_to(dx[None, :], shape), np.broadcast_to(dy[:, None], shape)


def _hit(solid: Solid, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Depth of the first intersection of every ray with ``solid``, inf where it misses."""
    cx, cy, cz = solid.centre
    sx, sy, sz = solid.size
    inf = np.full(dx.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        if solid.kind == "sphere":
            r = sx / 2
            a = dx * dx + dy * dy + 1.0
            b = dx * cx + dy * cy + cz  # half the linear term
            c = cx * cx + cy * cy + cz * cz - r * r
            disc = b * b - a * c
            t = (b - np.sqrt(disc)) / a
            return np.where((disc >= 0) & (t > 0), t, inf)
        if solid.kind == "box":
            near = np.zeros(dx.shape)
            far = inf.copy()
            for d, c, s in ((dx, cx, sx), (dy, cy, sy), (np.ones_like(dx), cz, sz)):
                t1, t2 = (c - s / 2) / d, (c + s / 2) / d
                inside = (c - s / 2 <= 0) & (0 <= c + s / 2)  # ray parallel to the slab
                lo = np.where(d == 0, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
                hi = np.where(d == 0, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
                near, far = np.maximum(near, lo), np.minimum(far, hi)
            return np.where((near <= far) & (near > 0), near, inf)
        # cylinder, axis along y
        r, half = sx / 2, sy / 2
        a = dx * dx + 1.0
        b = dx * cx + cz
        c = cx * cx + cz * cz - r * r
        disc = b * b - a * c
        t_side = (b - np.sqrt(disc)) / a
        y_side = t_side * dy
        side = np.where((disc >= 0) & (t_side > 0) & (np.abs(y_side - cy) <= half), t_side, inf)
        best = side
        for y_cap in (cy - half, cy + half):
            t_cap = y_cap / dy
            on = ((t_cap * dx - cx) ** 2 + (t_cap - cz) ** 2 <= r * r) & (t_cap > 0)
            best = np.minimum(best, np.where(on, t_cap, inf))
        return best


def _neighbour_range(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each pixel's 3x3 neighbourhood (edges replicated)."""
    p = np.pad(z, 1, mode="edge")
    h, w = z.shape
    views = [p[i : i + h, j : j + w] for i in range(3) for j in range(3)]
    return np.minimum.reduce(views), np.maximum.reduce(views)


def render_rgbd(
    solids: Sequence[Solid],
    camera: PinholeCamera,
    *,
    depth_camera: PinholeCamera | None = None,
    plane_distance: float = 4.0,
    plane_tilt: float = 0.2,
    holes: float = 0.0,
    flying_pixels: float = 0.0,
    depth_noise: float = 0.0,
    seed: int = 0,
) -> RGBDFrame:
    """Render ``solids`` in front of a plane through ``camera``.

    The plane crosses the optical axis at ``plane_distance`` metres, tilted by ``plane_tilt``
    radians about the x axis (farther at the top, as a floor-to-wall view). ``depth_camera``:
    intrinsics of the depth image when it differs from the colour image (e.g. half resolution
    of the same field of view); the depth is ray-cast at its own pixels, never resampled.
    Defects of the depth image (``seed`` makes them repeatable):

    - ``holes``: the fraction of pixels without depth, in 4x4 blocks and single pixels; in
      ``depth_m`` half of them 0 and half NaN, in ``depth_mm`` all 0;
    - ``flying_pixels``: the fraction of silhouette pixels (3x3 depth jump > 5 cm) whose depth
      is replaced by one between the near and the far side of the jump;
    - ``depth_noise``: Gaussian noise of sigma ``depth_noise * z**2`` metres (structured-light like).
    """
    rng = np.random.default_rng(seed)
    solids = list(solids)
    depth_camera = depth_camera or camera
    n = len(solids)

    def cast(cam: PinholeCamera, u=None, v=None):
        dx, dy = _rays(cam, u, v)
        cos, sin = math.cos(plane_tilt), math.sin(plane_tilt)
        with np.errstate(divide="ignore"):
            denom = sin * dy + cos
            plane = np.where(denom > 1e-6, plane_distance * cos / denom, np.inf)
        zs = np.stack([_hit(s, dx, dy) for s in solids]) if n else np.zeros((0,) + dx.shape)
        label = np.argmin(zs, axis=0) if n else np.zeros(dx.shape, np.int64)
        z_obj = np.take_along_axis(zs, label[None], 0)[0] if n else np.full(dx.shape, np.inf)
        in_front = z_obj < plane
        label = np.where(in_front, label, -1)
        depth = np.where(in_front, z_obj, plane)
        return depth, label, dx, dy

    depth_c, label_c, dx, dy = cast(camera)
    masks = np.stack([label_c == i for i in range(n)]) if n else np.zeros((0, camera.height, camera.width), bool)
    surface = np.zeros((n, 3))
    for i in range(n):
        if masks[i].any():
            z = depth_c[masks[i]]
            surface[i] = np.median(np.stack([dx[masks[i]] * z, dy[masks[i]] * z, z], 1), axis=0)

    lo_vis, hi_vis = np.zeros((n, 3)), np.zeros((n, 3))
    sub = (np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - 0.5
    for i in range(n):
        ys, xs = np.nonzero(masks[i])
        if ys.size:
            u = (np.arange(xs.min() - 1, xs.max() + 2)[:, None] + sub[None, :]).ravel()
            v = (np.arange(ys.min() - 1, ys.max() + 2)[:, None] + sub[None, :]).ravel()
            z, lab, sdx, sdy = cast(camera, u, v)
            on = lab == i
            pts = np.stack([sdx[on] * z[on], sdy[on] * z[on], z[on]], 1)
            lo_vis[i], hi_vis[i] = pts.min(0), pts.max(0)

    # colour: a grey checker plane (5 cm squares), solids in their colour, shaded by depth
    with np.errstate(invalid="ignore"):
        px, py = dx * depth_c, dy * depth_c
        checker = ((np.floor(px / 0.05) + np.floor(py / 0.05)) % 2).astype(np.float32)
    image = np.repeat((90 + 60 * checker)[:, :, None], 3, axis=2)
    for i, s in enumerate(solids):
        m = masks[i]
        if m.any():
            z = depth_c[m]
            shade = 1.0 - 0.35 * (z - z.min()) / max(s.size[2], 1e-6)
            image[m] = np.asarray(s.colour, np.float32)[None, :] * shade[:, None]
    image = np.clip(image + rng.normal(0, 2.0, image.shape), 0, 255).astype(np.uint8)

    # depth at the depth camera's pixels, with the sensor's defects
    if depth_camera == camera:
        depth = depth_c.copy()
    else:
        depth = cast(depth_camera)[0]
    if depth_noise > 0:
        depth = depth + rng.normal(0.0, 1.0, depth.shape) * depth_noise * depth**2
    if flying_pixels > 0:
        lo, hi = _neighbour_range(np.where(np.isfinite(depth), depth, 1e3))
        edge = (hi - lo > 0.05) & (hi < 1e3)
        pick = edge & (rng.random(depth.shape) < flying_pixels)
        alpha = rng.uniform(0.1, 0.9, depth.shape)
        depth = np.where(pick, lo + alpha * (hi - lo), depth)
    h, w = depth.shape
    hole = np.zeros((h, w), bool)
    if holes > 0:
        blocks = rng.random((h // 4 + 1, w // 4 + 1)) < holes / 2
        hole = np.kron(blocks, np.ones((4, 4), bool))[:h, :w] | (rng.random((h, w)) < holes / 2)
    hole |= ~np.isfinite(depth)
    depth_m = depth.astype(np.float32)
    nan = hole & (rng.random((h, w)) < 0.5)
    depth_m[hole] = 0.0
    depth_m[nan] = np.nan
    depth_mm = np.where(hole, 0, np.clip(np.round(depth * 1000.0), 0, 65535)).astype(np.uint16)

    return RGBDFrame(
        image=image,
        depth_m=depth_m,
        depth_mm=depth_mm,
        camera=camera,
        depth_camera=depth_camera,
        masks=masks,
        solids=solids,
        centres=np.array([s.centre for s in solids], np.float64).reshape(n, 3),
        sizes=np.array([s.size for s in solids], np.float64).reshape(n, 3),
        surface_centres=surface,
        visible_lo=lo_vis,
        visible_hi=hi_vis,
    )


_COLOURS = ((40, 160, 220), (200, 90, 40), (60, 200, 80), (180, 60, 200), (30, 220, 230), (220, 200, 60))


def random_solids(
    camera: PinholeCamera,
    n: int,
    rng: np.random.Generator,
    *,
    distance: tuple[float, float] = (0.8, 2.5),
    size: tuple[float, float] = (0.12, 0.35),
    min_pixels: int = 40,
    kinds: Sequence[str] = KINDS,
    margin_px: int = 6,
    tries: int = 500,
) -> list[Solid]:
    """Up to ``n`` solids whose image footprints (bounding circles) neither overlap nor leave
    the image, each at least ``min_pixels`` across; kinds cycle through ``kinds``."""
    placed: list[tuple[float, float, float]] = []  # u, v, radius px
    solids: list[Solid] = []
    f = min(camera.fx, camera.fy)
    for _ in range(tries):
        if len(solids) == n:
            break
        kind = kinds[len(solids) % len(kinds)]
        z = rng.uniform(*distance)
        s = rng.uniform(*size)
        if kind == "sphere":
            dims = (s, s, s)
        elif kind == "box":
            dims = (s, s * rng.uniform(0.6, 1.4), s * rng.uniform(0.3, 1.0))
        else:
            dims = (s, s * rng.uniform(0.8, 1.6), s)
        if f * min(dims[0], dims[1]) / (z + dims[2] / 2) < min_pixels:
            continue
        # bounding radius in pixels of the solid's projection (of a sphere around it, generously)
        radius = f * 0.5 * math.sqrt(dims[0] ** 2 + dims[1] ** 2) / (z - 0.5 * max(dims)) + margin_px
        if 2 * radius >= min(camera.width, camera.height):
            continue
        u = rng.uniform(radius, camera.width - radius)
        v = rng.uniform(radius, camera.height - radius)
        if any(math.hypot(u - pu, v - pv) < radius + pr for pu, pv, pr in placed):
            continue
        # the centre on the ray through (u, v) at depth z (the box/cylinder centre; its front is nearer)
        centre = ((u - camera.cx) / camera.fx * z, (v - camera.cy) / camera.fy * z, z)
        placed.append((u, v, radius))
        solids.append(Solid(kind, centre, dims, _COLOURS[len(solids) % len(_COLOURS)]))
    return solids
