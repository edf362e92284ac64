"""``yolact quantize``: a checkpoint + calibration images -> an int8 OpenVINO model
(:mod:`yolact_ros.inference.quantize`; docs/cpu.md)."""

from __future__ import annotations

import argparse
import sys

from ..inference.quantize import DEFAULT_CALIBRATION_SIZE


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="yolact quantize", description="Post-training int8 quantization (NNCF) for the OpenVINO backend."
    )
    p.add_argument("--weights", required=True, help="a .pth checkpoint (official or from 'yolact train')")
    p.add_argument("--config", default=None, help="config name; default: from the checkpoint or its file name")
    p.add_argument(
        "--images",
        required=True,
        help="a folder of calibration images like the ones the camera will see (not your evaluation images)",
    )
    p.add_argument("--out", required=True, help="the OpenVINO model to write (.xml; its .bin goes beside it)")
    p.add_argument(
        "--calibration-size",
        type=int,
        default=DEFAULT_CALIBRATION_SIZE,
        help=f"images used for calibration, spread over the folder (default {DEFAULT_CALIBRATION_SIZE})",
    )
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    from ..inference.onnx_format import OnnxBackendError
    from ..inference.quantize import QuantizeError, quantize
    from ..inference.segmenter import load_model
    from ..model.checkpoint import CheckpointError

    try:
        model = load_model(a.config, a.weights)
        quantize(model, a.images, a.out, a.calibration_size, progress=print)
    except (CheckpointError, QuantizeError, OnnxBackendError, ValueError, FileNotFoundError) as exc:
        print(f"yolact quantize: error: {exc}", file=sys.stderr)
        return 2
    print(f"run it: yolact infer IMAGE --weights {a.out} --backend auto   (precision int8)")
    return 0
