"""Command-line options that several ``yolact`` commands share, defined once."""
from __future__ import annotations

import argparse

from ..inference import defaults

__all__ = ["add_device_options", "device_settings"]


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--precision`` and ``--cuda-graph``: where and how the network runs
    (docs/gpu.md), the same for every command that runs the Segmenter."""
    parser.add_argument("--device", default=defaults.DEVICE, help=f"auto, cpu, cuda or cuda:N (default {defaults.DEVICE})")
    parser.add_argument("--precision", choices=defaults.PRECISIONS, default=defaults.PRECISION,
                        help="on CUDA: fp32 (TF32 off, default), tf32 or fp16; the CPU runs fp32")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="replay the network as a CUDA graph (CUDA only; eager if the capture fails)")


def device_settings(args: argparse.Namespace) -> dict:
    """The Segmenter keyword arguments of :func:`add_device_options`."""
    return dict(device=args.device, precision=args.precision, cuda_graph=args.cuda_graph)
