"""The node's parameter table: name, type, default, range, when it may change, description.

Each parameter is defined here once. :mod:`yolact_ros.ros.params` checks values against it,
:mod:`yolact_ros.ros.node_params` declares it on the node (what ``ros2 param describe`` shows),
and ``scripts/gen_params.py`` writes ``config/yolact.yaml`` and the README / docs/ros.md tables
from it. Defaults of the inference settings (the depth measurement's included) come from
:mod:`yolact_ros.inference.defaults` and the tracker's from :mod:`yolact_ros.inference.tracking`.
Pure data: no rclpy or torch import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..inference import defaults
from ..inference.tracking import MAX_AGE as TRACK_MAX_AGE
from ..interfaces.fields import CLASS_ID_FORMATS

__all__ = ["NMS_UNSET", "PARAMS", "SECTIONS", "ParamSpec", "Section"]

#: ``nms_threshold``'s value for "the model config's" (the Segmenter's None): a ROS parameter
#: has no None, and a real IoU threshold is above 0.
NMS_UNSET = 0.0


@dataclass(frozen=True)
class ParamSpec:
    """One parameter. ``kind`` is bool/int/float/str/str_list; ``runtime`` parameters may
    change while the node is configured or active, the others only while unconfigured
    (they take effect at the next configure). ``description`` is the one text users read: in
    ``ros2 param describe``, as the comment in ``config/yolact.yaml`` and in the README and
    docs/ros.md tables (all generated from this table by ``scripts/gen_params.py``)."""

    name: str
    default: Any
    kind: str
    description: str
    runtime: bool = False
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    constraints: str = ""
    read_at: str = "configure"  # when a non-runtime parameter is read: start, configure or activate


@dataclass(frozen=True)
class Section:
    """Parameters that belong together, in the order of the params file and the docs tables."""

    title: str
    params: tuple[ParamSpec, ...]


SECTIONS: tuple[Section, ...] = (
    Section(
        "model (read at configure: change these only while the node is unconfigured)",
        (
            ParamSpec(
                "weights",
                "",
                "str",
                "Path to the .pth weights: an official YOLACT/YOLACT++ file (e.g. "
                "yolact_plus_resnet50_54_800000.pth) or one written by yolact_ros. Required; usually given "
                "on the command line or as the launch argument `weights`.",
                constraints="an existing file",
            ),
            ParamSpec(
                "config",
                "",
                "str",
                "Model config name (e.g. yolact_base, yolact_plus_resnet50); empty = read it from the "
                "checkpoint, else infer it from the weights file name as the original eval does.",
            ),
            ParamSpec(
                "device",
                defaults.DEVICE,
                "str",
                "Inference device: auto (CUDA if available, else the CPU, said in one info line), cpu, cuda or cuda:N.",
                constraints="auto | cpu | cuda | cuda:N",
            ),
            ParamSpec(
                "backend",
                defaults.NODE_BACKEND,
                "str",
                "What runs the network: auto (OpenVINO on the CPU when installed, torch on CUDA; docs/cpu.md), "
                "torch (weights: a .pth), onnxruntime (weights: a .onnx from `yolact export`, docs/onnx.md) or "
                "openvino (weights: a .pth converted at configure and cached in cache_dir, a .onnx, or an "
                "OpenVINO .xml from `yolact quantize`). The choice and its reason are logged at configure and "
                "reported in diagnostics.",
                choices=defaults.BACKENDS,
            ),
            ParamSpec(
                "precision",
                defaults.NODE_PRECISION,
                "str",
                "Network precision: auto (bf16 where the CPU has it natively, else fp32; int8 for a quantized "
                "model), fp32, bf16, int8 (a `yolact quantize` model), tf32 / fp16 (CUDA). The one the backend "
                "really compiled is logged and in diagnostics; decoding, NMS and masks stay fp32.",
                choices=defaults.PRECISIONS,
            ),
            ParamSpec(
                "cache_dir",
                "",
                "str",
                "Where the OpenVINO backend keeps converted and compiled models; empty = $YOLACT_ROS_CACHE_DIR, "
                "else ~/.cache/yolact_ros. Pre-build it before a lifecycle manager's configure timeout with "
                "`yolact bench --weights W --variants auto:auto --runs 1 --cache-dir DIR`.",
            ),
            ParamSpec(
                "cuda_graph",
                False,
                "bool",
                "Replay the network body as a CUDA graph (fixed input size; CUDA only, eager fallback). Off "
                "until measured faster on a GPU (BENCHMARKS.md).",
            ),
            ParamSpec(
                "threads",
                0,
                "int",
                "CPU threads of the backend (and PyTorch); 0 = the runtime's default (all cores).",
                min=0,
                max=256,
            ),
            ParamSpec("warmup", True, "bool", "Run one dummy frame at configure so the first real frame is not slow."),
        ),
    ),
    Section(
        "cameras (read at configure)",
        (
            ParamSpec(
                "cameras",
                [],
                "str_list",
                "Camera names served by this node with one model and one batched forward per round, e.g. "
                "[front, left, 'right:compressed']: inputs `<camera>/image` (or `<camera>/image/compressed`), "
                "outputs `<camera>/detections`, `<camera>/masks`, `<camera>/visualization`, ... Empty = one "
                "camera: `image` -> `detections`.",
                constraints="names of letters, digits, _ and /, each optionally :raw or :compressed, no repeats",
            ),
        ),
    ),
    Section(
        "input",
        (
            ParamSpec(
                "image_transport",
                "raw",
                "str",
                "Input of every camera without its own :raw/:compressed: raw subscribes to `image` "
                "(sensor_msgs/Image: rgb8, bgr8, rgba8, bgra8, mono8), compressed to `image/compressed` "
                "(sensor_msgs/CompressedImage, JPEG/PNG).",
                choices=("raw", "compressed"),
                read_at="activate",
            ),
            ParamSpec(
                "max_image_pixels",
                50_000_000,
                "int",
                "Frames with more pixels (width x height) are rejected before conversion; a compressed frame's "
                "size is read from its header before it is decoded. 50 MP: 8K (33 MP) fits.",
                runtime=True,
                min=1,
                max=2**31 - 1,
            ),
        ),
    ),
    Section(
        "detection (run time: `ros2 param set` applies to the next frame)",
        (
            ParamSpec(
                "score_threshold",
                defaults.SCORE_THRESHOLD,
                "float",
                "Publish instances whose score is above this.",
                runtime=True,
                min=0.0,
                max=1.0,
            ),
            ParamSpec(
                "top_k",
                defaults.TOP_K,
                "int",
                "At most this many instances per frame (highest scores first); the model keeps at most "
                f"{defaults.TOP_K_MAX}.",
                runtime=True,
                min=1,
                max=defaults.TOP_K_MAX,
            ),
            ParamSpec(
                "nms_threshold",
                NMS_UNSET if defaults.NMS_THRESHOLD is None else defaults.NMS_THRESHOLD,
                "float",
                f"Box IoU above which NMS suppresses the lower-scored detection; {NMS_UNSET:g} = the model "
                "config's value (0.5 for the official configs).",
                runtime=True,
                min=0.0,
                max=1.0,
            ),
            ParamSpec(
                "cross_class_nms",
                defaults.CROSS_CLASS_NMS,
                "bool",
                "One detection per object whatever its class (NMS across classes); recommended with tracking.",
                runtime=True,
            ),
            ParamSpec(
                "classes",
                [],
                "str_list",
                "Class names to keep (e.g. [person, car]); empty = all classes. On the command line "
                "-p 'classes:=[person, car]'; `ros2 param set <node> classes \"[]\"` also works.",
                runtime=True,
            ),
        ),
    ),
    Section(
        "3D from a registered depth image, and tracking ids (docs/depth_tracking.md)",
        (
            ParamSpec(
                "use_depth",
                False,
                "bool",
                "Subscribe to depth (16UC1 mm or 32FC1 m, registered to the colour image) and camera_info and "
                "publish `detections_3d` (vision_msgs/Detection3DArray) in the depth camera's optical frame.",
            ),
            ParamSpec(
                "depth_transport",
                "raw",
                "str",
                "How depth arrives: raw = `depth` (sensor_msgs/Image); compressedDepth = `<depth>/compressedDepth` "
                "under the remapped depth topic (sensor_msgs/CompressedImage from image_transport's "
                "compressed_depth plugin, png codec; rvl is refused).",
                choices=("raw", "compressedDepth"),
                read_at="activate",
            ),
            ParamSpec(
                "depth_tolerance",
                defaults.DEPTH_TOLERANCE_S,
                "float",
                "Seconds between a colour frame's stamp and its depth frame's; no depth that close: 2D only "
                "(counted in diagnostics).",
                runtime=True,
                min=0.0,
                max=5.0,
            ),
            ParamSpec(
                "depth_min_points",
                defaults.DEPTH_MIN_POINTS,
                "int",
                "Instances with fewer valid depth pixels in their mask are left out of `detections_3d` (counted).",
                runtime=True,
                min=1,
                max=1_000_000,
            ),
            ParamSpec(
                "publish_points",
                False,
                "bool",
                "With use_depth: publish `points` (sensor_msgs/PointCloud2, x y z float32 + instance id uint32) "
                "of the masked pixels.",
                runtime=True,
            ),
            ParamSpec(
                "points_step",
                4,
                "int",
                "Keep every n-th pixel (in x and y) of each mask in `points`.",
                runtime=True,
                min=1,
                max=64,
            ),
            ParamSpec(
                "tracking",
                False,
                "bool",
                "Persistent ids: Detection2D.id, InstanceMask.id, the 3D ids and `points` carry track ids "
                "(optimal assignment by mask IoU, then containment, then box IoU; within a class; per camera).",
            ),
            ParamSpec(
                "tracking_class_change_iou",
                0.0,
                "float",
                "0 = a track id keeps its class; > 0 = a detection of another class continues a track it "
                "overlaps by this mask IoU (the model flipped the class; at about equal overlap the track's own "
                "class wins). Recommended 0.3 with cross_class_nms.",
                min=0.0,
                max=1.0,
            ),
            ParamSpec(
                "tracking_max_age",
                TRACK_MAX_AGE,
                "int",
                "Frames a track survives without a match (an object that leaves for fewer frames keeps its id).",
                min=1,
                max=1000,
            ),
        ),
    ),
    Section(
        "outputs",
        (
            ParamSpec("publish_masks", True, "bool", "Publish `masks` (InstanceMaskArray).", runtime=True),
            ParamSpec(
                "class_id_format",
                CLASS_ID_FORMATS[0],
                "str",
                "What Detection2D results[].hypothesis.class_id carries: name = the class name, id = the class "
                "index as a decimal string (the key of the class map published on `label_info`).",
                runtime=True,
                choices=CLASS_ID_FORMATS,
            ),
            ParamSpec(
                "publish_visualization",
                True,
                "bool",
                "Publish `visualization` (bgr8 overlay); it is only drawn while someone subscribes.",
                runtime=True,
            ),
            ParamSpec(
                "publish_annotations",
                False,
                "bool",
                "Publish `annotations` (foxglove_msgs/ImageAnnotations: mask outlines, boxes, labels in the input "
                "image's pixels, a few kB a frame; docs/foxglove.md); needs ros-$ROS_DISTRO-foxglove-msgs. Built "
                "only while someone subscribes.",
                runtime=True,
            ),
            ParamSpec(
                "visualization.mask_alpha",
                defaults.MASK_ALPHA,
                "float",
                "Opacity of the mask overlay.",
                runtime=True,
                min=0.0,
                max=1.0,
            ),
            ParamSpec("visualization.show_boxes", True, "bool", "Draw bounding boxes.", runtime=True),
            ParamSpec("visualization.show_labels", True, "bool", "Draw class names and scores.", runtime=True),
            ParamSpec(
                "diagnostics_period", 1.0, "float", "Seconds between `/diagnostics` messages.", min=0.1, max=60.0
            ),
        ),
    ),
    Section(
        "lifecycle",
        (
            ParamSpec(
                "autostart",
                True,
                "bool",
                "Configure and activate on start (a plain `ros2 run`/launch just works); false = wait for "
                "lifecycle transitions.",
                read_at="start",
            ),
        ),
    ),
)

PARAMS: tuple[ParamSpec, ...] = tuple(p for section in SECTIONS for p in section.params)
