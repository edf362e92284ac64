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
#: What runs the network: PyTorch, onnxruntime (a ``yolact export`` file, docs/onnx.md),
#: OpenVINO (docs/cpu.md), or ``auto`` (the rule in ``inference/backends/choice.py``).
#: The Segmenter and the CLI default to torch (today's exact results); the node and the demo to auto.
BACKEND = "torch"
NODE_BACKEND = "auto"
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
#: Numeric precision of the network: fp32 (on CUDA with TF32 off: cuDNN would otherwise use it
#: for convolutions on Ampere and newer, changing results at the 1e-3 level), tf32 / fp16 (CUDA),
#: bf16 (CPU or CUDA), int8 (OpenVINO, a ``yolact quantize`` model), or auto (bf16 where the CPU
#: has it natively, else fp32). Decoding, NMS and masks always run in fp32.
PRECISION = "fp32"
NODE_PRECISION = "auto"
PRECISIONS = ("auto", "fp32", "tf32", "fp16", "bf16", "int8")
#: Opacity of the mask tint in overlays.
MASK_ALPHA = 0.45
#: Soft mask values above this are inside the instance.
MASK_THRESHOLD = 0.5
#: An instance needs at least this many valid depth pixels in its mask to be placed in 3D.
DEPTH_MIN_POINTS = 20
#: Seconds a depth frame's stamp may lie from its colour frame's to be paired with it.
DEPTH_TOLERANCE_S = 0.05
