"""The atlas: every instance's crop of the depth grid packed into one image, and the pixel
rules (erosion, rim growth) that run once over all of them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .camera import PinholeCamera
from .encodings import valid_depth

_SQUARE3 = np.ones((3, 3), np.uint8)
_SQUARE5 = np.ones((5, 5), np.uint8)


def erode(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary erosion by a (2r+1)^2 square; outside the array counts as background."""
    m = np.ascontiguousarray(mask).view(np.uint8)
    return cv2.erode(m, _SQUARE3, iterations=r, borderType=cv2.BORDER_CONSTANT, borderValue=0).view(bool)


def grow_rim(z: np.ndarray, kept: np.ndarray, candidates: np.ndarray, rings: int, min_jump_m: float) -> np.ndarray:
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


def grid_map(n_src: int, n_dst: int) -> np.ndarray:
    """For each destination pixel, the source pixel containing its centre (nearest neighbour)."""
    return np.minimum(((np.arange(n_dst) + 0.5) * (n_src / n_dst)).astype(np.int64), n_src - 1)


def span(index_map: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """The destination range [a, b) whose sources fall in [lo, hi] (index_map is sorted)."""
    return int(np.searchsorted(index_map, lo, "left")), int(np.searchsorted(index_map, hi, "right"))


@dataclass
class Crop:
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


class Atlas:
    """The measuring grids of all crops packed into one image (shelves of decreasing height,
    ``_GAP`` empty pixels between them), so that each pixel rule is one array operation for
    all instances: ``z`` depth in metres (NaN outside the crops), ``sel`` mask pixels with a
    valid depth, ``interior`` the eroded masks' (each crop eroded on its own: the gaps are
    background)."""

    def __init__(
        self, crops: list[Crop], depth: np.ndarray, scale: float, erode_px: int, valid_range: tuple[float, float]
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
        self.sel = m & valid_depth(self.z, valid_range)
        self.interior = (erode(m, erode_px) & self.sel) if erode_px else self.sel.copy()

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


def thinned(slot: tuple[slice, slice], count: int, samples: int | None) -> tuple[slice, slice]:
    """``slot`` on every s-th row and column, s such that about ``count / s**2 <= samples``
    (None: every pixel)."""
    s = 1 if samples is None else max(1, int(math.sqrt(count / samples)))
    if s == 1:
        return slot
    r, c = slot
    return slice(r.start, r.stop, s), slice(c.start, c.stop, s)


def local(sub: tuple[slice, slice], slot: tuple[slice, slice]) -> tuple[slice, slice]:
    """``sub`` (a thinned ``slot`` of the atlas) relative to the slot's own origin."""
    (r, c), (r0, c0) = sub, slot
    return slice(r.start - r0.start, r.stop - r0.start, r.step), slice(c.start - c0.start, c.stop - c0.start, c.step)
