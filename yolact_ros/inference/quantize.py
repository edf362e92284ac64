"""``yolact quantize``'s engine: post-training int8 quantization of the network with NNCF.

The checkpoint is converted to an OpenVINO model (the ``openvino`` backend's conversion),
calibrated on the user's images and written as an OpenVINO IR (``F.xml`` + ``F.bin``) that
carries the export metadata with ``precision: int8`` and the calibration facts, so it loads
as ``weights`` with backend ``auto`` / ``openvino``.

Method: NNCF's default post-training quantization (``nncf.quantize``, preset
``PERFORMANCE``: symmetric int8 weights per output channel and activations per tensor,
min/max ranges gathered on the calibration images, then fast bias correction).  The
calibration images go through the Segmenter's own preprocessing (squash to the input size,
normalise), one image per calibration sample.  YOLACT++'s small mask-IoU head stays float.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..model.transform import resize_and_normalize
from .backends.openvino_backend import import_openvino, pytorch_to_openvino, read_metadata, write_metadata

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: calibration images used by default (NNCF's own default subset is 300)
DEFAULT_CALIBRATION_SIZE = 100


class QuantizeError(ValueError):
    """Unusable calibration images or options."""


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    images: int
    seconds: float


def calibration_images(folder: "str | Path", limit: int) -> list[Path]:
    """Up to ``limit`` image files of ``folder`` (recursively, sorted, evenly spread when there are more)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise QuantizeError(f"{folder}: not a folder of calibration images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise QuantizeError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) to calibrate with")
    if len(files) > limit:
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    return files


def preprocess_image(path: Path, cfg, size: int) -> np.ndarray:
    """One calibration sample: the network input [1,3,S,S] float32 the Segmenter would make."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise QuantizeError(f"{path}: not a readable image")
    x = torch.from_numpy(np.ascontiguousarray(bgr)).permute(2, 0, 1).unsqueeze(0).float()
    return resize_and_normalize(x, size, cfg.backbone).numpy()


def quantize(
    model, images: "str | Path", out: "str | Path", calibration_size: int = DEFAULT_CALIBRATION_SIZE, progress=None
) -> QuantizeResult:
    """Quantize ``model`` (a :class:`~yolact_ros.model.yolact.Yolact` with weights) to int8 with
    the images under ``images``; write the IR to ``out`` (``.xml``; the ``.bin`` beside it)."""
    import tempfile

    say = progress or (lambda _line: None)
    out = Path(out)
    if out.suffix.lower() != ".xml":
        raise QuantizeError(f"{out}: the output is an OpenVINO IR: give a .xml path (its .bin is written beside it)")
    if calibration_size < 1:
        raise QuantizeError(f"calibration size must be >= 1, got {calibration_size}")
    try:
        import nncf
    except ImportError:
        raise QuantizeError("yolact quantize needs NNCF: pip install nncf") from None
    ov = import_openvino()
    t0 = time.perf_counter()
    files = calibration_images(images, calibration_size)
    cfg = model.cfg
    say(f"converting {cfg.name} for OpenVINO")
    with tempfile.TemporaryDirectory(prefix="yolact_q_") as tmp:
        ov_model = pytorch_to_openvino(model, Path(tmp))
    meta = read_metadata(ov_model, cfg.name)
    size = int(meta["input_size"])
    samples = [preprocess_image(p, cfg, size) for p in files]
    say(f"calibrating on {len(samples)} image(s) from {images} (NNCF {nncf.__version__}, preset PERFORMANCE)")
    quantized = nncf.quantize(
        ov_model, nncf.Dataset(samples), subset_size=len(samples), preset=nncf.QuantizationPreset.PERFORMANCE
    )
    meta.update(
        {
            "precision": "int8",
            "quantization": "nncf post-training, preset PERFORMANCE, min/max + fast bias correction",
            "calibration_images": str(len(samples)),
            "nncf_version": nncf.__version__,
        }
    )
    write_metadata(quantized, meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    # written under temporary names, then renamed: an interrupted run leaves no half-written model
    tmp_xml = out.with_name(f".{out.stem}.tmp.xml")
    ov.save_model(quantized, str(tmp_xml), compress_to_fp16=False)
    tmp_xml.with_suffix(".bin").replace(out.with_suffix(".bin"))
    tmp_xml.replace(out)
    result = QuantizeResult(out, len(samples), time.perf_counter() - t0)
    say(f"wrote {out} (+ {out.with_suffix('.bin').name}) in {result.seconds:.1f} s")
    return result
