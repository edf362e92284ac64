"""Instances in 3D: an aligned depth image + pinhole intrinsics -> per-instance centre and size (numpy only, no ROS).

What the ROS layer calls, per colour frame with its registered depth image::

    camera = PinholeCamera.from_k(info.k, info.width, info.height)        # sensor_msgs/CameraInfo
    depth_m = depth_to_metres(depth_array, encoding)                      # "16UC1" (mm) or "32FC1" (m)
    result = instances_in_3d(instances, depth_m, camera, points_step=2)   # Instances3D
    for obj in result.objects():          # only the instances with enough valid depth
        obj.index, obj.box_centre, obj.box_size, obj.centre               # -> vision_msgs/Detection3D
    result.points                          # structured x, y, z float32 + instance int32 -> PointCloud2
    result.num_skipped                     # instances left out: too few valid depth pixels

**Frames and units.** Every 3D value is in the camera's optical frame (x right, y down, z
forward, as ``*_optical_frame`` in ROS), in metres. ``depth_m[v, u]`` is the z coordinate of
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
   the instance is skipped (``valid`` False, zeros in its rows, never NaN);
2. the mask is eroded by ``erode_px`` pixels: flying pixels (depths between the object and
   what is behind it) and colour/depth misregistration live on the silhouette. When the
   eroded mask keeps fewer than ``min_points`` valid pixels the uneroded one is used;
3. depth outliers of that interior are rejected by a MAD rule: a point is kept when
   ``|z - median(z)| <= max(mad_k * 1.4826 * MAD, min_band_m, shape_band * width)``, width
   being the mask's larger side in metres at the median depth (a compact object's visible
   depth spans about its width, so a curved or slanted surface is never cut);
4. ``centre`` = the per-axis median of the kept points: a robust point of the object's
   visible surface. The box is the ``size_percentile`` .. ``100 - size_percentile``
   percentile range of the kept points per axis, widened in x and y on each side by half a
   pixel plus the eroded rim (the points are pixel centres of the interior), at the depth
   of the points on that side. ``box_centre`` is its middle, ``box_size`` its extents.

A single view sees the front of an object only: x and y extents are the object's (minus
what a surface seen at a grazing angle hides in its outermost pixels, e.g. the side of an
off-axis cylinder); the z extent is that of the visible surface without its rim, a lower
bound of the object's depth; the solid's own centre lies behind ``centre`` by up to half
the object's depth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from .instances import Instances

__all__ = [
    "DEFAULT_MAX_DEPTH_M", "DEFAULT_MIN_DEPTH_M", "DEFAULT_MIN_POINTS", "DEPTH_ENCODINGS", "POINT_DTYPE",
    "Instance3D", "Instances3D", "PinholeCamera", "depth_to_metres", "instance_points", "instances_in_3d",
]

#: Depths outside [min, max] metres are invalid by default (typical RGB-D sensors).
DEFAULT_MIN_DEPTH_M = 0.1
DEFAULT_MAX_DEPTH_M = 10.0
#: An instance needs at least this many valid depth pixels to be placed in 3D.
DEFAULT_MIN_POINTS = 20
#: The depth encodings of sensor_msgs/Image understood, with the factor to metres.
DEPTH_ENCODINGS = {"16UC1": 0.001, "mono16": 0.001, "32FC1": 1.0, "64FC1": 1.0}
#: One point of :attr:`Instances3D.points`: 16 bytes, laid out as PointCloud2 fields
#: x, y, z (FLOAT32, offsets 0, 4, 8) and instance (INT32, offset 12, the index into Instances).
POINT_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("instance", "<i4")])

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
        return PinholeCamera(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
                             width, height)

    def backproject(self, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Pixels (u, v) at depth z -> points [..., 3] float32 (optical frame, metres)."""
        z = np.asarray(z, dtype=np.float32)
        x = (np.asarray(u, dtype=np.float32) - np.float32(self.cx)) * z / np.float32(self.fx)
        y = (np.asarray(v, dtype=np.float32) - np.float32(self.cy)) * z / np.float32(self.fy)
        return np.stack([x, y, z], axis=-1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Points [..., 3] (z > 0) -> pixel coordinates [..., 2] (u, v) float64."""
        p = np.asarray(points, dtype=np.float64)
        return np.stack([self.fx * p[..., 0] / p[..., 2] + self.cx, self.fy * p[..., 1] / p[..., 2] + self.cy], -1)


def depth_to_metres(depth: np.ndarray, encoding: str | None = None, min_m: float = DEFAULT_MIN_DEPTH_M,
                    max_m: float = DEFAULT_MAX_DEPTH_M) -> np.ndarray:
    """A depth image -> float32 metres [H,W], NaN where invalid.

    ``encoding``: ``"16UC1"`` / ``"mono16"`` (millimetres), ``"32FC1"`` / ``"64FC1"`` (metres), or
    None to go by the dtype (unsigned integers: millimetres; floats: metres). Invalid: 0, NaN,
    +-inf and depths outside [``min_m``, ``max_m``].
    """
    a = np.asarray(depth)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2:
        raise ValueError(f"a depth image is [H,W], got shape {a.shape}")
    if encoding is None:
        if a.dtype.kind == "u":
            scale = 0.001
        elif a.dtype.kind == "f":
            scale = 1.0
        else:
            raise ValueError(f"cannot tell the depth unit of dtype {a.dtype}: pass encoding")
    else:
        if encoding not in DEPTH_ENCODINGS:
            raise ValueError(f"unsupported depth encoding {encoding!r}: one of {sorted(DEPTH_ENCODINGS)}")
        scale = DEPTH_ENCODINGS[encoding]
        if (scale == 1.0) != (a.dtype.kind == "f"):
            raise ValueError(f"encoding {encoding!r} does not fit an array of dtype {a.dtype}")
    with np.errstate(invalid="ignore"):
        m = a.astype(np.float32) * np.float32(scale) if scale != 1.0 else a.astype(np.float32, copy=True)
        m[~((m >= min_m) & (m <= max_m))] = np.nan  # NaN compares False: caught here too
    return m


class Instance3D(NamedTuple):
    """One instance placed in 3D (optical frame, metres)."""

    index: int  # into the Instances it came from
    centre: np.ndarray  # float32 [3] median of the kept points: a point of the visible surface
    box_centre: np.ndarray  # float32 [3] middle of the percentile box
    box_size: np.ndarray  # float32 [3] x, y extents of the object, z extent of its visible surface
    num_points: int  # kept points (valid depth, inside the eroded mask, not outliers)


@dataclass
class Instances3D:
    """Per-instance 3D results, index-aligned with the :class:`Instances` they came from.

    - ``valid``       bool    [N]    placed in 3D (False: too few valid depth pixels)
    - ``num_valid``   int32   [N]    valid depth pixels in the (eroded) mask, before outlier rejection
    - ``num_points``  int32   [N]    points kept after outlier rejection (0 where not valid)
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


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary erosion by a (2r+1)^2 square; outside the array counts as background."""
    m = mask
    for _ in range(r):
        p = np.pad(m, 1, constant_values=False)
        rows = p[:-2, :] & p[1:-1, :] & p[2:, :]
        m = rows[:, :-2] & rows[:, 1:-1] & rows[:, 2:]
    return m


def _grid_map(n_src: int, n_dst: int) -> np.ndarray:
    """For each destination pixel, the source pixel containing its centre (nearest neighbour)."""
    return np.minimum(((np.arange(n_dst) + 0.5) * (n_src / n_dst)).astype(np.int64), n_src - 1)


def _span(index_map: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """The destination range [a, b) whose sources fall in [lo, hi] (index_map is sorted)."""
    return int(np.searchsorted(index_map, lo, "left")), int(np.searchsorted(index_map, hi, "right"))


def instances_in_3d(instances: Instances, depth_m: np.ndarray, camera: PinholeCamera, *,
                    min_points: int = DEFAULT_MIN_POINTS, erode_px: int = 1, mad_k: float = 3.5,
                    min_band_m: float = 0.02, shape_band: float = 1.0, size_percentile: float = 0.1,
                    points_step: int | None = None) -> Instances3D:
    """Place every instance in 3D from a registered depth image (module docstring: the method).

    ``depth_m``: float [h,w] metres (:func:`depth_to_metres`; 0, NaN and inf count as invalid
    too), of the masks' field of view at any resolution of the same aspect ratio. ``camera``:
    intrinsics of the depth image or of the colour image (rescaled to the depth's size).
    ``mad_k=inf`` and ``erode_px=0`` turn the outlier rules off. ``points_step``: also collect
    the kept points of every ``points_step``-th depth pixel (both axes) in ``points``.
    """
    depth = np.asarray(depth_m)
    if depth.ndim != 2 or depth.dtype.kind != "f":
        raise ValueError(f"depth_m must be float metres [H,W] (see depth_to_metres), got {depth.dtype} {depth.shape}")
    if min_points < 1 or erode_px < 0 or not 0.0 <= size_percentile < 50.0:
        raise ValueError(f"need min_points >= 1, erode_px >= 0, 0 <= size_percentile < 50 "
                         f"(got {min_points}, {erode_px}, {size_percentile})")
    if points_step is not None and points_step < 1:
        raise ValueError(f"points_step must be >= 1, got {points_step}")
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
        valid=np.zeros(n, bool), num_valid=np.zeros(n, np.int32), num_points=np.zeros(n, np.int32),
        centres=np.zeros((n, 3), np.float32), box_centres=np.zeros((n, 3), np.float32),
        box_sizes=np.zeros((n, 3), np.float32), camera=cam,
    )
    chunks = []
    for i in range(n):
        mask = instances.mask_crop(i, 0, 0, mw, mh)  # this instance's full-frame mask only
        r_any, c_any = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if r_any.size == 0:
            continue
        if same_grid:
            v0, v1, u0, u1 = int(r_any[0]), int(r_any[-1]) + 1, int(c_any[0]), int(c_any[-1]) + 1
            m = mask[v0:v1, u0:u1]
        else:
            (v0, v1), (u0, u1) = _span(rows_src, r_any[0], r_any[-1]), _span(cols_src, c_any[0], c_any[-1])
            m = mask[np.ix_(rows_src[v0:v1], cols_src[u0:u1])]
        z = depth[v0:v1, u0:u1]
        with np.errstate(invalid="ignore"):
            sel = m & np.isfinite(z) & (z > 0)
        out.num_valid[i] = count = np.count_nonzero(sel)
        if count < min_points:
            continue
        # the interior (eroded mask): silhouettes carry the flying pixels and misregistered colour edges
        interior, eroded = (_erode(m, erode_px) & sel, erode_px) if erode_px else (sel, 0)
        if np.count_nonzero(interior) < min_points:
            interior, eroded = sel, 0
        z_in = z[interior]
        med = float(np.median(z_in))
        band = math.inf
        if math.isfinite(mad_k):
            # a compact object's visible depth spans about its width: never cut within shape_band x that
            width = max(m.shape[0] * med / cam.fy, m.shape[1] * med / cam.fx)
            band = max(mad_k * _MAD_TO_SIGMA * float(np.median(np.abs(z_in - med))), min_band_m, shape_band * width)
        with np.errstate(invalid="ignore"):
            keep = interior & (np.abs(z - med) <= band)
        if np.count_nonzero(keep) < min_points:
            continue
        vv, uu = np.nonzero(keep)
        pts = cam.backproject(uu + u0, vv + v0, z[vv, uu])
        lo, hi = np.percentile(pts, [size_percentile, 100.0 - size_percentile], axis=0)
        # point coordinates are pixel centres of the interior: the object reaches half a pixel
        # plus the eroded rim beyond them on each side
        # (at the depth of the points at that side: a limb seen off-axis lies deeper than the median)
        margin = 0.5 + eroded
        for k, f in ((0, cam.fx), (1, cam.fy)):
            lo[k] -= margin * float(np.median(pts[pts[:, k] <= lo[k], 2])) / f
            hi[k] += margin * float(np.median(pts[pts[:, k] >= hi[k], 2])) / f
        centre = np.median(pts, axis=0)
        out.valid[i] = True
        out.num_points[i] = pts.shape[0]
        out.centres[i] = centre
        out.box_centres[i] = (lo + hi) / 2
        out.box_sizes[i] = hi - lo
        if points_step is not None:
            grid = ((uu + u0) % points_step == 0) & ((vv + v0) % points_step == 0)
            chunk = np.empty(int(grid.sum()), POINT_DTYPE)
            for k, name in enumerate("xyz"):
                chunk[name] = pts[grid, k]
            chunk["instance"] = i
            chunks.append(chunk)
    if points_step is not None:
        out.points = np.concatenate(chunks) if chunks else np.empty(0, POINT_DTYPE)
    return out


def instance_points(instances: Instances, depth_m: np.ndarray, camera: PinholeCamera, step: int = 2,
                    **options) -> np.ndarray:
    """The kept 3D points of every instance placed in 3D, on every ``step``-th depth pixel:
    :data:`POINT_DTYPE` [M] (x, y, z float32 metres in the optical frame, instance int32 =
    index into ``instances``), ready for a PointCloud2 (``.tobytes()`` is its data,
    point_step 16). A pixel inside two masks appears once for each. ``options``: those of
    :func:`instances_in_3d`; call that with ``points_step`` to get the centres too in one pass."""
    return instances_in_3d(instances, depth_m, camera, points_step=step, **options).points
