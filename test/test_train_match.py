"""SSD matching and box encoding on hand-built cases."""

import torch

from yolact_ros.model.boxes import box_iou, decode, encode, point_form
from yolact_ros.train.match import crowd_overlap, match


def _priors(*cxcywh):
    return torch.tensor(cxcywh, dtype=torch.float32)


def test_box_iou_known_values():
    a = torch.tensor([[0.0, 0.0, 0.2, 0.2]])
    b = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.1, 0.0, 0.3, 0.2], [0.5, 0.5, 0.6, 0.6], [0.0, 0.0, 0.2, 0.1]])
    iou = box_iou(a, b)[0]
    assert torch.allclose(iou, torch.tensor([1.0, 1 / 3, 0.0, 0.5]), atol=1e-6)


def test_encode_decode_round_trip_and_matches_inference_decoder():
    priors = _priors([0.3, 0.4, 0.2, 0.1], [0.7, 0.2, 0.05, 0.3])
    boxes = torch.tensor([[0.25, 0.3, 0.45, 0.5], [0.6, 0.1, 0.7, 0.35]])
    loc = encode(boxes, priors)
    assert torch.allclose(decode(loc, priors), boxes, atol=1e-6)
    # variances 0.1 / 0.2: a box equal to its prior encodes to zero; a 0.1*w shift encodes to 1
    shifted = point_form(priors.clone())
    shifted[0, [0, 2]] += 0.1 * 0.2 * 1.0  # prior 0: w = 0.2
    zero = encode(point_form(priors), priors)
    assert torch.allclose(zero, torch.zeros_like(zero), atol=1e-5)
    assert abs(float(encode(shifted, priors)[0, 0]) - 1.0) < 1e-4


def test_positive_negative_and_neutral_bands():
    gt = torch.tensor([[0.0, 0.0, 0.2, 0.2]])
    # priors with IoU 1.0, 0.6, 0.45 (neutral), 0.3 (negative) and 0 against the ground truth
    priors = _priors(
        [0.1, 0.1, 0.2, 0.2],  # IoU 1
        [0.1, 0.06, 0.2, 0.12],  # 0..0.2 x 0..0.12: IoU 0.6
        [0.1, 0.045, 0.2, 0.09],  # IoU 0.45
        [0.1, 0.03, 0.2, 0.06],  # IoU 0.3
        [0.8, 0.8, 0.1, 0.1],  # IoU 0
    )
    iou = box_iou(gt, point_form(priors))[0]
    assert torch.allclose(iou, torch.tensor([1.0, 0.6, 0.45, 0.3, 0.0]), atol=1e-5)
    m = match(priors, gt, torch.tensor([3]))
    assert m.conf.tolist() == [4, 4, -1, 0, 0]  # class 3 -> target 4 (background is 0)
    assert m.positive.tolist() == [True, True, False, False, False]
    assert m.gt_index[:2].tolist() == [0, 0]
    assert torch.allclose(decode(m.loc[:2], priors[:2]), gt.expand(2, 4), atol=1e-6)


def test_each_ground_truth_gets_its_best_prior_even_below_threshold():
    gt = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9]])
    priors = _priors([0.1, 0.1, 0.2, 0.2], [0.6, 0.6, 0.1, 0.1], [0.65, 0.65, 0.1, 0.1])  # 2nd gt: IoU 0.0625 at best
    m = match(priors, gt, torch.tensor([0, 1]))
    assert m.conf[0] == 1
    # one of the small priors is forced onto the second ground truth, the other stays negative
    assert sorted(m.conf[1:].tolist()) == [0, 2]
    forced = 1 + int(torch.argmax(m.conf[1:]))
    assert m.gt_index[forced] == 1 and float(m.overlap[forced]) == 2.0


def test_forced_match_takes_the_contested_prior_for_the_better_ground_truth():
    # one prior is the best for both ground truths; the one with the higher IoU keeps it
    priors = _priors([0.5, 0.5, 0.4, 0.4], [0.1, 0.1, 0.05, 0.05])
    gt = torch.tensor([[0.3, 0.3, 0.7, 0.7], [0.35, 0.35, 0.65, 0.65]])
    m = match(priors, gt, torch.tensor([0, 1]))
    assert m.gt_index[0] == 0 and m.conf[0] == 1
    assert m.gt_index[1] == 1 and m.conf[1] == 2  # the other gets the remaining prior


def test_crowd_region_priors_are_ignored_not_background():
    gt = torch.tensor([[0.0, 0.0, 0.2, 0.2]])
    crowd = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    priors = _priors(
        [0.1, 0.1, 0.2, 0.2],  # positive
        [0.75, 0.75, 0.1, 0.1],  # fully inside the crowd box -> ignored
        [0.5, 0.75, 0.2, 0.1],  # half inside (0.5 <= 0.7) -> stays background
        [0.9, 0.1, 0.1, 0.1],  # far from everything -> background
    )
    assert torch.allclose(crowd_overlap(point_form(priors), crowd)[:, 0], torch.tensor([0.0, 1.0, 0.5, 0.0]))
    m = match(priors, gt, torch.tensor([0]), crowd_boxes=crowd, crowd_thresh=0.7)
    assert m.conf.tolist() == [1, -1, 0, 0]
    # crowd handling off
    assert match(priors, gt, torch.tensor([0]), crowd_boxes=crowd, crowd_thresh=1.0).conf.tolist() == [1, 0, 0, 0]


def test_image_without_objects_is_all_background():
    priors = _priors([0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1])
    m = match(priors, torch.zeros((0, 4)), torch.zeros((0,), dtype=torch.long))
    assert m.conf.tolist() == [0, 0] and not m.positive.any()
    m = match(
        priors,
        torch.zeros((0, 4)),
        torch.zeros((0,), dtype=torch.long),
        crowd_boxes=torch.tensor([[0.0, 0.0, 1.0, 1.0]]),
    )
    assert m.conf.tolist() == [-1, -1]


def test_box_iou_batched_and_degenerate():
    """One IoU for matching (pairs [A,B]), Fast NMS (rows [C,M,M]) and the crop search."""
    a = torch.rand(3, 5, 4)
    a[..., 2:] = a[..., :2] + torch.rand(3, 5, 2) * 0.5
    b = torch.rand(3, 4, 4)
    b[..., 2:] = b[..., :2] + torch.rand(3, 4, 2) * 0.5
    batched = box_iou(a, b)
    assert batched.shape == (3, 5, 4)
    for c in range(3):
        assert torch.allclose(batched[c], box_iou(a[c], b[c]))
    self_iou = box_iou(a, a)
    assert torch.allclose(torch.diagonal(self_iou, dim1=1, dim2=2), torch.ones(3, 5), atol=1e-6)
    empty = torch.zeros(1, 4)
    assert box_iou(empty, empty).item() == 0.0  # never NaN
