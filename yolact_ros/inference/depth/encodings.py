"""Depth image encodings: a sensor's depth image as an array with its factor to metres, and
which depths count as valid."""

from __future__ import annotations

import numpy as np

#: Depths outside [min, max] metres are invalid by default (typical RGB-D sensors).
DEFAULT_MIN_DEPTH_M = 0.1
DEFAULT_MAX_DEPTH_M = 10.0
#: The depth encodings of sensor_msgs/Image understood: each one's pixel type and factor to
#: metres (the one table: image decoding reads the pixel type, :func:`depth_to_metres` the factor).
DEPTH_ENCODINGS: dict[str, tuple[type, float]] = {
    "16UC1": (np.uint16, 0.001),
    "mono16": (np.uint16, 0.001),
    "32FC1": (np.float32, 1.0),
    "64FC1": (np.float64, 1.0),
}


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
    a, scale = depth_image(depth, encoding)
    with np.errstate(invalid="ignore"):
        m = a.astype(np.float32) * np.float32(scale) if scale != 1.0 else a.astype(np.float32, copy=True)
        m[~((m >= min_m) & (m <= max_m))] = np.nan  # NaN compares False: caught here too
    return m


def depth_image(depth: np.ndarray, encoding: str | None) -> tuple[np.ndarray, float]:
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
    scale = DEPTH_ENCODINGS[encoding][1]
    if (scale == 1.0) != (a.dtype.kind == "f"):
        raise ValueError(f"encoding {encoding!r} does not fit an array of dtype {a.dtype}")
    return a, scale


def valid_depth(z: np.ndarray, valid_range: tuple[float, float]) -> np.ndarray:
    """bool: depths (metres) inside [min, max] (NaN, inf and 0 are not)."""
    with np.errstate(invalid="ignore"):
        return (z >= np.float32(valid_range[0])) & (z <= np.float32(valid_range[1]))
