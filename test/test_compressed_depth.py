"""Depth over the compressedDepth transport: the decoder against an encoder that quantises as
image_transport_plugins' publisher does — exact for 16UC1, within the stated quantisation for
32FC1, every malformed message refused with one clear line, and the 3D placement of instances
from the decoded depth equal (16UC1) or within quantisation (32FC1) of the raw path's."""

from __future__ import annotations

import array
import re

import cv2
import numpy as np
import pytest
from compressed_depth_encoder import encode_compressed_depth, quantisation

from yolact_ros.inference.depth import PinholeCamera, instances_in_3d
from yolact_ros.ros.compressed_depth import (
    CONFIG_HEADER,
    CompressedDepthError,
    compressed_depth_to_array,
    decode_compressed_depth,
    parse_format,
)
from yolact_ros.testing.rgbd import random_solids, render_rgbd

CAM = PinholeCamera(525.0, 523.0, 319.3, 241.2, 640, 480)


@pytest.fixture(scope="module")
def frame():
    solids = random_solids(CAM, 6, np.random.default_rng(7), min_pixels=40)
    return render_rgbd(solids, CAM, holes=0.05, flying_pixels=0.3, depth_noise=0.001, seed=3)


def _max_error_m(z: np.ndarray) -> np.ndarray:
    """The 32FC1 code's worst-case error at true depth z (module docstring): z**2 / (A - z)."""
    a, _ = quantisation()
    return z * z / (float(a) - z)


@pytest.mark.parametrize("old_format", [False, True])
def test_16uc1_round_trip_is_exact(frame, old_format):
    fmt, data = encode_compressed_depth(frame.depth_mm, "16UC1", old_format=old_format)
    assert fmt == ("16UC1; compressedDepth" if old_format else "16UC1; compressedDepth png")
    depth, encoding = decode_compressed_depth(fmt, array.array("B", data))  # rclpy's uint8[] type
    assert encoding == "16UC1" and depth.dtype == np.uint16
    np.testing.assert_array_equal(depth, frame.depth_mm)
    assert (frame.depth_mm == 0).any()  # holes stay holes


def test_32fc1_round_trip_within_the_stated_quantisation(frame):
    fmt, data = encode_compressed_depth(frame.depth_m, "32FC1")
    depth, encoding = decode_compressed_depth(fmt, data)
    assert encoding == "32FC1" and depth.dtype == np.float32 and depth.shape == frame.depth_m.shape
    valid = np.isfinite(frame.depth_m) & (frame.depth_m > 0)
    np.testing.assert_array_equal(np.isnan(depth), ~valid)  # holes (0 and NaN) come back as NaN
    z, z2 = frame.depth_m[valid].astype(np.float64), depth[valid].astype(np.float64)
    err = z2 - z
    slack = 4e-7 * z  # float32 rounding of A / (q - B)
    assert (err >= -slack).all(), "the code truncates: the decoded depth is never nearer"
    assert (err <= _max_error_m(z) + slack).all()
    assert err.max() > 0.2 * _max_error_m(z).max()  # the bound is tight, not vacuous
    # a depth beyond depth_max is sent as "no depth"
    far = np.full((4, 4), 12.0, np.float32)
    assert np.isnan(decode_compressed_depth(*encode_compressed_depth(far, "32FC1"))[0]).all()


def test_another_quantisation_is_read_from_the_header():
    z = np.linspace(0.5, 3.0, 64, dtype=np.float32).reshape(8, 8)
    fmt, data = encode_compressed_depth(z, "32FC1", depth_max=4.0, depth_quantization=30.0)
    depth, _ = decode_compressed_depth(fmt, data)
    a = 30.0 * 31.0
    err = depth.astype(np.float64) - z
    assert (err >= -1e-6).all() and (err <= z.astype(np.float64) ** 2 / (a - z) + 1e-6).all()


def test_message_objects_and_size_cap(frame):
    class Msg:  # any object with format and data, as sensor_msgs/CompressedImage
        format, data = encode_compressed_depth(frame.depth_mm, "16UC1")

    depth, _ = compressed_depth_to_array(Msg)
    np.testing.assert_array_equal(depth, frame.depth_mm)
    with pytest.raises(CompressedDepthError, match="exceeds max_image_pixels") as info:
        compressed_depth_to_array(Msg, max_pixels=640 * 479)
    assert info.value.kind == "too_large"


def test_formats():
    assert parse_format("32FC1; compressedDepth png") == ("32FC1", "png")
    assert parse_format("16UC1; compressedDepth") == ("16UC1", "png")
    assert parse_format("mono16;compressedDepth png") == ("mono16", "png")
    for fmt, kind, text in [
        ("16UC1; compressedDepth rvl", "format", "RVL codec is not supported"),
        ("16UC1; compressedDepth jpeg", "format", "unknown codec 'jpeg'"),
        ("16UC1; jpeg compressed bgr8", "format", "is not '<encoding>; compressedDepth [png|rvl]'"),
        ("bgr8; compressedDepth png", "encoding", "unsupported depth encoding 'bgr8'"),
        ("", "encoding", "unsupported depth encoding ''"),
    ]:
        with pytest.raises(CompressedDepthError, match=re.escape(text)) as info:
            parse_format(fmt)
        assert info.value.kind == kind and "\n" not in str(info.value)


def test_malformed_payloads_are_refused_with_one_line():
    fmt, data = encode_compressed_depth(np.full((6, 8), 1500, np.uint16), "16UC1")
    fmt32, data32 = encode_compressed_depth(np.full((6, 8), 1.5, np.float32), "32FC1")
    ok8, png8 = cv2.imencode(".png", np.zeros((6, 8), np.uint8))
    header = CONFIG_HEADER.pack(0, 0.0, 0.0)
    cases = [
        (fmt, b"", "layout", "no room for the 12-byte header"),
        (fmt, data[:12], "layout", "no room for the 12-byte header"),
        (fmt, data[:7], "layout", "no room"),
        (fmt, header + b"not a png at all, just bytes", "decode", "is not a PNG image"),
        (fmt, data[:40], "decode", "does not decode"),  # the PNG cut short after its header
        (fmt, data[12:], "decode", "is not a PNG image"),  # no config header
        (fmt, header + png8.tobytes(), "layout", "a 16-bit single-channel image is required"),
        (fmt32, CONFIG_HEADER.pack(0, 0.0, 0.0) + data32[12:], "layout", "not an inverse-depth one"),
        (fmt32, CONFIG_HEADER.pack(-1, 10100.0, -1009.0) + data32[12:], "layout", "not an inverse-depth one"),
        (fmt32, CONFIG_HEADER.pack(0, float("nan"), 0.0) + data32[12:], "layout", "not an inverse-depth one"),
    ]
    for f, payload, kind, text in cases:
        with pytest.raises(CompressedDepthError, match=re.escape(text)) as info:
            decode_compressed_depth(f, payload)
        assert info.value.kind == kind, (text, info.value.kind)
        assert "\n" not in str(info.value)
        assert isinstance(info.value, ValueError)


def test_3d_from_decoded_16uc1_equals_the_raw_path(frame):
    inst = frame.instances()
    raw = instances_in_3d(inst, frame.depth_mm, CAM, encoding="16UC1", points_step=2)
    depth, encoding = decode_compressed_depth(*encode_compressed_depth(frame.depth_mm, "16UC1"))
    got = instances_in_3d(inst, depth, CAM, encoding=encoding, points_step=2)
    assert raw.valid.sum() >= 4
    np.testing.assert_array_equal(got.valid, raw.valid)
    np.testing.assert_array_equal(got.centres, raw.centres)
    np.testing.assert_array_equal(got.box_centres, raw.box_centres)
    np.testing.assert_array_equal(got.box_sizes, raw.box_sizes)
    np.testing.assert_array_equal(got.points, raw.points)


def test_3d_from_decoded_32fc1_is_within_quantisation(frame):
    inst = frame.instances()
    raw = instances_in_3d(inst, frame.depth_m, CAM, encoding="32FC1")
    depth, encoding = decode_compressed_depth(*encode_compressed_depth(frame.depth_m, "32FC1"))
    got = instances_in_3d(inst, depth, CAM, encoding=encoding)
    np.testing.assert_array_equal(got.valid, raw.valid)
    v = raw.valid
    assert v.sum() >= 4
    # Every statistic (medians, percentiles) moves by at most the largest per-point change; a
    # point's x, y move by |u - cx| / fx, |v - cy| / fy times its z change, under 0.7 z here.
    zmax = np.array([np.nanmax(np.where(m, frame.depth_m, np.nan)) for m in frame.masks[v]])
    bound = _max_error_m(zmax)[:, None] + 1e-6
    assert (np.abs(got.centres[v] - raw.centres[v]) <= bound).all()
    assert (np.abs(got.box_centres[v] - raw.box_centres[v]) <= bound).all()
    assert (np.abs(got.box_sizes[v] - raw.box_sizes[v]) <= 2 * bound).all()
    assert np.abs(got.centres[v] - raw.centres[v]).max() > 0  # the code is lossy: not compared with itself
