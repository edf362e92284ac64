"""Training augmentation and evaluation transform (image, boxes and masks together).

Both turn ``(image_bgr uint8 [H,W,3], target)`` from :class:`~yolact_ros.data.coco.CocoInstances`
into ``(x, target)``:

- ``x``: float32 tensor [3,S,S], the network input (S = ``cfg.max_size``), made by
  :func:`yolact_ros.model.transform.resize_and_normalize` (squash-resize, then
  ``normalize_bgr``) — exactly what inference feeds the network;
- ``target``: ``boxes`` float32 [K,4] x1,y1,x2,y2 *relative* to the S x S input (in [0,1]),
  ``labels`` int64 [K] (0-based), ``masks`` uint8 [K,S,S] in {0,1}, ``iscrowd`` bool [K],
  ``image_id`` int and ``orig_size`` (H, W).  Instances whose box or mask becomes
  degenerate are dropped from all four arrays together.

:class:`TrainAugment` is the original YOLACT / SSD recipe, built from
``torchvision.transforms.v2`` (which moves image, boxes and masks together):
photometric distortion, expand (zoom out onto a mean-coloured canvas), SSD random
sample crop (minimum-IoU choices), random mirror, resize to S x S (squashed, aspect
not kept, as the original), then small boxes are discarded
(``cfg.train.discard_box_width/height``) and the image is normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..model.boxes import box_iou
from ..model.config import MEANS_BGR, YolactConfig
from ..model.transform import resize_and_normalize

#: Minimum-IoU choices of SSD's random sample crop (1.0 = keep the whole image).
SSD_CROP_IOUS = (0.0, 0.1, 0.3, 0.7, 0.9, 1.0)


class _PhotometricDistort(v2.RandomPhotometricDistort):
    """SSD photometric distortion without the channel shuffle (the original YOLACT disables it)."""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        params = super().make_params(flat_inputs)
        params["channel_permutation"] = None
        return params


class _SampleCrop(v2.RandomIoUCrop):
    """``RandomIoUCrop`` (SSD random sample crop) with its trials drawn and tested at once.

    Same rule as torchvision's: pick a minimum IoU from the options (>= 1 keeps the image);
    a trial crop has sides in [min_scale, max_scale] of the image and an aspect ratio in
    [min_aspect_ratio, max_aspect_ratio]; it is accepted when some box has its centre
    inside and an IoU with the crop >= the minimum.  Boxes whose centre falls outside are
    zeroed (SanitizeBoundingBoxes then drops them with their masks and labels).  The
    per-trial Python loop of torchvision took ~40 ms per image here; this takes ~1 ms.
    """

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        orig_h, orig_w = v2.query_size(flat_inputs)
        boxes = next(x for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes))
        boxes = v2.functional.convert_bounding_box_format(
            boxes.as_subclass(torch.Tensor), boxes.format, tv_tensors.BoundingBoxFormat.XYXY
        ).float()
        cx = 0.5 * (boxes[:, 0] + boxes[:, 2])
        cy = 0.5 * (boxes[:, 1] + boxes[:, 3])
        for _ in range(100):  # options whose trials all fail are redrawn, as in torchvision (bounded here)
            min_iou = self.options[int(torch.randint(len(self.options), (1,)))]
            if min_iou >= 1.0:
                return {}
            scale = self.min_scale + (self.max_scale - self.min_scale) * torch.rand(self.trials, 2)
            new_w = (orig_w * scale[:, 0]).floor()
            new_h = (orig_h * scale[:, 1]).floor()
            pos = torch.rand(self.trials, 2)
            left = ((orig_w - new_w) * pos[:, 0]).floor()
            top = ((orig_h - new_h) * pos[:, 1]).floor()
            right, bottom = left + new_w, top + new_h
            aspect = new_w / new_h.clamp(min=1)
            ok = (new_w > 0) & (new_h > 0) & (aspect >= self.min_aspect_ratio) & (aspect <= self.max_aspect_ratio)
            inside = (left[:, None] < cx) & (cx < right[:, None]) & (top[:, None] < cy) & (cy < bottom[:, None])
            iou = box_iou(torch.stack((left, top, right, bottom), dim=1), boxes)  # [trials, boxes]
            ok &= (inside & (iou >= min_iou)).any(1)
            if ok.any():
                t = int(torch.nonzero(ok)[0])
                return dict(
                    top=int(top[t]),
                    left=int(left[t]),
                    height=int(new_h[t]),
                    width=int(new_w[t]),
                    is_within_crop_area=inside[t],
                )
        return {}


def _to_tv(image_bgr: np.ndarray, target: dict) -> tuple[tv_tensors.Image, dict]:
    """numpy BGR image + numpy/tensor target -> RGB tv_tensors (the colour transforms assume RGB)."""
    if (
        not isinstance(image_bgr, np.ndarray)
        or image_bgr.dtype != np.uint8
        or image_bgr.ndim != 3
        or image_bgr.shape[2] != 3
    ):
        raise ValueError(f"expected a uint8 HxWx3 BGR image, got {getattr(image_bgr, 'shape', type(image_bgr))}")
    h, w = image_bgr.shape[:2]
    img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image_bgr[:, :, ::-1])).permute(2, 0, 1))
    boxes = torch.as_tensor(np.asarray(target["boxes"], np.float32)).reshape(-1, 4)
    k = boxes.shape[0]
    masks = torch.as_tensor(np.asarray(target["masks"], np.uint8)).reshape(k, h, w)
    labels = torch.as_tensor(np.asarray(target["labels"], np.int64)).reshape(k)
    iscrowd = torch.as_tensor(np.asarray(target.get("iscrowd", np.zeros(k, bool)), bool)).reshape(k)
    tv_target = {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
        "masks": tv_tensors.Mask(masks),
        "labels": labels,
        "iscrowd": iscrowd,
    }
    return img, tv_target


def mask_boxes(masks: torch.Tensor, like: tv_tensors.BoundingBoxes) -> tv_tensors.BoundingBoxes:
    """Tight x1,y1,x2,y2 pixel boxes of masks [K,H,W] (an empty mask gives a zero box)."""
    k, h, w = masks.shape
    m = masks.as_subclass(torch.Tensor) > 0
    rows, cols = m.any(2), m.any(1)  # [K,H], [K,W]
    y1 = rows.to(torch.uint8).argmax(1)
    y2 = h - rows.flip(1).to(torch.uint8).argmax(1)
    x1 = cols.to(torch.uint8).argmax(1)
    x2 = w - cols.flip(1).to(torch.uint8).argmax(1)
    boxes = torch.stack([x1, y1, x2, y2], 1).float()
    boxes[~rows.any(1)] = 0.0
    return tv_tensors.wrap(boxes, like=like)


def _labels_and_crowd(inputs):
    target = inputs[1]
    return target["labels"], target["iscrowd"]


def _finish(cfg: YolactConfig, img: torch.Tensor, tv_target: dict, target_in: dict, min_rel_w: float, min_rel_h: float):
    """RGB image + target (any size) -> (network input, relative target at S x S).

    The image is resized and normalised by :func:`resize_and_normalize`, exactly as
    inference preprocesses it; boxes and masks (nearest) follow with ``v2.Resize``.
    Instances with a box under ``min_rel_w`` x ``min_rel_h`` or an empty mask are dropped.
    """
    s = cfg.max_size
    tv_target = _resize_target(tv_target, s)
    boxes = tv_target["boxes"].as_subclass(torch.Tensor).float() / s
    masks = tv_target["masks"].as_subclass(torch.Tensor).to(torch.uint8)
    labels = tv_target["labels"]
    iscrowd = tv_target["iscrowd"]
    boxes = boxes.clamp(0.0, 1.0)
    wh = boxes[:, 2:] - boxes[:, :2]
    keep = (wh[:, 0] > min_rel_w) & (wh[:, 1] > min_rel_h)
    if masks.shape[0]:
        keep &= masks.flatten(1).amax(1) > 0
    bgr = img.as_subclass(torch.Tensor).flip(0).float().unsqueeze(0)
    x = resize_and_normalize(bgr, s, cfg.backbone)[0].contiguous()
    target = {
        "boxes": boxes[keep].contiguous(),
        "labels": labels[keep].to(torch.int64),
        "masks": masks[keep].contiguous(),
        "iscrowd": iscrowd[keep].to(torch.bool),
        "image_id": int(target_in.get("image_id", -1)),
        "orig_size": tuple(int(v) for v in np.shape(target_in["masks"])[-2:]),
    }
    return x, target


def _resize_target(tv_target: dict, size: int) -> dict:
    """Boxes and masks of a tv_tensors target resized to size x size.

    Masks are resampled bilinearly (antialiased when shrinking) and thresholded at 0.5,
    as the original does; unlike nearest sampling this is mirror-symmetric and keeps
    the mask's coverage when an expanded canvas is shrunk several times.
    """
    masks = tv_target["masks"].as_subclass(torch.Tensor)
    if masks.shape[0] and tuple(masks.shape[-2:]) != (size, size):
        shrink = masks.shape[-2] > size or masks.shape[-1] > size
        m = F.interpolate(
            masks[:, None].float(), size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
        )
        masks = (m[:, 0] >= 0.5).to(torch.uint8)
    else:
        masks = masks.new_zeros((masks.shape[0], size, size)) if masks.shape[0] == 0 else masks
    return {
        **tv_target,
        "boxes": v2.functional.resize(tv_target["boxes"], [size, size]),
        "masks": tv_tensors.Mask(masks),
    }


class EvalTransform:
    """Resize to S x S (squashed) and normalise; no randomness.  See the module docstring."""

    def __init__(self, cfg: YolactConfig):
        self.cfg = cfg

    def __call__(self, image_bgr: np.ndarray, target: dict) -> tuple[torch.Tensor, dict]:
        img, tv_target = _to_tv(image_bgr, target)
        return _finish(self.cfg, img, tv_target, target, 0.0, 0.0)


class TrainAugment:
    """The original YOLACT training augmentation (see the module docstring).

    Randomness comes from torch's global generator (seed it with ``torch.manual_seed``;
    DataLoader workers get distinct seeds automatically).
    """

    def __init__(
        self,
        cfg: YolactConfig,
        photometric: bool = True,
        expand: bool = True,
        crop: bool = True,
        mirror: bool = True,
        crop_ious: Sequence[float] = SSD_CROP_IOUS,
    ):
        self.cfg = cfg
        # expand fills with the dataset mean (RGB order here), so the padding normalises to ~0
        mean_rgb = tuple(int(round(v)) for v in MEANS_BGR[::-1])
        self.photometric = _PhotometricDistort(p=0.5) if photometric else None
        self.expand = (
            v2.RandomZoomOut(fill={tv_tensors.Image: mean_rgb, "others": 0}, side_range=(1.0, 4.0), p=0.5)
            if expand
            else None
        )
        self.crop = (
            _SampleCrop(
                min_scale=0.3,
                max_scale=1.0,
                min_aspect_ratio=0.5,
                max_aspect_ratio=2.0,
                sampler_options=list(crop_ious),
                trials=50,
            )
            if crop
            else None
        )
        self.sanitize = v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_labels_and_crowd)
        self.mirror = v2.RandomHorizontalFlip(0.5) if mirror else None

    def __call__(self, image_bgr: np.ndarray, target: dict) -> tuple[torch.Tensor, dict]:
        img, tv_target = _to_tv(image_bgr, target)
        if self.photometric is not None:
            img = self.photometric(img)
        has_boxes = tv_target["boxes"].shape[0] > 0
        if self.expand is not None and has_boxes:
            img, tv_target = self.expand(img, tv_target)
        if self.crop is not None and has_boxes:
            # RandomIoUCrop keeps the boxes whose centre is inside the crop and clamps them;
            # a clamped box can be looser than what is left of its object, so refit it
            img, tv_target = self.crop(img, tv_target)
            tv_target["boxes"] = mask_boxes(tv_target["masks"], tv_target["boxes"])
        img, tv_target = self.sanitize(img, tv_target)
        if self.mirror is not None:
            img, tv_target = self.mirror(img, tv_target)
        t = self.cfg.train
        return _finish(self.cfg, img, tv_target, target, t.discard_box_width, t.discard_box_height)


def collate(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    """DataLoader ``collate_fn``: (images [B,3,S,S], list of B targets)."""
    images = torch.stack([item[0] for item in batch], 0)
    return images, [item[1] for item in batch]


class TransformedDataset(torch.utils.data.Dataset):
    """``dataset[i]`` passed through ``transform(image, target)`` (for a DataLoader)."""

    def __init__(self, dataset, transform):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, target = self.dataset[index]
        return self.transform(image, target)
