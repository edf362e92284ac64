"""The ``auto`` rule: which backend and precision run the network, from the device's detected
capabilities and the weights file (never from a timing run).  docs/cpu.md has the table and
the measurements behind it.

| device | weights | OpenVINO installed | CPU | chosen |
|---|---|---|---|---|
| CUDA | any ``.pth`` | - | - | torch, fp32 (GPU defaults: docs/gpu.md) |
| CPU | int8 IR (``yolact quantize``) | yes | any | openvino, int8 |
| CPU | ``.pth`` / ``.onnx`` / IR | yes | native bf16 (AMX-BF16, AVX512_BF16, Arm BF16) | openvino, bf16 |
| CPU | ``.pth`` / ``.onnx`` / IR | yes | no native bf16 | openvino, fp32 |
| CPU | ``.pth`` | no | native bf16 | torch, bf16 |
| CPU | ``.pth`` | no | no native bf16 | torch, fp32 |
| CPU | ``.onnx`` | no | any | onnxruntime, fp32 |
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..capabilities import CpuCapabilities, detect_cpu
from ..defaults import BACKENDS, PRECISIONS

#: precisions per backend (``auto`` aside); tf32 / fp16 are CUDA precisions of the torch backend
BACKEND_PRECISIONS = {
    "torch": ("fp32", "tf32", "fp16", "bf16"),
    "onnxruntime": ("fp32",),
    "openvino": ("fp32", "bf16", "int8"),
}
QUANTIZE_HINT = "make one with 'yolact quantize --weights W --images DIR --out F.xml'"


@dataclass(frozen=True)
class Choice:
    """What runs the network and why (the reason is logged once at start-up and shown in
    diagnostics and on benchmark lines)."""

    backend: str
    precision: str
    reason: str


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def weights_kind(weights) -> str:
    """``pth``, ``onnx``, ``ir`` (OpenVINO .xml) or ``module`` (no file: a built model)."""
    if weights in (None, ""):
        return "module"
    suffix = Path(str(weights)).suffix.lower()
    return {".onnx": "onnx", ".xml": "ir"}.get(suffix, "pth")


def choose(
    backend: str,
    precision: str,
    device_type: str,
    weights,
    cpu: "CpuCapabilities | None" = None,
    ir_is_int8: bool = False,
    openvino: "bool | None" = None,
) -> Choice:
    """Resolve ``auto`` backend and / or precision; explicit values are checked and kept.

    ``ir_is_int8``: the weights are a quantized OpenVINO model; ``openvino``: whether it is
    installed (None: look); ``cpu``: the CPU's capabilities (None: detected, only when the
    rule needs them, so an explicit choice costs no detection)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    kind = weights_kind(weights)
    ov = openvino_available() if openvino is None else openvino
    cuda = device_type == "cuda"
    if precision == "int8" and kind in ("pth", "module"):
        raise ValueError(f"precision int8 needs a quantized OpenVINO model, not a .pth checkpoint: {QUANTIZE_HINT}")
    if backend == "auto":
        if cuda:
            if kind in ("ir",):
                raise ValueError("an OpenVINO model runs on the CPU: use device 'cpu'")
            backend, why = ("onnxruntime", "an ONNX file on CUDA") if kind == "onnx" else ("torch", "a CUDA device")
        elif kind == "ir" or (ov and kind in ("pth", "onnx", "module")):
            if kind == "ir" and not ov:
                raise ValueError("an OpenVINO .xml model needs the openvino package: pip install openvino")
            backend, why = "openvino", "the CPU, OpenVINO installed"
        elif kind == "onnx":
            backend, why = "onnxruntime", "an ONNX file, OpenVINO not installed"
        else:
            backend, why = "torch", "the CPU, OpenVINO not installed"
    else:
        why = f"backend {backend} asked for"
    if backend == "openvino" and cuda:
        raise ValueError("backend 'openvino' runs on the CPU here: use device 'cpu' (or backend 'torch' on CUDA)")
    if precision == "auto":
        if ir_is_int8:
            precision, pwhy = "int8", "a quantized model"
        elif backend == "openvino" or (backend == "torch" and not cuda):
            bf16 = (cpu or detect_cpu()).native_bf16
            precision, pwhy = ("bf16" if bf16 else "fp32"), ("native bf16" if bf16 else "no native bf16")
        else:
            precision, pwhy = "fp32", "the default" if cuda else "the backend's only precision"
    else:
        pwhy = f"precision {precision} asked for"
        if precision not in BACKEND_PRECISIONS[backend]:
            raise ValueError(
                f"backend {backend!r} runs precision {', '.join(BACKEND_PRECISIONS[backend])}, not "
                f"{precision!r}" + (f"; int8: {QUANTIZE_HINT}" if precision == "int8" else "")
            )
        if precision == "int8" and not ir_is_int8:
            raise ValueError(f"precision int8 needs a quantized OpenVINO model: {QUANTIZE_HINT}")
    return Choice(backend, precision, f"{why}; {pwhy}")
