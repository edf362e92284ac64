"""The demo (``make demo``) shortened: the real runner, the installed ``yolact_node`` started as
launch starts it, a few seconds of camera stream on the real runtime; then its summary and
per-frame record are checked independently of the runner's own checks.

Uses the shipped demo model when it is there; otherwise a stand-in with the demo's classes and
the reference (golden) weights, which detect something on every frame.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import ros_helpers as rh

DEMO_MODEL = rh.REPO / "models" / "demo" / "yolact_synth_demo.pth"
DURATION_S = 5.0
RATE_HZ = 10.0


def _demo_cmd(*args: str) -> list[str]:
    # -P: the installed package (with yolact_ros.msg) is not shadowed by the source tree
    return [sys.executable, "-P", "-m", "yolact_ros.ros.demo", *args]


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run the demo in its own process group; on a timeout end it (and its node) by group id."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"the demo did not finish within {timeout:.0f} s\n{out[-3000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# -- the scene and the bookkeeping (no ROS needed) --------------------------------------------------
def test_scene_is_deterministic_and_has_the_model_classes():
    from yolact_ros.data.scene import DemoScene

    classes = ("disc", "triangle", "star")
    a = DemoScene(classes, size=(320, 240), rate=10, seed=3)
    b = DemoScene(classes, size=(320, 240), rate=10, seed=3)
    for i in (0, 7, 123):  # 123 is in a later segment: another photo and other objects
        img_a, obj_a = a.frame(i)
        img_b, obj_b = b.frame(i)
        assert img_a.shape == (240, 320, 3) and img_a.dtype == np.uint8
        assert np.array_equal(img_a, img_b)
        assert [o.class_name for o in obj_a] == [o.class_name for o in obj_b]
        assert obj_a and all(o.class_name in classes for o in obj_a)
        union = np.zeros((240, 320), int)
        for o in obj_a:
            assert o.visible.shape == (240, 320) and o.area > 0
            union += o.visible
        assert union.max() == 1, "visible masks of one frame must not overlap"
    first, _ = a.frame(0)
    later, _ = a.frame(5)
    assert np.abs(first.astype(int) - later.astype(int)).mean() > 1.0, "the scene does not move"
    with pytest.raises(ValueError, match="classes"):
        DemoScene(("person",))


def _dets(n, names=("disc",)):
    from yolact_ros.evaluation.stream import Detection

    return [Detection(str(i), names[i % len(names)], 0.9) for i in range(n)]


def test_summary_accounting_and_problems():
    """summarise(): processed + dropped == in, and every inconsistency becomes a problem."""
    from yolact_ros.evaluation.stream import NodeCounts, StreamStats, summarise

    st = StreamStats(frame_id="cam")
    base = 1_700_000_000_000_000_000
    disc = np.zeros((48, 64), bool)
    disc[10:30, 10:35] = True  # 500 pixels: counted
    for i in range(6):
        st.add_frame(i, base + i * 100_000_000, [("disc", disc)])
    for i in (1, 4):
        st.on_detections(base + i * 100_000_000, "cam", base + i * 100_000_000 + 50_000_000, _dets(2))
        st.on_masks(base + i * 100_000_000, "cam", ["0", "1"], lambda: [disc, disc])
    st.on_visualization(base + 100_000_000, "cam")
    kwargs = dict(size=(64, 48), stream_s=0.6, model={}, diagnostics={}, score_ground_truth=False)
    s, rows, problems = summarise(st, **kwargs)
    assert problems == []
    assert (s["frames_in"], s["frames_processed"], s["frames_dropped"]) == (6, 2, 4)
    assert s["latency_ms_p50"] == 50.0 and s["instances_per_frame"] == 2.0
    assert [r["processed"] for r in rows] == [False, True, False, False, True, False]
    assert [r.get("masks") for r in rows] == [None, 2, None, None, 2, None]
    assert s["frames_processed_with_objects_and_detections"] == 2
    assert s["outputs_with_input_stamps"]["visualization"] == 1
    assert st.stamps_received()["detections"] == ["1700000000.100000000", "1700000000.400000000"]

    counts = NodeCounts(received=5, processed=2, dropped=2, rejected=1, errors=0)
    assert counts.idle
    s, _, _ = summarise(st, **dict(kwargs, node_counts=counts))
    assert s["frames_dropped_detail"] == {
        "lost_before_node": 1,
        "dropped_by_node": 2,
        "rejected_by_node": 1,
        "inference_errors": 0,
        "node_processed_not_received": 0,
    }

    st.on_masks(base + 99, "cam", [], list)  # never published
    st.on_detections(base + 100_000_000, "cam", base, _dets(2))  # answered twice
    st.on_visualization(base + 400_000_000, "other_cam")
    st.on_masks(base + 400_000_000, "cam", ["1", "0"], list)  # a second, misaligned masks message
    _, _, problems = summarise(st, **kwargs)
    assert len(problems) == 5 and any("never published" in p for p in problems)
    assert any("not index-aligned" in p for p in problems) and any("'cam'" in p for p in problems)

    empty = StreamStats()
    empty.add_frame(0, base)
    s, _, problems = summarise(empty, **kwargs)
    assert s["frames_dropped"] == 1 and any("no frame was processed" in p for p in problems)


def test_ground_truth_scoring():
    from pycocotools import mask as mask_utils

    from yolact_ros.evaluation.stream import Detection, match_figures, score_frame

    h, w = 60, 80
    disc = np.zeros((h, w), bool)
    disc[10:30, 10:30] = True
    star = np.zeros((h, w), bool)
    star[35:55, 40:70] = True
    objects = [
        (name, mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))) for name, m in (("disc", disc), ("star", star))
    ]
    shifted = np.zeros((h, w), bool)
    shifted[12:32, 11:31] = True  # IoU with the disc ~0.75
    det_specs = [("disc", 0.9, shifted), ("disc", 0.3, disc), ("triangle", 0.8, star), ("star", 0.2, star)]
    dets = [Detection(str(i), c, s) for i, (c, s, _) in enumerate(det_specs)]
    n_gt, matches = score_frame(objects, dets, [m for _, _, m in det_specs])
    assert n_gt == 2
    # by descending score: disc 0.9 matches the disc; triangle 0.8 has the wrong class;
    # disc 0.3 finds the disc taken (a duplicate); star 0.2 matches the star exactly
    assert [(round(s, 1), m) for s, m, _, _ in matches] == [(0.9, True), (0.8, False), (0.3, False), (0.2, True)]
    assert abs(matches[0][3] - (np.logical_and(disc, shifted).sum() / np.logical_or(disc, shifted).sum())) < 1e-9
    assert matches[3][3] == 1.0
    all_dets = match_figures(n_gt, matches, 0.0)
    assert (all_dets["recall"], all_dets["precision"]) == (1.0, 0.5)
    confident = match_figures(n_gt, matches, 0.5)
    assert (confident["recall"], confident["precision"], confident["detections"]) == (0.5, 0.5, 2)
    # detections without their masks match nothing
    assert [m[1] for m in score_frame(objects, dets, [])[1]] == [False] * 4


# -- the real thing ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_weights(ros_runtime, tmp_path_factory):
    """(path, is the trained demo model)."""
    if DEMO_MODEL.is_file():
        return DEMO_MODEL, True
    import torch

    from yolact_ros.data.synth import DEFAULT_CLASSES
    from yolact_ros.model import OFFICIAL_CONFIGS, build_yolact
    from yolact_ros.model.checkpoint import save_checkpoint
    from yolact_ros.testing.reference_weights import apply_golden_weights

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("demo_weights") / "demo_standin.pth"
    cfg = OFFICIAL_CONFIGS["yolact_resnet50"].replace(name="demo_standin", max_size=256, class_names=DEFAULT_CLASSES)
    model = build_yolact(cfg)
    apply_golden_weights(model)
    save_checkpoint(model, path)
    return path, False


@pytest.fixture(scope="module")
def demo_run(demo_weights, ros_log_dir, tmp_path_factory):
    weights, _ = demo_weights
    out = tmp_path_factory.mktemp("demo") / "out"
    res = _run(
        _demo_cmd(
            "--weights",
            str(weights),
            "--duration",
            str(DURATION_S),
            "--rate",
            str(RATE_HZ),
            "--out",
            str(out),
            "--quiet-node",
        ),
        timeout=240,
    )
    assert res.returncode == 0, f"demo failed (exit {res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    assert "all checks passed" in res.stdout
    summary = json.loads((out / "summary.json").read_text())
    record = json.loads((out / "frames.json").read_text())
    return SimpleNamespace(
        out=out, summary=summary, frames=record["frames"], received=record["stamps_received"], stdout=res.stdout
    )


def test_every_frame_processed_or_counted_dropped(demo_run):
    s = demo_run.summary
    assert s["frames_in"] == int(round(DURATION_S * RATE_HZ)) == len(demo_run.frames)
    assert s["frames_processed"] >= 1
    assert s["frames_processed"] + s["frames_dropped"] == s["frames_in"]
    assert sum(f["processed"] for f in demo_run.frames) == s["frames_processed"]
    # the node's own counters agree: each frame it did not answer was lost on the way, replaced by
    # a newer one or rejected
    d = s["frames_dropped_detail"]
    assert d["node_processed_not_received"] == 0
    assert (
        d["lost_before_node"] + d["dropped_by_node"] + d["rejected_by_node"] + d["inference_errors"]
        == s["frames_dropped"]
    )
    assert s["node_exit_code"] == 0 and s["checks_ok"] and s["problems"] == []
    assert s["latency_ms_p50"] is not None and 0 < s["latency_ms_p50"] <= s["latency_ms_p95"]


def test_outputs_carry_the_input_stamps(demo_run):
    published = [f["stamp"] for f in demo_run.frames]
    assert len(set(published)) == len(published), "stamps must be unique per frame"
    processed = {f["stamp"] for f in demo_run.frames if f["processed"]}
    dets = demo_run.received["detections"]
    assert len(dets) == len(set(dets)) == len(processed), "each processed frame answered exactly once"
    assert set(dets) == processed
    masks = demo_run.received["masks"]
    assert sorted(masks) == sorted(dets), "masks must come with the same stamps as detections"
    vis = demo_run.received["visualization"]
    assert vis and set(vis) <= processed
    for f in demo_run.frames:
        if f["processed"]:
            assert f["masks"] == len(f["detections"]), "masks index-aligned with detections"
    # the overlay files are the visualization frames, named by input frame index
    index_of = {f["stamp"]: f["index"] for f in demo_run.frames}
    files = sorted(p.name for p in (demo_run.out / "frames").glob("frame_*.jpg"))
    assert files == sorted(f"frame_{index_of[s]:05d}.jpg" for s in vis)


def test_detections_on_frames_with_objects(demo_run, demo_weights):
    _, trained = demo_weights
    s = demo_run.summary
    with_objects = s["frames_processed_with_objects"]
    assert with_objects >= 1, "no processed frame had objects: the check would be vacuous"
    assert s["frames_processed_with_objects_and_detections"] >= 0.8 * with_objects
    assert s["instances_per_frame"] > 0
    names = set(s["model"]["class_names"])
    assert s["class_counts"] and set(s["class_counts"]) <= names
    if trained:
        # the demo model finds the scene's objects (mask IoU >= 0.5, right class)
        gt = s["ground_truth"]
        assert gt["objects"] > 0 and gt["recall"] >= 0.5, gt
        confident = gt["score_at_least_0.5"]
        assert confident["detections"] > 0 and confident["precision"] >= 0.5, gt


def test_overlay_video_and_preview(demo_run):
    import cv2

    outputs = demo_run.summary["outputs"]
    assert outputs["overlay_frames"] >= 1
    video = demo_run.out / outputs["video"]
    cap = cv2.VideoCapture(str(video))
    try:
        n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            assert frame.shape == (480, 640, 3)
            n += 1
    finally:
        cap.release()
    assert n == outputs["video_frames"] == outputs["overlay_frames"]
    assert cv2.imread(str(demo_run.out / outputs["preview"])) is not None


def test_missing_model_is_a_clear_error(ros_runtime, tmp_path):
    res = _run(_demo_cmd("--weights", str(tmp_path / "absent.pth"), "--out", str(tmp_path / "o")), timeout=120)
    assert res.returncode == 1
    assert "model not found" in res.stderr and "absent.pth" in res.stderr
    assert "Traceback" not in res.stderr
