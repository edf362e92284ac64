"""The 3D measurement: each instance's centre and size from a registered depth image.

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

import cv2
import numpy as np

from ..defaults import DEPTH_MIN_POINTS
from ..instances import Instances
from .atlas import Atlas, Crop, erode, grid_map, grow_rim, local, span, thinned
from .camera import PinholeCamera
from .encodings import DEFAULT_MAX_DEPTH_M, DEFAULT_MIN_DEPTH_M, depth_image, valid_depth
from .results import POINT_DTYPE, Instances3D
from .robust import MAD_TO_SIGMA, extremes, median

#: A larger mask is measured on a regular subgrid (every s-th row and column) of about this many pixels.
DEFAULT_MAX_SAMPLES = 2048


def instances_in_3d(
    instances: Instances,
    depth: np.ndarray,
    camera: PinholeCamera,
    *,
    encoding: str | None = None,
    min_m: float = DEFAULT_MIN_DEPTH_M,
    max_m: float = DEFAULT_MAX_DEPTH_M,
    min_points: int = DEPTH_MIN_POINTS,
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
    depth, scale = depth_image(depth, encoding)
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
    rows_src, cols_src = grid_map(mh, h), grid_map(mw, w)

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
            (v0, v1), (u0, u1) = span(rows_src, y0 + by, y0 + by + bh - 1), span(cols_src, x0 + bx, x0 + bx + bw - 1)
            m = win[np.ix_(rows_src[v0:v1] - y0, cols_src[u0:u1] - x0)]
        st = 1 if max_samples is None else max(1, int(math.sqrt(np.count_nonzero(m) / max_samples)))
        ro, co = ((v1 - v0 - 1) % st) // 2, ((u1 - u0 - 1) % st) // 2
        crops.append(Crop(i, v0, v1, u0, u1, st, ro, co, m))
    # 2. the crops side by side in one atlas: the pixel rules run once over all of them
    atlas = Atlas(crops, depth, scale, erode_px, (min_m, max_m))
    sel, interior = atlas.sel, atlas.interior
    med = np.zeros(len(crops))
    band = np.full(len(crops), math.inf)
    subs: list = [None] * len(crops)  # each crop's pixels for the medians
    whole = np.ones(len(crops), bool)  # no interior point outside the band (on the median pixels)
    for k, c in enumerate(crops):
        s_ = atlas.slots[k]
        on_grid = int(np.count_nonzero(sel[s_]))
        count = on_grid if c.st == 1 else np.count_nonzero(c.m & valid_depth(c.metres(depth, scale), (min_m, max_m)))
        out.num_valid[c.index] = count
        if count < min_points:
            continue
        inner = interior[s_]
        if np.count_nonzero(inner) < min_points:  # too thin to erode: the whole mask
            inner[...] = sel[s_]
        subs[k] = sub = thinned(s_, on_grid, median_samples)  # the medians on at most about max_samples / 2 pixels
        z_in = atlas.z[sub][interior[sub]]
        if z_in.size == 0:
            continue
        med[k] = median(z_in)
        if math.isfinite(mad_k):
            # a compact object's visible depth spans about its width: never cut within shape_band x that
            floor = max(min_band_m, shape_band * med[k] * max((c.v1 - c.v0) / cam.fy, (c.u1 - c.u0) / cam.fx))
            dev = np.abs(z_in - np.float32(med[k]))
            band[k] = floor
            # the MAD widens the band only when more than half the deviations exceed floor / (mad_k * 1.4826)
            if 2 * np.count_nonzero(dev > floor / (mad_k * MAD_TO_SIGMA)) > dev.size:
                band[k] = max(mad_k * MAD_TO_SIGMA * median(dev), floor)
            whole[k] = float(dev.max()) <= band[k]
    # 3. the kept points (interior, within the band) and the extent (plus the rim pixels whose
    #    depth continues the kept ones: a limb seen at a grazing angle holds a large part of the
    #    extent in its last pixels; a flying pixel jumps towards the background)
    in_band = atlas.within(med, band)
    keep = interior & in_band
    extent = grow_rim(atlas.z, keep, sel & ~interior & in_band, erode_px, min_band_m) if erode_px else keep
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
        sub = local(subs[k], s_)
        on = kept[sub]
        centre = (median(px[sub][on]), median(py[sub][on]), med[k] if whole[k] else median(z[sub][on]))
        ext = extent[s_]
        n_ext = int(np.count_nonzero(ext))
        (xlo, xhi), (ylo, yhi) = extremes(px, ext, n_ext, q), extremes(py, ext, n_ext, q)
        zlo, zhi = extremes(z, ext, n_ext, q)
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


def _points(
    c: Crop,
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
        sel = c.m & valid_depth(z, valid_range)
        kept = (erode(c.m, erode_px) & sel) if erode_px else sel
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
