"""The parameter docs are generated: config/yolact.yaml and the README / docs/ros.md tables are
what scripts/gen_params.py writes from yolact_ros/ros/param_table.py and launch_args.py (no ROS needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_params", REPO / "scripts" / "gen_params.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_files_are_up_to_date():
    diffs = _generator().outdated()
    assert not diffs, "out of date, run .venv/bin/python scripts/gen_params.py:\n" + "\n".join(diffs.values())


def test_a_hand_edited_table_is_restored():
    gen = _generator()
    text = gen.README.read_text(encoding="utf-8")
    edited = text.replace("Publish instances whose score", "Keep instances whose score")
    assert edited != text
    assert gen.replace_section(edited, "params", gen.params_table_short(), gen.README) == text


def test_generated_yaml_loads_as_the_table_says():
    from yolact_ros.ros.params import PARAMS

    doc = yaml.safe_load(_generator().render_yaml())
    values = doc["/**"]["ros__parameters"]
    for p in PARAMS:
        v = values
        for part in p.name.split("."):
            v = v[part]
        if p.kind == "str_list":
            assert v == [""] if not p.default else v == p.default, p.name
        else:
            assert v == p.default and type(v) is type(p.default), p.name
