"""Result types of the 3D measurement: per-instance arrays, one placed instance, point layout."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .camera import PinholeCamera

#: One point of :attr:`Instances3D.points`: 16 bytes, laid out as PointCloud2 fields
#: x, y, z (FLOAT32, offsets 0, 4, 8) and instance (INT32, offset 12, the index into Instances).
POINT_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("instance", "<i4")])


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
