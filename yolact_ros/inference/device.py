"""Device names: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` resolved to an existing torch device."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def resolve_device(device: "str | torch.device") -> torch.device:
    """``auto`` -> first CUDA device if present else CPU; ``cuda[:N]`` must exist."""
    name = str(device).strip().lower()
    if name in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        log.info("device 'auto': no CUDA device available, running on CPU")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"invalid device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but no CUDA device is available (use 'cpu' or 'auto')")
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return torch.device("cuda", index)
    if dev.type != "cpu":
        raise ValueError(f"unsupported device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return dev
