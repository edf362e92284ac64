"""numpy -> sensor_msgs/Image for the node's outputs; the decoding side (messages -> numpy) is
:mod:`yolact_ros.interfaces.images`, re-exported here under its names."""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import Image

from ..interfaces.fields import make_image
from ..interfaces.images import (  # the node's names for the decoding side
    DEPTH_ENCODINGS,
    REJECTION_KINDS,
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    compressed_to_bgr,
    declared_size,
    depth_image_to_array,
    image_to_array,
    image_to_bgr,
    to_bgr3,
)

__all__ = [
    "DEPTH_ENCODINGS",
    "REJECTION_KINDS",
    "SUPPORTED_ENCODINGS",
    "ImageConversionError",
    "bgr_to_image",
    "compressed_to_bgr",
    "declared_size",
    "depth_image_to_array",
    "image_to_array",
    "image_to_bgr",
    "mono_to_image",
    "to_bgr3",
    "uint8_array",
]


def uint8_array(arr: np.ndarray) -> array.array:
    """A C-contiguous uint8 array -> the array.array rclpy stores for uint8[] (one memcpy;
    assigning bytes element-wise is slow; the field setter keeps an array.array as is)."""
    data = array.array("B")
    data.frombytes(arr.data)
    return data


def _make(arr: np.ndarray, encoding: str, header) -> Image:
    return make_image(Image, uint8_array, arr, encoding, header)


def bgr_to_image(bgr: np.ndarray, header=None) -> Image:
    """HxWx3 BGR uint8 -> sensor_msgs/Image bgr8 (header copied by reference)."""
    if bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"expected HxWx3 BGR, got shape {bgr.shape}")
    return _make(bgr, "bgr8", header)


def mono_to_image(mono: np.ndarray, header=None) -> Image:
    """HxW uint8 -> sensor_msgs/Image mono8."""
    if mono.ndim != 2:
        raise ValueError(f"expected HxW, got shape {mono.shape}")
    return _make(mono, "mono8", header)
