"""The YOLACT / YOLACT++ network in plain PyTorch (no ROS, no OpenCV)."""
from .checkpoint import CheckpointError, config_name_from_filename, load_into, read_checkpoint, save_checkpoint
from .config import COCO_CLASSES, OFFICIAL_CONFIGS, BackboneConfig, TrainConfig, YolactConfig, get_config
from .yolact import Yolact, build_yolact

__all__ = [
    "OFFICIAL_CONFIGS", "COCO_CLASSES", "BackboneConfig", "TrainConfig", "YolactConfig", "get_config",
    "Yolact", "build_yolact", "CheckpointError", "config_name_from_filename", "load_into", "read_checkpoint",
    "save_checkpoint",
]
