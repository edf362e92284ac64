"""sensor_msgs images -> numpy arrays, without ROS (used by the node and by ``yolact bag``).

``image_to_array`` returns a *view* into the message's buffer wherever the layout allows it
(all supported 8-bit encodings, any row padding given by ``step``): no pixel is copied on the
way to the Segmenter. Channel order is fixed up with negative-stride views (``rgb8`` ->
BGR), which the Segmenter accepts. Every malformed message raises :class:`ImageConversionError`
with a one-line reason and a ``kind`` (for throttling and counting); nothing else is raised
for bad input.

Size cap: frames with more than ``max_pixels`` pixels are refused before any pixel is touched;
for JPEG/PNG the size is read from the header (:func:`declared_size`) before decoding, so a
small file that declares 30000x30000 pixels costs nothing. libjpeg/libpng print warnings on
the process's stderr for corrupt data; :func:`compressed_to_bgr` collects them instead and
returns them with the image (a corrupt but decodable frame is processed and counted).
"""

from __future__ import annotations

import array
import os
import re
import struct
import sys
import tempfile
import threading
from typing import Any, Literal

import cv2
import numpy as np

from ..inference.depth.encodings import DEPTH_ENCODINGS

__all__ = [
    "DEPTH_ENCODINGS",
    "ImageConversionError",
    "REJECTION_KINDS",
    "SUPPORTED_ENCODINGS",
    "declared_size",
    "depth_image_to_array",
    "image_to_array",
    "image_to_bgr",
    "compressed_to_bgr",
    "to_bgr3",
]


#: ImageConversionError.kind values: a warning is throttled per kind.
REJECTION_KINDS = ("encoding", "layout", "too_large", "format", "decode")


class ImageConversionError(ValueError):
    """A message that cannot be turned into an image; ``kind`` is one of :data:`REJECTION_KINDS`."""

    def __init__(self, message: str, kind: str = "decode"):
        super().__init__(message)
        self.kind = kind


def _data_view(data) -> np.ndarray:
    """A message's uint8[] field as a flat uint8 array. rclpy stores uint8[] as
    array.array('B') (buffer protocol: a view, no copy); bytes and lists are accepted too."""
    if isinstance(data, (array.array, bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8)


def _check_pixels(width: int, height: int, max_pixels: int | None, what: str) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageConversionError(
            f"{what} of {width}x{height} = {width * height / 1e6:.1f} MP exceeds max_image_pixels "
            f"({max_pixels / 1e6:.1f} MP)",
            kind="too_large",
        )


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


def image_to_array(msg: Any, max_pixels: int | None = None) -> np.ndarray:
    """The message's pixels as a uint8 view: HxW (grey), or HxWx3 / HxWx4 in the message's
    own channel order. Honours ``step`` (row padding). Raises ImageConversionError."""
    layout = _LAYOUTS.get(msg.encoding)
    if layout is None:
        raise ImageConversionError(
            f"unsupported encoding {msg.encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)})", kind="encoding"
        )
    channels = layout[0]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"empty image: {width}x{height}", kind="layout")
    _check_pixels(width, height, max_pixels, "image")
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is smaller than width*channels = {row_bytes}", kind="layout")
    buf = _data_view(msg.data)
    # The last row need not carry its padding.
    needed = step * (height - 1) + row_bytes
    if buf.size < needed:
        raise ImageConversionError(
            f"data has {buf.size} bytes, {width}x{height} {msg.encoding} with step {step} needs {needed}", kind="layout"
        )
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row_bytes), strides=(step, 1), writeable=False)
    if channels == 1:
        return rows
    return rows.reshape(height, width, channels)


def depth_image_to_array(msg: Any, max_pixels: int | None = None) -> np.ndarray:
    """A depth image (``16UC1``/``mono16``, ``32FC1`` or ``64FC1``) as an HxW array of its own dtype (a
    view where the byte order allows; ``step`` honoured). Raises ImageConversionError."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ImageConversionError(
            f"unsupported depth encoding {msg.encoding!r} (supported: {', '.join(DEPTH_ENCODINGS)})", kind="encoding"
        )
    dtype = DEPTH_ENCODINGS[msg.encoding][0]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"empty depth image: {width}x{height}", kind="layout")
    _check_pixels(width, height, max_pixels, "depth image")
    item = np.dtype(dtype).itemsize
    if step < width * item:
        raise ImageConversionError(f"depth step {step} is smaller than width*{item} = {width * item}", kind="layout")
    buf = _data_view(msg.data)
    needed = step * (height - 1) + width * item
    if buf.size < needed:
        raise ImageConversionError(
            f"depth data has {buf.size} bytes, {width}x{height} {msg.encoding} with step {step} needs {needed}",
            kind="layout",
        )
    order: Literal[">", "<"] = ">" if msg.is_bigendian else "<"
    rows = np.ndarray((height, width), dtype=np.dtype(dtype).newbyteorder(order), buffer=buf, strides=(step, item))
    return rows if rows.dtype == np.dtype(dtype) else rows.astype(dtype)  # native byte order


def image_to_bgr(msg: Any, max_pixels: int | None = None) -> np.ndarray:
    """The image as the Segmenter wants it: a BGR(A)/grey uint8 view, no copy.

    rgb8 -> HxWx3 BGR view (negative stride); rgba8 -> HxWx3 BGR view; bgra8 -> HxWx4 (the
    Segmenter ignores alpha); mono8 -> HxW."""
    arr = image_to_array(msg, max_pixels)
    order = _LAYOUTS[msg.encoding][1]
    if order == "rgb":
        return arr[:, :, ::-1]
    if order == "rgba":
        return arr[:, :, 2::-1]
    return arr


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...): not DHT (C4), JPG (C8), DAC (CC)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def declared_size(data: bytes) -> tuple[str, int, int]:
    """``(format, width, height)`` from a PNG or JPEG header, without decoding any pixel.
    Raises ImageConversionError (kind ``format``) for anything else or a header cut short."""
    if data[:8] == _PNG_SIGNATURE:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageConversionError("PNG without an IHDR header", kind="format")
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                raise ImageConversionError("JPEG with a malformed marker before its frame header", kind="format")
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
                pos += 2
                continue
            (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
            if marker in _JPEG_SOF:
                if pos + 9 > len(data):
                    break
                height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
                return "jpeg", width, height
            if marker == 0xDA or length < 2:  # scan data before any frame header
                break
            pos += 2 + length
        raise ImageConversionError("JPEG without a frame header", kind="format")
    raise ImageConversionError(f"not a JPEG or PNG (starts with {bytes(data[:4])!r})", kind="format")


# What libjpeg / libpng / OpenCV's decoder print for corrupt data (anything else printed while
# decoding, e.g. another thread's log line, is passed through to stderr).
_DECODER_LINE = re.compile(
    r"^(libpng (warning|error)|Corrupt JPEG data|Premature end of JPEG|Invalid (JPEG|SOS|component)|"
    r"Bogus |Unsupported JPEG|Huffman|Not a JPEG|JPEG|Warning: |\[ *WARN:.*(imdecode|loadsave|grfmt))"
)


class _DecoderOutput:
    """Runs a decode with file descriptor 2 pointed at a private file, one decode at a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._file = None

    def run(self, decode, *args):
        with self._lock:
            if self._file is None:
                self._file = tempfile.TemporaryFile()
            try:
                sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                pass
            saved = os.dup(2)
            self._file.seek(0)
            self._file.truncate()
            os.dup2(self._file.fileno(), 2)
            try:
                result = decode(*args)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            self._file.seek(0)
            text = self._file.read().decode("utf-8", "replace")
        decoder, other = [], []
        for line in text.splitlines():
            (decoder if _DECODER_LINE.match(line.strip()) else other).append(line)
        if other:
            os.write(2, ("\n".join(other) + "\n").encode())
        return result, decoder


_decoder_output = _DecoderOutput()


def compressed_to_bgr(msg: Any, max_pixels: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Decode a JPEG/PNG CompressedImage to HxWx3 BGR uint8: ``(image, decoder_messages)``.

    The size is read from the header and checked against ``max_pixels`` first; the messages
    are what libjpeg/libpng reported while decoding (empty for a clean frame)."""
    data = msg.data
    raw = data.tobytes() if isinstance(data, array.array) else bytes(data)
    if not raw:
        raise ImageConversionError(f"empty compressed image (format {msg.format!r})", kind="layout")
    fmt, width, height = declared_size(raw)
    if width <= 0 or height <= 0:
        raise ImageConversionError(f"{fmt} header declares {width}x{height} pixels", kind="format")
    _check_pixels(width, height, max_pixels, f"{fmt} header size")
    buf = np.frombuffer(raw, dtype=np.uint8)
    try:
        img, messages = _decoder_output.run(cv2.imdecode, buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # pragma: no cover - OpenCV returns None for most bad data
        raise ImageConversionError(f"cannot decode compressed image ({fmt}): {str(exc).strip()}") from None
    if img is None or img.size == 0:
        detail = f": {messages[0].strip()}" if messages else ""
        raise ImageConversionError(f"cannot decode compressed image ({fmt}, {buf.size} bytes){detail}")
    return img, messages


def to_bgr3(img: np.ndarray) -> np.ndarray:
    """Any view returned above -> contiguous HxWx3 BGR (for drawing)."""
    if img.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3])
    return np.ascontiguousarray(img)
