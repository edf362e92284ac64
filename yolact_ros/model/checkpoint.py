"""Reading and writing ``.pth`` checkpoints in the official layout.

Files are read with ``torch.load(weights_only=True)``, so a checkpoint can never
run code.  A file written by ``yolact train`` carries its config and class
names in the state_dict's ``_metadata`` (the attribute PyTorch itself uses for
module versions), so its tensor keys stay exactly the official ones and the
original implementation can still load it.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from functools import cache
from pathlib import Path

import torch

from .config import OFFICIAL_CONFIGS, YolactConfig

META_KEY = "yolact_ros"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


def config_name_from_filename(path: "str | Path") -> str | None:
    """Config name the original eval would infer: ``yolact_plus_base_54_800000.pth`` -> ``yolact_plus_base``.

    Returns None when the name does not lead to an official config.
    """
    stem = Path(path).name
    if stem.endswith(".pth"):
        stem = stem[:-4]
    parts = stem.split("_")
    if parts and parts[-1] == "interrupt":
        parts = parts[:-1]
    while len(parts) > 1 and re.fullmatch(r"\d+", parts[-1]):
        parts = parts[:-1]
    name = "_".join(parts)
    if name.endswith("_config"):
        name = name[: -len("_config")]
    if name in OFFICIAL_CONFIGS:
        return name
    # e.g. "yolact_base_custom.pth": longest official name the file name starts with
    matches = [n for n in OFFICIAL_CONFIGS if stem.startswith(n + "_") or stem == n]
    return max(matches, key=len) if matches else None


def read_checkpoint(path: "str | Path") -> tuple["OrderedDict[str, torch.Tensor]", dict]:
    """(state_dict of tensors, metadata dict) of a checkpoint file, legacy keys not yet dropped."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle with code, plain text, ...
        text = str(exc).strip()
        if "Weights only load failed" in text:
            reason = "it holds Python objects other than tensors; refused, since loading them could run code"
        elif isinstance(exc, (KeyError, EOFError)) or len(text) < 8:
            reason = "not a torch.save zip archive or pickle, or truncated"
        else:
            reason = text.splitlines()[0][:200]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None
    if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for wrapper in ("model", "state_dict"):  # checkpoints of other trainers wrap the weights
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path}: not a YOLACT checkpoint (expected a state_dict of tensors, got {type(obj).__name__})"
        )
    meta = {}
    raw_meta = getattr(obj, "_metadata", None)
    if isinstance(raw_meta, dict) and isinstance(raw_meta.get(META_KEY), dict):
        meta = dict(raw_meta[META_KEY])
    return OrderedDict(obj), meta


def config_from_metadata(meta: dict) -> YolactConfig | None:
    text = meta.get("config_json")
    if not text:
        return None
    return YolactConfig.from_dict(json.loads(text))


def drop_legacy_keys(state: "OrderedDict[str, torch.Tensor]", num_downsample: int) -> "OrderedDict[str, torch.Tensor]":
    """The original's ``load_weights`` rule: legacy ``backbone.layerN.*`` duplicates and the
    unused third FPN downsample conv of v1.0 files are dropped; everything else must match."""
    out = OrderedDict()
    for key, value in state.items():
        if key.startswith("backbone.layer") and not key.startswith("backbone.layers"):
            continue
        if key.startswith("fpn.downsample_layers."):
            idx = int(key.split(".")[2])
            if idx >= num_downsample:
                continue
        out[key] = value
    return out


@cache
def official_signature(name: str, model_cls: type) -> tuple:
    """((key, shape), ...) of ``model_cls`` (the Yolact class) built with an official config,
    computed on the meta device (no memory).  The class is passed in, so this module never
    imports the network it loads weights into."""
    with torch.device("meta"):
        model = model_cls(OFFICIAL_CONFIGS[name])
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def matching_official_config(state: "OrderedDict[str, torch.Tensor]", model_cls: type) -> str | None:
    """The official config whose ``model_cls`` state_dict has exactly the keys and shapes of ``state``."""
    for name, cfg in OFFICIAL_CONFIGS.items():
        cleaned = drop_legacy_keys(state, cfg.fpn_num_downsample)
        if {k: tuple(v.shape) for k, v in cleaned.items()} == dict(official_signature(name, model_cls)):
            return name
    return None


def describe_mismatch(model: torch.nn.Module, state: "OrderedDict[str, torch.Tensor]") -> str:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [
        f"{k} {list(got[k])} vs model {list(expected[k])}" for k in expected if k in got and got[k] != expected[k]
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:2])})")
    return ", ".join(parts)


def load_into(model, path: "str | Path", strict: bool = True) -> dict:
    """Load ``path`` into ``model`` (a :class:`Yolact`); returns the file's metadata.

    Raises :class:`CheckpointError` naming the file and, on a key mismatch, the
    official config the file fits (if any).
    """
    state, meta = read_checkpoint(path)
    load_state_into(model, state, meta, path, strict)
    return meta


def load_state_into(
    model, state: "OrderedDict[str, torch.Tensor]", meta: dict, path: "str | Path", strict: bool = True
) -> None:
    """Load an already read checkpoint (see :func:`read_checkpoint`); ``path`` names it in errors."""
    state = drop_legacy_keys(state, model.cfg.fpn_num_downsample)
    mismatch = describe_mismatch(model, state)
    if mismatch and strict:
        fits = matching_official_config(state, type(model))
        hint = f"it fits the official config '{fits}'" if fits else "it fits no official config"
        file_cfg = config_from_metadata(meta)
        if file_cfg is not None and not fits:
            hint = f"it was trained with config '{file_cfg.name}' ({file_cfg.num_classes - 1} classes)"
        raise CheckpointError(f"{path}: does not fit config '{model.cfg.name}': {mismatch}; {hint}")
    expected = model.state_dict()
    bad = [k for k, v in state.items() if k in expected and v.is_floating_point() != expected[k].is_floating_point()]
    if bad:
        raise CheckpointError(f"{path}: wrong dtypes for {', '.join(bad[:3])}")
    # fp16-stored files (small demo models) load into the float32 model
    model.load_state_dict({k: v.to(expected[k].dtype) if k in expected else v for k, v in state.items()}, strict=strict)


def save_checkpoint(model, path: "str | Path", extra_meta: dict | None = None) -> Path:
    """Write ``model``'s state_dict in the official layout plus a self-describing config."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    meta = {"config_json": json.dumps(model.cfg.to_dict()), "format": 1}
    if extra_meta:
        meta.update(extra_meta)
    state._metadata[META_KEY] = meta
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path
