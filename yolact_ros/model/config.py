"""Model configurations as frozen dataclasses.

Every official YOLACT / YOLACT++ configuration is data here, built by a few
functions from the facts of the original implementation (dbolya/yolact,
``data/config.py``).  Training hyper-parameters live in :class:`TrainConfig`
so that each value has exactly one home.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

COCO_CLASSES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

#: Detections kept per image after NMS by every official config (the original's ``max_num_detections``).
MAX_NUM_DETECTIONS = 100
#: Per-channel statistics of the original, in BGR order (0..255 scale).
MEANS_BGR: tuple[float, float, float] = (103.94, 116.78, 123.68)
STD_BGR: tuple[float, float, float] = (57.38, 57.12, 58.40)


@dataclass(frozen=True)
class BackboneConfig:
    """Feature extractor and the anchors that go with it.

    ``kind``: ``"resnet"`` (Bottleneck ResNet, optional DCNv2 blocks), ``"darknet"``
    or ``"mobilenetv2"``.  ``layers``: blocks per stage.  ``selected_layers``: the
    stage indices whose outputs feed the FPN (C3, C4, C5).  ``pred_scales[level]``:
    anchor sizes in input pixels, ``pred_aspect_ratios``: width/height ratios;
    every (scale, ratio) pair is one prior per location, scale-major.
    ``input_transform``: ``"mean_std"`` ((x - MEANS) / STD) or ``"unit"`` (x / 255).
    """

    kind: str
    layers: tuple[int, ...]
    selected_layers: tuple[int, ...]
    pred_scales: tuple[tuple[float, ...], ...]
    pred_aspect_ratios: tuple[float, ...] = (1.0, 0.5, 2.0)
    use_square_anchors: bool = True
    dcn_layers: tuple[int, ...] = ()
    dcn_interval: int = 1
    input_transform: str = "mean_std"
    pretrained_init_file: str = ""

    @property
    def num_priors(self) -> int:
        return len(self.pred_scales[0]) * len(self.pred_aspect_ratios)


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters of the original recipe (batch size 8 reference)."""

    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    gamma: float = 0.1
    lr_steps: tuple[int, ...] = (280000, 600000, 700000, 750000)
    max_iter: int = 800000
    lr_warmup_init: float = 1e-4
    lr_warmup_until: int = 500
    reference_batch_size: int = 8
    positive_iou_threshold: float = 0.5
    negative_iou_threshold: float = 0.4
    crowd_iou_threshold: float = 0.7
    ohem_negpos_ratio: int = 3
    conf_alpha: float = 1.0
    bbox_alpha: float = 1.5
    mask_alpha: float = 6.125
    semantic_segmentation_alpha: float = 1.0
    maskiou_alpha: float = 1.0
    masks_to_train: int = 100
    discard_box_width: float = 4 / 550
    discard_box_height: float = 4 / 550
    discard_mask_area: float = -1.0


@dataclass(frozen=True)
class YolactConfig:
    """A whole YOLACT / YOLACT++ network plus its inference defaults.

    ``num_classes`` counts the background (COCO: 81); ``class_names`` has
    ``num_classes - 1`` entries.  Boxes and priors are relative to the square
    ``max_size`` x ``max_size`` network input.
    """

    name: str
    backbone: BackboneConfig
    max_size: int = 550
    class_names: tuple[str, ...] = COCO_CLASSES
    fpn_num_features: int = 256
    fpn_num_downsample: int = 2
    #: width of the prototype net's convs and the prediction head's shared conv (the original: 256);
    #: smaller values make CPU-sized models (training issue), official configs keep 256
    head_channels: int = 256
    num_prototypes: int = 32
    use_maskiou: bool = False
    rescore_bbox: bool = False
    rescore_mask: bool = False
    nms_top_k: int = 200
    nms_conf_thresh: float = 0.05
    nms_thresh: float = 0.5
    max_num_detections: int = MAX_NUM_DETECTIONS
    official_checkpoint: str = ""
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def num_classes(self) -> int:
        return len(self.class_names) + 1

    def replace(self, **changes) -> "YolactConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: Mapping) -> "YolactConfig":
        data = dict(data)
        backbone = BackboneConfig(**_tuplify(data.pop("backbone")))
        train = TrainConfig(**_tuplify(data.pop("train", {})))
        return YolactConfig(backbone=backbone, train=train, **_tuplify(data))


def _tuplify(d: Mapping) -> dict:
    """Lists (from JSON / YAML) back to the tuples the frozen dataclasses use."""

    def conv(v):
        if isinstance(v, list):
            return tuple(conv(x) for x in v)
        return v

    return {k: conv(v) for k, v in d.items()}


_BASE_SCALES = (24, 48, 96, 192, 384)


def _resnet(layers, dcn_layers=(), dcn_interval=1, plus=False, max_size=550) -> BackboneConfig:
    if plus:
        scales = tuple(tuple(s * 2 ** (j / 3.0) for j in range(3)) for s in _BASE_SCALES)
    else:
        # im400 / im700 scale the base anchors by max_size and truncate, as the original does.
        scales = tuple((float(int(s / 550 * max_size)) if max_size != 550 else float(s),) for s in _BASE_SCALES)
    return BackboneConfig(
        kind="resnet",
        layers=tuple(layers),
        selected_layers=(1, 2, 3),
        pred_scales=scales,
        use_square_anchors=not plus,
        dcn_layers=tuple(dcn_layers),
        dcn_interval=dcn_interval,
        input_transform="mean_std",
        pretrained_init_file="resnet101_reducedfc.pth" if layers[2] == 23 else "resnet50-19c8e357.pth",
    )


def _yolact(name, backbone, max_size=550, plus=False) -> YolactConfig:
    return YolactConfig(
        name=name,
        backbone=backbone,
        max_size=max_size,
        use_maskiou=plus,
        rescore_bbox=False,
        rescore_mask=plus,
        official_checkpoint=f"{name}_54_800000.pth",
        train=TrainConfig(maskiou_alpha=25.0 if plus else 1.0, discard_mask_area=25.0 if plus else -1.0),
    )


R50, R101 = (3, 4, 6, 3), (3, 4, 23, 3)

OFFICIAL_CONFIGS: dict[str, YolactConfig] = {
    "yolact_base": _yolact("yolact_base", _resnet(R101)),
    "yolact_im400": _yolact("yolact_im400", _resnet(R101, max_size=400), max_size=400),
    "yolact_im700": _yolact("yolact_im700", _resnet(R101, max_size=700), max_size=700),
    "yolact_resnet50": _yolact("yolact_resnet50", _resnet(R50)),
    "yolact_darknet53": _yolact(
        "yolact_darknet53",
        BackboneConfig(
            kind="darknet",
            layers=(1, 2, 8, 8, 4),
            selected_layers=(2, 3, 4),
            pred_scales=tuple((float(s),) for s in _BASE_SCALES),
            use_square_anchors=True,
            input_transform="unit",
            pretrained_init_file="darknet53.pth",
        ),
    ),
    "yolact_plus_base": _yolact("yolact_plus_base", _resnet(R101, (0, 4, 23, 3), 3, plus=True), plus=True),
    "yolact_plus_resnet50": _yolact("yolact_plus_resnet50", _resnet(R50, (0, 4, 6, 3), 1, plus=True), plus=True),
}
# No official im400 checkpoint was released.
OFFICIAL_CONFIGS["yolact_im400"] = OFFICIAL_CONFIGS["yolact_im400"].replace(official_checkpoint="")
OFFICIAL_CONFIGS["yolact_im700"] = OFFICIAL_CONFIGS["yolact_im700"].replace(
    train=dataclasses.replace(OFFICIAL_CONFIGS["yolact_im700"].train, masks_to_train=300)
)


def get_config(name_or_config: "str | YolactConfig") -> YolactConfig:
    """An official config by name (``"yolact_base"``; a ``_config`` suffix is accepted)."""
    if isinstance(name_or_config, YolactConfig):
        return name_or_config
    name = str(name_or_config)
    if name.endswith("_config"):
        name = name[: -len("_config")]
    try:
        return OFFICIAL_CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown config {name_or_config!r}; official configs: {', '.join(OFFICIAL_CONFIGS)}") from None
