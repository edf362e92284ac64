"""Golden-fixture parity checks shared by every backend's and device's tests: one case loaded,
then its raw outputs, its final detections and masks, and the original's Detect step checked.

A test module provides a ``case`` fixture (``load_case`` with its own Segmenter) and imports
the ``test_*`` functions below, which pytest then collects there with that fixture.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from golden_compare import (
    apply_strides,
    golden_masks,
    load,
    mask_problems,
    match_detections,
    raw_violation,
)

from yolact_ros.data.photos import load_photo
from yolact_ros.inference.postprocess import assemble_masks, fast_nms

#: The raw outputs every fixture holds.
RAW_OUTPUTS = ("input", "priors", "loc", "conf", "mask", "proto")


def load_case(path, make_segmenter):
    """(data, meta, seg, raw, inst, bgr) of one fixture file; ``make_segmenter(config_name)`` -> a
    Segmenter with the reference weights, score threshold 0 and top-k 100 (any backend,
    any device)."""
    data, meta = load(path)
    bgr = load_photo(meta["image"])
    seg = make_segmenter(meta["config"])
    with torch.inference_mode():
        x = seg.preprocess([bgr])
        raw = dict(seg.inference_model(x))  # the production network (optimized, or the ONNX session)
        raw["input"] = x
        inst = seg(bgr)
    return data, meta, seg, raw, inst, bgr


def check_raw_output(case, name: str) -> None:
    """Raw network output ``name`` of ``case`` within the fixture's tolerance."""
    data, meta, seg, raw, _, _ = case
    mine = raw[name].numpy()
    mine = apply_strides(meta, name, mine)
    assert raw_violation(name, mine, data[name]) <= 0, f"{name} differs beyond tolerance"


def _golden_dets(data):
    g = {"classes": data["classes"], "scores": data["scores"], "boxes": data["boxes"].astype(np.float64)}
    if "mask_scores" in data:
        g["mask_scores"] = data["mask_scores"]
    return g


def check_detections_and_masks(case) -> None:
    """The Segmenter's final detections and full-size masks match the fixture's."""
    data, meta, seg, _, inst, bgr = case
    plus = "mask_scores" in data
    assert len(inst) == len(data["scores"])
    mine = {"classes": inst.class_ids, "scores": inst.box_scores, "boxes": inst.boxes.astype(np.float64)}
    if plus:
        mine["mask_scores"] = inst.scores
    pairs, problems = match_detections(_golden_dets(data), mine, plus)
    assert not problems, "\n".join(problems[:10])
    assert len(pairs) >= len(data["scores"]) - 2
    assert not mask_problems(pairs, golden_masks(data), inst.masks)
    # scores are sorted descending (for ++ by the re-scored mask score)
    assert np.all(np.diff(inst.scores) <= 0)
    assert inst.masks.shape[1:] == bgr.shape[:2] and inst.masks.dtype == bool


def check_detect_output_and_maskiou(case) -> None:
    """Fast NMS on the raw outputs matches the original's Detect, and the YOLACT++ mask-IoU
    head's outputs match too."""
    data, meta, seg, raw, _, _ = case
    dets = fast_nms(raw["loc"][0], raw["conf"][0], raw["mask"][0], raw["priors"])
    golden = {"classes": data["det_classes"], "scores": data["det_scores"], "boxes": data["det_boxes_rel"] * 1000.0}
    mine = {"classes": dets.classes.numpy(), "scores": dets.scores.numpy(), "boxes": dets.boxes.numpy() * 1000.0}
    pairs, problems = match_detections(golden, mine, plus=False)  # boxes compared at 1e-3 relative
    assert not problems, "\n".join(problems[:10])
    g_idx = np.array([g for g, _ in pairs])
    m_idx = np.array([m for _, m in pairs])
    assert np.abs(dets.coeffs.numpy()[m_idx] - data["det_coeffs"][g_idx]).max() <= 1e-4 + 1e-4
    if "maskiou_all" in data:
        with torch.inference_mode():
            low = assemble_masks(raw["proto"][0], dets.coeffs, dets.boxes)
            allc = seg.inference_model.maskiou_net(low.unsqueeze(1)).numpy()
            gathered = seg.inference_model.mask_iou(low, dets.classes).numpy()
        # golden (Detect) order, full size; strides apply to the full tensor, so slice ours the same way
        aligned = np.full((len(data["det_scores"]), allc.shape[1]), np.nan)
        aligned[g_idx] = allc[m_idx]
        aligned = apply_strides(meta, "maskiou_all", aligned)
        ref = data["maskiou_all"]
        known = ~np.isnan(aligned)
        assert known.mean() > 0.95
        assert raw_violation("maskiou_all", np.where(known, aligned, ref), ref) <= 0
        assert np.abs(gathered[m_idx] - data["maskiou"][g_idx]).max() <= 1e-4 + 1e-4 * np.abs(data["maskiou"]).max()


@pytest.mark.parametrize("name", RAW_OUTPUTS)
def test_raw_outputs(case, name):
    check_raw_output(case, name)


def test_final_detections_and_masks(case):
    check_detections_and_masks(case)


def test_detect_output_and_maskiou(case):
    check_detect_output_and_maskiou(case)
