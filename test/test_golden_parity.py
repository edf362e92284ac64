"""Parity with the original implementation on every golden fixture (generic over config and image)."""

from __future__ import annotations

import pytest
import torch
from golden_checks import (  # noqa: F401 - the parity tests, collected here with this module's case
    load_case,
    test_detect_output_and_maskiou,
    test_final_detections_and_masks,
    test_raw_outputs,
)
from golden_compare import apply_strides, golden_files, raw_violation

from yolact_ros.segmenter import Segmenter
from yolact_ros.testing.reference_weights import reference_model

FILES = golden_files()


@pytest.fixture(scope="module", params=FILES, ids=[p.stem for p in FILES])
def case(request):
    # parity is a claim about fp32: pinned, whatever the defaults become
    return load_case(
        request.param,
        lambda config: Segmenter(
            model=reference_model(config),
            device="cpu",
            backend="torch",
            precision="fp32",
            score_threshold=0.0,
            top_k=100,
        ),
    )


def test_fixtures_present():
    assert len(FILES) >= 2


def test_unoptimized_model_matches_too(case):
    """The checkpoint-layout module itself (no BN folding / merged convs) is also at parity."""
    data, meta, seg, raw, _, _ = case
    with torch.inference_mode():
        plain = seg.model(raw["input"].contiguous())
    for name in ("loc", "conf", "mask", "proto"):
        assert raw_violation(name, apply_strides(meta, name, plain[name].numpy()), data[name]) <= 0, name
