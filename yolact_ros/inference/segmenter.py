"""``Segmenter``: numpy BGR images in, :class:`Instances` out.

The one object the ROS node, the CLI and evaluation call.  It orchestrates only: it picks a
backend (:mod:`.backends`: PyTorch, onnxruntime or OpenVINO, ``auto`` by the rule in
:mod:`.backends.choice`), preprocesses on the device, runs one batched forward pass through
the backend, and per image calls the two post-processing steps of :mod:`.postprocess` (with
YOLACT++'s mask-IoU head, a part of the network, run between them).  Pre- and
post-processing are the same for every backend and always float32.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast, overload

import numpy as np
import torch

from ..model.config import YolactConfig, get_config
from ..model.yolact import Yolact
from . import defaults
from .backends.choice import Choice, choose, weights_kind
from .backends.torch_backend import TorchBackend, load_model, resolve_config, tf32
from .capabilities import detect_cpu
from .device import resolve_device
from .instances import Instances
from .postprocess import PostprocessSettings, select_detections, to_instances
from .preprocess import PinnedUpload, check_image, network_input
from .stage_clock import STAGES, StageClock

if TYPE_CHECKING:
    from .backends.onnxruntime_backend import OnnxRuntimeNet
    from .backends.openvino_backend import OpenVinoBackend

log = logging.getLogger(__name__)

__all__ = ["STAGES", "Segmenter", "load_model", "resolve_config", "resolve_device", "tf32"]


class Segmenter:
    """YOLACT / YOLACT++ instance segmentation of BGR uint8 images.

    Parameters: ``config`` (official name, :class:`YolactConfig`, or None to infer from
    ``weights``), ``weights`` (``.pth`` path; for the onnxruntime / OpenVINO backends also a
    ``yolact export`` ``.onnx`` file or an OpenVINO ``.xml`` model, e.g. from ``yolact
    quantize``; required unless ``model`` is given), ``device`` (``auto``/``cpu``/``cuda``/
    ``cuda:N``), ``score_threshold`` (keep scores strictly above), ``top_k`` (max instances per
    image), ``nms_threshold`` (None = the config's), ``classes`` (names or 0-based ids to keep;
    None = all; applied before top_k), ``cross_class_nms``,
    ``backend``: ``torch`` (default), ``onnxruntime``, ``openvino`` or ``auto``
    (:mod:`.backends.choice`: OpenVINO on the CPU when installed, torch on CUDA);
    ``precision``: ``fp32`` (default; on CUDA with TF32 off), ``tf32`` / ``fp16`` (CUDA, torch),
    ``bf16`` (torch autocast on CPU or CUDA; OpenVINO on the CPU), ``int8`` (OpenVINO, a model
    made by ``yolact quantize``) or ``auto`` (bf16 where the CPU has it natively, else fp32);
    only the network runs in it, decoding, NMS and masks stay float32; :attr:`precision` is what
    actually runs (a CUDA precision on the CPU runs fp32 with a warning); ``half=True`` means
    precision fp16; ``cuda_graph`` (replay the network body as a CUDA graph per input
    shape; CUDA + torch only, eager fallback); ``warmup`` (run one dummy image at
    construction), ``num_threads`` (CPU threads of the backend; None = its default),
    ``optimize`` (torch: run an inference copy with BatchNorm folded, merged head convs and
    channels-last layout; same outputs up to float rounding), ``model`` (an already built
    :class:`Yolact` with its weights, instead of ``weights``; torch and openvino),
    ``cache_dir`` (where OpenVINO keeps converted and compiled models; None =
    ``$YOLACT_ROS_CACHE_DIR`` or the per-user cache).  :attr:`choice` says what was chosen and
    why.  Defaults: :mod:`yolact_ros.inference.defaults`.
    """

    def __init__(
        self,
        config: "str | YolactConfig | None" = None,
        weights: "str | Path | None" = None,
        device: str = defaults.DEVICE,
        score_threshold: float = defaults.SCORE_THRESHOLD,
        top_k: int = defaults.TOP_K,
        nms_threshold: float | None = defaults.NMS_THRESHOLD,
        classes: "Iterable[str | int] | None" = None,
        cross_class_nms: bool = defaults.CROSS_CLASS_NMS,
        half: bool = False,
        precision: str = defaults.PRECISION,
        cuda_graph: bool = False,
        warmup: bool = False,
        num_threads: int | None = None,
        optimize: bool = True,
        model: "Yolact | None" = None,
        backend: str = defaults.BACKEND,
        cache_dir: "str | Path | None" = None,
    ):
        requested = "fp16" if half else precision
        if backend not in defaults.BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(defaults.BACKENDS)}")
        if requested not in defaults.PRECISIONS:
            raise ValueError(f"unknown precision {requested!r}; choose from {', '.join(defaults.PRECISIONS)}")
        if model is not None and weights is not None:
            raise ValueError("pass weights= or model=, not both")
        if model is None and (weights is None or str(weights) == ""):
            raise ValueError(
                "Segmenter needs weights= (a .pth checkpoint: an official YOLACT/YOLACT++ file "
                "or one from 'yolact train')"
            )
        self.device = resolve_device(device)
        if num_threads:
            torch.set_num_threads(int(num_threads))
        ir_int8 = weights_kind(weights) == "ir" and _ir_precision(weights) == "int8"
        #: what runs the network and why (``auto`` resolved)
        self.choice: Choice = choose(
            backend, requested, self.device.type, None if model is not None else weights, ir_is_int8=ir_int8
        )
        self.backend = self.choice.backend
        self.runtime: TorchBackend | OnnxRuntimeNet | OpenVinoBackend
        if self.backend == "onnxruntime":
            from .backends.onnxruntime_backend import OnnxRuntimeNet

            if model is not None:
                raise ValueError("backend 'onnxruntime' runs an exported .onnx file: pass weights=, not model=")
            self.runtime = OnnxRuntimeNet.for_segmenter(weights, self.device, str(device), num_threads, config)
            self.device = self.runtime.device
        elif self.backend == "openvino":
            from .backends.openvino_backend import OpenVinoBackend

            self.runtime = OpenVinoBackend(
                weights,
                config,
                self.choice.precision,
                num_threads,
                cache_dir,
                model,
                native_bf16=detect_cpu().native_bf16,
            )
        else:
            if model is not None:
                if config not in (None, "") and get_config(config) != model.cfg:
                    raise ValueError(f"config {config!r} does not match the given model's config {model.cfg.name!r}")
                model = model.eval()
            else:
                assert weights is not None  # checked above: model= or weights= is given
                model = load_model(config, weights)
            self.runtime = TorchBackend(model, self.device, self.choice.precision, optimize, cuda_graph)
        if cuda_graph and self.backend != "torch":
            log.warning("cuda_graph=True needs CUDA and the torch backend; running %s", self.backend)
        self.weights = str(weights) if weights is not None else None
        self.cfg = self.runtime.cfg
        #: the square size preprocessing resizes to (the network input)
        self.input_size = self.runtime.input_size
        self._upload = PinnedUpload(self.device)
        self.score_threshold = score_threshold
        self.top_k = top_k
        self.nms_threshold = nms_threshold
        self.cross_class_nms = bool(cross_class_nms)
        self.classes = classes
        self.timings: dict[str, float] = {}
        if warmup:
            self.warmup()

    @property
    def model(self) -> "Yolact | None":
        """The checkpoint-layout PyTorch module (None when the backend runs a file)."""
        return self.runtime.model

    @property
    def inference_model(self):
        """What actually runs: for torch the (optimized) module, otherwise the backend object
        (:class:`~.backends.onnxruntime_backend.OnnxRuntimeNet`, :class:`~.backends.openvino_backend.OpenVinoBackend`)."""
        return cast(TorchBackend, self.runtime).net if self.backend == "torch" else self.runtime

    @property
    def precision(self) -> str:
        """The precision the network actually runs in (read back from the backend)."""
        return self.runtime.precision

    @precision.setter
    def precision(self, value: str) -> None:
        self.runtime.precision = value

    @property
    def cuda_graph(self) -> bool:
        return bool(getattr(self.runtime, "cuda_graph", False))

    @cuda_graph.setter
    def cuda_graph(self, value: bool) -> None:
        if self.backend != "torch":
            raise ValueError(f"cuda_graph needs the torch backend, not {self.backend}")
        cast(TorchBackend, self.runtime).cuda_graph = bool(value)

    def describe(self) -> str:
        """One line: what runs the network, in which precision, chosen why, on which CPU/GPU."""
        where = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else detect_cpu().summary()
        return f"backend {self.runtime.describe()}; chosen: {self.choice.reason}; on {where}"

    def with_settings(self, **settings) -> "Segmenter":
        """A Segmenter sharing this one's network (no copy of the weights) with other settings
        (``score_threshold``, ``top_k``, ``nms_threshold``, ``classes``, ``cross_class_nms``);
        this one is left unchanged."""
        allowed = {"score_threshold", "top_k", "nms_threshold", "classes", "cross_class_nms"}
        unknown = set(settings) - allowed
        if unknown:
            raise TypeError(f"unknown setting(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}")
        other = copy.copy(self)
        other.timings = {}
        for name, value in settings.items():
            setattr(other, name, value)
        return other

    # -- settings -------------------------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        return self.cfg.class_names

    @property
    def score_threshold(self) -> float:
        return self._score_threshold

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {value}")
        self._score_threshold = value

    @property
    def top_k(self) -> int:
        return self._top_k

    @top_k.setter
    def top_k(self, value: int) -> None:
        if int(value) != value or not 1 <= int(value) <= self.cfg.max_num_detections:
            raise ValueError(f"top_k must be an integer in [1, {self.cfg.max_num_detections}], got {value}")
        self._top_k = int(value)

    @property
    def nms_threshold(self) -> float:
        return self._nms_threshold

    @nms_threshold.setter
    def nms_threshold(self, value: float | None) -> None:
        value = self.cfg.nms_thresh if value is None else float(value)
        if not 0.0 < value <= 1.0:
            raise ValueError(f"nms_threshold must be in (0, 1], got {value}")
        self._nms_threshold = value

    @property
    def classes(self) -> tuple[int, ...] | None:
        """0-based class ids kept (None = all)."""
        return self._classes

    @classes.setter
    def classes(self, value: "Iterable[str | int] | None") -> None:
        if value is None:
            self._classes = None
            self._class_keep = None
            return
        ids = []
        for c in value:
            if isinstance(c, str) and not c.strip().isdigit():
                if c not in self.class_names:
                    raise ValueError(f"unknown class name {c!r}; known: {', '.join(self.class_names)}")
                ids.append(self.class_names.index(c))
            else:
                i = int(c)
                if not 0 <= i < len(self.class_names):
                    raise ValueError(f"class id {i} out of range [0, {len(self.class_names) - 1}]")
                ids.append(i)
        if not ids:
            self._classes = None
            self._class_keep = None
            return
        self._classes = tuple(sorted(set(ids)))
        keep = torch.zeros(len(self.class_names), dtype=torch.bool)
        keep[list(self._classes)] = True
        self._class_keep = keep.to(self.device)

    @property
    def postprocess_settings(self) -> PostprocessSettings:
        """The current settings as post-processing takes them."""
        return PostprocessSettings(
            score_threshold=self.score_threshold,
            top_k=self.top_k,
            nms_threshold=self.nms_threshold,
            conf_threshold=self.cfg.nms_conf_thresh,
            nms_top_k=self.cfg.nms_top_k,
            max_num_detections=self.cfg.max_num_detections,
            cross_class_nms=self.cross_class_nms,
            class_keep=self._class_keep,
        )

    # -- inference ------------------------------------------------------------------------------
    def warmup(self, size: tuple[int, int] = (480, 640)) -> None:
        """One forward on a dummy image so the first real frame does not pay for allocation."""
        self(np.zeros((size[0], size[1], 3), np.uint8))

    @overload
    def __call__(self, images: np.ndarray) -> Instances: ...

    @overload
    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]: ...

    def __call__(self, images: "np.ndarray | Sequence[np.ndarray]") -> "Instances | list[Instances]":
        single = isinstance(images, np.ndarray)
        batch = [images] if isinstance(images, np.ndarray) else list(images)
        if not batch:
            return []
        for img in batch:
            check_image(img)
        with torch.inference_mode():
            results = self._run(batch)
        return results[0] if single else results

    @property
    def half(self) -> bool:
        """fp16 autocast in use (``precision == "fp16"``)."""
        return self.precision == "fp16"

    def _precision(self):
        """The torch backend's precision context (a no-op for the others)."""
        ctx = getattr(self.runtime, "precision_context", None)
        return ctx() if ctx is not None else contextlib.nullcontext()

    def _run(self, batch: list[np.ndarray]) -> list[Instances]:
        """Stage times come from :class:`~.stage_clock.StageClock`: CUDA events on a GPU, so
        timing adds no host synchronisation; the only syncs on the CUDA path are the counts
        post-processing needs (kept detections, the mask window size) and the final
        device->host copies."""
        clock = StageClock(self.device)
        start = clock.mark()
        x = self.preprocess(batch)
        pre = clock.mark()
        body: list[int] = []
        out = self.runtime.forward(x, mark=lambda: body.append(clock.mark()))
        fwd = clock.mark()
        settings = self.postprocess_settings
        rescore = self.cfg.use_maskiou
        results, per_image = [], []
        for i, img in enumerate(batch):
            a = clock.mark()
            dets = select_detections(out, i, settings, with_masks=rescore)
            mask_iou = None
            if rescore:
                assert dets.masks is not None  # select_detections(with_masks=True) assembles them
                mask_iou = self.runtime.mask_iou(dets.masks, dets.classes)
            b = clock.mark()
            results.append(
                to_instances(dets, out["proto"][i], img.shape[0], img.shape[1], settings, self.class_names, mask_iou)
            )
            per_image.append((a, b, clock.mark()))
        clock.finish()
        nan = float("nan")
        self.timings = {
            "preprocess": clock.ms(start, pre),
            "backbone_fpn": clock.ms(pre, body[0]) if body else nan,
            "heads": clock.ms(body[0], fwd) if body else nan,
            "forward": clock.ms(pre, fwd),
            "detect": sum(clock.ms(a, b) for a, b, _ in per_image),
            "masks": sum(clock.ms(b, c) for _, b, c in per_image),
            "total": clock.ms(start, clock.last),
        }
        return results

    def preprocess(self, batch: list[np.ndarray]) -> torch.Tensor:
        """BGR uint8 HxWx3 (or HxW mono) images -> network input [N,3,S,S] on the device
        (S = :attr:`input_size`)."""
        return network_input(batch, self.input_size, self.cfg.backbone, self.runtime.channels_last, self._upload)


def _ir_precision(weights) -> str:
    """The precision recorded in an OpenVINO model's yolact_ros metadata ('' if unreadable)."""
    try:
        from .backends.openvino_backend import import_openvino, read_metadata

        ov = import_openvino()
        return read_metadata(ov.Core().read_model(str(weights)), str(weights)).get("precision", "")
    except Exception:  # noqa: BLE001 - the backend reports an unreadable file with its own error
        return ""
