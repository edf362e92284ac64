"""``Segmenter``: numpy BGR images in, :class:`Instances` out.

The one object the ROS node, the CLI and evaluation call.  It orchestrates only: it owns
the model on its device, preprocesses on that device, runs one batched forward pass, and
per image calls the two post-processing steps of :mod:`.postprocess` (with YOLACT++'s
mask-IoU head, a part of the network, run between them).  The forward pass (and the
mask-IoU head) is PyTorch (``backend="torch"``) or a ``yolact export`` ONNX file run by
onnxruntime (``backend="onnxruntime"``, :mod:`.onnx_runtime`); everything else is shared.
"""
from __future__ import annotations

import contextlib

import copy
import logging
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ..model.checkpoint import CheckpointError, config_from_metadata, config_name_from_filename, load_state_into, read_checkpoint
from ..model.config import YolactConfig, get_config
from ..model.fuse import optimize_for_inference
from ..model.transform import resize_and_normalize
from ..model.yolact import Yolact
from . import defaults
from .instances import Instances
from .postprocess import PostprocessSettings, select_detections, to_instances

log = logging.getLogger(__name__)

#: ``seg.timings`` keys (ms); ``forward`` = backbone_fpn + heads, the only network stage the
#: onnxruntime backend can time (its backbone_fpn and heads are NaN)
STAGES = ("preprocess", "backbone_fpn", "heads", "forward", "detect", "masks", "total")


def resolve_device(device: "str | torch.device") -> torch.device:
    """``auto`` -> first CUDA device if present else CPU; ``cuda[:N]`` must exist."""
    name = str(device).strip().lower()
    if name in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        log.info("device 'auto': no CUDA device available, running on CPU")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"invalid device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but no CUDA device is available (use 'cpu' or 'auto')")
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return torch.device("cuda", index)
    if dev.type != "cpu":
        raise ValueError(f"unsupported device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return dev


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
    if str(weights).lower().endswith(".onnx"):
        raise CheckpointError(f"{weights}: an ONNX export, not a .pth checkpoint; run it with backend='onnxruntime' "
                              f"(yolact infer --backend onnxruntime)")
    cfg, (state, meta) = resolve_config(config, weights)
    model = Yolact(cfg).eval()
    load_state_into(model, state, meta, weights)
    return model


class Segmenter:
    """YOLACT / YOLACT++ instance segmentation of BGR uint8 images.

    Parameters: ``config`` (official name, :class:`YolactConfig`, or None to infer from
    ``weights``), ``weights`` (``.pth`` path; required unless ``model`` is given),
    ``device`` (``auto``/``cpu``/``cuda``/``cuda:N``), ``score_threshold`` (keep scores
    strictly above), ``top_k`` (max instances per image), ``nms_threshold`` (None = the
    config's), ``classes`` (names or 0-based ids to keep; None = all; applied before top_k),
    ``cross_class_nms``, ``precision`` (``fp32`` with TF32 off, ``tf32``, or ``fp16`` autocast:
    CUDA only, the CPU runs fp32; ``half=True`` is the old spelling of fp16), ``cuda_graph``
    (replay the network body as a CUDA graph per input shape; off by default until measured
    faster on a GPU, eager fallback; CUDA only), ``warmup`` (run one dummy
    image at construction), ``num_threads`` (CPU threads; None = leave torch's setting),
    ``optimize`` (run an inference copy with BatchNorm folded, merged head convs and
    channels-last layout; same outputs up to float rounding), ``model`` (an already built
    :class:`Yolact` with its weights, e.g. the test-only
    :func:`yolact_ros.model.golden_weights.reference_model`; instead of ``weights``),
    ``backend``: ``torch`` (default) or ``onnxruntime``: ``weights`` is then a ``.onnx`` file
    written by ``yolact export`` (config, classes and input size come from its metadata;
    ``config``, if given, must match; ``half`` and ``optimize`` do not apply: export with
    ``--precision fp16`` instead; ``num_threads`` also sets onnxruntime's intra-op threads; a
    CUDA ``device`` selects the CUDA execution provider, ``auto`` falls back to the CPU when
    onnxruntime has none).  Preprocessing and post-processing are the same for both backends.
    Defaults: :mod:`yolact_ros.inference.defaults`.
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
    ):
        if backend not in defaults.BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(defaults.BACKENDS)}")
        self.backend = backend
        self.device = resolve_device(device)
        if num_threads:
            torch.set_num_threads(int(num_threads))
        if backend == "onnxruntime":
            self._init_onnxruntime(config, weights, model, device, num_threads)
        elif model is not None:
            if weights is not None:
                raise ValueError("pass weights= or model=, not both")
            if config not in (None, "") and get_config(config) != model.cfg:
                raise ValueError(f"config {config!r} does not match the given model's config {model.cfg.name!r}")
            cfg = model.cfg
            model = model.eval()
        else:
            if weights is None or str(weights) == "":
                raise ValueError("Segmenter needs weights= (a .pth checkpoint: an official YOLACT/YOLACT++ file "
                                 "or one from 'yolact train')")
            model = load_model(config, weights)
            cfg = model.cfg
        self.weights = str(weights) if weights is not None else None
        if backend == "torch":
            self.cfg = cfg
            #: the square size preprocessing resizes to (the network input)
            self.input_size = cfg.max_size
            if optimize:
                # Inference copy with BN folded, merged head convs, channels-last weights. ``self.model``
                # (the checkpoint-layout module) stays on the CPU then, so a GPU holds one copy.
                self._net = optimize_for_inference(model).to(self.device)
                self.model = model
            else:
                self._net = self.model = model.to(self.device)
        requested = "fp16" if half else precision
        if requested not in defaults.PRECISIONS:
            raise ValueError(f"unknown precision {requested!r}; choose from {', '.join(defaults.PRECISIONS)}")
        cuda_torch = self.device.type == "cuda" and backend == "torch"
        self.precision = requested if cuda_torch else "fp32"
        if requested != self.precision:
            log.warning("precision %s needs CUDA and the torch backend (for onnxruntime export with --precision fp16); "
                        "running in float32 on %s", requested, self.device)
        self._pinned: dict = {}
        self._graphs: dict = {}
        self.cuda_graph = bool(cuda_graph) and cuda_torch
        if cuda_graph and not self.cuda_graph:
            log.warning("cuda_graph=True needs CUDA and the torch backend; running eagerly on %s", self.device)
        self.score_threshold = score_threshold
        self.top_k = top_k
        self.nms_threshold = nms_threshold
        self.cross_class_nms = bool(cross_class_nms)
        self.classes = classes
        self.timings: dict[str, float] = {}
        if warmup:
            self.warmup()

    def _init_onnxruntime(self, config, weights, model, device, num_threads) -> None:
        from .onnx_runtime import OnnxRuntimeNet, import_onnxruntime

        if model is not None:
            raise ValueError("backend 'onnxruntime' runs an exported .onnx file: pass weights=, not model=")
        if weights is None or str(weights) == "":
            raise ValueError("backend 'onnxruntime' needs weights= (a .onnx file written by 'yolact export')")
        if str(device).strip().lower() in ("", "auto") and self.device.type == "cuda":
            if "CUDAExecutionProvider" not in import_onnxruntime().get_available_providers():
                log.info("device 'auto': onnxruntime has no CUDAExecutionProvider, running on CPU")
                self.device = torch.device("cpu")
        net = OnnxRuntimeNet(weights, self.device, num_threads)
        if config not in (None, "") and get_config(config) != net.cfg:
            name = config if isinstance(config, str) else config.name
            raise ValueError(f"config {name!r} does not match the export's config {net.cfg.name!r} ({weights})")
        self._net, self.model, self.cfg, self.input_size = net, None, net.cfg, net.input_size

    @property
    def inference_model(self):
        """What actually runs: the optimized module when ``optimize=True``, or for the
        onnxruntime backend an :class:`~.onnx_runtime.OnnxRuntimeNet` (same call interface)."""
        return self._net

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
            score_threshold=self.score_threshold, top_k=self.top_k, nms_threshold=self.nms_threshold,
            conf_threshold=self.cfg.nms_conf_thresh, nms_top_k=self.cfg.nms_top_k,
            max_num_detections=self.cfg.max_num_detections, cross_class_nms=self.cross_class_nms,
            class_keep=self._class_keep,
        )

    # -- inference ------------------------------------------------------------------------------
    def warmup(self, size: tuple[int, int] = (480, 640)) -> None:
        """One forward on a dummy image so the first real frame does not pay for allocation."""
        self(np.zeros((size[0], size[1], 3), np.uint8))

    def __call__(self, images: "np.ndarray | Sequence[np.ndarray]") -> "Instances | list[Instances]":
        single = isinstance(images, np.ndarray)
        batch = [images] if single else list(images)
        if not batch:
            return []
        for img in batch:
            _check_image(img)
        with torch.inference_mode():
            results = self._run(batch)
        return results[0] if single else results

    @property
    def half(self) -> bool:
        """fp16 autocast in use (``precision == "fp16"``)."""
        return self.precision == "fp16"

    @contextlib.contextmanager
    def _precision(self):
        """The precision policy around the network: TF32 on only for ``tf32`` (restored after,
        the flags are process-wide), fp16 autocast for ``fp16``. Written for any device: the
        constructor allows fp16 only on CUDA, but the CPU dry run of the device check sets it to
        run the same dtype handling on the CPU's float16 autocast."""
        with (tf32(self.precision == "tf32") if self.device.type == "cuda" else contextlib.nullcontext(),
              torch.autocast(self.device.type, dtype=torch.float16, enabled=self.precision == "fp16")):
            yield

    def _run(self, batch: list[np.ndarray]) -> list[Instances]:
        """Stage times come from :class:`_StageClock`: CUDA events on a GPU, so timing adds no
        host synchronisation; the only syncs on the CUDA path are the counts post-processing
        needs (kept detections, the mask window size) and the final device->host copies."""
        clock = _StageClock(self.device)
        start = clock.mark()
        x = self.preprocess(batch)
        pre = clock.mark()
        if self.backend == "torch" and self.cuda_graph:
            out = self._graph_forward(x)  # one replay: the body is not split into stages
            body = None
        elif self.backend == "torch":
            with self._precision():
                feats = self._net.features(x)
                body = clock.mark()
                out = self._net.heads(feats, x.device)
        else:
            out = self._net(x)  # one onnxruntime session run: the network is not split into stages
            body = None
        fwd = clock.mark()
        out = {k: v.float() for k, v in out.items()}
        settings = self.postprocess_settings
        rescore = self.cfg.use_maskiou
        results, per_image = [], []
        for i, img in enumerate(batch):
            a = clock.mark()
            dets = select_detections(out, i, settings, with_masks=rescore)
            mask_iou = self._net.mask_iou(dets.masks, dets.classes) if rescore else None
            b = clock.mark()
            results.append(to_instances(dets, out["proto"][i], img.shape[0], img.shape[1], settings,
                                        self.class_names, mask_iou))
            per_image.append((a, b, clock.mark()))
        clock.finish()
        nan = float("nan")
        self.timings = {
            "preprocess": clock.ms(start, pre),
            "backbone_fpn": clock.ms(pre, body) if body is not None else nan,
            "heads": clock.ms(body, fwd) if body is not None else nan,
            "forward": clock.ms(pre, fwd),
            "detect": sum(clock.ms(a, b) for a, b, _ in per_image),
            "masks": sum(clock.ms(b, c) for _, b, c in per_image),
            "total": clock.ms(start, clock.last),
        }
        return results

    def _graph_forward(self, x: torch.Tensor) -> dict:
        """The network body as a captured CUDA graph, one per input shape (fixed-size input:
        one graph per batch size). Captured on first use (three warm-up runs on a side stream,
        then the capture); the outputs live in the graph's static buffers, valid until the next
        call (post-processing reads them before returning). A capture that fails switches the
        Segmenter back to eager execution with one warning."""
        key = (tuple(x.shape), self.precision)
        entry = self._graphs.get(key)
        if entry is None:
            try:
                static_in = x.clone(memory_format=torch.preserve_format)
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side), self._precision():
                    for _ in range(3):
                        self._net(static_in)
                torch.cuda.current_stream(self.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph), self._precision():
                    static_out = self._net(static_in)
                entry = self._graphs[key] = (graph, static_in, static_out)
            except Exception as exc:  # noqa: BLE001 - eager still works
                log.warning("CUDA graph capture failed (%s: %s); running eagerly", type(exc).__name__, exc)
                self.cuda_graph = False
                self._graphs.clear()
                with self._precision():
                    return self._net(x)
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out

    def _to_device(self, host: torch.Tensor, slot: int) -> torch.Tensor:
        """A host uint8 image on the device. On CUDA it goes through a pinned buffer kept per
        batch slot and shape (reused: the previous call's copies finished before its results
        reached the host), so the copy is asynchronous."""
        if self.device.type != "cuda":
            return host
        key = (slot, tuple(host.shape))
        buf = self._pinned.get(key)
        if buf is None:
            if len(self._pinned) > 16:  # many sizes: keep the memory bounded
                self._pinned.clear()
            buf = self._pinned[key] = torch.empty(host.shape, dtype=host.dtype, pin_memory=True)
        buf.copy_(host)
        return buf.to(self.device, non_blocking=True)

    def preprocess(self, batch: list[np.ndarray]) -> torch.Tensor:
        """BGR uint8 HxWx3 (or HxW mono) images -> network input [N,3,S,S] on the device
        (S = :attr:`input_size`)."""
        s = self.input_size
        tensors = []
        for img in batch:
            if img.ndim == 3 and img.shape[2] == 1:
                img = img[:, :, 0]
            if img.ndim == 2:
                img = np.repeat(img[:, :, None], 3, axis=2)
            elif img.shape[2] == 4:
                img = img[:, :, :3]
            if not img.flags.writeable or not img.flags.c_contiguous:
                img = np.array(img, order="C")  # e.g. a read-only ROS message buffer: torch wants its own
            x = self._to_device(torch.from_numpy(img), len(tensors))
            x = x.permute(2, 0, 1).unsqueeze(0).float()
            tensors.append(resize_and_normalize(x, s, self.cfg.backbone))
        x = torch.cat(tensors, 0)
        if getattr(self._net, "channels_last", False):
            x = x.contiguous(memory_format=torch.channels_last)
        return x


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
    conv = cudnn.conv
    saved = (conv.fp32_precision, matmul.fp32_precision)
    conv.fp32_precision = matmul.fp32_precision = "tf32" if enabled else "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved


class _StageClock:
    """Stage boundaries of one call: ``time.perf_counter`` on the CPU, CUDA events on a GPU
    (recorded in stream order; read after :meth:`finish`, so timing never syncs the host)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def mark(self) -> int:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())
        return len(self.marks) - 1

    @property
    def last(self) -> int:
        return len(self.marks) - 1

    def finish(self) -> None:
        self.mark()
        if self.cuda:
            self.marks[-1].synchronize()  # the results are on the host already: nothing left to wait for

    def ms(self, a: int, b: int) -> float:
        if self.cuda:
            return float(self.marks[a].elapsed_time(self.marks[b]))
        return (self.marks[b] - self.marks[a]) * 1000.0


def _check_image(img) -> None:
    if not isinstance(img, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {img.dtype}")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected an HxWx3 BGR image (or HxW / HxWx1 mono, HxWx4 BGRA), got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"empty image of shape {img.shape}")
