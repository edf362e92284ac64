"""``yolact export``'s engine: a :class:`Yolact` -> one self-describing ONNX file of standard operators.

The exported network is the production inference copy (:func:`yolact_ros.model.fuse.optimize_for_inference`:
BatchNorm folded, head convs merged), traced with PyTorch's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``).  DCNv2 layers (YOLACT++) are written either as the
project's CPU formulation -- one ``GridSample`` (opset 16) into a tap-tiled image and a strided
``Conv`` (``dcn="grid_sample"``, the default: any runtime with GridSample runs it) -- or as ONNX's
own ``DeformConv`` (opset 19, ``dcn="native"``).  The graph contract and the metadata are
:mod:`.onnx_format`; docs/onnx.md is the user's guide.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..model.dcn import DCN
from ..model.fuse import optimize_for_inference
from ..model.yolact import Yolact
from .onnx_format import (
    DCN_MODES,
    DEFAULT_OPSET,
    INPUT_NAME,
    MASKIOU_INPUT,
    MASKIOU_OUTPUT,
    MIN_OPSET,
    OUTPUT_NAMES,
    PRECISIONS,
    ExportInfo,
)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


class ExportError(ValueError):
    """Export options that do not fit the model, or a graph the exporter could not write."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    size_bytes: int
    seconds: float
    info: ExportInfo


class _MainGraph(nn.Module):
    """What is traced: float32 input -> the network at ``dtype`` -> float32 outputs; the priors
    (a function of the input size only) are a stored constant."""

    def __init__(self, net: nn.Module, priors: torch.Tensor, dtype: torch.dtype):
        super().__init__()
        self.net, self.dtype = net, dtype
        self.register_buffer("priors", priors)

    def forward(self, x):
        out = self.net(x.to(self.dtype))
        return tuple(out[k].float() for k in OUTPUT_NAMES if k != "priors") + (self.priors,)


class _MaskIoUGraph(nn.Module):
    def __init__(self, maskiou_net: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.maskiou_net, self.dtype = maskiou_net, dtype

    def forward(self, masks):
        return self.maskiou_net(masks.to(self.dtype)).float()


def _deform_conv2d_symbolic():
    """``torchvision::deform_conv2d`` -> ONNX ``DeformConv`` (opset 19); both use DCNv2's offset
    layout (interleaved (dy, dx) per kernel tap) and a mask per tap."""
    from torch.onnx import symbolic_helper

    @symbolic_helper.parse_args("v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "b")
    def symbolic(
        g,
        input,
        weight,
        offset,
        mask,
        bias,
        stride_h,
        stride_w,
        pad_h,
        pad_w,
        dil_h,
        dil_w,
        n_weight_grps,
        n_offset_grps,
        use_mask,
    ):
        inputs = [input, weight, offset, bias] + ([mask] if use_mask else [])
        return g.op(
            "DeformConv",
            *inputs,
            dilations_i=[dil_h, dil_w],
            group_i=n_weight_grps,
            offset_group_i=n_offset_grps,
            pads_i=[pad_h, pad_w, pad_h, pad_w],
            strides_i=[stride_h, stride_w],
        )

    return symbolic


def _trace_to_onnx(
    module: nn.Module, example: torch.Tensor, input_name: str, output_names, dynamic_axes, opset: int, native_dcn: bool
) -> bytes:
    buf = io.BytesIO()
    if native_dcn:
        torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", _deform_conv2d_symbolic(), opset)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # tracer warnings (python values turned into constants) are expected: the graph is
            # specialised to the input size on purpose; the legacy exporter's deprecation notice too
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                (example,),
                buf,  # type: ignore[arg-type]  # the legacy (dynamo=False) exporter writes to a file object too
                dynamo=False,
                opset_version=opset,
                input_names=[input_name],
                output_names=list(output_names),
                dynamic_axes=dynamic_axes or None,
                do_constant_folding=True,
            )
    except Exception as exc:  # the exporter raises many types; name the step and the cause
        raise ExportError(
            f"torch.onnx.export failed at opset {opset}: {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        ) from exc
    finally:
        if native_dcn:
            torch.onnx.unregister_custom_op_symbolic("torchvision::deform_conv2d", opset)
    return buf.getvalue()


def _priors_and_proto_size(cfg, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """The priors [P,4] and the prototype size (h, w) of ``cfg`` at input ``size``, from a
    forward pass on the meta device (shapes only, no compute)."""
    with torch.device("meta"):
        shaper = Yolact(cfg).eval()
        with torch.no_grad():
            feats = shaper.features(torch.empty(1, 3, size, size))
            proto = shaper.heads(feats)["proto"]
    return shaper.priors([(f.shape[-2], f.shape[-1]) for f in feats], "cpu").clone(), (proto.shape[1], proto.shape[2])


def _check(onnx, proto, what: str) -> None:
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejects {what}: {str(exc).strip().splitlines()[0]}") from exc


def export_onnx(
    model: Yolact,
    path: "str | Path",
    size: int | None = None,
    batch: int | None = 1,
    precision: str = "fp32",
    opset: int | None = None,
    dcn: str = "grid_sample",
    check: bool = True,
    progress=None,
) -> ExportResult:
    """Write ``model`` (a :class:`Yolact` with its weights) to ``path`` as ONNX.

    ``size``: square input size (default the config's ``max_size``, which is what the
    Segmenter's preprocessing produces); ``batch``: static batch size, or None for a dynamic
    batch axis; ``precision``: ``fp32`` or ``fp16`` (weights and compute; inputs and outputs stay
    float32); ``opset``: default 17 (19 with ``dcn="native"``); ``dcn``: ``grid_sample`` or
    ``native`` (see the module doc); ``check``: run ``onnx.checker.check_model``;
    ``progress``: a callable taking one line of text.
    """
    import onnx

    say = progress or (lambda _line: None)
    t0 = time.perf_counter()
    cfg = model.cfg
    size = int(cfg.max_size if size is None else size)
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if dcn not in DCN_MODES:
        raise ExportError(f"dcn must be one of {', '.join(DCN_MODES)}, got {dcn!r}")
    if batch is not None and (int(batch) != batch or batch < 1):
        raise ExportError(f"batch must be a positive integer (or None for a dynamic batch), got {batch!r}")
    if size < 32 or (cfg.use_maskiou and size < 256):
        raise ExportError(
            f"input size {size} too small for {cfg.name!r} (at least {256 if cfg.use_maskiou else 32} px)"
        )
    mode = dcn if cfg.backbone.dcn_layers else "none"
    opset = int(DEFAULT_OPSET[mode] if opset is None else opset)
    if opset < MIN_OPSET[mode]:
        raise ExportError(f"opset {opset} is too old for dcn mode {mode!r} (needs >= {MIN_OPSET[mode]})")
    dtype = _DTYPES[precision]
    say(
        f"exporting {cfg.name} ({size}x{size}, batch {batch or 'dynamic'}, {precision}, dcn {mode}, "
        f"opset {opset}) -> {path}"
    )

    net = optimize_for_inference(model, channels_last=False).cpu()
    for m in net.modules():
        if isinstance(m, DCN):
            m.fast_cpu = mode == "grid_sample"  # native: torchvision's op, written as DeformConv
    example = torch.zeros(batch or 1, 3, size, size)
    priors, proto_hw = _priors_and_proto_size(cfg, size)
    net = net.to(dtype)

    dynamic = {} if batch else {n: {0: "batch"} for n in (INPUT_NAME, *OUTPUT_NAMES) if n != "priors"}
    main_bytes = _trace_to_onnx(
        _MainGraph(net, priors, dtype), example, INPUT_NAME, OUTPUT_NAMES, dynamic, opset, mode == "native"
    )
    maskiou_bytes = None
    if cfg.use_maskiou:
        maskiou_proto = onnx.load_from_string(
            _trace_to_onnx(
                _MaskIoUGraph(net.maskiou_net, dtype),
                torch.zeros(1, 1, *proto_hw),
                MASKIOU_INPUT,
                [MASKIOU_OUTPUT],
                {MASKIOU_INPUT: {0: "detections"}, MASKIOU_OUTPUT: {0: "detections"}},
                opset,
                False,
            )
        )
        if check:
            _check(onnx, maskiou_proto, "the mask-IoU graph")
        maskiou_bytes = maskiou_proto.SerializeToString()

    info = ExportInfo(
        config=cfg, input_size=size, batch=batch, precision=precision, dcn=mode, opset=opset, maskiou_onnx=maskiou_bytes
    )
    proto = onnx.load_from_string(main_bytes)
    proto.doc_string = f"YOLACT ({cfg.name}) exported by yolact_ros; see the metadata_props and docs/onnx.md"
    for key, value in info.to_metadata().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    if check:
        _check(onnx, proto, "the graph")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    result = ExportResult(path, path.stat().st_size, time.perf_counter() - t0, info)
    say(
        f"wrote {path} ({result.size_bytes / 2**20:.1f} MiB) in {result.seconds:.1f} s"
        + ("; onnx.checker passed" if check else "")
    )
    return result
