"""Input normalisation shared by inference and training (one definition of the network's input)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import MEANS_BGR, STD_BGR, BackboneConfig


def normalize_bgr(x: torch.Tensor, backbone: BackboneConfig) -> torch.Tensor:
    """x float [N,3,H,W] BGR on the 0..255 scale -> the network's input (RGB, normalised).

    ``mean_std``: (x - MEANS) / STD per BGR channel (ResNet); ``unit``: x / 255 (DarkNet).
    """
    if backbone.input_transform == "mean_std":
        mean = torch.tensor(MEANS_BGR, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(STD_BGR, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        x = (x - mean) / std
    elif backbone.input_transform == "unit":
        x = x / 255.0
    else:
        raise ValueError(f"unknown input_transform {backbone.input_transform!r}")
    return x.flip(1)  # BGR -> RGB


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
        stats = {"mean_bgr": list(MEANS_BGR), "std_bgr": list(STD_BGR),
                 "mean_rgb": list(MEANS_BGR[::-1]), "std_rgb": list(STD_BGR[::-1])}
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
