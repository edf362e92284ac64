"""sensor_msgs images <-> numpy, without cv_bridge.

``image_to_array`` returns a *view* into the message's buffer wherever the layout allows it
(all supported 8-bit encodings, any row padding given by ``step``): no pixel is copied on the
way to the Segmenter. Channel order is fixed up with negative-stride views (``rgb8`` ->
BGR), which the Segmenter accepts. Every malformed message raises :class:`ImageConversionError`
with a one-line reason; nothing else is raised for bad input.
"""
from __future__ import annotations

import array

import cv2
import numpy as np

from sensor_msgs.msg import CompressedImage, Image

__all__ = [
    "ImageConversionError",
    "SUPPORTED_ENCODINGS",
    "image_to_array",
    "image_to_bgr",
    "compressed_to_bgr",
    "to_bgr3",
    "bgr_to_image",
    "mono_to_image",
]


class ImageConversionError(ValueError):
    """A message that cannot be turned into an image (bad encoding, size or data)."""


# encoding -> (channels, channel order in the message); order None = grey.
_LAYOUTS = {
    "bgr8": (3, "bgr"),
    "rgb8": (3, "rgb"),
    "bgra8": (4, "bgra"),
    "rgba8": (4, "rgba"),
    "mono8": (1, None),
    "8UC1": (1, None),
    "8UC3": (3, "bgr"),  # OpenCV's convention for untyped 3-channel 8-bit images
    "8UC4": (4, "bgra"),
}
SUPPORTED_ENCODINGS = tuple(_LAYOUTS)


def image_to_array(msg: Image) -> np.ndarray:
    """The message's pixels as a uint8 view: HxW (grey), or HxWx3 / HxWx4 in the message's
    own channel order. Honours ``step`` (row padding). Raises ImageConversionError."""
    layout = _LAYOUTS.get(msg.encoding)
    if layout is None:
        raise ImageConversionError(
            f"unsupported encoding {msg.encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)})"
        )
    channels = layout[0]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"empty image: {width}x{height}")
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is smaller than width*channels = {row_bytes}")
    data = msg.data
    # rclpy stores uint8[] as array.array('B') (buffer protocol, zero copy); accept bytes too.
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (array.array, bytes, bytearray, memoryview)) \
        else np.asarray(data, dtype=np.uint8)
    # The last row need not carry its padding.
    needed = step * (height - 1) + row_bytes
    if buf.size < needed:
        raise ImageConversionError(
            f"data has {buf.size} bytes, {width}x{height} {msg.encoding} with step {step} needs {needed}"
        )
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row_bytes), strides=(step, 1), writeable=False)
    if channels == 1:
        return rows
    return rows.reshape(height, width, channels)


def image_to_bgr(msg: Image) -> np.ndarray:
    """The image as the Segmenter wants it: a BGR(A)/grey uint8 view, no copy.

    rgb8 -> HxWx3 BGR view (negative stride); rgba8 -> HxWx3 BGR view; bgra8 -> HxWx4 (the
    Segmenter ignores alpha); mono8 -> HxW."""
    arr = image_to_array(msg)
    order = _LAYOUTS[msg.encoding][1]
    if order == "rgb":
        return arr[:, :, ::-1]
    if order == "rgba":
        return arr[:, :, 2::-1]
    return arr


def compressed_to_bgr(msg: CompressedImage) -> np.ndarray:
    """Decode a JPEG/PNG (anything OpenCV reads) CompressedImage to HxWx3 BGR uint8."""
    data = msg.data
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (array.array, bytes, bytearray, memoryview)) \
        else np.asarray(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageConversionError(f"empty compressed image (format {msg.format!r})")
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # pragma: no cover - OpenCV returns None for most bad data
        raise ImageConversionError(f"cannot decode compressed image (format {msg.format!r}): {exc}") from None
    if img is None or img.size == 0:
        raise ImageConversionError(f"cannot decode compressed image (format {msg.format!r}, {buf.size} bytes)")
    return img


def to_bgr3(img: np.ndarray) -> np.ndarray:
    """Any view returned above -> contiguous HxWx3 BGR (for drawing)."""
    if img.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3])
    return np.ascontiguousarray(img)


def _make(arr: np.ndarray, encoding: str, header) -> Image:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    # One memcpy into the array.array rclpy stores (assigning bytes element-wise is slow).
    data = array.array("B")
    data.frombytes(arr.data)
    msg = Image(height=int(arr.shape[0]), width=int(arr.shape[1]), encoding=encoding, is_bigendian=0,
                step=int(arr.strides[0]))
    msg.data = data  # the setter keeps an array.array as is (the constructor would copy it)
    if header is not None:
        msg.header = header
    return msg


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
