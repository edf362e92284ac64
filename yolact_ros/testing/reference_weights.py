"""The deterministic weight rule of the reference fixtures (no trained checkpoint needed); test-only.

Used by tests and benchmarks to reproduce the original implementation's
outputs bit for bit: every state_dict entry is drawn from a generator seeded
with the CRC32 of its key, then scaled by its role (BatchNorm, conv, bias).
The same weights quantized to int8 (:func:`quantized_reference`) are the subject of the
int8 benchmarks.
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict
from pathlib import Path

import torch

from ..model.yolact import Yolact, build_yolact

_BOOSTED_CLASSES = (1, 16, 42)  # COCO person / cat / cup (channel 0 is background)


def golden_tensor(
    key: str, shape: tuple[int, ...], all_shapes: dict[str, tuple[int, ...]], num_classes: int = 81
) -> torch.Tensor:
    if key.endswith(".num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    g = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    z = torch.randn(shape, generator=g, dtype=torch.float32)
    prefix, name = key.rsplit(".", 1)
    parts = key.split(".")
    if name == "running_mean":
        return 0.1 * z
    if name == "running_var":
        return 1.0 + (0.1 * z).abs()
    if name == "weight" and len(shape) == 1:  # BatchNorm gamma
        t = 1.0 + 0.1 * z
        if key.startswith("backbone.layers.") and (parts[-2] == "bn3" or parts[-3:-1] == ["conv2", "1"]):
            t = t * 0.2  # the BatchNorm closing a residual branch
        return t
    if name == "bias" and len(all_shapes.get(prefix + ".weight", ())) == 1:
        return 0.1 * z  # BatchNorm beta
    if name == "weight":
        gain = 2.0 if key.startswith(("backbone.", "maskiou_net.")) else 1.0
        return z * math.sqrt(gain / math.prod(shape[1:]))
    t = 0.01 * z
    if prefix.endswith(".mask_layer"):
        t = t + 0.6
    if prefix.endswith(".conf_layer"):
        for c in _BOOSTED_CLASSES:
            t[c::num_classes] += 1.5
    return t


def golden_state_dict(shapes: "dict[str, tuple[int, ...]]", num_classes: int = 81) -> "OrderedDict[str, torch.Tensor]":
    """Deterministic state_dict for {key: shape} (file order kept)."""
    shapes = {k: tuple(s) for k, s in shapes.items()}
    return OrderedDict((k, golden_tensor(k, s, shapes, num_classes)) for k, s in shapes.items())


def apply_golden_weights(model: Yolact) -> Yolact:
    """Fill ``model`` (a Yolact) with the deterministic reference weights, in place."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(golden_state_dict(shapes, model.cfg.num_classes), strict=True)
    return model


def reference_model(config) -> torch.nn.Module:
    """A Yolact for ``config`` (name or :class:`YolactConfig`) filled with the reference weights.

    Untrained and biased towards three classes by design: for tests and benchmarks only,
    passed explicitly as ``Segmenter(model=reference_model(...))``.
    """
    return apply_golden_weights(build_yolact(config))


#: scikit-image photos the int8 variants of the reference weights are calibrated on (the
#: benchmarks' own image, astronaut, is not among them)
CALIBRATION_PHOTOS = ("coffee", "chelsea", "rocket", "cat", "hubble_deep_field", "immunohistochemistry", "retina")


def quantized_reference(cfg: str, workdir: Path) -> Path:
    """The reference weights of ``cfg`` quantized to int8 (``yolact quantize``'s engine) in
    ``workdir``, calibrated on :data:`CALIBRATION_PHOTOS` (made once per ``workdir``)."""
    import cv2

    from ..data.photos import load_photo
    from ..inference.quantize import quantize

    out = workdir / f"{cfg}_int8.xml"
    if not out.is_file():
        calib = workdir / "calibration"
        calib.mkdir(exist_ok=True)
        for name in CALIBRATION_PHOTOS:
            cv2.imwrite(str(calib / f"{name}.png"), load_photo(name))
        quantize(reference_model(cfg), calib, out, len(CALIBRATION_PHOTOS))
    return out
