"""The onnxruntime backend: a ``yolact export`` file run in place of the PyTorch network.

:class:`OnnxRuntimeNet` takes the network input the Segmenter's preprocessing makes and
returns ``Yolact.forward``'s dict of torch tensors (on the Segmenter's device), so the
post-processing that follows is the torch backend's own; ``maskiou_net`` / ``mask_iou`` run
YOLACT++'s embedded mask-IoU graph.  onnxruntime is imported only here, when a session is made.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ...model.heads import gather_mask_iou
from ..onnx_format import (
    INPUT_NAME,
    MASKIOU_INPUT,
    MASKIOU_OUTPUT,
    OUTPUT_NAMES,
    ExportInfo,
    OnnxBackendError,
    OnnxModelError,
)

log = logging.getLogger(__name__)


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise OnnxBackendError(
            "backend 'onnxruntime' needs the onnxruntime package: pip install onnxruntime (or onnxruntime-gpu for CUDA)"
        ) from None
    return onnxruntime


def providers_for(device: torch.device, available: "list[str] | tuple[str, ...]") -> list:
    """The onnxruntime execution providers for ``device``: CPU, or CUDA (device index kept) with the
    CPU as fallback for nodes CUDA lacks.  Raises :class:`OnnxBackendError` if CUDA is asked for
    but this onnxruntime build has no CUDA provider."""
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise OnnxBackendError(
                f"device {device} requested but this onnxruntime has no CUDAExecutionProvider (available: "
                f"{', '.join(available) or 'none'}); install onnxruntime-gpu or use device='cpu'"
            )
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntimeNet:
    """An exported YOLACT graph behind the network interface the Segmenter uses.

    ``path``: the ``.onnx`` file; ``device``: where the returned tensors live (and the
    execution provider: CUDA for a CUDA device); ``num_threads``: onnxruntime's
    ``intra_op_num_threads`` (None = onnxruntime's default).
    """

    name = "onnxruntime"
    channels_last = False
    model = None

    def __init__(self, path: "str | Path", device: torch.device, num_threads: int | None = None):
        ort = import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxModelError(f"{self.path}: no such ONNX file")
        self.device = device
        self.providers = providers_for(device, ort.get_available_providers())
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        # no busy-waiting worker threads after a run: torch's post-processing runs next on the same
        # cores, and spinning threads would take them (measured: torch 2x slower next to a spinning session)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._options = options
        self.session = self._session(str(self.path), "model")
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = ExportInfo.from_metadata(meta, str(self.path))
        self.cfg = self.info.config
        self.input_size = self.info.input_size
        self.maskiou_session = (
            self._session(self.info.maskiou_onnx, "mask-IoU graph") if self.info.maskiou_onnx else None
        )
        #: the export's precision (fp32 or fp16 weights and compute)
        self.precision = self.info.precision

    def describe(self) -> str:
        return f"onnxruntime {self.precision} ({self.providers[0] if isinstance(self.providers[0], str) else self.providers[0][0]})"

    def forward(self, x: torch.Tensor, mark=None) -> dict[str, torch.Tensor]:
        """As :meth:`__call__` (the backend interface; one session run: ``mark`` is not called)."""
        return {k: v.float() for k, v in self(x).items()}

    @classmethod
    def for_segmenter(
        cls, weights, device: torch.device, requested_device: str, num_threads: int | None, config=None
    ) -> "OnnxRuntimeNet":
        """The backend as the Segmenter opens it: ``device`` 'auto' that resolved to CUDA falls
        back to the CPU when this onnxruntime has no CUDA provider; ``config``, if given, must
        be the export's."""
        if weights is None or str(weights) == "":
            raise ValueError("backend 'onnxruntime' needs weights= (a .onnx file written by 'yolact export')")
        if requested_device.strip().lower() in ("", "auto") and device.type == "cuda":
            if "CUDAExecutionProvider" not in import_onnxruntime().get_available_providers():
                log.info("device 'auto': onnxruntime has no CUDAExecutionProvider, running on CPU")
                device = torch.device("cpu")
        net = cls(weights, device, num_threads)
        if config not in (None, ""):
            from ...model.config import get_config

            if get_config(config) != net.cfg:
                name = config if isinstance(config, str) else config.name
                raise ValueError(f"config {name!r} does not match the export's config {net.cfg.name!r} ({weights})")
        return net

    def _session(self, model: "str | bytes", what: str):
        ort = import_onnxruntime()
        try:
            return ort.InferenceSession(model, self._options, providers=self.providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types (Fail, InvalidProtobuf, ...)
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "DeformConv" in text:
                raise OnnxBackendError(
                    f"{self.path}: this onnxruntime ({ort.__version__}) cannot run DeformConv (an export with "
                    f"--dcn native); re-export with --dcn grid_sample (the default) or use a newer onnxruntime"
                ) from None
            if (
                "INVALID_PROTOBUF" in text
                or "Protobuf parsing failed" in text
                or "InvalidProtobuf" in type(exc).__name__
            ):
                raise OnnxModelError(f"{self.path}: not a readable ONNX model ({text[:200]})") from None
            raise OnnxBackendError(f"{self.path}: onnxruntime cannot load the {what}: {text[:300]}") from None

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.cfg.class_names

    def _run(self, session, name: str, x: torch.Tensor, output_names) -> list[np.ndarray]:
        arr = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        return session.run(list(output_names), {name: arr})

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Network input [N,3,S,S] (S = the export's input size) -> ``Yolact.forward``'s dict."""
        s = self.input_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise OnnxModelError(
                f"{self.path}: the export takes input [N,3,{s},{s}] (it was exported at {s}x{s}), got {list(x.shape)}"
            )
        n = x.shape[0]
        step = self.info.batch or n  # a static batch: run in chunks of it, the last one zero-padded
        parts = []
        for start in range(0, n, step):
            chunk = x[start : start + step]
            if chunk.shape[0] < step:
                chunk = torch.cat([chunk, chunk.new_zeros((step - chunk.shape[0], *chunk.shape[1:]))])
            outs = self._run(self.session, INPUT_NAME, chunk, OUTPUT_NAMES)
            parts.append({k: v for k, v in zip(OUTPUT_NAMES, outs)})
        out = {k: np.concatenate([p[k] for p in parts])[:n] for k in OUTPUT_NAMES if k != "priors"}
        out["priors"] = parts[0]["priors"]
        return {k: torch.from_numpy(v).to(self.device) for k, v in out.items()}

    def maskiou_net(self, masks: torch.Tensor) -> torch.Tensor:
        """YOLACT++'s mask-IoU net on soft masks [D,1,h,w] -> [D, C-1] (the embedded graph)."""
        if self.maskiou_session is None:
            raise OnnxModelError(f"{self.path}: {self.cfg.name} has no mask-IoU head")
        (pred,) = self._run(self.maskiou_session, MASKIOU_INPUT, masks, [MASKIOU_OUTPUT])
        return torch.from_numpy(pred).to(masks.device)

    def mask_iou(self, masks: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """As :meth:`yolact_ros.model.yolact.Yolact.mask_iou`."""
        return gather_mask_iou(self.maskiou_net, masks, classes)
