"""The learning-rate schedule: the original's linear warm-up and steps, scaled by batch size."""

from __future__ import annotations

from dataclasses import dataclass

from ..model.config import YolactConfig


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
