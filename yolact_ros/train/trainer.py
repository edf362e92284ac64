"""The training loop: SGD with the original's warm-up + step schedule, AMP on CUDA, checkpoints, validation.

Checkpoints are written with :func:`yolact_ros.model.checkpoint.save_checkpoint`
(official flat key layout + the config and class names in the metadata), so a
file from here loads with ``Segmenter(weights=...)``, ``yolact eval --weights``
and the node alone.  The optimizer state and iteration live next to it in
``<checkpoint stem>_state.pth`` for ``--resume``; the model file itself stays in
the official layout.

Under ``torchrun`` the same loop runs once per rank (:mod:`.distributed`): the model is
wrapped in DistributedDataParallel, each rank trains on its share of every global
batch, and rank 0 alone writes checkpoints, ``metrics.jsonl``, the log and the
progress bar.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import signals
from ..data.augment import collate
from ..data.coco import load_coco
from ..evaluation.coco_eval import Predictions, eval_image_ids, predict, score
from ..inference.segmenter import Segmenter, resolve_device
from ..model.checkpoint import load_into, save_checkpoint
from ..model.config import YolactConfig
from ..model.imagenet import init_backbone
from ..model.yolact import Yolact
from .checkpoints import STATE_SUFFIX, latest_checkpoint, prune, state_path, write_state
from .distributed import SINGLE, Dist, GlobalBatchSampler, split_batch
from .loss import LOSS_NAMES, YolactLoss
from .model_setup import FREEZE_BN_BELOW, fix_backbone_stages, freeze_batchnorm, hold_fixed_stages, init_head_weights
from .schedule import make_schedule

#: after SIGINT / SIGTERM under ``yolact train``: time allowed to finish the step and save the interrupt checkpoint
INTERRUPT_GRACE_S = 60.0

log = logging.getLogger(__name__)


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
    freeze_bn: bool | None = None  # None: the original's rule (freeze below 6 images per device)
    sync_bn: bool = False  # SyncBatchNorm across ranks (CUDA, trained BatchNorm only)
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


class Trainer:
    """Trains a :class:`Yolact` on a dataset of ``(x [3,S,S], target)`` pairs.

    ``dataset`` must yield what :class:`yolact_ros.data.augment.TrainAugment` yields.
    """

    def __init__(
        self,
        cfg: YolactConfig,
        dataset,
        options: TrainOptions,
        backbone_weights: "str | Path | None" = None,
        resume: "str | Path | None" = None,
        dist: Dist = SINGLE,
    ):
        self.cfg = cfg
        self.opt = options
        self.dataset = dataset
        self.dist = dist
        #: images per step on this rank
        self.device_batch = split_batch(options.batch_size, dist.world_size)
        self.device = resolve_device(options.device)
        self.out_dir = Path(options.out_dir)
        if dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        with self._seeded(options.seed):  # initial weights: reproducible, caller's RNG untouched
            self.model = Yolact(cfg)
            init_head_weights(self.model)
        self.start_iter = 0
        if backbone_weights and dist.is_main:  # the other ranks receive rank 0's weights when DDP starts
            loaded, left = init_backbone(self.model, backbone_weights)
            log.info("backbone initialised from %s: %d tensors loaded, %d left at init", backbone_weights, loaded, left)
        self.model.to(self.device)
        self.schedule = make_schedule(cfg, options.batch_size, options.max_iter, options.lr)
        self.freeze_bn = options.freeze_bn if options.freeze_bn is not None else self.device_batch < FREEZE_BN_BELOW
        fix_backbone_stages(self.model, options.frozen_stages)
        params = [p for p in self.model.parameters() if p.requires_grad]
        t = cfg.train
        self.optimizer = torch.optim.SGD(
            params, lr=self.schedule.lr_at(0), momentum=t.momentum, weight_decay=t.weight_decay
        )
        if self.freeze_bn:  # before DDP, which must know which parameters take no gradient
            freeze_batchnorm(self.model)
        self.use_amp = bool(options.amp) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.criterion = YolactLoss(cfg, sum_counts=dist.sum if dist.enabled else None)
        if str(resume) == "auto":
            found = latest_checkpoint(self.out_dir, cfg.name) if dist.is_main else None
            resume = dist.broadcast(str(found) if found else "")
            if not resume:
                log.info("--resume auto: no checkpoint of %s in %s yet; starting fresh", cfg.name, self.out_dir)
        if resume:
            self._resume(Path(resume))
        self.net: nn.Module = self.model  # what the loop calls: the model, or its DDP wrapper
        if dist.enabled:
            self.net = self._distributed(options.sync_bn)
        elif options.sync_bn:
            log.warning("--sync-bn has no effect in a single process")
        self._checked_gradients = False

    def _distributed(self, sync_bn: bool) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        if sync_bn:
            if self.freeze_bn:
                log.warning(
                    "--sync-bn has no effect: BatchNorm is frozen (%d images per device; --freeze-bn no trains it)",
                    self.device_batch,
                )
            elif self.device.type != "cuda":
                raise ValueError("--sync-bn needs CUDA devices (PyTorch's SyncBatchNorm has no CPU kernel)")
            else:
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        # DDP copies rank 0's parameters and buffers to every rank here
        return DistributedDataParallel(
            self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
        )

    # -- state ------------------------------------------------------------------------------------
    def _resume(self, path: Path) -> None:
        """Weights, optimizer state and position from ``path`` (read on rank 0, sent to the others)."""
        payload = self._read_resume(path) if self.dist.is_main else None
        payload = self.dist.broadcast(payload)
        if not self.dist.is_main:
            self.model.load_state_dict(payload["model"])
        if payload["optimizer"] is not None:
            self.optimizer.load_state_dict(payload["optimizer"])
        if self.use_amp and payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        self.start_iter = int(payload["iteration"])
        trained_batch = payload.get("batch_size")
        if trained_batch is not None and int(trained_batch) != self.opt.batch_size:
            raise ValueError(
                f"{path} was trained with global batch {trained_batch}; resume with --batch-size {trained_batch} "
                "(the schedule and the data order depend on it; any world size that divides it works)"
            )
        log.info(
            "resumed from %s at iteration %d (written by %s process%s)",
            path,
            self.start_iter,
            payload.get("world_size", 1),
            "" if payload.get("world_size", 1) == 1 else "es",
        )

    def _read_resume(self, path: Path) -> dict:
        meta = load_into(self.model, path)
        self.model.to(self.device)
        payload: dict = {"model": None, "optimizer": None}
        if state_path(path).is_file():
            state = torch.load(state_path(path), map_location="cpu", weights_only=True)
            payload.update(state)
        else:
            m = re.search(r"_(\d+)_(\d+)(?:_interrupt)?\.pth$", path.name)
            payload["iteration"] = int(m.group(2)) if m else int(meta.get("iteration", 0))
            log.warning(
                "%s: no %s next to it; optimizer state starts fresh at iteration %d",
                path,
                STATE_SUFFIX,
                payload["iteration"],
            )
        if self.dist.enabled:
            payload["model"] = {k: v.cpu() for k, v in self.model.state_dict().items()}
        return payload

    def save(self, iteration: int, epoch: int, name: str | None = None) -> Path:
        """Rank 0: write the checkpoint (official layout) and its ``_state.pth``; both atomically."""
        path = self.out_dir / (name or f"{self.cfg.name}_{epoch}_{iteration}.pth")
        run = {
            "iteration": iteration,
            "epoch": epoch,
            "batch_size": self.opt.batch_size,
            "world_size": self.dist.world_size,
        }
        save_checkpoint(self.model, path, {**run, "trainer": "yolact_ros"})
        state = {"optimizer": self.optimizer.state_dict(), **run}
        if self.use_amp:
            state["scaler"] = self.scaler.state_dict()
        write_state(path, state)
        return path

    def validate(self) -> dict:
        """Box / mask AP of the current weights on the validation set, on every rank.

        Rank r of W scores images r, r+W, ... (no image twice, none padded in); rank 0
        evaluates the gathered results once and every rank returns its figures.  One
        process gives what ``yolact eval`` gives for the checkpoint of this iteration.
        """
        # called when validation is configured: both set (the CLI checks they come together)
        assert self.opt.val_json is not None and self.opt.val_images is not None
        coco = load_coco(self.opt.val_json)
        ids = eval_image_ids(coco, self.opt.val_max_images)
        module = copy.deepcopy(self.model)  # the Segmenter's own eval-mode copy; SyncBatchNorm acts as BatchNorm there
        seg = Segmenter(model=module, device=str(self.device))
        mine = predict(seg, coco, self.opt.val_images, ids[self.dist.rank :: self.dist.world_size], progress=False)
        parts = self.dist.gather(mine)
        stats = None
        if parts is not None:
            stats = score(
                coco, sum(parts, Predictions()), f"{self.opt.val_json} in {self.opt.val_images}", verbose=False
            )
        return self.dist.broadcast(stats)

    # -- training ---------------------------------------------------------------------------------
    def _train_mode(self) -> None:
        self.model.train()
        if self.freeze_bn:
            freeze_batchnorm(self.model)
        hold_fixed_stages(self.model, self.opt.frozen_stages)

    def step(self, images: torch.Tensor, targets: list[dict], lr: float) -> dict[str, float] | None:
        """One SGD step; returns the loss terms of the global batch, or None when the loss was
        not finite (step skipped, on every rank).  Raises KeyboardInterrupt after the step when
        any rank was asked to stop (SIGINT / SIGTERM), so all ranks stop at the same iteration."""
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        images = images.to(self.device, non_blocking=True)
        targets = [
            {k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in tg.items()}
            for tg in targets
        ]
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.use_amp):
            out = self.net(images)
        losses = self.criterion(out, targets, getattr(self.model, "maskiou_net", None))
        names = list(losses)
        # one all-reduce: the global loss terms (each rank holds its share) and the stop requests
        local = torch.stack(
            [losses[k].detach().float() for k in names] + [torch.tensor(float(signals.requested()), device=self.device)]
        )
        summed = self.dist.sum(local)
        stop = bool(summed[-1] > 0) and self.dist.enabled
        values = {k: float(v) for k, v in zip(names, summed[:-1].tolist())}
        if not torch.isfinite(summed[:-1]).all():
            if stop:
                raise KeyboardInterrupt
            return None
        # DDP averages the gradients over the ranks; the global loss is the sum of the shares
        self.scaler.scale(losses["total"] * self.dist.world_size).backward()
        if not self._checked_gradients:
            self._check_gradients()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if stop:
            raise KeyboardInterrupt
        return values

    def _check_gradients(self) -> None:
        """After the first backward: every trainable parameter got a gradient (DDP requires it)."""
        self._checked_gradients = True
        unused = [n for n, p in self.model.named_parameters() if p.requires_grad and p.grad is None]
        if unused:
            raise RuntimeError(
                f"{len(unused)} trainable parameters get no gradient in training "
                f"({', '.join(unused[:5])}{', ...' if len(unused) > 5 else ''}): a model change left them "
                "out of the loss; DistributedDataParallel cannot train such a model"
            )

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
        # each rank its own augmentation randomness; rank 0 (and a single process) as before
        with self._seeded(self.opt.seed + self.start_iter + 1 + 7919 * self.dist.rank):
            return self._train(on_log)

    def _train(self, on_log: Callable[[dict], None] | None) -> TrainResult:
        opt = self.opt
        main = self.dist.is_main
        sampler = GlobalBatchSampler(len(self.dataset), opt.batch_size, opt.seed, self.dist.rank, self.dist.world_size)
        iters_per_epoch = sampler.batches_per_epoch
        sampler.start_epoch, sampler.start_batch = divmod(self.start_iter, iters_per_epoch)
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=opt.num_workers,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(opt.seed + self.start_iter + 7919 * self.dist.rank),
        )
        max_iter = self.schedule.max_iter
        bar = None
        if opt.progress and main:
            from tqdm import tqdm

            bar = tqdm(
                total=max_iter, initial=self.start_iter, desc="train", unit="it", file=sys.stderr, dynamic_ncols=True
            )
        metrics_path = self.out_dir / "metrics.jsonl"
        self._train_mode()
        iteration = self.start_iter
        epoch = iteration // iters_per_epoch
        kept: list[Path] = []
        result = TrainResult(iterations=iteration, checkpoint=Path(), best_checkpoint=None)
        best_ap = -1.0
        smooth: dict[str, float] = {}
        skipped = 0
        t0 = time.perf_counter()
        stream = iter(loader)
        # SIGINT / SIGTERM from here on: finish the step, save the interrupt checkpoint, then stop
        # (yolact_ros.signals ends the process if that takes longer than the grace period)
        signals.mark_started(INTERRUPT_GRACE_S)
        try:
            while iteration < max_iter:
                if signals.requested() and not self.dist.enabled:  # ranks stop together, after a step
                    raise KeyboardInterrupt
                images, targets = next(stream)
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
                    if main and (iteration % max(1, opt.log_every) == 0 or iteration == max_iter):
                        record: dict = {
                            "iteration": iteration,
                            "epoch": epoch,
                            "lr": lr,
                            "seconds": round(time.perf_counter() - t0, 2),
                            "world_size": self.dist.world_size,
                            **{k: round(v, 5) for k, v in losses.items()},
                        }
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
                    path = self.out_dir / f"{self.cfg.name}_{epoch}_{iteration}.pth"
                    if main:
                        self.save(iteration, epoch)
                        kept.append(path)
                    result.checkpoint = path
                    if do_val:
                        stats = self.validate()
                        self._train_mode()
                        record = {
                            "iteration": iteration,
                            "box_AP": stats.get("box_AP"),
                            "mask_AP": stats.get("mask_AP"),
                            "mask_AP50": stats.get("mask_AP50"),
                            "num_images": stats.get("num_images"),
                            "world_size": self.dist.world_size,
                            "seconds": round(time.perf_counter() - t0, 2),
                        }
                        result.val_history.append(record)
                        if main:
                            with metrics_path.open("a") as f:
                                f.write(json.dumps({"validation": record}) + "\n")
                            msg = f"iteration {iteration}: box AP {stats.get('box_AP', -1):.2f}  mask AP {stats.get('mask_AP', -1):.2f}"
                            (bar.write(msg) if bar is not None else log.info(msg))
                            if on_log is not None:
                                on_log({"validation": record})
                        if stats.get("mask_AP", -1) > best_ap:
                            best_ap = stats["mask_AP"]
                            result.best_checkpoint = self.out_dir / f"{self.cfg.name}_best.pth"
                            if main:
                                self.save(iteration, epoch, result.best_checkpoint.name)
                    if main:
                        prune(kept, self.opt.keep_checkpoints)
        except KeyboardInterrupt:
            name = f"{self.cfg.name}_{epoch}_{iteration}_interrupt.pth"
            result.checkpoint = self.out_dir / name
            if main:
                self.save(iteration, epoch, name)
                log.warning("interrupted: saved %s", result.checkpoint)
            raise
        finally:
            if bar is not None:
                bar.close()
        result.iterations = iteration
        result.seconds = time.perf_counter() - t0
        return result
