"""``yolact export``: a checkpoint -> one self-describing ONNX file of standard operators
(:mod:`yolact_ros.inference.onnx_export`; docs/onnx.md)."""

from __future__ import annotations

import argparse
import sys

from ..inference.onnx_format import DCN_MODES, PRECISIONS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yolact export", description="Export YOLACT / YOLACT++ weights to ONNX.")
    p.add_argument(
        "--weights",
        required=True,
        help="a .pth checkpoint (official or from 'yolact train')",
    )
    p.add_argument("--config", default=None, help="config name; default: from the checkpoint or its file name")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="square input size (default: the config's max_size, what the Segmenter's preprocessing makes)",
    )
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=int, default=1, help="static batch size (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="a dynamic batch axis instead")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp16: half-precision weights and compute (inputs and outputs stay float32)",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17; 19 with --dcn native)")
    p.add_argument(
        "--dcn",
        choices=DCN_MODES,
        default="grid_sample",
        help="YOLACT++ DCNv2 layers as GridSample + Conv (default, standard operators) "
        "or as ONNX DeformConv (opset 19)",
    )
    p.add_argument("--no-check", action="store_true", help="skip onnx.checker.check_model")
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)

    from ..inference.onnx_export import ExportError, export_onnx
    from ..inference.segmenter import load_model
    from ..model.checkpoint import CheckpointError

    try:
        import onnx  # noqa: F401  (the exporter writes and checks with it)
    except ImportError:
        print("yolact export: error: needs the onnx package: pip install onnx", file=sys.stderr)
        return 2
    try:
        model = load_model(a.config, a.weights)
        export_onnx(
            model,
            a.out,
            size=a.size,
            batch=None if a.dynamic_batch else a.batch,
            precision=a.precision,
            opset=a.opset,
            dcn=a.dcn,
            check=not a.no_check,
            progress=print,
        )
    except (CheckpointError, ExportError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"yolact export: error: {exc}", file=sys.stderr)
        return 2
    return 0
