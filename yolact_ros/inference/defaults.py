"""Default inference settings: the one definition read by the Segmenter, the CLI, the
benchmarks and the ROS parameter table (and checked against ``config/yolact.yaml``).

Plain constants, no torch import, so the ROS parameter table can read them cheaply.
"""
from __future__ import annotations

from ..model.config import MAX_NUM_DETECTIONS

#: Publish / return instances whose score is strictly above this.
SCORE_THRESHOLD = 0.15
#: At most this many instances per image (highest scores first).
TOP_K = 15
#: The largest ``top_k`` a model allows: the official configs keep at most this many detections.
TOP_K_MAX = MAX_NUM_DETECTIONS
#: NMS IoU threshold; None = the model config's ``nms_thresh`` (0.5 for every official config).
NMS_THRESHOLD = None
#: Class-wise Fast NMS (the original's default); True = one NMS across classes.
CROSS_CLASS_NMS = False
#: Where to run: CUDA if available, else the CPU.
DEVICE = "auto"
#: What runs the network: PyTorch, or a ``yolact export`` ONNX file with onnxruntime (docs/onnx.md).
BACKEND = "torch"
BACKENDS = ("torch", "onnxruntime")
#: Numeric precision on CUDA: fp32 (TF32 off: cuDNN would otherwise use it for convolutions on
#: Ampere and newer, changing results at the 1e-3 level), tf32, or fp16 (autocast). The CPU
#: always runs fp32.
PRECISION = "fp32"
PRECISIONS = ("fp32", "tf32", "fp16")
#: Opacity of the mask tint in overlays.
MASK_ALPHA = 0.45
#: Soft mask values above this are inside the instance.
MASK_THRESHOLD = 0.5
