"""The YOLACT / YOLACT++ network in plain PyTorch (no ROS, no OpenCV).

Public names are loaded on first use, so ``import yolact_ros.model.config`` (plain data)
does not import torch.
"""

from importlib import import_module

_EXPORTS = {
    "OFFICIAL_CONFIGS": "config",
    "COCO_CLASSES": "config",
    "BackboneConfig": "config",
    "TrainConfig": "config",
    "YolactConfig": "config",
    "get_config": "config",
    "Yolact": "yolact",
    "build_yolact": "yolact",
    "CheckpointError": "checkpoint",
    "config_name_from_filename": "checkpoint",
    "load_into": "checkpoint",
    "read_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
