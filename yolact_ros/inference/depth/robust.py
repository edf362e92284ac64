"""Robust statistics of the 3D measurement: medians and percentile extremes without copies."""

from __future__ import annotations

import cv2
import numpy as np

_PEEL = 8  # quantile ranks found by peeling extremes (deeper: a partition)
#: The MAD of a normal distribution times this is its standard deviation.
MAD_TO_SIGMA = 1.4826


def median(v: np.ndarray) -> float:
    """The median of a non-empty 1-D array (np.median without its overhead)."""
    n = v.size
    k = n // 2
    if n % 2:
        return float(np.partition(v, k)[k])
    p = np.partition(v, (k - 1, k))
    return (float(p[k - 1]) + float(p[k])) / 2.0


def extremes(values: np.ndarray, where: np.ndarray, count: int, q: float) -> tuple[float, float]:
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
