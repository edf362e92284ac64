"""Decode depth images sent over the ``compressedDepth`` image transport (numpy and OpenCV only).

The format is that of image_transport_plugins' ``compressed_depth_image_transport``: a
``sensor_msgs/CompressedImage`` whose ``format`` is ``"<encoding>; compressedDepth <codec>"``
(``"16UC1; compressedDepth png"``, ``"32FC1; compressedDepth png"``; older publishers write
``"16UC1; compressedDepth"``, which means PNG) and whose ``data`` is a 12-byte configuration
header followed by the compressed image. The header, in the sender's byte order (little-endian
on every platform ROS 2 supports), is ``int32 format`` (0: inverse depth) and ``float32
depthParam[2]`` = ``(depthQuantA, depthQuantB)``.

- ``16UC1`` (and ``mono16``): the PNG holds the depth itself, uint16 millimetres, 0 = no depth
  (the sender also zeroes depths beyond its ``depth_max``). Decoding is exact.
- ``32FC1``: the PNG holds a 16-bit quantised *inverse* depth ``q = trunc(A / z + B)``, with
  ``A = depthQuantA = d (d + 1)`` and ``B = depthQuantB = 1 - A / depth_max`` (``d`` is the
  sender's ``depth_quantization``, 100 by default; ``depth_max`` 10 m by default); ``q = 0``
  marks no depth (NaN, or beyond ``depth_max``). The decoded depth is ``z' = A / (q - B)``
  (float32, as the plugin computes it) and NaN where ``q = 0``. **Quantisation error**:
  truncation makes ``0 <= 1/z - 1/z' < 1/A``, so ``z <= z' < z / (1 - z / A)``: the decoded
  depth is never nearer and at most ``z**2 / (A - z)`` farther than the true one — with the
  defaults (A = 10100) under 0.1 mm at 1 m, 2.5 mm at 5 m and 9.9 mm at 10 m. Depths nearer than
  ``A / (65535 - B)`` (0.152 m with the defaults) do not fit the 16-bit code.
- ``rvl`` (the plugin's run-length codec) is refused with a clear message.

No ROS import, so code that reads bags without a ROS install can use it too; malformed input
raises :class:`CompressedDepthError` (a ValueError with a ``kind``, as the node's image
conversion errors have) with a one-line reason.
"""

from __future__ import annotations

import array
import struct

import cv2
import numpy as np

from ..inference.depth.encodings import DEPTH_ENCODINGS

__all__ = [
    "CONFIG_HEADER",
    "INV_DEPTH",
    "CompressedDepthError",
    "compressed_depth_to_array",
    "decode_compressed_depth",
    "parse_format",
]

#: The configuration header before the compressed image: int32 format, float32 depthQuantA, depthQuantB.
CONFIG_HEADER = struct.Struct("<iff")
#: ``format`` value of the header: the (only) compression format the plugin defines.
INV_DEPTH = 0
#: Depth encodings the transport carries -> the dtype of the decoded array.
_ENCODINGS = {name: DEPTH_ENCODINGS[name][0] for name in ("16UC1", "mono16", "32FC1")}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TRANSPORT = "compressedDepth"


class CompressedDepthError(ValueError):
    """A compressedDepth message that cannot be decoded; ``kind`` is one of ``format`` (the
    ``format`` string, or a codec not supported), ``encoding``, ``layout`` (a header or image
    shorter or shaped other than it must be), ``too_large`` or ``decode`` (a corrupt PNG)."""

    def __init__(self, message: str, kind: str = "decode"):
        super().__init__(message)
        self.kind = kind


def parse_format(fmt: str) -> tuple[str, str]:
    """``"32FC1; compressedDepth png"`` -> ``("32FC1", "png")``. The older forms
    ``"16UC1; compressedDepth"`` and ``"16UC1"`` (no codec named) mean PNG."""
    encoding, sep, rest = fmt.partition(";")
    encoding = encoding.strip()
    if encoding not in _ENCODINGS:
        raise CompressedDepthError(
            f"compressedDepth format {fmt!r}: unsupported depth encoding {encoding!r} "
            f"(supported: {', '.join(_ENCODINGS)})",
            kind="encoding",
        )
    if not sep:
        return encoding, "png"
    words = rest.split()
    if not words or words[0] != _TRANSPORT or len(words) > 2:
        raise CompressedDepthError(
            f"compressedDepth format {fmt!r} is not '<encoding>; {_TRANSPORT} [png|rvl]'", kind="format"
        )
    codec = words[1] if len(words) == 2 else "png"
    if codec == "rvl":
        raise CompressedDepthError(
            f"compressedDepth format {fmt!r}: the RVL codec is not supported; publish with the png "
            "codec (the publisher's format parameter: png)",
            kind="format",
        )
    if codec != "png":
        raise CompressedDepthError(f"compressedDepth format {fmt!r}: unknown codec {codec!r}", kind="format")
    return encoding, codec


def _as_bytes_array(data) -> np.ndarray:
    """A message's uint8[] field (array.array, bytes, memoryview, list) as a flat uint8 array."""
    if isinstance(data, (array.array, bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def _png_size(png: np.ndarray) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, read before decoding anything."""
    head = png[:24].tobytes()
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise CompressedDepthError("compressedDepth payload is not a PNG image", kind="decode")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def decode_compressed_depth(fmt: str, data, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """``(depth, encoding)`` from a compressedDepth message's ``format`` and ``data``.

    ``depth``: uint16 [H,W] millimetres (0 = no depth) for ``16UC1``/``mono16``, float32 [H,W]
    metres (NaN = no depth) for ``32FC1`` — the arrays the raw ``sensor_msgs/Image`` path
    gives, to be passed on with ``encoding`` (e.g. to ``instances_in_3d``). ``max_pixels``:
    a PNG declaring more pixels is refused before it is decoded.
    """
    encoding, _codec = parse_format(fmt)
    buf = _as_bytes_array(data)
    if buf.size <= CONFIG_HEADER.size:
        raise CompressedDepthError(
            f"compressedDepth data has {buf.size} bytes: no room for the {CONFIG_HEADER.size}-byte header and an image",
            kind="layout",
        )
    kind, quant_a, quant_b = CONFIG_HEADER.unpack(buf[: CONFIG_HEADER.size].tobytes())
    png = buf[CONFIG_HEADER.size :]
    width, height = _png_size(png)
    if width <= 0 or height <= 0:
        raise CompressedDepthError(f"compressedDepth image is empty: {width}x{height}", kind="layout")
    if max_pixels is not None and width * height > max_pixels:
        raise CompressedDepthError(
            f"compressedDepth image of {width}x{height} = {width * height / 1e6:.1f} MP exceeds "
            f"max_image_pixels ({max_pixels / 1e6:.1f} MP)",
            kind="too_large",
        )
    image = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise CompressedDepthError(f"compressedDepth PNG of {width}x{height} does not decode (corrupt data)")
    if image.dtype != np.uint16 or image.ndim != 2:
        raise CompressedDepthError(
            f"compressedDepth PNG holds {image.dtype} with {1 if image.ndim == 2 else image.shape[2]} channel(s); "
            "a 16-bit single-channel image is required",
            kind="layout",
        )
    if _ENCODINGS[encoding] is np.uint16:
        return image, encoding
    if kind != INV_DEPTH or not (np.isfinite(quant_a) and np.isfinite(quant_b)) or quant_a <= 0:
        raise CompressedDepthError(
            f"compressedDepth 32FC1 header is not an inverse-depth one: format {kind}, "
            f"depthQuantA {quant_a}, depthQuantB {quant_b}",
            kind="layout",
        )
    q = image.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.float32(quant_a) / (q - np.float32(quant_b))
    depth[image == 0] = np.nan
    return depth.astype(np.float32, copy=False), encoding


def compressed_depth_to_array(msg, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """:func:`decode_compressed_depth` of a ``sensor_msgs/CompressedImage`` (or anything with
    ``format`` and ``data``)."""
    return decode_compressed_depth(msg.format, msg.data, max_pixels)
