"""The OpenVINO backend: the network compiled by OpenVINO's CPU plugin, in f32, bf16 or int8.

Sources: a ``.pth`` checkpoint (or a built :class:`Yolact`), converted at load through the
``yolact export`` graph (:mod:`..onnx_export`) into an OpenVINO model that is cached on disk
(:mod:`.model_cache`); a ``yolact export`` ``.onnx`` file; or an OpenVINO IR ``.xml`` written
by this backend or by ``yolact quantize`` (int8).  Every model it loads carries the export
metadata (:class:`~..onnx_format.ExportInfo`) in its ``rt_info`` under ``yolact_ros``, so an IR
file is self-describing like an ONNX export.  Compiled blobs are cached too (OpenVINO's
``CACHE_DIR``), so a warm restart neither converts nor compiles.

Precision: ``fp32`` compiles with ``INFERENCE_PRECISION_HINT=f32``, ``bf16`` with ``bf16``;
``int8`` runs a quantized IR (its other operations at bf16 where the CPU has it natively, else
f32).  The precision actually compiled is read back from the compiled model and reported: a
bf16 request on a CPU without native bf16 reports ``fp32``, never ``bf16``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ... import __version__
from ...model.heads import gather_mask_iou
from ..onnx_format import (
    FORMAT_VERSION,
    INPUT_NAME,
    OUTPUT_NAMES,
    ExportInfo,
    OnnxBackendError,
    OnnxModelError,
)
from .model_cache import ModelCache, cache_key, file_digest

log = logging.getLogger(__name__)

RT_INFO_KEY = "yolact_ros"
PRECISIONS = ("fp32", "bf16", "int8")
_HINTS = {"fp32": "f32", "bf16": "bf16"}
_MODEL_FILE = "model.xml"
#: revision of the .pth -> OpenVINO conversion, part of every cache key (2: DeformConv read natively)
CONVERSION = 2


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise OnnxBackendError("backend 'openvino' needs the openvino package: pip install openvino") from None
    return openvino


def read_metadata(ov_model, source: str) -> dict[str, str]:
    """The ``yolact_ros`` metadata stored in an OpenVINO model's ``rt_info``."""
    if not ov_model.has_rt_info([RT_INFO_KEY, "exporter"]):
        raise OnnxModelError(
            f"{source}: not a yolact_ros model (no '{RT_INFO_KEY}' metadata in its rt_info); "
            f"convert a checkpoint with backend 'openvino' or 'yolact quantize'"
        )
    info = ov_model.get_rt_info()[RT_INFO_KEY]
    return {str(k): str(v.astype(str) if hasattr(v, "astype") else v) for k, v in info.items()}


def write_metadata(ov_model, meta: dict[str, str]) -> None:
    for key, value in meta.items():
        ov_model.set_rt_info(str(value), [RT_INFO_KEY, key])


def pytorch_to_openvino(model, out_dir: Path, progress=None, core=None):
    """Convert a :class:`Yolact` (with weights) to an OpenVINO model (dynamic batch) with the
    export metadata in its rt_info; ``out_dir`` holds the intermediate ONNX file; ``core``: an
    :func:`onnx_core` to read it with (a new one if None).

    YOLACT++'s deformable convolutions are exported as ONNX ``DeformConv`` and read as
    OpenVINO's own ``DeformableConvolution`` (:func:`onnx_core`), not as the GridSample form."""
    from ..onnx_export import export_onnx

    onnx_path = out_dir / "network.onnx"
    dcn = "native" if model.cfg.backbone.dcn_layers else "grid_sample"
    result = export_onnx(model, onnx_path, batch=None, dcn=dcn, check=False, progress=progress)
    ov_model = (core or onnx_core()).read_model(str(onnx_path))
    write_metadata(ov_model, result.info.to_metadata())
    onnx_path.unlink()
    return ov_model


def onnx_core():
    """An OpenVINO ``Core`` that also reads ONNX ``DeformConv`` (opset 19), which OpenVINO's ONNX
    frontend has no converter for, as its ``DeformableConvolution``."""
    ov = import_openvino()
    from openvino.frontend.onnx import ConversionExtension

    core = ov.Core()
    core.add_extension(ConversionExtension("DeformConv", _deform_conv))
    return core


def _deform_conv(node):
    """ONNX ``DeformConv`` (inputs X, W, offset, B, mask) -> ``DeformableConvolution`` (+ bias).
    Both take the offsets as torchvision does ((dy, dx) per kernel tap); samples outside the
    image read zeros with their in-image neighbours still interpolated (DCNv2's rule)."""
    import openvino.opset8 as ops

    count = node.get_input_size()
    pads = [int(p) for p in node.get_attribute("pads", [0, 0, 0, 0])]
    half = len(pads) // 2
    out = ops.deformable_convolution(
        node.get_input(0),
        node.get_input(2),
        node.get_input(1),
        strides=[int(v) for v in node.get_attribute("strides", [1, 1])],
        pads_begin=pads[:half],
        pads_end=pads[half:],
        dilations=[int(v) for v in node.get_attribute("dilations", [1, 1])],
        mask=node.get_input(4) if count > 4 else None,
        group=int(node.get_attribute("group", 1)),
        deformable_group=int(node.get_attribute("offset_group", 1)),
        bilinear_interpolation_pad=True,
    )
    if count > 3:
        bias = ops.reshape(node.get_input(3), ops.constant(np.array([1, -1, 1, 1], np.int64)), special_zero=False)
        out = ops.add(out, bias)
    return out.outputs()


def _onnx_metadata(path: Path) -> dict[str, str]:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own types
        raise OnnxModelError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    return {p.key: p.value for p in proto.metadata_props}


class OpenVinoBackend:
    """The network run by OpenVINO on the CPU.

    ``weights``: ``.pth``, ``.onnx`` or ``.xml`` path (or None with ``model``); ``config``:
    the config name for a ``.pth`` whose name / metadata do not say it; ``precision``: one of
    :data:`PRECISIONS`; ``num_threads``: ``INFERENCE_NUM_THREADS`` (None = OpenVINO's default);
    ``cache_dir``: the model cache (None = :func:`.model_cache.default_cache_dir`).
    ``info`` is the model's export metadata, ``load_seconds`` / ``converted`` say what the
    load cost and whether it converted (a cold cache)."""

    name = "openvino"
    channels_last = False

    def __init__(
        self,
        weights=None,
        config=None,
        precision: str = "fp32",
        num_threads: int | None = None,
        cache_dir=None,
        model=None,
        native_bf16: bool = False,
        progress=None,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"backend 'openvino' runs precision fp32, bf16 or int8, not {precision!r}")
        ov = import_openvino()
        t0 = time.perf_counter()
        self.device = torch.device("cpu")
        self.core = onnx_core()  # reads a yolact export with DeformConv too
        self.cache = ModelCache(cache_dir)
        self.converted = False
        ov_model, source = self._read(weights, config, model, progress)
        meta = read_metadata(ov_model, source)
        self.info = ExportInfo.from_metadata(meta, source)
        self.cfg, self.input_size = self.info.config, self.info.input_size
        if config not in (None, ""):
            from ...model.config import get_config

            if get_config(config) != self.cfg:
                name = config if isinstance(config, str) else config.name
                raise ValueError(f"config {name!r} does not match the model's config {self.cfg.name!r} ({source})")
        self.quantized = self.info.precision == "int8"
        if precision == "int8" and not self.quantized:
            raise ValueError(
                f"precision int8 needs a quantized model; {source} is not one: make one with "
                f"'yolact quantize --weights W --images DIR --out F.xml'"
            )
        if self.quantized and precision != "int8":
            raise ValueError(f"{source} is an int8-quantized model: run it with precision 'int8' or 'auto'")
        hint = _HINTS.get(precision) or ("bf16" if native_bf16 else "f32")
        props = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if num_threads:
            props["INFERENCE_NUM_THREADS"] = int(num_threads)
        self.compiled = self._compile(ov_model, props, source)
        compiled_hint = _type_name(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        #: what the compiled model runs: int8 (quantized), bf16 or fp32, read back from OpenVINO
        self.precision = "int8" if self.quantized else ("bf16" if compiled_hint == "bf16" else "fp32")
        if precision == "bf16" and self.precision != "bf16":
            log.warning(
                "precision bf16 requested but OpenVINO compiled %s on this CPU (no native bf16); running fp32",
                compiled_hint,
            )
        self.compiled_hint = compiled_hint
        self._request = self.compiled.create_infer_request()
        self._outputs = self._output_index(self.compiled, source)
        self._input = INPUT_NAME if INPUT_NAME in self.compiled.inputs[0].get_names() else 0
        self.maskiou = None
        if self.info.maskiou_onnx is not None:
            mi = self.core.read_model(self.info.maskiou_onnx, ov.Tensor(np.empty(0, np.uint8)))
            self.maskiou = self.core.compile_model(
                mi,
                "CPU",
                {
                    "INFERENCE_PRECISION_HINT": "f32",
                    **({"INFERENCE_NUM_THREADS": int(num_threads)} if num_threads else {}),
                },
            ).create_infer_request()
        self.model = model
        self.source = source
        self.load_seconds = time.perf_counter() - t0

    # -- loading ----------------------------------------------------------------------------------
    def _read(self, weights, config, model, progress):
        ov = import_openvino()
        if model is not None:
            key = cache_key(
                kind="module",
                state=_state_digest(model),
                config=model.cfg.to_dict(),
                yolact_ros=__version__,
                format=FORMAT_VERSION,
                conversion=CONVERSION,
                openvino=ov.__version__,
            )
            return self._cached(key, lambda: model, progress), f"{model.cfg.name} (in-memory model)"
        if weights in (None, ""):
            raise ValueError("backend 'openvino' needs weights= (a .pth, .onnx or OpenVINO .xml file) or model=")
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        suffix = path.suffix.lower()
        if suffix == ".xml":
            try:
                return self.core.read_model(str(path)), str(path)
            except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
                raise OnnxModelError(f"{path}: not a readable OpenVINO model ({_first_line(exc)})") from None
        if suffix == ".onnx":
            meta = _onnx_metadata(path)
            ExportInfo.from_metadata(meta, str(path))  # a yolact export, or a clear error
            ov_model = self.core.read_model(str(path))
            write_metadata(ov_model, meta)
            return ov_model, str(path)

        def build():
            from .torch_backend import load_model

            return load_model(config, path)

        key = cache_key(
            kind="checkpoint",
            weights=file_digest(path),
            config=None if config in (None, "") else str(getattr(config, "name", config)),
            yolact_ros=__version__,
            format=FORMAT_VERSION,
            conversion=CONVERSION,
            openvino=ov.__version__,
        )
        return self._cached(key, build, progress), str(path)

    def _cached(self, key: str, build, progress):
        ov = import_openvino()
        entry = self.cache.lookup(key)
        if entry is not None:
            try:
                return self.core.read_model(str(entry / _MODEL_FILE))
            except Exception as exc:  # noqa: BLE001 - a file that passed its digest but OpenVINO rejects
                log.warning("model cache entry %s unreadable (%s); rebuilding it", entry, _first_line(exc))
        log.info("converting the network for OpenVINO (once; cached in %s)", self.cache.root)
        self.converted = True
        model = build()
        with tempfile.TemporaryDirectory(prefix="yolact_ov_") as tmp:
            ov_model = pytorch_to_openvino(model, Path(tmp), progress, self.core)

        def write(folder: Path) -> None:
            ov.save_model(ov_model, str(folder / _MODEL_FILE), compress_to_fp16=False)

        self.cache.store(key, write)
        return ov_model

    def _compile(self, ov_model, props: dict, source: str):
        compiled_dir = self.cache.root / "compiled"
        try:
            compiled_dir.mkdir(parents=True, exist_ok=True)
            return self.core.compile_model(ov_model, "CPU", {**props, "CACHE_DIR": str(compiled_dir)})
        except OSError:
            pass  # unwritable: compile without the blob cache
        except Exception as exc:  # noqa: BLE001 - e.g. a damaged compiled blob
            log.warning(
                "OpenVINO could not use its compiled-model cache in %s (%s); compiling without it",
                compiled_dir,
                _first_line(exc),
            )
        try:
            return self.core.compile_model(ov_model, "CPU", props)
        except Exception as exc:  # noqa: BLE001
            raise OnnxBackendError(f"{source}: OpenVINO cannot compile the network: {_first_line(exc)}") from None

    @staticmethod
    def _output_index(compiled, source: str) -> dict[str, int]:
        index = {}
        for i, port in enumerate(compiled.outputs):
            for name in port.get_names():
                if name in OUTPUT_NAMES:
                    index[name] = i
        missing = [n for n in OUTPUT_NAMES if n not in index]
        if missing and len(compiled.outputs) == len(OUTPUT_NAMES):
            index = {n: i for i, n in enumerate(OUTPUT_NAMES)}  # names lost in a conversion: the export's order
        elif missing:
            raise OnnxModelError(f"{source}: the model has no output(s) {', '.join(missing)}")
        return index

    # -- running ----------------------------------------------------------------------------------
    def describe(self) -> str:
        return f"openvino {self.precision} (compiled {self.compiled_hint})"

    def forward(self, x: torch.Tensor, mark=None) -> dict[str, torch.Tensor]:
        """Network input [N,3,S,S] -> ``Yolact.forward``'s dict of float32 CPU tensors."""
        s = self.input_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise OnnxModelError(f"{self.source}: the network takes input [N,3,{s},{s}], got {list(x.shape)}")
        arr = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        self._request.infer({self._input: arr})
        out = {}
        for name, i in self._outputs.items():
            data = self._request.get_output_tensor(i).data
            out[name] = torch.from_numpy(np.array(data, dtype=np.float32))  # a copy: the request reuses its buffers
        return out

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward(x)

    def maskiou_net(self, masks: torch.Tensor) -> torch.Tensor:
        if self.maskiou is None:
            raise OnnxModelError(f"{self.source}: {self.cfg.name} has no mask-IoU head")
        arr = np.ascontiguousarray(masks.detach().to("cpu", torch.float32).numpy())
        self.maskiou.infer({0: arr})
        return torch.from_numpy(np.array(self.maskiou.get_output_tensor(0).data, dtype=np.float32))

    def mask_iou(self, masks: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return gather_mask_iou(self.maskiou_net, masks, classes)


def _state_digest(model) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _type_name(element_type) -> str:
    """OpenVINO's element type as its short name (``f32``, ``bf16``, ``f16``)."""
    name = getattr(element_type, "to_string", lambda: str(element_type))()
    return {"bfloat16": "bf16", "float32": "f32", "float16": "f16"}.get(name, name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
