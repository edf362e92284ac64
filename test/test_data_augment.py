"""Train / eval transforms keep boxes, masks, labels and crowd flags consistent."""

import numpy as np
import pytest
import torch

from yolact_ros.data.augment import EvalTransform, TrainAugment, TransformedDataset, collate
from yolact_ros.data.coco import CocoInstances
from yolact_ros.data.synth import make_synthetic_dataset
from yolact_ros.model.config import OFFICIAL_CONFIGS
from yolact_ros.model.transform import resize_and_normalize

S = 128
CFG = OFFICIAL_CONFIGS["yolact_resnet50"].replace(max_size=S, class_names=("disc", "rectangle", "triangle", "star"))


pytestmark = pytest.mark.usefixtures("one_thread")  # test/conftest.py


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return CocoInstances(make_synthetic_dataset(out, n=8, seed=2, size=(160, 120)), out / "images")


def _mask_box(m):
    ys, xs = torch.nonzero(m, as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32) / m.shape[-1]


def _dilate(m):
    return torch.nn.functional.max_pool2d(m.float()[:, None], 3, 1, 1)[:, 0].bool()


def _check(x, t, k_in=None):
    assert x.shape == (3, S, S) and x.dtype == torch.float32 and torch.isfinite(x).all()
    k = t["boxes"].shape[0]
    assert t["boxes"].dtype == torch.float32 and t["boxes"].shape == (k, 4)
    assert t["labels"].shape == (k,) and t["labels"].dtype == torch.int64
    assert t["masks"].shape == (k, S, S) and t["masks"].dtype == torch.uint8
    assert t["iscrowd"].shape == (k,) and t["iscrowd"].dtype == torch.bool
    assert ((t["boxes"] >= 0) & (t["boxes"] <= 1)).all()
    assert (t["boxes"][:, 2:] > t["boxes"][:, :2]).all()
    if k_in is not None:
        assert k <= k_in


def test_eval_transform_matches_inference_preprocessing(ds):
    img, target = ds[0]
    x, t = EvalTransform(CFG)(img, target)
    _check(x, t, len(target["labels"]))
    ref = resize_and_normalize(torch.from_numpy(img).permute(2, 0, 1)[None].float(), S, CFG.backbone)[0]
    assert torch.equal(x, ref)
    h, w = img.shape[:2]
    assert torch.allclose(t["boxes"], torch.from_numpy(target["boxes"]) / torch.tensor([w, h, w, h]), atol=1e-6)
    assert t["labels"].tolist() == target["labels"].tolist()
    assert t["image_id"] == target["image_id"] and t["orig_size"] == (h, w)
    for b, m in zip(t["boxes"], t["masks"]):
        assert torch.allclose(_mask_box(m), b, atol=1.5 / S)


def test_train_augment_keeps_boxes_and_masks_together(ds):
    torch.manual_seed(0)
    aug = TrainAugment(CFG)
    sizes, errors = set(), []
    for _rep in range(5):
        for i in range(len(ds)):
            img, target = ds[i]
            x, t = aug(img, target)
            _check(x, t, len(target["labels"]))
            assert set(t["labels"].tolist()) <= set(target["labels"].tolist())
            for b, m in zip(t["boxes"], t["masks"]):
                assert m.any()
                errors.append(float((_mask_box(m) - b).abs().max()) * S)
            sizes.add(len(t["labels"]))
    assert len(errors) > 50
    # (thin star tips can vanish when an expanded canvas is shrunk ~5x: a few pixels at most)
    assert max(errors) < 5 and np.median(errors) < 1.0 and np.percentile(errors, 90) < 1.6, sorted(errors)[-5:]
    assert len(sizes) > 2  # crops do remove objects sometimes


def test_mirror_and_expand_move_masks_with_boxes(ds):
    img, target = ds[1]
    x0, t0 = EvalTransform(CFG)(img, target)
    mirror = TrainAugment(CFG, photometric=False, expand=False, crop=False, mirror=True)
    seen = set()
    torch.manual_seed(1)
    for _ in range(12):
        x, t = mirror(img, target)
        if torch.equal(x, x0):
            assert torch.equal(t["masks"], t0["masks"])
            seen.add("same")
        else:
            assert torch.allclose(x, x0.flip(-1), atol=1e-4)
            # nearest resampling is not mirror-symmetric: equal up to a one-pixel border
            a, b = t["masks"].bool(), t0["masks"].flip(-1).bool()
            assert not (a & ~_dilate(b)).any() and not (b & ~_dilate(a)).any()
            assert (a != b).sum() < 0.2 * a.sum()
            flipped = torch.stack(
                [1 - t0["boxes"][:, 2], t0["boxes"][:, 1], 1 - t0["boxes"][:, 0], t0["boxes"][:, 3]], 1
            )
            assert torch.allclose(t["boxes"], flipped, atol=1e-6)
            seen.add("flipped")
    assert seen == {"same", "flipped"}

    expand = TrainAugment(CFG, photometric=False, expand=True, crop=False, mirror=False)
    shrunk = 0
    for _ in range(10):
        x, t = expand(img, target)
        assert t["labels"].tolist() == t0["labels"].tolist()
        area_ratio = t["masks"].flatten(1).sum(1).float() / t0["masks"].flatten(1).sum(1).float()
        box_ratio = (t["boxes"][:, 2:] - t["boxes"][:, :2]).prod(1) / (t0["boxes"][:, 2:] - t0["boxes"][:, :2]).prod(1)
        assert torch.allclose(area_ratio, box_ratio, rtol=0.35)
        shrunk += int(box_ratio.max() < 0.95)
    assert shrunk > 0


def test_degenerate_and_empty_targets(ds):
    img = np.full((120, 160, 3), 100, np.uint8)
    masks = np.zeros((3, 120, 160), np.uint8)
    masks[0, 10:60, 20:90] = 1
    masks[1, 50:52, 100:101] = 1  # 1 pixel wide: under discard_box_width at any S
    masks[2, 70:110, 120:150] = 1
    target = {
        "boxes": np.array([[20, 10, 90, 60], [100, 50, 101, 52], [120, 70, 150, 110]], np.float32),
        "labels": np.array([2, 1, 0], np.int64),
        "masks": masks,
        "iscrowd": np.array([False, False, True]),
        "image_id": 9,
    }
    aug = TrainAugment(CFG, photometric=False, expand=False, crop=False, mirror=False)
    x, t = aug(img, target)
    _check(x, t)
    assert t["labels"].tolist() == [2, 0] and t["iscrowd"].tolist() == [False, True]
    empty = {
        "boxes": np.zeros((0, 4), np.float32),
        "labels": np.zeros(0, np.int64),
        "masks": np.zeros((0, 120, 160), np.uint8),
        "iscrowd": np.zeros(0, bool),
        "image_id": 3,
    }
    for transform in (TrainAugment(CFG), EvalTransform(CFG)):
        x, t = transform(img, empty)
        _check(x, t)
        assert len(t["labels"]) == 0
    with pytest.raises(ValueError, match="uint8"):
        EvalTransform(CFG)(img.astype(np.float32), target)


def test_dataloader_batches(ds):
    loader = torch.utils.data.DataLoader(TransformedDataset(ds, TrainAugment(CFG)), batch_size=3, collate_fn=collate)
    images, targets = next(iter(loader))
    assert images.shape == (3, 3, S, S) and len(targets) == 3
    assert all(t["masks"].shape[1:] == (S, S) for t in targets)


def test_sample_crop_obeys_the_ssd_rule():
    from torchvision import tv_tensors
    from torchvision.ops import box_iou

    from yolact_ros.data.augment import _SampleCrop

    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[10.0, 20.0, 60.0, 90.0], [100.0, 5.0, 150.0, 40.0]]), format="XYXY", canvas_size=(120, 160)
    )
    image = tv_tensors.Image(torch.zeros(3, 120, 160, dtype=torch.uint8))
    crop = _SampleCrop(min_scale=0.3, max_scale=1.0, sampler_options=[0.5], trials=50)
    torch.manual_seed(3)
    for _ in range(50):
        p = crop.make_params([image, boxes])
        assert p, "a min-IoU 0.5 crop exists for these boxes"
        left, top, w, h = p["left"], p["top"], p["width"], p["height"]
        assert 0 <= left and 0 <= top and left + w <= 160 and top + h <= 120
        assert 0.3 * 160 - 1 <= w and 0.3 * 120 - 1 <= h and 0.5 <= w / h <= 2.0
        iou = box_iou(
            boxes.as_subclass(torch.Tensor), torch.tensor([[left, top, left + w, top + h]], dtype=torch.float32)
        )[:, 0]
        assert (iou[p["is_within_crop_area"]] >= 0.5).any()
    assert _SampleCrop(sampler_options=[1.0]).make_params([image, boxes]) == {}  # "keep the whole image"
