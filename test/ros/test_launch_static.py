"""Checks of launch/segment.launch.py, yolact_ros/ros/launch_args.py and config/yolact.yaml.

CI cannot run `ros2 launch` (launch/launch_ros are not on any registry here), so:
- static checks: the launch file compiles, and every executable, file, launch argument and
  parameter name it refers to exists;
- the launch file is run against a small model of launch/launch_ros (stand-in modules with
  the upstream signatures it uses; declarations apply defaults, OpaqueFunctions run in
  order), and the parameters the node would get are computed the way launch_ros and rcl do
  it: files and override dicts in order, the last definition wins, and entries under the
  node's full name win over the `/**` wildcard (launch_ros writes a Node's override dict under
  its full name when name and namespace are given);
- with a ROS runtime, that model of rcl is compared with real rcl, and every log level the
  launch file passes is checked to be accepted by rcl.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest
import yaml

from yolact_ros.ros import launch_args
from yolact_ros.ros.launch_args import (
    BUILTIN_PARAMS,
    LAUNCH_ARGUMENT_NAMES,
    LAUNCH_ARGUMENTS,
    LaunchArgumentError,
    node_parameters,
    ros_arguments,
)
from yolact_ros.ros.names import EXECUTABLE
from yolact_ros.ros.params import PARAM_NAMES, PARAMS

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch" / "segment.launch.py"
PARAMS_YAML = REPO / "config" / "yolact.yaml"
EXPECTED_ARGS = {
    "weights",
    "config",
    "image",
    "namespace",
    "params_file",
    "device",
    "image_transport",
    "autostart",
    "use_sim_time",
    "log_level",
}
FQN = "/yolact/yolact_node"
DEFAULTS = {**{p.name: p.default for p in PARAMS}, "use_sim_time": False}


# --------------------------------------------------------------------------------------------
# static checks of the launch file's source
# --------------------------------------------------------------------------------------------


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


def test_launch_file_compiles_and_imports_what_exists(tree):
    imported = {
        a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module == "yolact_ros.ros.launch_args"
        for a in n.names
    }
    assert imported, "the launch file must take its decisions from yolact_ros.ros.launch_args"
    assert all(hasattr(launch_args, name) for name in imported), imported


def test_declared_arguments_table():
    assert EXPECTED_ARGS <= set(LAUNCH_ARGUMENT_NAMES), EXPECTED_ARGS - set(LAUNCH_ARGUMENT_NAMES)
    assert len(set(LAUNCH_ARGUMENT_NAMES)) == len(LAUNCH_ARGUMENT_NAMES)
    by_name = {a.name: a for a in LAUNCH_ARGUMENTS}
    assert by_name["namespace"].default == "yolact"
    assert by_name["image"].default == "/camera/image_raw"
    assert all(a.description for a in LAUNCH_ARGUMENTS)
    kinds = {**{p.name: p.kind for p in PARAMS}, **BUILTIN_PARAMS}
    for a in LAUNCH_ARGUMENTS:
        assert a.role in ("launch", "parameter", "ros_argument"), a
        if a.role == "parameter":  # passed under its own name: it must be a node parameter
            assert a.name in kinds, a.name
    assert {a.name for a in LAUNCH_ARGUMENTS if a.role == "parameter"} == {
        "weights",
        "config",
        "device",
        "image_transport",
        "autostart",
        "use_sim_time",
        "cameras",
    }
    assert kinds["autostart"] == kinds["use_sim_time"] == "bool"


def test_launch_configuration_names_used_are_declared(tree):
    used = {c.args[0].value for c in _calls(tree, "LaunchConfiguration") if isinstance(c.args[0], ast.Constant)}
    # context.launch_configurations[...] read inside the OpaqueFunction
    used |= {
        n.slice.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) and isinstance(n.slice.value, str)
    }
    used |= {c.args[0].value for c in _calls(tree, "get") if c.args and isinstance(c.args[0], ast.Constant)}
    assert {"image", "namespace", "params_file"} <= used, used
    assert used <= set(LAUNCH_ARGUMENT_NAMES), used - set(LAUNCH_ARGUMENT_NAMES)


def test_node_call(tree):
    node = _node_call(tree)
    assert _kw(node, "package").value == "yolact_ros"
    assert _kw(node, "executable").value == EXECUTABLE
    remaps = _kw(node, "remappings")  # computed by launch_args.image_remappings (tested below)
    assert isinstance(remaps, ast.Call) and remaps.func.id == "image_remappings"


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
    # the launch file imports this module from the installed package
    installed = list((ros_runtime.parents[2] / "lib").glob("python3*/site-packages/yolact_ros/ros/launch_args.py"))
    assert installed, "yolact_ros/ros/launch_args.py is not installed (rebuild: bash scripts/build_ws.sh)"


# --------------------------------------------------------------------------------------------
# a model of launch / launch_ros, to run the launch file
# --------------------------------------------------------------------------------------------


class _Recorder(dict):
    """context.launch_configurations that records every name read."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


class _Context:
    def __init__(self, given):
        self.launch_configurations = _Recorder(given)


def _fake_modules(share: Path) -> dict[str, types.ModuleType]:
    """Stand-ins with the upstream (Humble/Jazzy) signatures; keyword-only where upstream is."""
    mods = {
        name: types.ModuleType(name)
        for name in (
            "launch",
            "launch.actions",
            "launch.substitutions",
            "launch.event_handlers",
            "launch.events",
            "launch_ros",
            "launch_ros.actions",
            "launch_ros.parameter_descriptions",
            "ament_index_python",
            "ament_index_python.packages",
        )
    }

    class LaunchDescription:
        def __init__(self, initial_entities=None, *, deprecated_reason=None):
            self.entities = list(initial_entities or [])

    class DeclareLaunchArgument:
        def __init__(self, name, *, default_value=None, description=None, choices=None):
            assert isinstance(name, str) and (default_value is None or isinstance(default_value, str))
            self.name, self.default_value, self.description = name, default_value, description

        def execute(self, context):
            if self.name not in context.launch_configurations:
                if self.default_value is None:
                    raise RuntimeError(f"Required launch argument '{self.name}' was not provided")
                context.launch_configurations[self.name] = self.default_value

    class OpaqueFunction:
        def __init__(self, *, function, args=None, kwargs=None):
            self.function, self.args, self.kwargs = function, args or [], kwargs or {}

    class RegisterEventHandler:
        def __init__(self, event_handler, **kwargs):
            self.event_handler = event_handler

    class OnProcessExit:
        def __init__(self, *, target_action=None, on_exit, **kwargs):
            assert callable(on_exit) or isinstance(on_exit, list)
            self.target_action, self.on_exit = target_action, on_exit

    class Shutdown:
        def __init__(self, *, reason="reason not given", due_to_sigint=False):
            self.reason = reason

    class EmitEvent:
        def __init__(self, *, event, **kwargs):
            self.event = event

    class LaunchConfiguration:
        def __init__(self, variable_name, *, default=None):
            self.variable_name = variable_name

    class ParameterValue:
        def __init__(self, value, *, value_type=None):
            self.value, self.value_type = value, value_type

    execute_process_kwargs = {
        "output",
        "emulate_tty",
        "respawn",
        "respawn_delay",
        "cwd",
        "env",
        "additional_env",
        "sigterm_timeout",
        "sigkill_timeout",
        "prefix",
    }

    class Node:
        def __init__(
            self,
            *,
            executable,
            package=None,
            name=None,
            namespace=None,
            exec_name=None,
            parameters=None,
            remappings=None,
            ros_arguments=None,
            arguments=None,
            **kwargs,
        ):
            assert set(kwargs) <= execute_process_kwargs, set(kwargs) - execute_process_kwargs
            assert parameters is None or isinstance(parameters, list)
            self.package, self.executable, self.name, self.namespace = package, executable, name, namespace
            self.parameters, self.remappings = parameters, remappings
            self.ros_arguments, self.arguments = ros_arguments, arguments

    def get_package_share_directory(package_name):
        if package_name != "yolact_ros":
            raise LookupError(package_name)
        return str(share)

    mods["launch"].LaunchDescription = LaunchDescription
    mods["launch.actions"].DeclareLaunchArgument = DeclareLaunchArgument
    mods["launch.actions"].OpaqueFunction = OpaqueFunction
    mods["launch.actions"].RegisterEventHandler = RegisterEventHandler
    mods["launch.actions"].EmitEvent = EmitEvent
    mods["launch.event_handlers"].OnProcessExit = OnProcessExit
    mods["launch.events"].Shutdown = Shutdown
    mods["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    mods["launch_ros.actions"].Node = Node
    mods["launch_ros.parameter_descriptions"].ParameterValue = ParameterValue
    mods["ament_index_python.packages"].get_package_share_directory = get_package_share_directory
    return mods


@pytest.fixture
def launch_file(monkeypatch):
    """The launch file loaded against the stand-ins; ``run(given)`` launches it."""
    mods = _fake_modules(share=REPO)  # the source tree has config/yolact.yaml where share has
    for name, module in mods.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("segment_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    actions, ros_mods = mods["launch.actions"], mods["launch_ros.actions"]

    def run(given: dict[str, str]):
        context = _Context(given)
        declared, nodes, handlers = [], [], []

        def visit(entity):
            if isinstance(entity, mods["launch"].LaunchDescription):
                for e in entity.entities:
                    visit(e)
            elif isinstance(entity, actions.DeclareLaunchArgument):
                declared.append(entity.name)
                entity.execute(context)
            elif isinstance(entity, actions.OpaqueFunction):
                for e in entity.function(context, *entity.args, **entity.kwargs) or []:
                    visit(e)
            elif isinstance(entity, ros_mods.Node):
                nodes.append(entity)
            elif isinstance(entity, actions.RegisterEventHandler):
                handlers.append(entity.event_handler)
            else:
                raise TypeError(f"unexpected launch entity {entity!r}")

        visit(module.generate_launch_description())
        assert len(nodes) == 1
        return types.SimpleNamespace(
            node=nodes[0],
            declared=declared,
            read=context.launch_configurations.read,
            handlers=handlers,
            mods=mods,
            ParameterValue=mods["launch_ros.parameter_descriptions"].ParameterValue,
        )

    return run


def _fqn(namespace: str | None, name: str) -> str:
    ns = "/" + (namespace or "").strip("/")
    return ns.rstrip("/") + "/" + name


def _evaluate(value, parameter_value_cls):
    """A dict value as launch_ros evaluates it."""
    if isinstance(value, parameter_value_cls):
        if value.value_type is str:
            return str(value.value)
        value = value.value
    if isinstance(value, str):  # launch_ros parses a plain string as YAML
        value = yaml.safe_load(value)
        if value is None:
            raise TypeError("launch_ros refuses a parameter value that parses as YAML null")
    assert isinstance(value, (bool, int, float, str)), value
    return value


def _flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _sources(parameters, fqn, parameter_value_cls=None):
    """The ``--params-file`` contents launch_ros hands the node, in order: [{node key: params}]."""
    out = []
    for item in parameters:
        if isinstance(item, dict):
            # launch_ros writes it under the node's full name (name and namespace given)
            # (parameter_value_cls None: typed values as node_parameters returns them)
            out.append(
                {
                    fqn: {
                        k: v if parameter_value_cls is None else _evaluate(v, parameter_value_cls)
                        for k, v in item.items()
                    }
                }
            )
        else:
            doc = yaml.safe_load(Path(item).read_text()) or {}
            out.append({key: dict(_flatten(section.get("ros__parameters", {}))) for key, section in doc.items()})
    return out


def _overrides(sources, fqn):
    """rcl/rclpy: per node key the last file wins; then `/**` is applied, then the full name
    (a key without the leading '/' counts as if it had one; other wildcards are not matched)."""
    by_key: dict[str, dict] = {}
    for source in sources:
        for key, values in source.items():
            by_key.setdefault("/" + key.lstrip("/"), {}).update(values)
    return {**by_key.get("/**", {}), **by_key.get(fqn, {})}


def _effective(run_result):
    node = run_result.node
    fqn = _fqn(node.namespace, node.name)
    return {**DEFAULTS, **_overrides(_sources(node.parameters, fqn, run_result.ParameterValue), fqn)}


@pytest.fixture
def user_yaml(tmp_path):
    def write(doc, name="my.yaml"):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc))
        return str(path)

    return write


def _file_values(**values):
    return {"/**": {"ros__parameters": values}}


# --------------------------------------------------------------------------------------------
# what the node gets
# --------------------------------------------------------------------------------------------


def test_defaults_pass_only_the_params_file(launch_file):
    r = launch_file({})
    assert r.declared == list(LAUNCH_ARGUMENT_NAMES)
    assert r.read <= set(r.declared), r.read - set(r.declared)
    assert r.node.parameters == [str(PARAMS_YAML)]
    assert r.node.ros_arguments is None
    assert (r.node.package, r.node.executable, r.node.name, r.node.namespace) == (
        "yolact_ros",
        "yolact_node",
        "yolact_node",
        "yolact",
    )
    assert r.node.remappings == [("image", "/camera/image_raw"), ("image/compressed", "/camera/image_raw/compressed")]
    assert _fqn(r.node.namespace, r.node.name) == FQN
    eff = _effective(r)
    for name in ("classes", "cameras"):  # the file's [""] = empty, as the node reads it
        eff[name] = [c for c in eff[name] if c]
    assert eff == DEFAULTS  # the shipped file holds the node's defaults


def test_params_file_alone_is_not_overridden(launch_file, user_yaml):
    path = user_yaml(
        _file_values(
            weights="/data/w.pth",
            device="cpu",
            image_transport="compressed",
            autostart=False,
            use_sim_time=True,
            config="yolact_base",
        )
    )
    r = launch_file({"params_file": path})
    assert r.node.parameters == [path]
    eff = _effective(r)
    assert (eff["weights"], eff["device"], eff["image_transport"]) == ("/data/w.pth", "cpu", "compressed")
    assert (eff["autostart"], eff["use_sim_time"], eff["config"]) == (False, True, "yolact_base")
    assert eff["score_threshold"] == DEFAULTS["score_threshold"]


def test_given_argument_wins_and_the_other_file_values_survive(launch_file, user_yaml):
    path = user_yaml(_file_values(weights="/data/w.pth", device="cpu", image_transport="compressed"))
    r = launch_file({"params_file": path, "device": "cuda:1"})
    assert r.node.parameters[0] == path and len(r.node.parameters) == 2
    assert set(r.node.parameters[1]) == {"device"}
    eff = _effective(r)
    assert (eff["weights"], eff["device"], eff["image_transport"]) == ("/data/w.pth", "cuda:1", "compressed")


def test_argument_wins_over_an_exact_node_name_in_the_file(launch_file, user_yaml):
    path = user_yaml(
        {
            FQN: {"ros__parameters": {"device": "cpu", "weights": "/a.pth"}},
            "yolact/yolact_node": {"ros__parameters": {"top_k": 7}},  # rcl adds the '/'
            "/other/yolact_node": {"ros__parameters": {"top_k": 9}},
        }
    )
    r = launch_file({"params_file": path, "device": "cuda"})
    eff = _effective(r)
    assert (eff["device"], eff["weights"], eff["top_k"]) == ("cuda", "/a.pth", 7)


def test_namespace_changes_the_node_name(launch_file, user_yaml):
    path = user_yaml(
        {"/robot1/yolact_node": {"ros__parameters": {"device": "cpu"}}, FQN: {"ros__parameters": {"device": "cuda"}}}
    )
    r = launch_file({"params_file": path, "namespace": "robot1", "image": "/cam/rgb"})
    assert _fqn(r.node.namespace, r.node.name) == "/robot1/yolact_node"
    assert _effective(r)["device"] == "cpu"
    assert r.node.remappings == [("image", "/cam/rgb"), ("image/compressed", "/cam/rgb/compressed")]


def test_types_of_the_passed_arguments(launch_file, user_yaml):
    path = user_yaml(_file_values(config="yolact_base", weights="/a.pth"))
    r = launch_file(
        {
            "params_file": path,
            "config": "",
            "weights": "123",
            "autostart": "False",
            "use_sim_time": "true",
            "image_transport": "raw",
            "log_level": "DEBUG",
        }
    )
    overrides = r.node.parameters[1]
    # strings are wrapped so launch_ros keeps them strings ('' and '123' are not YAML-parsed)
    for name in ("config", "weights", "image_transport"):
        assert isinstance(overrides[name], r.ParameterValue) and overrides[name].value_type is str, name
    assert overrides["autostart"] is False and overrides["use_sim_time"] is True
    eff = _effective(r)
    assert (eff["config"], eff["weights"], eff["autostart"], eff["use_sim_time"]) == ("", "123", False, True)
    assert r.node.ros_arguments == ["--log-level", "debug"]


def test_every_passed_parameter_is_a_node_parameter(launch_file):
    given = {
        "weights": "/a.pth",
        "config": "yolact_base",
        "device": "cpu",
        "image_transport": "compressed",
        "autostart": "true",
        "use_sim_time": "false",
        "log_level": "warn",
    }
    r = launch_file(given)
    (file, overrides) = r.node.parameters
    assert file == str(PARAMS_YAML)
    assert set(overrides) <= set(PARAM_NAMES) | set(BUILTIN_PARAMS), set(overrides) - set(PARAM_NAMES)
    assert set(overrides) == set(given) - {"log_level"}


def test_bad_values_are_one_line_errors(launch_file):
    for given, needle in [
        ({"autostart": "yes"}, "autostart"),
        ({"use_sim_time": ""}, "use_sim_time"),
        ({"device": "gpu"}, "device"),
        ({"image_transport": "jpeg"}, "image_transport"),
        ({"log_level": "verbose"}, "log_level"),
        ({"params_file": "/no/such.yaml"}, "params_file"),
    ]:
        with pytest.raises(LaunchArgumentError) as info:
            launch_file(given)
        assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)


# --------------------------------------------------------------------------------------------
# launch_args directly
# --------------------------------------------------------------------------------------------


def test_node_parameters_pure(user_yaml):
    path = user_yaml(_file_values(device="cpu"))
    assert node_parameters({}, path) == [path]
    launch_only = {"params_file": path, "namespace": "x", "image": "/i", "log_level": "info"}
    assert node_parameters(launch_only, path) == [path]
    assert node_parameters({"device": "cuda:0", "autostart": "0"}, path) == [
        path,
        {"device": "cuda:0", "autostart": False},
    ]
    assert node_parameters({"weights": "/w.pth"}, "") == [{"weights": "/w.pth"}]  # params_file:='' = no file
    rel = os.path.relpath(path)
    assert node_parameters({}, rel) == [os.path.abspath(rel)]
    with pytest.raises(LaunchArgumentError, match="unknown launch argument"):
        node_parameters({"devise": "cpu"}, path)


def test_ros_arguments_pure():
    assert ros_arguments({}) == []
    assert ros_arguments({"log_level": " Warning "}) == ["--log-level", "warn"]  # rcl refuses 'warning'
    for level in launch_args.LOG_LEVELS:
        assert ros_arguments({"log_level": level.upper()}) == ["--log-level", level]
    with pytest.raises(LaunchArgumentError, match="log_level"):
        ros_arguments({"log_level": ""})


def test_given_arguments_selects_declared_names():
    assert launch_args.given_arguments({"device": "cpu", "other": "x", "global_params": []}) == {"device": "cpu"}


# --------------------------------------------------------------------------------------------
# the model of rcl against real rcl (ROS runtime)
# --------------------------------------------------------------------------------------------


def test_parameter_model_matches_rcl(ros_runtime, user_yaml, tmp_path):
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    user = user_yaml(
        {
            "/**": {"ros__parameters": {"device": "cpu", "weights": "/a.pth", "config": "x"}},
            "yolact/yolact_node": {"ros__parameters": {"top_k": 7}},
            "/other/yolact_node": {"ros__parameters": {"top_k": 9}},
        }
    )
    late_wildcard = user_yaml({"/**": {"ros__parameters": {"device": "cuda:3", "threads": 2}}}, "late.yaml")
    overrides = {"device": "cuda:1", "config": "", "autostart": False}
    parameters = node_parameters({"device": "cuda:1", "config": "", "autostart": "false"}, user)
    assert parameters == [user, overrides]
    # launch_ros: a dict becomes a file keyed by the node's full name; add a later wildcard file
    dict_file = tmp_path / "launch_params.yaml"
    dict_file.write_text(yaml.dump({FQN: {"ros__parameters": overrides}}))
    files = [user, str(dict_file), late_wildcard]
    expected = _overrides(_sources([user, overrides, late_wildcard], FQN), FQN)
    assert expected == {
        "device": "cuda:1",
        "weights": "/a.pth",
        "config": "",
        "autostart": False,
        "top_k": 7,
        "threads": 2,
    }

    context = Context()
    args = ["yolact_node", "--ros-args"] + [a for f in files for a in ("--params-file", f)]
    rclpy.init(context=context, args=args)
    try:
        node = Node(
            "yolact_node", namespace="yolact", context=context, automatically_declare_parameters_from_overrides=True
        )
        try:
            got = {name: node.get_parameter(name).value for name in expected}
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert got == expected


def test_rcl_accepts_the_log_levels(ros_runtime):
    import rclpy
    from rclpy.context import Context

    # rcl refuses an unknown level at init; end with info, the default, for later tests
    for level in launch_args.LOG_LEVELS + ("warning", "info"):
        context = Context()
        rclpy.init(context=context, args=["yolact_node", "--ros-args", *ros_arguments({"log_level": level})])
        rclpy.shutdown(context=context)


# --------------------------------------------------------------------------------------------
# the shipped params file and package files
# --------------------------------------------------------------------------------------------


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


def test_launch_exits_non_zero_when_the_node_fails(launch_file):
    """The node's exit ends the launch: cleanly for code 0, with a raised reason (which makes
    `ros2 launch` exit 1) for any other code or a signal."""
    run = launch_file({"weights": "/w.pth"})
    (handler,) = run.handlers
    assert handler.target_action is run.node
    done = handler.on_exit(types.SimpleNamespace(returncode=0, action=run.node), None)
    (emit,) = done
    assert isinstance(emit, run.mods["launch.actions"].EmitEvent)
    assert isinstance(emit.event, run.mods["launch.events"].Shutdown)
    for code, text in ((1, "exited with code 1"), (2, "exited with code 2"), (-9, "killed by SIGKILL")):
        with pytest.raises(RuntimeError, match=text):
            handler.on_exit(types.SimpleNamespace(returncode=code, action=run.node), None)
    assert launch_args.node_exit_failure(0) is None


def test_multi_camera_launch(launch_file):
    """cameras and a per-camera topic map: the list goes to the node, each camera's input is remapped."""
    run = launch_file(
        {
            "weights": "/w.pth",
            "cameras": "[front, 'left:compressed', rear]",
            "camera_images": "{front: /cam_front/image_raw, left: /cam_left/image_raw}",
        }
    )
    overrides = run.node.parameters[-1]
    assert overrides["cameras"] == ["front", "left:compressed", "rear"]
    remaps = dict(run.node.remappings)
    assert remaps["front/image"] == "/cam_front/image_raw"
    assert remaps["left/image/compressed"] == "/cam_left/image_raw/compressed"
    assert "rear/image" not in remaps  # unmapped: <namespace>/rear/image
    assert remaps["image"] == "/camera/image_raw"  # the single-camera default stays
    for given, text in (
        ({"cameras": "front"}, "YAML list"),
        ({"cameras": "[front]", "camera_images": "{back: /x}"}, "not in cameras"),
        ({"camera_images": "[a]"}, "YAML map"),
        ({"cameras": "[front, front]"}, "listed twice"),
    ):
        with pytest.raises(LaunchArgumentError, match=text):
            launch_file({"weights": "/w.pth", **given})
    assert launch_file({"weights": "/w.pth", "cameras": "[]"}).node.parameters[-1]["cameras"] == [""]
