"""Command-line options that several ``yolact`` commands share, defined once."""

from __future__ import annotations

import argparse

from ..inference import defaults

__all__ = ["add_device_options", "add_postprocess_options", "device_settings"]


def add_device_options(
    parser: argparse.ArgumentParser,
    backend_default: str = defaults.BACKEND,
    precision_default: str = defaults.PRECISION,
) -> None:
    """``--device``, ``--backend``, ``--precision``, ``--threads``, ``--cache-dir`` and
    ``--cuda-graph``: where and how the network runs (docs/cpu.md, docs/gpu.md), the same for
    every command that runs the Segmenter."""
    parser.add_argument(
        "--device", default=defaults.DEVICE, help=f"auto, cpu, cuda or cuda:N (default {defaults.DEVICE})"
    )
    parser.add_argument(
        "--backend",
        choices=defaults.BACKENDS,
        default=backend_default,
        help=f"what runs the network (default {backend_default}): torch, onnxruntime (a .onnx export), "
        f"openvino (a .pth converted at load and cached, a .onnx or an OpenVINO .xml), or auto "
        f"(OpenVINO on the CPU when installed; docs/cpu.md)",
    )
    parser.add_argument(
        "--precision",
        choices=defaults.PRECISIONS,
        default=precision_default,
        help=f"network precision (default {precision_default}): fp32; bf16 (CPU or CUDA); int8 "
        f"(OpenVINO, a 'yolact quantize' model); tf32 / fp16 (CUDA); auto = bf16 where the CPU "
        f"has it natively, else fp32",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of the backend (default: the runtime's own choice, all cores)",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="where OpenVINO keeps converted models (default $YOLACT_ROS_CACHE_DIR or ~/.cache/yolact_ros)",
    )
    parser.add_argument(
        "--cuda-graph",
        action="store_true",
        help="replay the network as a CUDA graph (CUDA only; eager if the capture fails)",
    )


def device_settings(args: argparse.Namespace) -> dict:
    """The Segmenter keyword arguments of :func:`add_device_options`."""
    if args.threads is not None and args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    return dict(
        device=args.device,
        backend=args.backend,
        precision=args.precision,
        cuda_graph=args.cuda_graph,
        num_threads=args.threads,
        cache_dir=args.cache_dir,
    )


def add_postprocess_options(parser: argparse.ArgumentParser) -> None:
    """``--score-threshold``, ``--top-k`` and ``--classes``: which instances the Segmenter keeps,
    the same for every command that segments images."""
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=defaults.SCORE_THRESHOLD,
        help=f"keep instances scoring above this (default {defaults.SCORE_THRESHOLD})",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=defaults.TOP_K,
        help=f"at most this many instances per image (default {defaults.TOP_K}, max {defaults.TOP_K_MAX})",
    )
    parser.add_argument("--classes", nargs="*", default=None, help="keep only these class names")
