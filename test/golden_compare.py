"""Comparison rules of the reference fixtures (test/fixtures/golden/README.md, "How to compare")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "golden"

RAW_ATOL = {"input": 3e-4, "priors": 1e-6, "loc": 1e-4, "conf": 3e-5, "mask": 1e-4, "proto": 5e-5, "maskiou_all": 1e-4}
SCORE_TOL = 3e-5
MASK_SCORE_TOL = 1e-4


def golden_files() -> list[Path]:
    """Every fixture .npz: the bundled ones plus any in $YOLACT_GOLDEN_DIR (more configs / images;
    a file there replaces a bundled one of the same name)."""
    files = {p.name: p for p in sorted(FIXTURES.glob("*.npz"))}
    extra = os.environ.get("YOLACT_GOLDEN_DIR")
    if extra:
        files.update({p.name: p for p in sorted(Path(extra).glob("*.npz"))})
    return [files[k] for k in sorted(files)]


def load(path: Path) -> tuple[dict, dict]:
    z = np.load(path)
    data = {k: z[k] for k in z.files}
    meta = json.loads(str(data.pop("meta_json")))
    return data, meta


def apply_strides(meta: dict, name: str, arr: np.ndarray) -> np.ndarray:
    axis, step = meta.get("strides", {}).get(name, (0, 1))
    return arr.take(range(0, arr.shape[axis], step), axis=axis) if step != 1 else arr


def raw_violation(name: str, mine: np.ndarray, ref: np.ndarray) -> float:
    """max(|diff| - (atol + 1e-4 |ref|)); <= 0 passes."""
    assert mine.shape == ref.shape, f"{name}: shape {mine.shape} vs golden {ref.shape}"
    return float((np.abs(mine.astype(np.float64) - ref) - (RAW_ATOL[name] + 1e-4 * np.abs(ref))).max())


def golden_masks(data: dict) -> np.ndarray:
    k, h, w = (int(v) for v in data["masks_shape"])
    return np.unpackbits(data["masks_packed"], axis=-1)[..., :w].astype(bool).reshape(k, h, w)


def match_detections(golden: dict, mine: dict, plus: bool) -> tuple[list[tuple[int, int]], list[str]]:
    """Greedy matching in golden score order: same class, close score(s), boxes within 1 px.

    golden / mine: dicts with classes, scores (box score), boxes (pixels), and for ++ mask_scores.
    Returns (pairs (golden_idx, my_idx), problems).
    """
    problems = []
    used = np.zeros(len(mine["scores"]), bool)
    pairs = []
    order = np.argsort(-golden["scores"], kind="stable")
    lowest_kept = float(np.min(mine["scores"])) if len(mine["scores"]) else 1.0
    for g in order:
        cand = (~used) & (mine["classes"] == golden["classes"][g])
        cand &= np.abs(mine["scores"] - golden["scores"][g]) <= SCORE_TOL
        if plus:
            cand &= np.abs(mine["mask_scores"] - golden["mask_scores"][g]) <= MASK_SCORE_TOL
        cand &= np.all(np.abs(mine["boxes"] - golden["boxes"][g]) <= 1.0 + 1e-3, axis=1)
        idx = np.flatnonzero(cand)
        if len(idx) == 0:
            if abs(float(golden["scores"][g]) - lowest_kept) > SCORE_TOL:
                problems.append(
                    f"golden det {g} (class {golden['classes'][g]}, score {golden['scores'][g]:.6f}, box {golden['boxes'][g]}) unmatched"
                )
            continue
        best = idx[np.argmin(np.abs(mine["scores"][idx] - golden["scores"][g]))]
        used[best] = True
        pairs.append((int(g), int(best)))
    return pairs, problems


def mask_problems(pairs, golden_m: np.ndarray, my_m: np.ndarray) -> list[str]:
    out = []
    for g, m in pairs:
        xor = int(np.logical_xor(golden_m[g], my_m[m]).sum())
        union = int(np.logical_or(golden_m[g], my_m[m]).sum())
        if xor > 4 + 0.005 * union:
            out.append(f"mask of golden det {g}: |xor| {xor} > 4 + 0.5% of union {union}")
    return out
