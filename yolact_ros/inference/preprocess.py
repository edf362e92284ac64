"""Preprocessing: uint8 images checked, then turned into the network's input batch on the device."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..model.config import BackboneConfig
from ..model.transform import resize_and_normalize


def check_image(img) -> None:
    """Raise TypeError / ValueError unless ``img`` is a non-empty uint8 BGR, BGRA or mono image."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {img.dtype}")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected an HxWx3 BGR image (or HxW / HxWx1 mono, HxWx4 BGRA), got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"empty image of shape {img.shape}")


class PinnedUpload:
    """Host uint8 images to the device. On CUDA each goes through a pinned buffer kept per
    batch slot and shape (reused: the previous call's copies finished before its results
    reached the host), so the copy is asynchronous; on the CPU the image is used as it is."""

    def __init__(self, device: torch.device):
        self.device = device
        self._pinned: dict = {}

    def __call__(self, host: torch.Tensor, slot: int) -> torch.Tensor:
        if self.device.type != "cuda":
            return host
        key = (slot, tuple(host.shape))
        buf = self._pinned.get(key)
        if buf is None:
            if len(self._pinned) > 16:  # many sizes: keep the memory bounded
                self._pinned.clear()
            buf = self._pinned[key] = torch.empty(host.shape, dtype=host.dtype, pin_memory=True)
        buf.copy_(host)
        return buf.to(self.device, non_blocking=True)


def network_input(
    batch: list[np.ndarray],
    size: int,
    backbone: BackboneConfig,
    channels_last: bool,
    upload: Callable[[torch.Tensor, int], torch.Tensor],
) -> torch.Tensor:
    """BGR uint8 HxWx3 (or HxW mono, HxWx1, BGRA) images -> the network input [N,3,size,size]
    on the device: ``upload`` moves each image there (its batch slot given), then it is resized
    and normalised for ``backbone``."""
    tensors: list[torch.Tensor] = []
    for img in batch:
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        elif img.shape[2] == 4:
            img = img[:, :, :3]
        if not img.flags.writeable or not img.flags.c_contiguous:
            img = np.array(img, order="C")  # e.g. a read-only ROS message buffer: torch wants its own
        x = upload(torch.from_numpy(img), len(tensors))
        x = x.permute(2, 0, 1).unsqueeze(0).float()
        tensors.append(resize_and_normalize(x, size, backbone))
    x = torch.cat(tensors, 0)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x
