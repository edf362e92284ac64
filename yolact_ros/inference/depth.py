"""Instances in 3D: an aligned depth image + pinhole intrinsics -> per-instance centre and size (numpy only, no ROS).

What the ROS layer calls, per colour frame with its registered depth image::

    camera = PinholeCamera.from_k(info.k, info.width, info.height)        # sensor_msgs/CameraInfo
    result = instances_in_3d(instances, depth_array, camera,              # Instances3D
                             encoding="16UC1", points_step=2)             # 16UC1 (mm) or 32FC1 (m)
    for obj in result.objects():          # only the instances with enough valid depth
        obj.index, obj.box_centre, obj.box_size, obj.centre               # -> vision_msgs/Detection3D
    result.points                          # structured x, y, z float32 + instance int32 -> PointCloud2
    result.num_skipped                     # instances left out: too few valid depth pixels

**Frames and units.** Every 3D value is in the camera's optical frame (x right, y down, z
forward, as ``*_optical_frame`` in ROS), in metres. ``depth[v, u]`` is the z coordinate of
pixel (u, v) (a depth image, not a range image); the pixel's point is
``((u - cx) z / fx, (v - cy) z / fy, z)``, pixel centres at integer coordinates (the OpenCV
and ROS convention). The depth must be registered to the colour image ("aligned depth": same
optical centre and field of view, rectified); lens distortion is not modelled.

**Resolutions.** The depth image may have another resolution than the colour image (and the
masks): the masks are resampled to the depth grid (nearest neighbour), never the depth to the
colour grid — interpolating depth would blend object and background into points that exist on
neither. ``camera`` may describe the depth image or the colour image (both see the same field
of view): it is rescaled to the depth image's size by :meth:`PinholeCamera.scaled_to`.

**Method** (one instance; docs/depth_tracking.md has the figures):

1. the mask, resampled to the depth grid, keeps its pixels with a valid depth (not 0, NaN,
   inf, nor outside the range given to :func:`depth_to_metres`); fewer than ``min_points``:
   the instance is skipped (``valid`` False, zeros in its rows, never NaN). A mask of more
   than ``4 * max_samples`` pixels is measured on every s-th row and column of its box (as
   a depth image of lower resolution would see it; medians on about ``max_samples / 2``);
2. the mask is eroded by ``erode_px`` pixels: flying pixels (depths between the object and
   what is behind it) and colour/depth misregistration live on the silhouette. When the
   eroded mask keeps fewer than ``min_points`` valid pixels the uneroded one is used;
3. depth outliers of that interior are rejected by a MAD rule: a point is kept when
   ``|z - median(z)| <= max(mad_k * 1.4826 * MAD, min_band_m, shape_band * width)``, width
   being the mask's larger side in metres at the median depth (a compact object's visible
   depth spans about its width, so a curved or slanted surface is never cut);
4. ``centre`` = the per-axis median of the kept points: a robust point of the object's
   visible surface;
5. the box: the kept points plus the rim pixels (those the erosion removed) whose depth
   continues them — within the depth range of their kept 3x3 neighbours, widened by
   ``max(min_band_m, 2 x the kept depth range of the 5x5 around them)``: a surface seen at a
   grazing angle (a limb) holds a large part of the extent in its last pixels, a flying pixel
   jumps part of the way to the background. Its ``size_percentile`` ..
   ``100 - size_percentile`` range per axis (rank ``floor(q n)`` from each end), widened in x
   and y by half a (measuring) pixel on each side: points are pixel centres. ``box_centre``
   is its middle, ``box_size`` its extents.

All instances of a frame are measured together: their crops are packed into one atlas image
and each pixel rule is one array operation over all of them (per instance only the medians
and the extremes remain).

A single view sees the front of an object only: x and y extents are the object's (minus
what a surface seen at a grazing angle hides behind its outermost pixel, e.g. the far side
of an off-axis cylinder); the z extent is that of the visible surface, a lower bound of the
object's depth; the solid's own centre lies behind ``centre`` by up to half the object's depth.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from .instances import Instances

__all__ = [
    "DEFAULT_MAX_DEPTH_M",
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_MIN_DEPTH_M",
    "DEFAULT_MIN_POINTS",
    "DEPTH_ENCODINGS",
    "POINT_DTYPE",
    "Instance3D",
    "Instances3D",
    "PinholeCamera",
    "depth_to_metres",
    "instance_points",
    "instances_in_3d",
]

#: Depths outside [min, max] metres are invalid by default (typical RGB-D sensors).
DEFAULT_MIN_DEPTH_M = 0.1
DEFAULT_MAX_DEPTH_M = 10.0
#: An instance needs at least this many valid depth pixels to be placed in 3D.
DEFAULT_MIN_POINTS = 20
#: A larger mask is measured on a regular subgrid (every s-th row and column) of about this many pixels.
DEFAULT_MAX_SAMPLES = 2048
#: The depth encodings of sensor_msgs/Image understood, with the factor to metres.
DEPTH_ENCODINGS = {"16UC1": 0.001, "mono16": 0.001, "32FC1": 1.0, "64FC1": 1.0}
#: One point of :attr:`Instances3D.points`: 16 bytes, laid out as PointCloud2 fields
#: x, y, z (FLOAT32, offsets 0, 4, 8) and instance (INT32, offset 12, the index into Instances).
POINT_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("instance", "<i4")])

_PEEL = 8  # quantile ranks found by peeling extremes (deeper: a partition)
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution * this = its standard deviation


@dataclass(frozen=True)
class PinholeCamera:
    """Pinhole intrinsics of an image of ``width`` x ``height`` pixels (pixel centres at integers)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self):
        if not (self.fx > 0 and self.fy > 0 and math.isfinite(self.fx) and math.isfinite(self.fy)):
            raise ValueError(f"focal lengths must be finite and > 0, got fx={self.fx}, fy={self.fy}")
        if not (math.isfinite(self.cx) and math.isfinite(self.cy)):
            raise ValueError(f"principal point must be finite, got ({self.cx}, {self.cy})")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be > 0, got {self.width} x {self.height}")

    @classmethod
    def from_k(cls, k: "Sequence[float] | np.ndarray", width: int, height: int) -> "PinholeCamera":
        """From a 3x3 camera matrix K, or its 9 values row-major (CameraInfo's ``k``; ``p``'s
        left 3x3 block for rectified images is the same form)."""
        m = np.asarray(k, dtype=np.float64)
        if m.size == 12:  # a 3x4 projection matrix P
            m = m.reshape(3, 4)[:, :3]
        m = m.reshape(3, 3)
        if abs(m[1, 0]) > 1e-9 or abs(m[2, 0]) > 1e-9 or abs(m[2, 1]) > 1e-9 or abs(m[2, 2] - 1.0) > 1e-6:
            raise ValueError(f"not a pinhole camera matrix: {m.tolist()}")
        return cls(float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]), int(width), int(height))

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the usual name
        """The 3x3 camera matrix (float64)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.width, self.height

    def scaled_to(self, width: int, height: int) -> "PinholeCamera":
        """The same camera seen through an image resized to ``width`` x ``height`` (the whole
        field of view kept). Pixel centres map as u' + 0.5 = (u + 0.5) * width / self.width
        (what nearest / area resizing does), so cx' = (cx + 0.5) * s - 0.5."""
        width, height = int(width), int(height)
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        return PinholeCamera(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, width, height
        )

    def slopes(self, start: tuple[int, int], stop: tuple[int, int], step: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """x / z and y / z (float32) of the pixel columns and rows ``start..stop`` by ``step``
        (``start``, ``stop``: (u, v) pairs): a pixel (u, v) at depth z is the point
        (slope_x[u] z, slope_y[v] z, z)."""
        (u0, v0), (u1, v1) = start, stop
        f32 = np.float32
        return (
            (np.arange(u0, u1, step, dtype=f32) - f32(self.cx)) / f32(self.fx),
            (np.arange(v0, v1, step, dtype=f32) - f32(self.cy)) / f32(self.fy),
        )

    def project(self, points: np.ndarray) -> np.ndarray:
        """Points [..., 3] (z > 0) -> pixel coordinates [..., 2] (u, v) float64."""
        p = np.asarray(points, dtype=np.float64)
        return np.stack([self.fx * p[..., 0] / p[..., 2] + self.cx, self.fy * p[..., 1] / p[..., 2] + self.cy], -1)


def depth_to_metres(
    depth: np.ndarray,
    encoding: str | None = None,
    min_m: float = DEFAULT_MIN_DEPTH_M,
    max_m: float = DEFAULT_MAX_DEPTH_M,
) -> np.ndarray:
    """A depth image -> float32 metres [H,W], NaN where invalid.

    ``encoding``: ``"16UC1"`` / ``"mono16"`` (millimetres), ``"32FC1"`` / ``"64FC1"`` (metres), or
    None to go by the dtype (unsigned integers: millimetres; floats: metres). Invalid: 0, NaN,
    +-inf and depths outside [``min_m``, ``max_m``]. (:func:`instances_in_3d` takes the image
    as it comes, too, and converts only the pixels it reads.)
    """
    a, scale = _depth_image(depth, encoding)
    with np.errstate(invalid="ignore"):
        m = a.astype(np.float32) * np.float32(scale) if scale != 1.0 else a.astype(np.float32, copy=True)
        m[~((m >= min_m) & (m <= max_m))] = np.nan  # NaN compares False: caught here too
    return m


def _depth_image(depth: np.ndarray, encoding: str | None) -> tuple[np.ndarray, float]:
    """The [H,W] array of a depth image and its factor to metres (see :func:`depth_to_metres`)."""
    a = np.asarray(depth)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2:
        raise ValueError(f"a depth image is [H,W], got shape {a.shape}")
    if encoding is None:
        if a.dtype.kind == "u":
            return a, 0.001
        if a.dtype.kind == "f":
            return a, 1.0
        raise ValueError(f"cannot tell the depth unit of dtype {a.dtype}: pass encoding")
    if encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"unsupported depth encoding {encoding!r}: one of {sorted(DEPTH_ENCODINGS)}")
    scale = DEPTH_ENCODINGS[encoding]
    if (scale == 1.0) != (a.dtype.kind == "f"):
        raise ValueError(f"encoding {encoding!r} does not fit an array of dtype {a.dtype}")
    return a, scale


class Instance3D(NamedTuple):
    """One instance placed in 3D (optical frame, metres)."""

    index: int  # type: ignore[assignment]  # the field shadows tuple.index on purpose: its public name
    centre: np.ndarray  # float32 [3] median of the kept points: a point of the visible surface
    box_centre: np.ndarray  # float32 [3] middle of the percentile box
    box_size: np.ndarray  # float32 [3] x, y extents of the object, z extent of its visible surface
    num_points: int  # measured points kept (valid depth, inside the eroded mask, not outliers)


@dataclass
class Instances3D:
    """Per-instance 3D results, index-aligned with the :class:`Instances` they came from.

    - ``valid``       bool    [N]    placed in 3D (False: too few valid depth pixels)
    - ``num_valid``   int32   [N]    valid depth pixels of the mask, before outlier rejection
    - ``num_points``  int32   [N]    measured points kept after outlier rejection (on the measuring
      grid: every pixel up to ``4 * max_samples``; 0 where not valid)
    - ``centres``     float32 [N,3]  median point (zeros where not valid; never NaN)
    - ``box_centres`` float32 [N,3]  middle of the percentile box (zeros where not valid)
    - ``box_sizes``   float32 [N,3]  extents of the percentile box (zeros where not valid)
    - ``points``      :data:`POINT_DTYPE` [M] the kept points of the valid instances, on a grid of
      every ``points_step``-th depth pixel, or None when not asked for
    - ``camera``      the intrinsics of the depth grid used
    """

    valid: np.ndarray
    num_valid: np.ndarray
    num_points: np.ndarray
    centres: np.ndarray
    box_centres: np.ndarray
    box_sizes: np.ndarray
    camera: PinholeCamera
    points: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.valid.shape[0])

    @property
    def indices(self) -> np.ndarray:
        """Indices (into the Instances) of the instances placed in 3D."""
        return np.flatnonzero(self.valid)

    @property
    def num_skipped(self) -> int:
        """Instances left out for too few valid depth pixels."""
        return int((~self.valid).sum())

    def objects(self) -> Iterator[Instance3D]:
        """The instances placed in 3D, in index order."""
        for i in self.indices:
            yield Instance3D(int(i), self.centres[i], self.box_centres[i], self.box_sizes[i], int(self.num_points[i]))


_SQUARE3 = np.ones((3, 3), np.uint8)
_SQUARE5 = np.ones((5, 5), np.uint8)


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary erosion by a (2r+1)^2 square; outside the array counts as background."""
    m = np.ascontiguousarray(mask).view(np.uint8)
    return cv2.erode(m, _SQUARE3, iterations=r, borderType=cv2.BORDER_CONSTANT, borderValue=0).view(bool)


def _grow_rim(z: np.ndarray, kept: np.ndarray, candidates: np.ndarray, rings: int, min_jump_m: float) -> np.ndarray:
    """``kept`` grown by up to ``rings`` rings of ``candidates`` (valid rim pixels) whose depth
    continues it: within the depth range of their kept 3x3 neighbours, widened by
    ``max(min_jump_m, 2 x the kept depth range of the 5x5 around them)`` (a steep surface
    steps far per pixel, a flying pixel farther: it jumps part of the way to the background)."""
    out = kept
    z = np.ascontiguousarray(z, np.float32)
    for _ in range(rings):
        hi_v, lo_v = np.full(z.shape, -np.inf, np.float32), np.full(z.shape, np.inf, np.float32)
        sel = out.view(np.uint8)
        cv2.copyTo(z, sel, hi_v)
        cv2.copyTo(z, sel, lo_v)
        near_hi, near_lo = cv2.dilate(hi_v, _SQUARE3), cv2.erode(lo_v, _SQUARE3)
        with np.errstate(invalid="ignore", over="ignore"):
            spread = cv2.dilate(hi_v, _SQUARE5) - cv2.erode(lo_v, _SQUARE5)
            tol = np.maximum(2.0 * spread, np.float32(min_jump_m))
            new = candidates & (z <= near_hi + tol) & (z >= near_lo - tol)
        if not new.any():
            break
        out = out | new
        candidates = candidates & ~new
    return out


def _median(v: np.ndarray) -> float:
    """The median of a non-empty 1-D array (np.median without its overhead)."""
    n = v.size
    k = n // 2
    if n % 2:
        return float(np.partition(v, k)[k])
    p = np.partition(v, (k - 1, k))
    return (float(p[k - 1]) + float(p[k])) / 2.0


def _extremes(values: np.ndarray, where: np.ndarray, count: int, q: float) -> tuple[float, float]:
    """The ``q`` and ``1 - q`` quantiles (rank ``floor(q * count)`` from each end) of
    ``values[where]``, ``count`` being the number of True in ``where`` (both [H,W]). Up to
    ``_PEEL`` ranks deep, the extremes are peeled off one by one (cv2.minMaxLoc, no copy of the
    values); deeper, one partition of the gathered values."""
    k = int(q * count)
    if k > _PEEL:
        p = np.partition(values[where], (k, count - 1 - k))
        return float(p[k]), float(p[count - 1 - k])
    mask = where.view(np.uint8)
    if k:
        mask = mask.copy()
    for _ in range(k):  # count >= 1/q > 2k + 1: the k lowest and the k highest are distinct points
        _, _, (lx, ly), (hx, hy) = cv2.minMaxLoc(values, mask)
        mask[ly, lx] = 0
        mask[hy, hx] = 0
    lo, hi, _, _ = cv2.minMaxLoc(values, mask)
    return float(lo), float(hi)


def _grid_map(n_src: int, n_dst: int) -> np.ndarray:
    """For each destination pixel, the source pixel containing its centre (nearest neighbour)."""
    return np.minimum(((np.arange(n_dst) + 0.5) * (n_src / n_dst)).astype(np.int64), n_src - 1)


def _span(index_map: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """The destination range [a, b) whose sources fall in [lo, hi] (index_map is sorted)."""
    return int(np.searchsorted(index_map, lo, "left")), int(np.searchsorted(index_map, hi, "right"))


def instances_in_3d(
    instances: Instances,
    depth: np.ndarray,
    camera: PinholeCamera,
    *,
    encoding: str | None = None,
    min_m: float = DEFAULT_MIN_DEPTH_M,
    max_m: float = DEFAULT_MAX_DEPTH_M,
    min_points: int = DEFAULT_MIN_POINTS,
    erode_px: int = 1,
    mad_k: float = 3.5,
    min_band_m: float = 0.02,
    shape_band: float = 1.0,
    size_percentile: float = 0.05,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    points_step: int | None = None,
) -> Instances3D:
    """Place every instance in 3D from a registered depth image (module docstring: the method).

    ``depth``: the depth image [h,w] of the masks' field of view, at any resolution of the same
    aspect ratio, as it comes (``encoding`` and the valid range [``min_m``, ``max_m``] as for
    :func:`depth_to_metres`: 16UC1 millimetres, float metres; only the pixels read are
    converted) or already in metres from :func:`depth_to_metres` (NaN invalid). ``camera``:
    intrinsics of the depth image or of the colour image (rescaled to the depth's size).
    ``mad_k=inf`` and ``erode_px=0`` turn the outlier rules off. ``max_samples``: masks of
    more than 4x as many pixels are measured on a subgrid, None measures every pixel.
    ``points_step``: also collect the kept points of every ``points_step``-th depth pixel
    (both axes, full resolution) in ``points``.
    """
    depth, scale = _depth_image(depth, encoding)
    if min_points < 1 or erode_px < 0 or not 0.0 <= size_percentile < 50.0:
        raise ValueError(
            f"need min_points >= 1, erode_px >= 0, 0 <= size_percentile < 50 "
            f"(got {min_points}, {erode_px}, {size_percentile})"
        )
    if points_step is not None and points_step < 1:
        raise ValueError(f"points_step must be >= 1, got {points_step}")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
    h, w = depth.shape
    n = len(instances)
    mh, mw = instances.image_size if n else (h, w)
    for what, (ow, oh) in (("camera", (camera.width, camera.height)), ("masks", (mw, mh))):
        if abs(ow / oh - w / h) > 0.01 * (w / h):
            raise ValueError(f"the depth image ({w}x{h}) and the {what} ({ow}x{oh}) do not share a field of view")
    cam = camera.scaled_to(w, h)
    same_grid = (mw, mh) == (w, h)
    rows_src, cols_src = _grid_map(mh, h), _grid_map(mw, w)

    out = Instances3D(
        valid=np.zeros(n, bool),
        num_valid=np.zeros(n, np.int32),
        num_points=np.zeros(n, np.int32),
        centres=np.zeros((n, 3), np.float32),
        box_centres=np.zeros((n, 3), np.float32),
        box_sizes=np.zeros((n, 3), np.float32),
        camera=cam,
    )
    q = size_percentile / 100.0
    median_samples = None if max_samples is None else max(1, max_samples // 2)
    # 1. each instance's crop of the depth grid: its mask there, on every st-th row and column
    #    of a large one (as a depth image of lower resolution would see it, centred in its box)
    crops = []
    for i in range(n):
        x0, y0, win = instances.mask_window(i)  # the instance's box-sized mask: never the full frame
        if win.size == 0:
            continue
        bx, by, bw, bh = cv2.boundingRect(np.ascontiguousarray(win).view(np.uint8))  # the mask's extent in its window
        if bw == 0:
            continue
        if same_grid:
            v0, v1, u0, u1 = y0 + by, y0 + by + bh, x0 + bx, x0 + bx + bw
            m = win[by : by + bh, bx : bx + bw]
        else:
            (v0, v1), (u0, u1) = _span(rows_src, y0 + by, y0 + by + bh - 1), _span(cols_src, x0 + bx, x0 + bx + bw - 1)
            m = win[np.ix_(rows_src[v0:v1] - y0, cols_src[u0:u1] - x0)]
        st = 1 if max_samples is None else max(1, int(math.sqrt(np.count_nonzero(m) / max_samples)))
        ro, co = ((v1 - v0 - 1) % st) // 2, ((u1 - u0 - 1) % st) // 2
        crops.append(_Crop(i, v0, v1, u0, u1, st, ro, co, m))
    # 2. the crops side by side in one atlas: the pixel rules run once over all of them
    atlas = _Atlas(crops, depth, scale, erode_px, (min_m, max_m))
    sel, interior = atlas.sel, atlas.interior
    med = np.zeros(len(crops))
    band = np.full(len(crops), math.inf)
    subs: list = [None] * len(crops)  # each crop's pixels for the medians
    whole = np.ones(len(crops), bool)  # no interior point outside the band (on the median pixels)
    for k, c in enumerate(crops):
        s_ = atlas.slots[k]
        on_grid = int(np.count_nonzero(sel[s_]))
        count = on_grid if c.st == 1 else np.count_nonzero(c.m & _valid(c.metres(depth, scale), (min_m, max_m)))
        out.num_valid[c.index] = count
        if count < min_points:
            continue
        inner = interior[s_]
        if np.count_nonzero(inner) < min_points:  # too thin to erode: the whole mask
            inner[...] = sel[s_]
        subs[k] = sub = _thinned(s_, on_grid, median_samples)  # the medians on at most about max_samples / 2 pixels
        z_in = atlas.z[sub][interior[sub]]
        if z_in.size == 0:
            continue
        med[k] = _median(z_in)
        if math.isfinite(mad_k):
            # a compact object's visible depth spans about its width: never cut within shape_band x that
            floor = max(min_band_m, shape_band * med[k] * max((c.v1 - c.v0) / cam.fy, (c.u1 - c.u0) / cam.fx))
            dev = np.abs(z_in - np.float32(med[k]))
            band[k] = floor
            # the MAD widens the band only when more than half the deviations exceed floor / (mad_k * 1.4826)
            if 2 * np.count_nonzero(dev > floor / (mad_k * _MAD_TO_SIGMA)) > dev.size:
                band[k] = max(mad_k * _MAD_TO_SIGMA * _median(dev), floor)
            whole[k] = float(dev.max()) <= band[k]
    # 3. the kept points (interior, within the band) and the extent (plus the rim pixels whose
    #    depth continues the kept ones: a limb seen at a grazing angle holds a large part of the
    #    extent in its last pixels; a flying pixel jumps towards the background)
    in_band = atlas.within(med, band)
    keep = interior & in_band
    extent = _grow_rim(atlas.z, keep, sel & ~interior & in_band, erode_px, min_band_m) if erode_px else keep
    chunks = []
    for k, c in enumerate(crops):
        if not med[k]:
            continue
        s_ = atlas.slots[k]
        kept = keep[s_]
        n_keep = np.count_nonzero(kept)
        if n_keep < min_points:
            continue
        z = atlas.z[s_]
        gx, gy = c.slopes(cam)
        px, py = gx[None, :] * z, gy[:, None] * z  # the crop's points: x, y
        sub = _local(subs[k], s_)
        on = kept[sub]
        centre = (_median(px[sub][on]), _median(py[sub][on]), med[k] if whole[k] else _median(z[sub][on]))
        ext = extent[s_]
        n_ext = int(np.count_nonzero(ext))
        (xlo, xhi), (ylo, yhi) = _extremes(px, ext, n_ext, q), _extremes(py, ext, n_ext, q)
        zlo, zhi = _extremes(z, ext, n_ext, q)
        # the points are the centres of (grid) pixels: the object reaches half a pixel beyond the outermost
        hx, hy = 0.5 * c.st * med[k] / cam.fx, 0.5 * c.st * med[k] / cam.fy
        i = c.index
        out.valid[i] = True
        out.num_points[i] = n_keep
        out.centres[i] = centre
        out.box_centres[i] = ((xlo + xhi) / 2, (ylo + yhi) / 2, (zlo + zhi) / 2)
        out.box_sizes[i] = (xhi - xlo + 2 * hx, yhi - ylo + 2 * hy, zhi - zlo)
        if points_step is not None:
            chunks.append(
                _points(
                    c,
                    kept if c.st == 1 else None,
                    c.metres(depth, scale),
                    cam,
                    points_step,
                    erode_px,
                    float(med[k]),
                    float(band[k]),
                    (min_m, max_m),
                )
            )
    if points_step is not None:
        out.points = np.concatenate(chunks) if chunks else np.empty(0, POINT_DTYPE)
    return out


@dataclass
class _Crop:
    """One instance's region of the depth grid: rows v0..v1, columns u0..u1, measured on every
    st-th pixel from (v0 + ro, u0 + co); ``m`` its mask on the full-resolution region."""

    index: int
    v0: int
    v1: int
    u0: int
    u1: int
    st: int
    ro: int
    co: int
    m: np.ndarray

    @property
    def grid(self) -> tuple[slice, slice]:
        """The measuring grid inside the region."""
        return slice(self.ro, None, self.st), slice(self.co, None, self.st)

    def slopes(self, cam: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
        """x / z of the measuring grid's columns and y / z of its rows."""
        return cam.slopes((self.u0 + self.co, self.v0 + self.ro), (self.u1, self.v1), self.st)

    def metres(self, depth: np.ndarray, scale: float) -> np.ndarray:
        """The region of the depth image in metres (float32, every pixel)."""
        z = depth[self.v0 : self.v1, self.u0 : self.u1]
        return z.astype(np.float32) * np.float32(scale) if scale != 1.0 else z.astype(np.float32, copy=False)


_GAP = 2  # empty atlas pixels between crops: more than the 5x5 reach of the rim rule


class _Atlas:
    """The measuring grids of all crops packed into one image (shelves of decreasing height,
    ``_GAP`` empty pixels between them), so that each pixel rule is one array operation for
    all instances: ``z`` depth in metres (NaN outside the crops), ``sel`` mask pixels with a
    valid depth, ``interior`` the eroded masks' (each crop eroded on its own: the gaps are
    background)."""

    def __init__(
        self, crops: list[_Crop], depth: np.ndarray, scale: float, erode_px: int, valid_range: tuple[float, float]
    ):
        grids = [c.m[c.grid] for c in crops]
        sizes = [g.shape for g in grids]
        total = sum((hh + _GAP) * (ww + _GAP) for hh, ww in sizes)
        width = max([int(math.sqrt(total * 1.5))] + [ww + _GAP for _, ww in sizes]) if sizes else 1
        self.slots: list[tuple[slice, slice]] = [None] * len(crops)  # type: ignore[list-item]
        x = y = shelf = 0
        for k in sorted(range(len(crops)), key=lambda k: -sizes[k][0]):
            hh, ww = sizes[k]
            if x + ww + _GAP > width:
                x, y, shelf = 0, y + shelf, 0
            self.slots[k] = (slice(y + _GAP, y + _GAP + hh), slice(x + _GAP, x + _GAP + ww))
            x, shelf = x + ww + _GAP, max(shelf, hh + _GAP)
        shape = (y + shelf + _GAP, width + _GAP)
        m = np.zeros(shape, bool)
        self.z = np.full(shape, np.nan, np.float32)
        for c, g, s in zip(crops, grids, self.slots):
            m[s] = g
            self.z[s] = depth[c.v0 : c.v1, c.u0 : c.u1][c.grid]
        if scale != 1.0:
            self.z *= np.float32(scale)
        self.sel = m & _valid(self.z, valid_range)
        self.interior = (_erode(m, erode_px) & self.sel) if erode_px else self.sel.copy()

    def within(self, centre: np.ndarray, band: np.ndarray) -> np.ndarray:
        """bool atlas: |z - centre[k]| <= band[k] inside crop k, for the crops whose centre is
        not 0 (False elsewhere)."""
        c_map = np.zeros(self.z.shape, np.float32)
        b_map = np.full(self.z.shape, -1.0, np.float32)
        for k, s in enumerate(self.slots):
            if centre[k]:
                c_map[s], b_map[s] = centre[k], band[k]
        with np.errstate(invalid="ignore"):
            return np.abs(self.z - c_map) <= b_map


def _thinned(slot: tuple[slice, slice], count: int, samples: int | None) -> tuple[slice, slice]:
    """``slot`` on every s-th row and column, s such that about ``count / s**2 <= samples``
    (None: every pixel)."""
    s = 1 if samples is None else max(1, int(math.sqrt(count / samples)))
    if s == 1:
        return slot
    r, c = slot
    return slice(r.start, r.stop, s), slice(c.start, c.stop, s)


def _local(sub: tuple[slice, slice], slot: tuple[slice, slice]) -> tuple[slice, slice]:
    """``sub`` (a thinned ``slot`` of the atlas) relative to the slot's own origin."""
    (r, c), (r0, c0) = sub, slot
    return slice(r.start - r0.start, r.stop - r0.start, r.step), slice(c.start - c0.start, c.stop - c0.start, c.step)


def _valid(z: np.ndarray, valid_range: tuple[float, float]) -> np.ndarray:
    """bool: depths (metres) inside [min, max] (NaN, inf and 0 are not)."""
    with np.errstate(invalid="ignore"):
        return (z >= np.float32(valid_range[0])) & (z <= np.float32(valid_range[1]))


def _points(
    c: _Crop,
    kept: np.ndarray | None,
    z: np.ndarray,
    cam: PinholeCamera,
    step: int,
    erode_px: int,
    med: float,
    band: float,
    valid_range: tuple[float, float],
) -> np.ndarray:
    """The kept points of crop ``c`` on every ``step``-th depth pixel (:data:`POINT_DTYPE`);
    ``z`` its region in metres. ``kept``: its kept pixels when it was measured at full
    resolution; else they are found again on the full-resolution region by the same rules."""
    if kept is None:
        sel = c.m & _valid(z, valid_range)
        kept = (_erode(c.m, erode_px) & sel) if erode_px else sel
        if math.isfinite(band):
            with np.errstate(invalid="ignore"):
                kept = kept & (np.abs(z - np.float32(med)) <= band)
    rs, cs = (-c.v0) % step, (-c.u0) % step  # the region's first row/column on the points grid
    on = kept[rs::step, cs::step]
    zs = z[rs::step, cs::step][on]
    gx, gy = cam.slopes((c.u0 + cs, c.v0 + rs), (c.u1, c.v1), step)
    rr, cc = np.nonzero(on)
    chunk = np.empty(zs.size, POINT_DTYPE)
    chunk["x"], chunk["y"], chunk["z"] = gx[cc] * zs, gy[rr] * zs, zs
    chunk["instance"] = c.index
    return chunk


def instance_points(
    instances: Instances, depth: np.ndarray, camera: PinholeCamera, step: int = 2, **options
) -> np.ndarray:
    """The kept 3D points of every instance placed in 3D, on every ``step``-th depth pixel:
    :data:`POINT_DTYPE` [M] (x, y, z float32 metres in the optical frame, instance int32 =
    index into ``instances``), ready for a PointCloud2 (``.tobytes()`` is its data,
    point_step 16). A pixel inside two masks appears once for each. ``options``: those of
    :func:`instances_in_3d`; call that with ``points_step`` to get the centres too in one pass."""
    points = instances_in_3d(instances, depth, camera, points_step=step, **options).points
    assert points is not None  # points_step given: instances_in_3d always fills them
    return points
