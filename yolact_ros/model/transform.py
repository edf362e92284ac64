"""Input normalisation shared by inference and training (one definition of the network's input)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .config import MEANS_BGR, STD_BGR, BackboneConfig


def normalize_bgr(x: torch.Tensor, backbone: BackboneConfig) -> torch.Tensor:
    """x float [N,3,H,W] BGR on the 0..255 scale -> the network's input (RGB, normalised).

    ``mean_std``: (x - MEANS) / STD per BGR channel (ResNet); ``unit``: x / 255 (DarkNet).
    """
    if backbone.input_transform == "mean_std":
        mean, std = _mean_std(x.device, x.dtype)
        x = (x - mean) / std
    elif backbone.input_transform == "unit":
        x = x / 255.0
    else:
        raise ValueError(f"unknown input_transform {backbone.input_transform!r}")
    return x.flip(1)  # BGR -> RGB


@functools.lru_cache(maxsize=8)
def _mean_std(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """MEANS_BGR and STD_BGR as [1,3,1,1] tensors on ``device``, made once: a new tensor from a
    Python list is a blocking host-to-device copy, which would make the host wait every frame."""
    return (
        torch.tensor(MEANS_BGR, dtype=dtype).view(1, 3, 1, 1).to(device),
        torch.tensor(STD_BGR, dtype=dtype).view(1, 3, 1, 1).to(device),
    )


def resize_and_normalize(x: torch.Tensor, size: int, backbone: BackboneConfig) -> torch.Tensor:
    """x float [N,3,H,W] BGR 0..255 -> [N,3,size,size] network input.

    The original squashes to a square (aspect ratio not kept) with bilinear
    ``F.interpolate`` on floats (align_corners=False, no antialias), then normalises.
    """
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return normalize_bgr(x, backbone)


def describe_input(size: int, backbone: BackboneConfig) -> dict:
    """What :func:`resize_and_normalize` makes of a BGR uint8 image, as plain data (for the
    self-describing ONNX export): the one written description of the network's input."""
    if backbone.input_transform == "mean_std":
        formula = "(x - mean_bgr) / std_bgr per BGR channel on the 0..255 scale, then BGR -> RGB"
        stats = {
            "mean_bgr": list(MEANS_BGR),
            "std_bgr": list(STD_BGR),
            "mean_rgb": list(MEANS_BGR[::-1]),
            "std_rgb": list(STD_BGR[::-1]),
        }
    elif backbone.input_transform == "unit":
        formula = "x / 255, then BGR -> RGB"
        stats = {}
    else:
        raise ValueError(f"unknown input_transform {backbone.input_transform!r}")
    return {
        "source": "BGR uint8 HxWx3 image (what cv2.imread returns), as float32 on the 0..255 scale",
        "resize": f"bilinear to {size}x{size} (torch F.interpolate, align_corners=False, no antialias; "
        "the aspect ratio is not kept)",
        "transform": backbone.input_transform,
        "formula": formula,
        **stats,
        "channel_order": "RGB",
        "layout": "NCHW",
        "dtype": "float32",
        "size": [size, size],
    }
