"""Each default is defined once (yolact_ros.inference.defaults) and every reader agrees with it."""

from __future__ import annotations

import inspect

from yolact_ros.cli import bench, infer
from yolact_ros.inference import defaults
from yolact_ros.inference.segmenter import Segmenter
from yolact_ros.inference.tracking import Tracker
from yolact_ros.inference.visualize import draw_instances
from yolact_ros.model.config import MAX_NUM_DETECTIONS, OFFICIAL_CONFIGS
from yolact_ros.ros.params import NMS_UNSET, segmenter_nms_threshold, spec


def test_segmenter_signature_reads_the_defaults():
    sig = inspect.signature(Segmenter.__init__).parameters
    assert sig["score_threshold"].default == defaults.SCORE_THRESHOLD
    assert sig["top_k"].default == defaults.TOP_K
    assert sig["nms_threshold"].default == defaults.NMS_THRESHOLD
    assert sig["device"].default == defaults.DEVICE
    assert sig["cross_class_nms"].default == defaults.CROSS_CLASS_NMS
    assert inspect.signature(draw_instances).parameters["alpha"].default == defaults.MASK_ALPHA


def test_ros_parameter_table_reads_the_defaults():
    assert spec("score_threshold").default == defaults.SCORE_THRESHOLD
    assert spec("top_k").default == defaults.TOP_K
    assert spec("device").default == defaults.DEVICE
    assert spec("visualization.mask_alpha").default == defaults.MASK_ALPHA
    assert spec("depth_min_points").default == defaults.DEPTH_MIN_POINTS
    assert spec("depth_tolerance").default == defaults.DEPTH_TOLERANCE_S
    assert spec("tracking_max_age").default == inspect.signature(Tracker).parameters["max_age"].default
    assert spec("nms_threshold").default == NMS_UNSET and defaults.NMS_THRESHOLD is None
    assert segmenter_nms_threshold(NMS_UNSET) is None and segmenter_nms_threshold(0.6) == 0.6
    # the ROS range of top_k is the model cap
    assert spec("top_k").max == defaults.TOP_K_MAX == MAX_NUM_DETECTIONS
    assert all(cfg.max_num_detections == MAX_NUM_DETECTIONS for cfg in OFFICIAL_CONFIGS.values())


def test_cli_and_benchmark_read_the_defaults():
    got = infer.build_parser().parse_args(["x.jpg", "--weights", "w.pth", "--out", "o"])
    assert got.score_threshold == defaults.SCORE_THRESHOLD
    assert got.top_k == defaults.TOP_K
    assert got.device == defaults.DEVICE
    assert bench.SETTINGS["default"] == {"score_threshold": defaults.SCORE_THRESHOLD, "top_k": defaults.TOP_K}
    assert bench.SETTINGS["all100"]["top_k"] == defaults.TOP_K_MAX
