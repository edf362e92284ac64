"""The PyTorch backend: a :class:`~yolact_ros.model.yolact.Yolact` run eagerly (or as a CUDA graph).

Owns what is PyTorch-specific about running the network: reading a ``.pth`` into a model,
the inference copy (BatchNorm folded, merged heads, channels-last), the precision policy
(``fp32``, ``tf32`` and ``fp16`` on CUDA, ``bf16`` autocast on the CPU and CUDA) and CUDA
graph capture.  Only the network runs in reduced precision: its outputs are cast to float32
before decoding, NMS and mask assembly.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch

from ...model.checkpoint import (
    CheckpointError,
    config_from_metadata,
    config_name_from_filename,
    load_state_into,
    read_checkpoint,
)
from ...model.config import YolactConfig, get_config
from ...model.fuse import optimize_for_inference
from ...model.yolact import Yolact

log = logging.getLogger(__name__)

#: precisions the torch backend runs, per device type
PRECISIONS = {"cuda": ("fp32", "tf32", "fp16", "bf16"), "cpu": ("fp32", "bf16")}
_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_config(config: "str | YolactConfig | None", weights: "str | Path") -> tuple[YolactConfig, tuple]:
    """The config to build (from the argument, the checkpoint's own metadata, or the file
    name) and the checkpoint read as (state, meta)."""
    state, meta = read_checkpoint(weights)
    if config not in (None, ""):
        return get_config(config), (state, meta)
    try:
        cfg = config_from_metadata(meta)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{weights}: unreadable config in the checkpoint's metadata ({exc})") from None
    if cfg is not None:
        return cfg, (state, meta)
    name = config_name_from_filename(weights)
    if name is None:
        raise CheckpointError(
            f"{weights}: cannot infer the config from the file name; pass config= one of the official "
            f"names (e.g. yolact_base for yolact_base_54_800000.pth)"
        )
    return get_config(name), (state, meta)


def load_model(config: "str | YolactConfig | None", weights: "str | Path") -> Yolact:
    """A :class:`Yolact` in eval mode with the weights of a ``.pth`` checkpoint (config as
    :func:`resolve_config` finds it)."""
    suffix = Path(str(weights)).suffix.lower()
    if suffix in (".onnx", ".xml"):
        raise CheckpointError(
            f"{weights}: an {'ONNX export' if suffix == '.onnx' else 'OpenVINO model'}, not a .pth "
            f"checkpoint; run it with backend 'auto' or 'openvino'"
            + (" (or 'onnxruntime')" if suffix == ".onnx" else "")
        )
    cfg, (state, meta) = resolve_config(config, weights)
    model = Yolact(cfg).eval()
    load_state_into(model, state, meta, weights)
    return model


@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 for cuDNN convolutions and CUDA matmuls on or off inside the block, restored after
    (the flags are process-wide).

    Set through the ``allow_tf32`` flags. PyTorch >= 2.9 also has per-operator
    ``fp32_precision`` settings and refuses to read ``allow_tf32`` once a program has set those
    differently for cuDNN convolutions and RNNs (RuntimeError, "a mix of the legacy and new
    APIs"); then the new settings are used instead."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    try:
        saved = (cudnn.allow_tf32, matmul.allow_tf32)
    except RuntimeError:
        saved = None
    if saved is not None:
        cudnn.allow_tf32 = matmul.allow_tf32 = enabled
        try:
            yield
        finally:
            cudnn.allow_tf32, matmul.allow_tf32 = saved
        return
    conv = cudnn.conv  # type: ignore[attr-defined]  # CudnnModule replaces the module at import: its per-op settings have no stub
    saved = (conv.fp32_precision, matmul.fp32_precision)
    conv.fp32_precision = matmul.fp32_precision = "tf32" if enabled else "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved


class TorchBackend:
    """``model`` (a :class:`Yolact` with weights) on ``device``.

    ``precision``: one of :data:`PRECISIONS` for the device type (a CUDA-only precision on the
    CPU runs fp32, with a warning); ``optimize``: run the inference copy
    (:func:`~yolact_ros.model.fuse.optimize_for_inference`), the checkpoint-layout ``model``
    then stays on the CPU; ``cuda_graph``: replay the network body as a CUDA graph per input
    shape (CUDA only; eager fallback with one warning if a capture fails)."""

    name = "torch"

    def __init__(
        self,
        model: Yolact,
        device: torch.device,
        precision: str = "fp32",
        optimize: bool = True,
        cuda_graph: bool = False,
    ):
        self.device = device
        self.cfg = model.cfg
        #: the square size preprocessing resizes to (the network input)
        self.input_size = model.cfg.max_size
        if optimize:
            self.net = optimize_for_inference(model).to(device)
            self.model = model
        else:
            self.net = self.model = model.to(device)
        allowed = PRECISIONS["cuda" if device.type == "cuda" else "cpu"]
        self.precision = precision if precision in allowed else "fp32"
        if precision != self.precision:
            log.warning("precision %s needs CUDA with the torch backend; running in float32 on %s", precision, device)
        self._graphs: dict = {}
        self.cuda_graph = bool(cuda_graph) and device.type == "cuda"
        if cuda_graph and not self.cuda_graph:
            log.warning("cuda_graph=True needs CUDA and the torch backend; running eagerly on %s", device)

    @property
    def channels_last(self) -> bool:
        return bool(getattr(self.net, "channels_last", False))

    def describe(self) -> str:
        return f"torch {self.precision}" + (" (CUDA graph)" if self.cuda_graph else "")

    @contextlib.contextmanager
    def precision_context(self):
        """The precision policy around the network: TF32 on only for ``tf32`` (restored after,
        the flags are process-wide), autocast for ``fp16`` / ``bf16``. Written for any device:
        the CPU dry run of the device check sets fp16 to run CUDA's dtype handling on the CPU."""
        dtype = _AUTOCAST.get(self.precision)
        with (
            tf32(self.precision == "tf32") if self.device.type == "cuda" else contextlib.nullcontext(),
            torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            yield

    def forward(self, x: torch.Tensor, mark=None) -> dict[str, torch.Tensor]:
        """Network input [N,3,S,S] -> ``Yolact.forward``'s dict (float32).  ``mark``: called
        once between the backbone+FPN and the heads (eager runs only), for stage timing."""
        if self.cuda_graph:
            out = self._graph_forward(x)  # one replay: the body is not split into stages
        else:
            with self.precision_context():
                feats = self.net.features(x)
                if mark is not None:
                    mark()
                out = self.net.heads(feats, x.device)
        return {k: v.float() for k, v in out.items()}

    def mask_iou(self, masks: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """YOLACT++ mask re-scoring (float32, outside autocast)."""
        return self.net.mask_iou(masks, classes)

    def _graph_forward(self, x: torch.Tensor) -> dict:
        """The network body as a captured CUDA graph, one per input shape (fixed-size input:
        one graph per batch size). Captured on first use (three warm-up runs on a side stream,
        then the capture); the outputs live in the graph's static buffers, valid until the next
        call (post-processing reads them before returning). A capture that fails switches the
        backend back to eager execution with one warning."""
        key = (tuple(x.shape), self.precision)
        entry = self._graphs.get(key)
        if entry is None:
            try:
                static_in = x.clone(memory_format=torch.preserve_format)
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side), self.precision_context():
                    for _ in range(3):
                        self.net(static_in)
                torch.cuda.current_stream(self.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph), self.precision_context():
                    static_out = self.net(static_in)
                entry = self._graphs[key] = (graph, static_in, static_out)
            except Exception as exc:  # noqa: BLE001 - eager still works
                log.warning("CUDA graph capture failed (%s: %s); running eagerly", type(exc).__name__, exc)
                self.cuda_graph = False
                self._graphs.clear()
                with self.precision_context():
                    return self.net(x)
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out
