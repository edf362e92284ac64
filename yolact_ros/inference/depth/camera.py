"""Pinhole camera intrinsics: the camera model the 3D measurement projects with."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
