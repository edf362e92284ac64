"""What this machine's CPU can do natively: the one place capabilities are detected.

Read from the kernel's view of the CPU (``/proc/cpuinfo``: x86 ``flags``, aarch64
``Features``), from PyTorch (``torch.backends.cpu.get_cpu_capability()``) and, when it is
installed, from OpenVINO's own ``OPTIMIZATION_CAPABILITIES`` (which lists ``BF16`` only where
its CPU plugin runs bf16 natively, on any architecture).  Nothing here times anything: the
``auto`` backend / precision rule (:mod:`.backends.choice`) reads these facts only.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass, field

#: x86 / aarch64 flags that decide the precision rule (reported with every benchmark figure)
REPORTED_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
    "avx512_fp16",
    "asimd",
    "asimddp",
    "bf16",
    "i8mm",
    "sve",
)
#: flags meaning bf16 matrix arithmetic in hardware
BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
#: flags meaning int8 dot products in hardware
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "asimddp", "i8mm")


@dataclass(frozen=True)
class CpuCapabilities:
    """``model``: the CPU's name; ``arch``: ``x86_64``, ``aarch64``, ...; ``flags``: the
    kernel's feature flags; ``torch_isa``: PyTorch's dispatch level (e.g. ``AVX512``);
    ``openvino``: OpenVINO's CPU ``OPTIMIZATION_CAPABILITIES`` (empty when not installed)."""

    model: str
    arch: str
    flags: frozenset = field(default_factory=frozenset)
    torch_isa: str = ""
    openvino: tuple = ()

    @property
    def native_bf16(self) -> bool:
        """bf16 runs in hardware (AMX-BF16, AVX512_BF16, Arm BF16), by the flags or OpenVINO's own view."""
        return any(f in self.flags for f in BF16_FLAGS) or "BF16" in self.openvino

    @property
    def native_int8(self) -> bool:
        """int8 dot products in hardware (VNNI, AMX-INT8, Arm dot product / i8mm)."""
        return any(f in self.flags for f in INT8_FLAGS)

    @property
    def amx(self) -> bool:
        return "amx_bf16" in self.flags

    def summary(self) -> str:
        """One line: name, architecture and the flags that matter, for logs and benchmark lines."""
        shown = [f for f in REPORTED_FLAGS if f in self.flags]
        return (
            f"{self.model} ({self.arch}; flags: {' '.join(shown) or 'none of interest'}; torch {self.torch_isa or '?'}"
            + (f"; openvino {','.join(self.openvino)}" if self.openvino else "")
            + ")"
        )


def _read_cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str, frozenset]:
    model, flags = "", frozenset[str]()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if not model and key in ("model name", "cpu model", "hardware"):
            model = value.strip()
        elif not flags and key in ("flags", "features"):
            flags = frozenset(value.split())
    return model, flags


def openvino_capabilities() -> tuple:
    """OpenVINO CPU plugin's ``OPTIMIZATION_CAPABILITIES`` (e.g. ``('FP32', 'BF16', 'INT8', ...)``),
    or ``()`` when OpenVINO is not installed or cannot read the CPU."""
    try:
        import openvino as ov

        return tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # noqa: BLE001 - not installed or no CPU plugin: no OpenVINO view
        return ()


@functools.lru_cache(maxsize=1)
def detect_cpu() -> CpuCapabilities:
    """This machine's :class:`CpuCapabilities` (read once per process)."""
    model, flags = _read_cpuinfo()
    try:
        import torch

        isa = str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001 - torch missing or too old: the flags still decide
        isa = ""
    return CpuCapabilities(
        model=model or platform.processor() or platform.machine(),
        arch=platform.machine(),
        flags=flags,
        torch_isa=isa,
        openvino=openvino_capabilities(),
    )
