"""Static checks of launch/segment.launch.py and config/yolact.yaml (CI cannot run
`ros2 launch`: launch/launch_ros are not on any registry here): the launch file compiles, and
every executable, file, argument and parameter name it refers to exists."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import yaml

from yolact_ros.ros.params import PARAMS, PARAM_NAMES

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch" / "segment.launch.py"
PARAMS_YAML = REPO / "config" / "yolact.yaml"
EXPECTED_ARGS = {"weights", "config", "image", "namespace", "params_file", "device", "image_transport"}


@pytest.fixture(scope="module")
def tree():
    source = LAUNCH.read_text()
    compile(source, str(LAUNCH), "exec")
    return ast.parse(source)


def _calls(tree, name):
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name:
            yield n


def _kw(call, name):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _node_call(tree):
    nodes = list(_calls(tree, "Node"))
    assert len(nodes) == 1
    return nodes[0]


def test_declared_arguments(tree):
    declared = {c.args[0].value for c in _calls(tree, "DeclareLaunchArgument")}
    assert EXPECTED_ARGS <= declared
    used = {c.args[0].value for c in _calls(tree, "LaunchConfiguration") if isinstance(c.args[0], ast.Constant)}
    # names used through a comprehension over a tuple of constants
    for comp in ast.walk(tree):
        if isinstance(comp, ast.DictComp):
            used |= {e.value for e in comp.generators[0].iter.elts}
    assert used <= declared, used - declared
    ns_default = [c for c in _calls(tree, "DeclareLaunchArgument") if c.args[0].value == "namespace"][0]
    assert _kw(ns_default, "default_value").value == "yolact"


def test_executable_and_params_file_exist(tree, ros_runtime):
    node = _node_call(tree)
    assert _kw(node, "package").value == "yolact_ros"
    exe = ros_runtime.parent / _kw(node, "executable").value
    assert exe.is_file() and os.access(exe, os.X_OK), exe
    # default params file: os.path.join(<share>, "config", "yolact.yaml") -> installed share
    joins = [c for c in _calls(tree, "join") if all(isinstance(a, ast.Constant) for a in c.args[1:])]
    rel = [Path(*(a.value for a in c.args[1:])) for c in joins]
    assert Path("config/yolact.yaml") in rel
    share = ros_runtime.parents[2] / "share" / "yolact_ros"
    assert (share / "config" / "yolact.yaml").is_file()
    assert (share / "config" / "fastdds_shm.xml").is_file()
    assert (share / "launch" / "segment.launch.py").is_file()
    assert (share / "package.xml").is_file()


def test_parameter_names_exist(tree):
    node = _node_call(tree)
    names = set()
    for item in _kw(node, "parameters").elts:
        if isinstance(item, ast.Dict):
            names |= {k.value for k in item.keys}
        elif isinstance(item, ast.DictComp):
            names |= {e.value for e in item.generators[0].iter.elts}
    assert names, "the launch file sets no parameters"
    assert names <= set(PARAM_NAMES), names - set(PARAM_NAMES)
    remaps = {t.elts[0].value for t in _kw(node, "remappings").elts}
    assert remaps == {"image", "image/compressed"}


def _flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def test_params_yaml_matches_the_node():
    doc = yaml.safe_load(PARAMS_YAML.read_text())
    (section,) = doc.values()
    values = dict(_flatten(section["ros__parameters"]))
    assert set(values) == set(PARAM_NAMES), set(values) ^ set(PARAM_NAMES)
    for p in PARAMS:
        v = values[p.name]
        if p.kind == "str_list":
            assert [x for x in v if x] == p.default
        else:
            assert v == p.default, (p.name, v, p.default)
            assert type(v) is type(p.default), p.name


def test_package_manifest_and_build_files():
    import xml.etree.ElementTree as ET

    root = ET.parse(REPO / "package.xml").getroot()
    assert root.findtext("name") == "yolact_ros"
    assert root.find("export/build_type").text == "ament_cmake"
    deps = {e.text for e in root if e.tag.endswith("depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "vision_msgs", "rosidl_default_generators", "launch_ros"} <= deps
    assert root.findtext("member_of_group") == "rosidl_interface_packages"
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert "msg/InstanceMask.msg" in cmake and "msg/InstanceMaskArray.msg" in cmake
    code_lines = [ln for ln in cmake.splitlines() if not ln.strip().startswith("#")]
    # collides with rosidl's Python target on Humble/Jazzy (rosidl_python#141)
    assert not any("ament_python_install_package(" in ln for ln in code_lines)
