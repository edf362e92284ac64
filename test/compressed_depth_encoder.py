"""Test support: encode a depth image as the compressedDepth image transport publishes it.

Reproduces the quantisation of image_transport_plugins' compressed_depth_image_transport
publisher (its parameters ``depth_max``, ``depth_quantization``, ``png_level`` and their
defaults), so the decoder in :mod:`yolact_ros.ros.compressed_depth` is tested against the bytes
a real publisher sends:

- ``32FC1``: ``A = d (d + 1)``, ``B = 1 - A / depth_max`` (float32); a depth ``z < depth_max``
  becomes ``q = trunc(A / z + B)`` (uint16), anything else (NaN, beyond ``depth_max``) 0. A
  depth of 0 or below is sent as 0 as well (the plugin's float-to-uint16 conversion of
  ``A / 0`` gives 0 on x86). A depth too near for 16 bits is refused here (the plugin would
  wrap it around).
- ``16UC1``: depths beyond ``depth_max`` (in mm) become 0; the PNG holds the rest unchanged.
"""

from __future__ import annotations

import cv2
import numpy as np

from yolact_ros.ros.compressed_depth import CONFIG_HEADER, INV_DEPTH

DEFAULT_DEPTH_MAX = 10.0
DEFAULT_DEPTH_QUANTIZATION = 100.0
DEFAULT_PNG_LEVEL = 9


def quantisation(depth_max: float = DEFAULT_DEPTH_MAX, depth_quantization: float = DEFAULT_DEPTH_QUANTIZATION):
    """``(depthQuantA, depthQuantB)`` as float32, as the publisher computes them."""
    a = np.float32(depth_quantization) * (np.float32(depth_quantization) + np.float32(1.0))
    b = np.float32(1.0) - a / np.float32(depth_max)
    return np.float32(a), np.float32(b)


def encode_compressed_depth(
    depth: np.ndarray,
    encoding: str,
    *,
    depth_max: float = DEFAULT_DEPTH_MAX,
    depth_quantization: float = DEFAULT_DEPTH_QUANTIZATION,
    png_level: int = DEFAULT_PNG_LEVEL,
    old_format: bool = False,
) -> tuple[str, bytes]:
    """``(format, data)`` of the CompressedImage the publisher sends for ``depth`` (uint16 mm
    for ``16UC1``, float32 m for ``32FC1``). ``old_format``: the format string of older
    publishers, without the codec name."""
    header_a = header_b = np.float32(0.0)
    if encoding == "32FC1":
        a, b = quantisation(depth_max, depth_quantization)
        z = np.asarray(depth, np.float32)
        send = (z < np.float32(depth_max)) & (z > 0)  # NaN compares False: sent as 0
        with np.errstate(divide="ignore", invalid="ignore"):
            code = np.where(send, a / z + b, np.float32(0.0))
        if code.max(initial=0.0) >= 65536.0:
            raise ValueError(f"depths nearer than {a / (65535.0 - b):.3f} m do not fit the 16-bit inverse-depth code")
        image = np.trunc(code).astype(np.uint16)
        header_a, header_b = a, b
    elif encoding in ("16UC1", "mono16"):
        image = np.asarray(depth, np.uint16).copy()
        image[image > np.uint16(int(depth_max * 1000.0))] = 0
    else:
        raise ValueError(f"compressedDepth carries 16UC1, mono16 or 32FC1, not {encoding!r}")
    ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, png_level])
    assert ok, "PNG encoding failed"
    fmt = f"{encoding}; compressedDepth" + ("" if old_format else " png")
    return fmt, CONFIG_HEADER.pack(INV_DEPTH, float(header_a), float(header_b)) + png.tobytes()
