"""Training checkpoint files: the optimizer-state file beside each, finding the newest, pruning."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from ..model.checkpoint import read_checkpoint

log = logging.getLogger(__name__)

#: The optimizer state and position of ``<stem>.pth`` live in ``<stem>_state.pth``.
STATE_SUFFIX = "_state.pth"


def state_path(checkpoint: Path) -> Path:
    """The optimizer-state file beside ``checkpoint``."""
    return checkpoint.with_name(checkpoint.stem + STATE_SUFFIX)


def write_state(checkpoint: Path, state: dict) -> None:
    """Write ``checkpoint``'s state file atomically (as save_checkpoint: a stop mid-write leaves
    no broken file)."""
    path = state_path(checkpoint)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def prune(kept: list[Path], keep: int) -> None:
    """Delete the oldest of ``kept`` (and their state files) until at most ``max(1, keep)`` remain."""
    while len(kept) > max(1, keep):
        old = kept.pop(0)
        for p in (old, state_path(old)):
            p.unlink(missing_ok=True)


def latest_checkpoint(out_dir: "str | Path", name: str) -> Path | None:
    """The newest complete periodic or interrupt checkpoint ``<name>_<epoch>_<iter>[_interrupt].pth``
    in ``out_dir`` (its ``_state.pth`` present and both files readable), or None."""
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)_(\d+)(_interrupt)?\.pth$")
    found = []
    for path in Path(out_dir).glob(f"{name}_*.pth"):
        m = pattern.match(path.name)
        if m and state_path(path).is_file():
            found.append((int(m.group(2)), path))
    for _, path in sorted(found, reverse=True):
        try:
            read_checkpoint(path)
            torch.load(state_path(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file: fall back to the one before
            log.warning("%s: not readable (%s); trying an older checkpoint", path, str(exc).splitlines()[0][:120])
            continue
        return path
    return None
