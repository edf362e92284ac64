"""Each YOLACT loss term on hand-built cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from yolact_ros.model.boxes import encode
from yolact_ros.model.config import BackboneConfig, TrainConfig, YolactConfig
from yolact_ros.model.heads import MaskIoUNet
from yolact_ros.train.loss import YolactLoss, mask_iou, ohem_conf_loss, semantic_targets


def _cfg(**train):
    bb = BackboneConfig(kind="resnet", layers=(1, 1, 1, 1), selected_layers=(1, 2, 3), pred_scales=((8.0,),) * 5)
    return YolactConfig(name="t", backbone=bb, max_size=64, class_names=("a", "b"), train=TrainConfig(**train))


# priors: a 4x4 grid of 0.25-wide squares (16 priors) -> one prior per cell, exact IoU 1 matches possible
def _grid_priors(n=4):
    c = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    cy, cx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([cx.flatten(), cy.flatten(), torch.full((n * n,), 1 / n), torch.full((n * n,), 1 / n)], 1)


def _outputs(priors, batch=1, num_classes=3, k=4, hp=16):
    p = priors.shape[0]
    return {
        "loc": torch.zeros(batch, p, 4),
        "conf": torch.zeros(batch, p, num_classes),
        "mask": torch.zeros(batch, p, k),
        "priors": priors,
        "proto": torch.zeros(batch, hp, hp, k),
        "segm": torch.zeros(batch, num_classes - 1, 8, 8),
    }


def _target(box, label, size=64):
    masks = torch.zeros(1, size, size, dtype=torch.uint8)
    x1, y1, x2, y2 = (int(round(v * size)) for v in box)
    masks[0, y1:y2, x1:x2] = 1
    return {
        "boxes": torch.tensor([box]),
        "labels": torch.tensor([label]),
        "masks": masks,
        "iscrowd": torch.tensor([False]),
    }


def test_perfect_box_regression_gives_zero_box_loss_and_a_shift_gives_smooth_l1():
    priors = _grid_priors()
    box = [0.26, 0.0, 0.5, 0.25]  # cell (row 0, col 1), slightly narrower
    out = _outputs(priors)
    out["loc"][0] = encode(torch.tensor([box]).expand(16, 4), priors)  # every prior predicts the gt box
    losses = YolactLoss(_cfg())(out, [_target(box, 0)])
    assert losses["box"].item() == pytest.approx(0.0, abs=1e-6)
    out["loc"][0, 1, 0] += 2.0  # error 2 on one coordinate of the single positive: smooth-L1 = 2 - 0.5
    losses = YolactLoss(_cfg())(out, [_target(box, 0)])
    assert losses["box"].item() == pytest.approx(1.5 * 1.5, rel=1e-5)  # bbox_alpha 1.5, one positive


def test_ohem_keeps_three_negatives_per_positive_hardest_first():
    conf = torch.zeros(1, 10, 3)
    conf_t = torch.zeros(1, 10, dtype=torch.long)
    conf_t[0, 0] = 2  # one positive
    conf_t[0, 9] = -1  # ignored, even though it looks hardest
    hardness = torch.tensor([0.0, 5.0, 1.0, 4.0, 2.0, 3.0, 0.5, 0.2, 0.1, 9.0])
    conf[0, :, 1] = hardness  # higher foreground logit -> larger background loss
    loss, neg = ohem_conf_loss(conf, conf_t, negpos_ratio=3)
    assert neg[0].nonzero().flatten().tolist() == [1, 3, 5]
    expected = F.cross_entropy(conf[0, [0, 1, 3, 5]], conf_t[0, [0, 1, 3, 5]], reduction="sum")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # no positives -> no negatives either
    loss, neg = ohem_conf_loss(conf, torch.zeros_like(conf_t), 3)
    assert loss.item() == 0.0 and not neg.any()


def test_conf_loss_is_normalised_by_positives_and_near_zero_when_confident():
    priors = _grid_priors()
    box = [0.0, 0.0, 0.25, 0.25]
    out = _outputs(priors)
    out["conf"][0, :, 0] = 20.0  # everything confidently background ...
    out["conf"][0, 0] = torch.tensor([0.0, 20.0, 0.0])  # ... except the positive, confidently class 0
    assert YolactLoss(_cfg())(out, [_target(box, 0)])["conf"].item() < 1e-6
    out["conf"][0, 0] = torch.tensor([0.0, 0.0, 0.0])  # uniform on the positive: -log(1/3)
    # the 3 negatives are all equally easy (~0 loss); only the positive counts
    assert YolactLoss(_cfg())(out, [_target(box, 0)])["conf"].item() == pytest.approx(math.log(3), rel=1e-4)


def _mask_case(pred_inside_logit, box, hp=16):
    priors = _grid_priors()
    out = _outputs(priors, k=1, hp=hp)
    out["proto"][0, :, :, 0] = pred_inside_logit  # one prototype, coefficient 1 -> logits = proto
    out["mask"][0, :, 0] = 1.0
    return out, [_target(box, 1)]


def test_mask_loss_normalised_by_gt_box_area():
    # a logit of 0 everywhere: BCE = log 2 per pixel inside the (padded) crop, 0 outside
    box = [0.0, 0.0, 0.25, 0.25]  # 4x4 proto pixels (16 px); crop padding 1 -> 5x5 = 25 px inside the image
    out, tg = _mask_case(0.0, box)
    m = YolactLoss(_cfg())(out, tg)["mask"].item()
    assert m == pytest.approx(6.125 * 25 * math.log(2) / 16, rel=1e-4)
    # a box 4x larger in area: still ~ the same normalised loss (padding matters less)
    box2 = [0.25, 0.25, 0.75, 0.75]  # 8x8 proto px; crop 10x10
    out, tg = _mask_case(0.0, box2)
    m2 = YolactLoss(_cfg())(out, tg)["mask"].item()
    assert m2 == pytest.approx(6.125 * 100 * math.log(2) / 64, rel=1e-4)


def test_mask_loss_near_zero_for_a_perfect_mask():
    box = [0.25, 0.25, 0.75, 0.75]
    priors = _grid_priors()
    out = _outputs(priors, k=1)
    proto = torch.full((16, 16), -30.0)
    proto[4:12, 4:12] = 30.0
    out["proto"][0, :, :, 0] = proto
    out["mask"][0, :, 0] = 1.0
    loss = YolactLoss(_cfg())(out, [_target(box, 1)])
    assert loss["mask"].item() < 1e-6
    # the inverse mask is heavily penalised
    out["mask"][0, :, 0] = -1.0
    assert YolactLoss(_cfg())(out, [_target(box, 1)])["mask"].item() > 10


def test_semantic_targets_and_loss():
    masks = torch.zeros(3, 16, 16, dtype=torch.uint8)
    masks[0, :8, :8] = 1
    masks[1, 8:, 8:] = 1
    masks[2, :8, 8:] = 1
    t = semantic_targets(torch.tensor([0, 0, 1]), masks, 2, (4, 4))
    assert t[0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert t[1].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    priors = _grid_priors()
    out = _outputs(priors)
    tg = {
        "boxes": torch.tensor([[0.0, 0.0, 0.5, 0.5]]),
        "labels": torch.tensor([0]),
        "masks": torch.zeros(1, 64, 64, dtype=torch.uint8),
        "iscrowd": torch.tensor([False]),
    }
    tg["masks"][0, :32, :32] = 1
    loss = YolactLoss(_cfg())(out, [tg])
    assert loss["segm"].item() == pytest.approx(2 * math.log(2), rel=1e-5)  # 2 classes x mean BCE log 2
    out["segm"][0, 0] = torch.where(semantic_targets(tg["labels"], tg["masks"], 2, (8, 8))[0] > 0, 30.0, -30.0)
    out["segm"][0, 1] = -30.0
    assert YolactLoss(_cfg())(out, [tg])["segm"].item() < 1e-6


def test_maskiou_loss_trains_the_maskiou_net_only():
    torch.manual_seed(0)
    cfg = _cfg(maskiou_alpha=25.0, discard_mask_area=-1.0)
    box = [0.25, 0.25, 0.75, 0.75]
    priors = _grid_priors()
    hp = 64  # the mask-IoU net needs at least ~63 px
    out = _outputs(priors, k=1, hp=hp)
    proto = torch.full((hp, hp), -10.0)
    proto[16:32, 16:48] = 10.0  # predicted mask covers the upper half of the gt box -> IoU 0.5
    out["proto"][0, :, :, 0] = proto
    out["proto"].requires_grad_()
    out["mask"][0, :, 0] = 1.0
    net = MaskIoUNet(2)
    losses = YolactLoss(cfg)(out, [_target(box, 1)], maskiou_net=net)
    assert losses["maskiou"].item() > 0
    losses["maskiou"].backward()
    assert out["proto"].grad is None or out["proto"].grad.abs().sum() == 0  # masks are not reshaped by this term
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    # the target is the IoU of the binarised prediction: a net that predicts 0.5 for class 1 has ~zero loss
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.maskiou_net[-2].bias[1] = 0.5
    assert YolactLoss(cfg)(out, [_target(box, 1)], maskiou_net=net)["maskiou"].item() < 1e-8
    net.maskiou_net[-2].bias.data[1] = 0.9  # off by 0.4 -> smooth-L1 0.08, x 25, one positive
    assert YolactLoss(cfg)(out, [_target(box, 1)], maskiou_net=net)["maskiou"].item() == pytest.approx(
        25 * 0.08, rel=1e-4
    )


def test_mask_iou_of_binary_masks():
    a = torch.zeros(1, 4, 4)
    a[0, :2] = 1
    b = torch.zeros(1, 4, 4)
    b[0, :, :2] = 1
    assert mask_iou(a, b).item() == pytest.approx(4 / 12)
    assert mask_iou(a, a).item() == 1.0


def test_crowd_targets_do_not_become_positives():
    priors = _grid_priors()
    out = _outputs(priors)
    tg = _target([0.0, 0.0, 0.25, 0.25], 0)
    tg["iscrowd"] = torch.tensor([True])
    losses = YolactLoss(_cfg())(out, [tg])
    assert losses["box"].item() == 0 and losses["mask"].item() == 0 and losses["conf"].item() == 0


def test_label_out_of_range_is_a_clear_error():
    priors = _grid_priors()
    with pytest.raises(ValueError, match="label out of range"):
        YolactLoss(_cfg())(_outputs(priors), [_target([0.0, 0.0, 0.25, 0.25], 5)])
