"""Tracker: persistent ids on the demo's moving scene (ground-truth masks with detector-like
perturbations), ids kept through short gaps, never shared across classes, bounded state."""

from __future__ import annotations

import numpy as np
import pytest

from yolact_ros.data.scene import DemoScene
from yolact_ros.evaluation.tracking import IdentityScore
from yolact_ros.inference.instances import Instances
from yolact_ros.inference.tracking import CropMask, Tracker, box_iou_np, crop_intersection, crop_iou, mask_iou

CLASSES = ("disc", "rectangle", "triangle", "star")


def _box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def _instances(masks: list[np.ndarray], class_ids: list[int], size=(240, 320)) -> Instances:
    n = len(masks)
    if n == 0:
        return Instances.empty(*size, class_names=CLASSES)
    return Instances(
        boxes=np.array([_box(m) for m in masks], np.float32),
        scores=np.ones(n, np.float32),
        class_ids=np.array(class_ids, np.int64),
        masks=np.stack(masks),
        class_names=CLASSES,
    )


def _grow(mask: np.ndarray, sign: int) -> np.ndarray:
    """Dilate (sign > 0) or erode (sign < 0) by one pixel (4-neighbourhood)."""
    p = np.pad(mask, 1, constant_values=sign < 0)
    nb = [p[1:-1, 1:-1], p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]]
    return np.logical_or.reduce(nb) if sign > 0 else np.logical_and.reduce(nb)


def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Moved by (dx, dy) pixels; what leaves the image is lost."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    src = mask[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = src
    return out


def _detections(objects, rng, miss=0.05):
    """Ground truth as a detector would give it: some objects missed, masks a pixel larger or
    smaller, shifted by up to a pixel; shuffled (no order to rely on)."""
    masks, classes, gt = [], [], []
    for o in objects:
        if rng.random() < miss:
            continue
        m = o.visible
        r = rng.random()
        if r < 0.3:
            m = _grow(m, +1)
        elif r < 0.6:
            m = _grow(m, -1)
        m = _shift(m, int(rng.integers(-1, 2)), int(rng.integers(-1, 2)))
        if m.sum() < 20:
            continue
        masks.append(m)
        classes.append(CLASSES.index(o.class_name))
        gt.append(o.object_id)
    order = rng.permutation(len(masks))
    return [masks[i] for i in order], [classes[i] for i in order], [gt[i] for i in order]


@pytest.fixture(scope="module")
def scene_frames():
    scene = DemoScene(CLASSES, size=(320, 240), rate=15.0, seed=0)
    return [scene.frame(i)[1] for i in range(300)]  # two 10 s segments at 15 Hz


def test_identity_switches_on_the_demo_scene(scene_frames):
    rng = np.random.default_rng(0)
    tracker = Tracker(max_age=10, min_iou=0.3)
    score = IdentityScore()
    for objects in scene_frames:
        masks, classes, _ = _detections(objects, rng)
        inst = _instances(masks, classes)
        ids = tracker.update(inst)
        assert ids.dtype == np.int64 and ids.shape == (len(inst),) and (ids >= 1).all()
        assert len(set(ids.tolist())) == len(ids), "two detections of one frame share an id"
        score.update(
            [o.object_id for o in objects],
            np.stack([o.visible for o in objects]) if objects else np.zeros((0, 240, 320), bool),
            ids,
            inst.masks,
            inst.class_ids,
        )
    print(score.summary())
    assert score.matched > 0.9 * score.objects
    assert score.switches <= 0.01 * score.matched, score.summary()
    assert score.class_switches == 0  # the perturbed ground truth never changes class


def test_an_object_missed_for_a_few_frames_keeps_its_id(scene_frames):
    tracker = Tracker(max_age=10, min_iou=0.3)
    objects = scene_frames[20]
    target = max(objects, key=lambda o: o.area).object_id
    first, kept = {}, 0
    for k, objs in enumerate(scene_frames[20:80]):
        gap = 10 <= k < 17  # the largest object is not detected for 7 frames (< max_age)
        shown = [o for o in objs if not (gap and o.object_id == target)]
        ids = tracker.update(_instances([o.visible for o in shown], [CLASSES.index(o.class_name) for o in shown]))
        for o, i in zip(shown, ids):
            first.setdefault(o.object_id, int(i))
            assert first[o.object_id] == i, f"object {o.object_id} changed id in frame {k}"
            kept += o.object_id == target
    assert kept == 60 - 7


def test_an_object_gone_longer_than_max_age_gets_a_new_id():
    m = np.zeros((240, 320), bool)
    m[50:100, 60:120] = True
    tracker = Tracker(max_age=3)
    a = tracker.update(_instances([m], [0]))[0]
    for _ in range(4):
        tracker.update(_instances([], []))
    assert len(tracker) == 0
    assert tracker.update(_instances([m], [0]))[0] == a + 1


def test_classes_never_share_an_id():
    m = np.zeros((240, 320), bool)
    m[50:100, 60:120] = True
    tracker = Tracker()
    a = tracker.update(_instances([m], [0]))
    b = tracker.update(_instances([m], [1]))  # same place, other class: a new object
    c = tracker.update(_instances([m, m], [0, 1]))
    assert a[0] != b[0] and c.tolist() == [a[0], b[0]]
    by_id = {}
    for t in tracker.tracks:
        assert by_id.setdefault(t.id, t.class_id) == t.class_id


def test_new_ids_count_up_from_one_and_state_stays_bounded():
    rng = np.random.default_rng(1)
    tracker = Tracker(max_age=5, max_tracks=64)
    seen = []
    for _ in range(400):  # random boxes every frame: nothing to follow, everything is new
        masks = []
        for _ in range(int(rng.integers(0, 8))):
            m = np.zeros((240, 320), bool)
            x, y = int(rng.integers(0, 300)), int(rng.integers(0, 220))
            m[y : y + 20, x : x + 20] = True
            masks.append(m)
        ids = tracker.update(_instances(masks, rng.integers(0, 4, len(masks)).tolist()))
        seen.extend(ids.tolist())
        assert len(tracker) <= min(64, 7 * 6)
    new = [i for k, i in enumerate(seen) if i not in seen[:k]]
    assert new[:3] == [1, 2, 3] and new == sorted(new)


def test_box_mode_and_moving_object():
    tracker = Tracker(use_masks=False, min_iou=0.3)
    ids = []
    for k in range(30):  # 6 px a frame: box IoU with the last frame alone stays high
        m = np.zeros((240, 320), bool)
        m[100:140, 10 + 6 * k : 50 + 6 * k] = True
        ids.append(int(tracker.update(_instances([m], [2]))[0]))
    assert set(ids) == {1}


def test_iou_helpers():
    a = np.zeros((2, 60, 80), bool)
    a[0, 10:30, 10:30] = True
    a[1, 40:60, 50:80] = True
    b = np.zeros((1, 60, 80), bool)
    b[0, 20:30, 10:30] = True
    iou = mask_iou(a, b)
    assert iou.shape == (2, 1) and iou[0, 0] == pytest.approx(0.5) and iou[1, 0] == 0.0
    empty = CropMask.from_mask(np.zeros((60, 80), bool))
    assert crop_iou(empty, empty) == 0.0
    moved = CropMask.from_mask(b[0])
    assert crop_iou(CropMask.from_mask(a[0]), moved, shift=(0, 10)) == pytest.approx(0.5)  # 10:30 -> 20:40
    assert box_iou_np([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]]).tolist() == [[pytest.approx(1 / 3), 0.0]]
    with pytest.raises(ValueError):
        Tracker(min_iou=0.0)


def _square(x: int, y: int, size: int = 40) -> np.ndarray:
    m = np.zeros((240, 320), bool)
    m[y : y + size, x : x + size] = True
    return m


def test_class_flips_keep_their_ids_with_class_change_iou(scene_frames):
    """Detector-like ground truth whose class is redrawn at random in 10 % of the detections:
    with class_change_iou the ids survive the flips; kept within a class, they do not."""

    def run(**kw):
        rng = np.random.default_rng(3)
        tracker, score = Tracker(max_age=10, min_iou=0.3, **kw), IdentityScore()
        for objects in scene_frames:
            masks, classes, _ = _detections(objects, rng)
            classes = [int(rng.integers(len(CLASSES))) if rng.random() < 0.1 else c for c in classes]
            inst = _instances(masks, classes)
            ids = tracker.update(inst)
            assert len(set(ids.tolist())) == len(ids)
            score.update(
                [o.object_id for o in objects],
                np.stack([o.visible for o in objects]) if objects else np.zeros((0, 240, 320), bool),
                ids,
                inst.masks,
                inst.class_ids,
            )
        return score

    flexible, strict = run(class_change_iou=0.3), run()
    assert flexible.matched > 0.9 * flexible.objects
    assert flexible.switches <= 0.01 * flexible.matched, flexible.summary()
    assert strict.switches > 0.05 * strict.matched, strict.summary()  # each flip is a new id


def test_a_class_flip_beats_a_worse_duplicate_of_the_old_class():
    """One assignment over both classes: the detection that overlaps the track best continues
    it even when its class changed and a worse one of the old class is there."""
    tracker = Tracker(class_change_iou=0.3)
    a = tracker.update(_instances([_square(100, 100)], [0]))[0]
    ids = tracker.update(_instances([_square(101, 100), _square(112, 100)], [1, 0]))  # IoU 0.95 vs 0.54
    assert ids[0] == a and ids[1] != a
    for margin, flip in ((0.05, False), (0.0, True)):  # about equal overlap (0.95 vs 0.905): its class wins
        tracker = Tracker(class_change_iou=0.3, class_change_margin=margin)
        a = tracker.update(_instances([_square(100, 100)], [0]))[0]
        ids = tracker.update(_instances([_square(101, 100), _square(102, 100)], [1, 0]))
        assert (ids[0] == a) == flip and (ids[1] == a) != flip
    strict = Tracker()  # an id keeps its class: the same-class detection continues it
    a = strict.update(_instances([_square(100, 100)], [0]))[0]
    ids = strict.update(_instances([_square(101, 100), _square(112, 100)], [1, 0]))
    assert ids[1] == a and ids[0] != a


def test_a_mask_that_changed_too_much_is_found_by_its_box():
    """A jump of 25 px on a 40 px square: mask IoU 0.23 and containment 0.375 fail, box IoU
    0.23 >= min_box_iou keeps the id (within the class, unless class changes are allowed)."""
    for kw, cls, same in [
        ({}, 0, True),
        ({"min_box_iou": None}, 0, False),
        ({}, 1, False),
        ({"class_change_iou": 0.5}, 1, True),
        ({"min_box_iou": 0.3}, 0, False),
    ]:
        tracker = Tracker(**kw)
        a = tracker.update(_instances([_square(100, 100)], [0]))[0]
        b = tracker.update(_instances([_square(125, 100)], [cls]))[0]
        assert (a == b) == same, (kw, cls)
    tracker = Tracker()  # boxes that do not overlap are never paired
    a = tracker.update(_instances([_square(100, 100)], [0]))[0]
    assert tracker.update(_instances([_square(141, 100)], [0]))[0] != a


def test_crops_from_windows_equal_crops_of_the_full_frame_masks():
    """CropMask.from_instance samples each mask straight from its window: the same mask as the
    crop of the full-frame mask (CropMask.from_mask, on the same stride grid: the same area
    and intersections), whatever the window's place (partly outside the box or the image)."""

    def canvas(c: CropMask, h: int, w: int) -> np.ndarray:
        out = np.zeros((h + 80, w + 80), bool)
        out[
            c.y0 : c.y0 + c.stride * c.crop.shape[0] : c.stride, c.x0 : c.x0 + c.stride * c.crop.shape[1] : c.stride
        ] = c.crop
        return out

    rng = np.random.default_rng(5)
    for _ in range(300):
        h, w = int(rng.integers(5, 60)), int(rng.integers(5, 60))
        n = int(rng.integers(1, 5))
        windows = [rng.random((int(rng.integers(0, 40)), int(rng.integers(0, 40)))) < 0.6 for _ in range(n)]
        origins = [(int(rng.integers(0, w + 3)), int(rng.integers(0, h + 3))) for _ in range(n)]
        xy = rng.uniform(-10, max(h, w) + 5, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(-3, 40, (n, 2))], axis=1)
        inst = Instances(
            boxes=boxes.astype(np.float32),
            scores=np.ones(n, np.float32),
            class_ids=np.zeros(n, np.int64),
            mask_windows=windows,
            mask_origins=np.array(origins),
            image_size=(h, w),
        )
        rows = np.asarray(inst.boxes, np.float64)
        for stride in (1, 2, 3):
            got = [CropMask.from_instance(inst, j, rows[j], stride) for j in range(n)]
            want = [CropMask.from_mask(inst.masks[j], rows[j], stride) for j in range(n)]
            for g, x in zip(got, want):
                assert g.area == x.area and g.x0 % stride == 0 and g.y0 % stride == 0
                assert (canvas(g, h, w) == canvas(x, h, w)).all()
            for a in range(n):  # intersections with the other instances' crops, moved or not
                for b in range(n):
                    for shift in ((0, 0), (3, -2)):
                        assert crop_intersection(got[a], got[b], shift) == crop_intersection(want[a], want[b], shift)


def test_invalid_thresholds():
    for kw in (
        {"min_box_iou": 0.0},
        {"class_change_iou": 0.0},
        {"class_change_iou": 1.5},
        {"min_containment": 0.0},
        {"class_change_margin": -0.1},
    ):
        with pytest.raises(ValueError):
            Tracker(**kw)
