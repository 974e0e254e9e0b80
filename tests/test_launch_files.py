"""launch/*.launch.py against launch/stacks.yaml, scripts/launch_stack.py and the packages.

`launch` and `launch_ros` cannot be installed here (no wheels; the PyPI package named `launch` is
an unrelated tool), so the launch files run against small stand-ins put into `sys.modules` that
record what the real classes would be given. Their constructors keep the real signatures (keyword-only
arguments where ros2/launch and ros2/launch_ros have them), so a call the real classes would refuse
fails here too. The recorded actions are then "executed" for given launch argument values and
compared with what the description resolves to, and with the runner's command lines.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_DIR = ROOT / "launch"
sys.path.insert(0, str(LAUNCH_DIR))
sys.path.insert(0, str(ROOT / "tests" / "franka_standin"))
import lps_stacks  # noqa: E402

STACKS = ("sim", "eval", "real")


def fake_share(pkg: str) -> str:
    return f"/opt/share/{pkg}"


# ------------------------------------------------------------------------------ stand-in modules
class Recorded:
    """Base of every stand-in: keeps the constructor's arguments."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class Action(Recorded):
    # launch.Action.__init__(self, *, condition=None)
    def __init__(self, *, condition: Any = None, **kwargs: Any) -> None:
        super().__init__(condition=condition, **kwargs)


class LaunchDescription(Recorded):
    def __init__(self, initial_entities: Any = None, *, deprecated_reason: Any = None) -> None:
        super().__init__()
        self.entities = list(initial_entities or [])


class DeclareLaunchArgument(Action):
    def __init__(self, name: str, *, default_value: Any = None, description: Any = None,
                 choices: Any = None, **kwargs: Any) -> None:
        super().__init__(name=name, default_value=default_value, description=description, choices=choices,
                         **kwargs)


class IncludeLaunchDescription(Action):
    def __init__(self, launch_description_source: Any, *, launch_arguments: Any = None, **kwargs: Any) -> None:
        super().__init__(launch_description_source=launch_description_source,
                         launch_arguments=list(launch_arguments or []), **kwargs)


class EmitEvent(Action):
    def __init__(self, *, event: Any, **kwargs: Any) -> None:
        super().__init__(event=event, **kwargs)


class RegisterEventHandler(Action):
    def __init__(self, event_handler: Any, **kwargs: Any) -> None:
        super().__init__(event_handler=event_handler, **kwargs)


class IfCondition(Recorded):
    def __init__(self, predicate_expression: Any) -> None:
        super().__init__(predicate_expression=predicate_expression)


class UnlessCondition(Recorded):
    def __init__(self, predicate_expression: Any) -> None:
        super().__init__(predicate_expression=predicate_expression)


class PythonLaunchDescriptionSource(Recorded):
    def __init__(self, launch_file_path: Any) -> None:
        super().__init__(launch_file_path=launch_file_path)


class LaunchConfiguration(Recorded):
    def __init__(self, variable_name: Any, *, default: Any = None) -> None:
        super().__init__(variable_name=variable_name, default=default)


class TextSubstitution(Recorded):
    def __init__(self, *, text: str) -> None:
        super().__init__(text=text)


class FindPackageShare(Recorded):
    def __init__(self, package: Any) -> None:
        super().__init__(package=package)


class Node(Action):
    def __init__(self, *, executable: Any, package: Any = None, name: Any = None, namespace: Any = None,
                 exec_name: Any = None, parameters: Any = None, remappings: Any = None,
                 ros_arguments: Any = None, arguments: Any = None, **kwargs: Any) -> None:
        super().__init__(executable=executable, package=package, name=name, namespace=namespace,
                         parameters=parameters, remappings=remappings, arguments=arguments, **kwargs)


class LifecycleNode(Node):
    # Newer launch_ros makes both keyword-only and required.
    def __init__(self, *, name: Any, namespace: Any, **kwargs: Any) -> None:
        super().__init__(name=name, namespace=namespace, **kwargs)


class ChangeState(Recorded):
    def __init__(self, *, lifecycle_node_matcher: Any, transition_id: int) -> None:
        super().__init__(lifecycle_node_matcher=lifecycle_node_matcher, transition_id=transition_id)


class OnStateTransition(Recorded):
    def __init__(self, *, entities: Any, target_lifecycle_node: Any = None, transition: Any = None,
                 start_state: Any = None, goal_state: Any = None, matcher: Any = None, **kwargs: Any) -> None:
        super().__init__(entities=entities, target_lifecycle_node=target_lifecycle_node, transition=transition,
                         start_state=start_state, goal_state=goal_state, matcher=matcher)


def matches_action(target_action: Any) -> Any:
    def matcher(action: Any) -> bool:
        return action is target_action

    matcher.target = target_action
    return matcher


def _module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


@pytest.fixture
def standins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The `real` stack checks the installed franka_bringup before building anything.
    from prefix import make_prefix, with_prefix

    monkeypatch.setenv("AMENT_PREFIX_PATH", with_prefix(dict(os.environ), make_prefix(tmp_path, "v3.4.0"))
                       ["AMENT_PREFIX_PATH"])
    mods = {
        "launch": _module("launch", LaunchDescription=LaunchDescription),
        "launch.actions": _module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument,
                                  IncludeLaunchDescription=IncludeLaunchDescription, EmitEvent=EmitEvent,
                                  RegisterEventHandler=RegisterEventHandler),
        "launch.conditions": _module("launch.conditions", IfCondition=IfCondition,
                                     UnlessCondition=UnlessCondition),
        "launch.events": _module("launch.events", matches_action=matches_action),
        "launch.launch_description_sources": _module(
            "launch.launch_description_sources", PythonLaunchDescriptionSource=PythonLaunchDescriptionSource),
        "launch.substitutions": _module("launch.substitutions", LaunchConfiguration=LaunchConfiguration,
                                        TextSubstitution=TextSubstitution),
        "launch_ros": _module("launch_ros"),
        "launch_ros.actions": _module("launch_ros.actions", Node=Node, LifecycleNode=LifecycleNode),
        "launch_ros.event_handlers": _module("launch_ros.event_handlers", OnStateTransition=OnStateTransition),
        "launch_ros.events": _module("launch_ros.events"),
        "launch_ros.events.lifecycle": _module("launch_ros.events.lifecycle", ChangeState=ChangeState),
        "launch_ros.substitutions": _module("launch_ros.substitutions", FindPackageShare=FindPackageShare),
    }
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)


def load_launch_file(stack: str) -> LaunchDescription:
    spec = importlib.util.spec_from_file_location(f"lps_test_{stack}_launch", LAUNCH_DIR / f"{stack}.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


# ------------------------------------------------------------------------------ "executing" it
def evaluate(value: Any, args: dict[str, str]) -> str:
    """A substitution (or list of them, or plain text) as launch would perform it."""
    if isinstance(value, list):
        return "".join(evaluate(v, args) for v in value)
    if isinstance(value, LaunchConfiguration):
        return args[value.kwargs["variable_name"]]
    if isinstance(value, TextSubstitution):
        return value.kwargs["text"]
    if isinstance(value, FindPackageShare):
        return fake_share(value.kwargs["package"])
    if isinstance(value, str):
        return value
    raise AssertionError(f"unexpected launch value {value!r}")


def yaml_param(value: Any, args: dict[str, str]) -> Any:
    """launch_ros: substitutions are performed, then the text is read as YAML; plain values stay."""
    if isinstance(value, (bool, int, float)):
        return value
    text = evaluate(value, args)
    return "" if text == "" else yaml.safe_load(text)


def condition_true(condition: Any, args: dict[str, str]) -> bool:
    if condition is None:
        return True
    assert isinstance(condition, (IfCondition, UnlessCondition))
    value = lps_stacks.truthy(evaluate(condition.kwargs["predicate_expression"], args), "condition")
    return value if isinstance(condition, IfCondition) else not value


def execute(ld: LaunchDescription, given: dict[str, str]) -> dict[str, Any]:
    """What the launch description starts for `given` launch arguments (defaults from its declarations)."""
    declared = {e.kwargs["name"]: e for e in ld.entities if isinstance(e, DeclareLaunchArgument)}
    args = {name: d.kwargs["default_value"] for name, d in declared.items()}
    assert set(given) <= set(args), f"launch file does not declare {set(given) - set(args)}"
    args.update(given)
    out: dict[str, Any] = {"declared": declared, "nodes": {}, "includes": [], "lifecycle": {}}
    for e in ld.entities:
        if isinstance(e, Node) and condition_true(e.kwargs["condition"], args):
            k = e.kwargs
            params = k["parameters"] or []
            files = [evaluate(p, args) for p in params if not isinstance(p, dict)]
            overrides = {name: yaml_param(v, args) for p in params if isinstance(p, dict) for name, v in p.items()}
            out["nodes"][k["name"]] = dict(
                package=k["package"], executable=k["executable"], namespace=evaluate(k["namespace"], args),
                lifecycle=isinstance(e, LifecycleNode), parameter_files=files, parameters=overrides,
                remappings=[(evaluate(a, args), evaluate(b, args)) for a, b in k["remappings"] or []],
                arguments=[evaluate(a, args) for a in k["arguments"] or []], action=e)
        elif isinstance(e, IncludeLaunchDescription):
            out["includes"].append(dict(
                file=evaluate(e.kwargs["launch_description_source"].kwargs["launch_file_path"], args),
                arguments={evaluate(a, args): evaluate(b, args) for a, b in e.kwargs["launch_arguments"]}))
        elif isinstance(e, EmitEvent) and condition_true(e.kwargs["condition"], args):
            event = e.kwargs["event"]
            target = event.kwargs["lifecycle_node_matcher"].target
            out["lifecycle"].setdefault(target.kwargs["name"], []).append(("emit", event.kwargs["transition_id"]))
        elif isinstance(e, RegisterEventHandler) and condition_true(e.kwargs["condition"], args):
            h = e.kwargs["event_handler"]
            assert isinstance(h, OnStateTransition)
            name = h.kwargs["target_lifecycle_node"].kwargs["name"]
            for inner in h.kwargs["entities"]:
                out["lifecycle"].setdefault(name, []).append(
                    ("on", h.kwargs["start_state"], h.kwargs["goal_state"], inner.kwargs["event"].kwargs["transition_id"]))
    return out


CASES = {
    "sim": [{}, {"namespace": "arm1", "decoder": "/m/d.onnx", "steering_head": "/m/h.onnx", "seed": "7",
                 "autostart": "false", "trigger": "observation", "camera_enabled": "true"}],
    "eval": [{}, {"profile": "object_gap", "seed": "3", "autostart": "true", "namespace": "ev"}],
    "real": [{}, {"robot_ip": "172.16.0.2", "use_fake_hardware": "true", "load_gripper": "false",
                  "use_camera": "true", "namespace": "left", "robot_type": "fr3"}],
}


# ------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("stack", STACKS)
def test_launch_file_starts_what_the_description_says(standins: None, stack: str) -> None:
    from lifecycle_msgs.msg import Transition

    desc = lps_stacks.load().stack(stack)
    ld = load_launch_file(stack)
    for given in CASES[stack]:
        got = execute(ld, given)
        # Arguments: the same names, defaults and descriptions, every one described.
        assert list(got["declared"]) == list(desc.arguments)
        for name, a in desc.arguments.items():
            d = got["declared"][name].kwargs
            assert (d["default_value"], d["description"]) == (a.default, a.description)
            assert d["description"].strip()
            assert (d["choices"] or []) == list(a.choices)

        nodes, includes = lps_stacks.resolve(desc, given, fake_share)
        assert list(got["nodes"]) == [n.name for n in nodes], f"{stack} {given}: different node set"
        for n in nodes:
            g = got["nodes"][n.name]
            assert (g["package"], g["executable"], g["namespace"], g["lifecycle"]) == \
                (n.package, n.executable, n.namespace, n.lifecycle)
            assert g["parameter_files"] == list(n.parameter_files)
            assert g["parameters"] == n.parameters
            assert g["remappings"] == list(n.remappings)
            assert g["arguments"] == list(n.arguments)
            if n.lifecycle:
                steps = got["lifecycle"].get(n.name, [])
                spec = next(x for x in desc.nodes if x.name == n.name)
                if spec.self_start:
                    # The node brings itself up: `--autostart` iff autostart, no launch transitions.
                    assert steps == []
                    assert (lps_stacks.SELF_START_FLAG in g["arguments"]) == lps_stacks.truthy(
                        {**{k: a.default for k, a in desc.arguments.items()}, **given}["autostart"], "autostart")
                elif n.autostart:
                    # configure at start; activate only after configuring -> inactive succeeded.
                    assert ("emit", Transition.TRANSITION_CONFIGURE) in steps
                    assert ("on", "configuring", "inactive", Transition.TRANSITION_ACTIVATE) in steps
                else:
                    assert steps == []
        assert [(i["file"], i["arguments"]) for i in got["includes"]] == \
            [(i.file, i.arguments) for i in includes]


def test_argument_values_reach_the_processes(standins: None) -> None:
    """Not only equal to the description: the values given on the command line are the ones used."""
    got = execute(load_launch_file("sim"), CASES["sim"][1])
    policy, bridge = got["nodes"]["policy_node"], got["nodes"]["sim_bridge"]
    assert policy["namespace"] == bridge["namespace"] == "arm1"
    assert policy["parameters"]["decoder"] == "/m/d.onnx"
    assert policy["parameters"]["use_sim_time"] is True
    assert bridge["parameters"]["seed"] == 7 and bridge["parameters"]["camera_enabled"] is True
    assert got["lifecycle"] == {}  # autostart:=false
    ev = execute(load_launch_file("eval"), {})
    assert ev["nodes"]["policy_node"]["parameters"]["trigger"] == "observation"
    assert ev["nodes"]["policy_node"]["parameters"]["auto_resume_after_stale"] is False
    resuming = execute(load_launch_file("eval"), {"auto_resume_after_stale": "true"})
    assert resuming["nodes"]["policy_node"]["parameters"]["auto_resume_after_stale"] is True
    holding = execute(load_launch_file("eval"), {"perception": "true", "perception_hold_unseen_s": "0.3"})
    assert holding["nodes"]["object_perception"]["parameters"]["hold_unseen_s"] == 0.3
    assert execute(load_launch_file("eval"), {"perception": "true"})["nodes"]["object_perception"][
        "parameters"]["hold_unseen_s"] == 0.0
    assert ev["nodes"]["sim_bridge"]["parameter_files"][-1].endswith("sim_bridge_lockstep.yaml")
    assert ev["declared"]["autostart"].kwargs["default_value"] == "false"


def test_real_stack_includes_franka_bringup(standins: None) -> None:
    got = execute(load_launch_file("real"), CASES["real"][1])
    (inc,) = got["includes"]
    assert inc["file"] == fake_share("franka_bringup") + "/launch/franka.launch.py"
    assert inc["arguments"] == {"robot_ip": "172.16.0.2", "robot_type": "fr3", "load_gripper": "false",
                                "use_fake_hardware": "true", "fake_sensor_commands": "false",
                                "namespace": "left", "joint_state_rate": "200",
                                "controllers_yaml": fake_share("lps_franka_hw") + "/config/fr3_controllers.yaml"}
    assert "gripper_bridge" not in got["nodes"]  # load_gripper:=false
    assert {"realsense_node", "object_perception"} <= set(got["nodes"])
    spawner = got["nodes"]["fr3_arm_controller_spawner"]
    assert (spawner["package"], spawner["executable"]) == ("controller_manager", "spawner")
    assert spawner["arguments"][0] == "fr3_arm_controller"
    # ... declared in the controllers YAML handed to franka_bringup, with the policy's joints.
    controllers = yaml.safe_load((ROOT / "ros2_ws/src/lps_franka_hw/config/fr3_controllers.yaml").read_text())
    jtc = controllers["/**"]["fr3_arm_controller"]["ros__parameters"]
    assert jtc["joints"] == [f"fr3_joint{i}" for i in range(1, 8)] and jtc["command_interfaces"] == ["position"]
    declared = controllers["/**"]["controller_manager"]["ros__parameters"]
    # Replacing franka's file: what franka.launch.py spawns by name must be declared too.
    assert {"fr3_arm_controller", "joint_state_broadcaster", "franka_robot_state_broadcaster"} <= set(declared)
    assert declared["update_rate"] == 1000 and declared["thread_priority"] == 98
    assert jtc["set_last_command_interface_value_as_state_on_activation"] is False
    # The policy node waits for the supervisor's readiness, on the topic the supervisor publishes.
    policy, supervisor = got["nodes"]["policy_node"], got["nodes"]["franka_supervisor"]
    assert policy["parameters"]["readiness_topic"] == "robot_readiness"
    hw = yaml.safe_load((ROOT / "ros2_ws/src/lps_franka_hw/config/hw.yaml").read_text())
    assert hw["/**/franka_supervisor"]["ros__parameters"]["readiness_topic"] == "robot_readiness"
    assert supervisor["parameters"]["use_fake_hardware"] is True
    assert lps_stacks.SELF_START_FLAG in policy["arguments"] and got["lifecycle"] == {}
    # The controller the spawner loads is the one the policy node commands.
    policy_yaml = ROOT / "ros2_ws/src/lps_steering/config/policy_node.yaml"
    topic = yaml.safe_load(policy_yaml.read_text())["/**"]["ros__parameters"]["command_topic"]
    assert topic == f"{spawner['arguments'][0]}/joint_trajectory"


@pytest.mark.parametrize("stack", ["sim", "eval"])
def test_runner_command_lines_equal_the_launch_file(standins: None, stack: str) -> None:
    """scripts/launch_stack.py passes each process what launch_ros would (name, ns, files, overrides)."""
    spec = importlib.util.spec_from_file_location("lps_test_launch_stack", ROOT / "scripts" / "launch_stack.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    desc = lps_stacks.load().stack(stack)
    for given in CASES[stack]:
        nodes, _ = lps_stacks.resolve(desc, given, runner.find_share)
        got = execute(load_launch_file(stack), given)
        for n in nodes:
            cmd = runner.command_line(n)
            assert Path(cmd[0]).name == n.executable and Path(cmd[0]).parent.name == n.package
            parsed = _parse_ros_args(cmd[1:])
            g = got["nodes"][n.name]
            assert parsed["args"] == g["arguments"]
            assert parsed["name"] == n.name
            assert parsed["namespace"] == ("/" + g["namespace"] if g["namespace"] else None)
            assert [Path(f).name for f in parsed["files"]] == [Path(f).name for f in g["parameter_files"]]
            assert all(Path(f).is_file() for f in parsed["files"])
            assert parsed["params"] == g["parameters"]
            assert parsed["remaps"] == g["remappings"]


def test_runner_passes_on_every_line_a_process_writes_as_it_stops(tmp_path: Path) -> None:
    """A node's last lines (how it stopped, whether the arm holds) reach the runner's output before
    the runner exits."""
    talker = tmp_path / "talker.py"
    talker.write_text(
        "import os, signal, sys, time\n"
        "def last_words(*_):\n"
        "    for i in range(20000):\n"
        "        print(f'L{i}')\n"
        "    sys.stdout.flush()\n"
        "    os._exit(0)\n"
        "signal.signal(signal.SIGINT, last_words)\n"
        f"open({str(tmp_path / 'ready')!r}, 'w').close()\n"
        "while True:\n"
        "    time.sleep(0.05)\n")
    # The runner's Stack around one process that writes a burst as it stops, in a process of its
    # own that exits as soon as the stop returns: by then every line must be out.
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import importlib.util, os, sys, time, types\n"
        f"spec = importlib.util.spec_from_file_location('runner', {str(ROOT / 'scripts' / 'launch_stack.py')!r})\n"
        "runner = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(runner)\n"
        f"runner.command_line = lambda node: [sys.executable, {str(talker)!r}]\n"
        "stack = runner.Stack([types.SimpleNamespace(name='talker', fully_qualified_name='/talker')], 20.0)\n"
        "stack.start()\n"
        "deadline = time.monotonic() + 30.0\n"
        f"while not os.path.exists({str(tmp_path / 'ready')!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        "ok = stack.stop()\n"
        "sys.stdout.flush()\n"
        "os._exit(0 if ok else 1)\n")
    out = subprocess.run([sys.executable, str(driver)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("[talker] L")]
    assert len(lines) == 20000 and lines[-1] == "[talker] L19999", (len(lines), lines[-1:])


def _parse_ros_args(argv: list[str]) -> dict[str, Any]:
    """The subset of rcl's --ros-args grammar the runner writes, read back as rcl would."""
    i = argv.index("--ros-args")
    out: dict[str, Any] = {"args": argv[:i], "name": None, "namespace": None, "files": [], "params": {},
                           "remaps": []}
    rest = argv[i + 1:]
    for flag, value in zip(rest[::2], rest[1::2], strict=True):
        key, _, text = value.partition(":=")
        if flag == "--params-file":
            out["files"].append(value)
        elif flag == "-p":
            out["params"][key] = yaml.safe_load(text) if text != "''" else ""
        elif flag == "-r" and key == "__node":
            out["name"] = text
        elif flag == "-r" and key == "__ns":
            out["namespace"] = text
        elif flag == "-r":
            out["remaps"].append((key, text))
        else:
            raise AssertionError(f"unexpected ros argument {flag} {value}")
    return out


# ------------------------------------------------------------------------------ packages
def _console_scripts(package: str) -> dict[str, str] | None:
    for setup in [*ROOT.glob("ros2_ws/src/*/setup.py"), ROOT / "sim" / "setup.py"]:
        tree = ast.parse(setup.read_text())
        names = {n.targets[0].id: n.value.value for n in tree.body
                 if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
                 and isinstance(n.value, ast.Constant)}
        if names.get("package_name") != package:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values, strict=True):
                    if isinstance(k, ast.Constant) and k.value == "console_scripts":
                        entries = [ast.literal_eval(e) for e in v.elts]
                        return {e.split("=")[0].strip(): e.split("=")[1].strip() for e in entries}
        return {}
    return None


def _repository_nodes() -> list[tuple[str, lps_stacks.NodeSpec]]:
    d = lps_stacks.load()
    return [(s.name, n) for s in d.stacks.values() for n in s.nodes if n.package in d.repository_packages]


def _package_dir(package: str) -> Path | None:
    for candidate in (ROOT / "ros2_ws" / "src" / package, ROOT / package.replace("lps_", "", 1)):
        if (candidate / "setup.py").is_file() and _console_scripts(package) is not None:
            return candidate
    return None


@pytest.mark.parametrize("stack,node", _repository_nodes(), ids=lambda x: getattr(x, "name", x))
def test_executables_and_parameters_exist(stack: str, node: lps_stacks.NodeSpec) -> None:
    pkg_dir = _package_dir(node.package)
    if pkg_dir is None:
        pytest.skip(f"package {node.package} is not in this checkout yet (hardware engineer's): "
                    f"{node.executable} cannot be checked")
    scripts = _console_scripts(node.package)
    assert node.executable in scripts, f"{node.package} has no console script {node.executable!r}: {sorted(scripts)}"
    module_name = scripts[node.executable].split(":")[0]
    declared = _declared_parameters(pkg_dir / (module_name.replace(".", "/") + ".py"))
    declared |= {"use_sim_time"}  # rclpy declares it on every node
    unknown = set(node.parameters) - declared
    assert not unknown, f"{stack}/{node.name}: parameters {sorted(unknown)} are not declared by {module_name}"
    for file_value in node.parameter_files:
        parts = lps_stacks.parse_value(file_value)
        # The node's own package, or another of this repository (the sim's camera extrinsics for the
        # robot's perception node): a file the tests can read.
        assert parts[0][0] == "pkg" and parts[0][1] in lps_stacks.load().repository_packages, (
            f"{file_value}: parameter files come from this repository's packages")
        owner = pkg_dir if parts[0][1] == node.package else _package_dir(parts[0][1])
        assert owner is not None, f"{file_value}: package {parts[0][1]} is not in this checkout"
        path = owner / parts[1][1].lstrip("/")
        assert path.is_file(), f"{stack}/{node.name}: parameter file {path} missing"
        params = _file_parameters(yaml.safe_load(path.read_text()), node.name)
        unknown = set(params) - declared
        assert not unknown, f"{path.name}: {sorted(unknown)} are not parameters of {module_name}"


def _declared_parameters(source: Path) -> set[str]:
    """Keys of the node module's PARAMETERS table (name -> default, description), read from the source
    (an import would pull in MuJoCo, cameras...; the source is what the tree ships). A table the
    module imports (`from pkg.mod import PARAMETERS`) is read from that module of the package."""
    for stmt in ast.parse(source.read_text()).body:
        target = stmt.target if isinstance(stmt, ast.AnnAssign) else (
            stmt.targets[0] if isinstance(stmt, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "PARAMETERS" and isinstance(stmt.value, ast.Dict):
            return {k.value for k in stmt.value.keys if isinstance(k, ast.Constant)}
        if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0 and any(
                a.name == "PARAMETERS" and a.asname in (None, "PARAMETERS") for a in stmt.names):
            package_root = next(p for p in source.parents if p.name == stmt.module.split(".")[0]).parent
            return _declared_parameters(package_root / (stmt.module.replace(".", "/") + ".py"))
    raise AssertionError(f"{source} has no PARAMETERS table to check the launch parameters against")


def _file_parameters(data: dict[str, Any], node_name: str) -> dict[str, Any]:
    """Parameters a ROS parameter file gives a node of this name (wildcard and name-keyed blocks)."""
    out: dict[str, Any] = {}
    for key in ("/**", "**", node_name, f"/{node_name}", f"/**/{node_name}"):
        if key in data:
            out.update(data[key].get("ros__parameters", {}))
    assert out, f"no parameters for {node_name!r} in a file with keys {sorted(data)}"
    return out


# ------------------------------------------------------------------------------ refusals
def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(lps_stacks.DESCRIPTION_PATH.read_text())
    mutate(data)
    path = tmp_path / "stacks.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_description_refusals_name_the_field(tmp_path: Path) -> None:
    def undeclared(d):
        d["stacks"]["sim"]["nodes"][0]["parameters"]["seed"] = "$(arg no_such_arg)"

    def bad_default(d):
        d["arguments"]["autostart"]["default"] = "maybe"

    def unknown_key(d):
        d["stacks"]["eval"]["nodes"][1]["paramters"] = {}

    def bad_substitution(d):
        d["stacks"]["sim"]["nodes"][0]["namespace"] = "$(env HOME)"

    for mutate, text in ((undeclared, "no_such_arg"), (bad_default, "arguments.autostart"),
                         (unknown_key, "paramters"), (bad_substitution, "$(env HOME)")):
        with pytest.raises(lps_stacks.StackError, match=text.replace("$", r"\$").replace("(", r"\(")
                           .replace(")", r"\)")):
            lps_stacks.load(_write(tmp_path, mutate))
    desc = lps_stacks.load().stack("sim")
    with pytest.raises(lps_stacks.StackError, match="trigger"):
        lps_stacks.resolve(desc, {"trigger": "sometimes"}, fake_share)
    with pytest.raises(lps_stacks.StackError, match="no argument"):
        lps_stacks.resolve(desc, {"robot_ip": "1.2.3.4"}, fake_share)


def test_remappings_and_conditions_pass_through(standins: None, tmp_path: Path) -> None:
    """The shipped stacks use no remapping: check the path with a description that does."""
    import lps_launch

    def add(d):
        node = d["stacks"]["sim"]["nodes"][1]
        node["remappings"] = [["joint_states", "$(arg namespace)/joint_states_filtered"]]
        node["condition"] = "$(arg camera_enabled)"
        node["self_start"] = False  # a self-started node takes no condition (its two variants do)

    path = _write(tmp_path, add)
    ld = lps_launch.build("sim", path)
    desc = lps_stacks.load(path).stack("sim")
    for given in ({"namespace": "a", "camera_enabled": "true"}, {"camera_enabled": "false"}):
        got = execute(ld, given)
        nodes, _ = lps_stacks.resolve(desc, given, fake_share)
        assert [n.name for n in nodes] == list(got["nodes"])
        for n in nodes:
            assert got["nodes"][n.name]["remappings"] == list(n.remappings)
    assert execute(ld, {"namespace": "a", "camera_enabled": "true"})["nodes"]["policy_node"]["remappings"] == \
        [("joint_states", "a/joint_states_filtered")]
    assert "policy_node" not in execute(ld, {"camera_enabled": "false"})["nodes"]


@pytest.mark.parametrize("tag", [None, "v3.1.1", "v0.1.13"])
def test_real_launch_file_refuses_a_missing_or_too_old_franka(standins: None, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path, tag: str | None) -> None:
    """`ros2 launch` prints the exception generate_launch_description raises and exits non-zero."""
    from prefix import make_prefix

    monkeypatch.setenv("AMENT_PREFIX_PATH", str(make_prefix(tmp_path / "old", tag or "v3.4.0",
                                                            with_bringup=tag is not None)))
    with pytest.raises(RuntimeError) as refused:
        load_launch_file("real")
    text = str(refused.value)
    assert "needs franka_bringup >=3.2.0,<4" in text and "Dockerfile.robot" in text
    assert ("is not installed" in text) if tag is None else (" is installed (" in text)
    # The sim stacks include nothing: no franka needed.
    assert execute(load_launch_file("sim"), {})["includes"] == []


def test_installed_code_finds_the_runner_and_descriptions_through_the_package_share(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Away from a checkout (no LPS_ROOT, another working directory) the evaluator still starts stacks."""
    from ament_index_python.packages import get_package_share_directory
    from lps_steering.evaluation.runner import find_launch_runner

    monkeypatch.delenv("LPS_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = find_launch_runner()
    assert runner == Path(get_package_share_directory("lps_steering")) / "launch" / "launch_stack.py"
    env = {k: v for k, v in os.environ.items() if k != "LPS_ROOT"}
    out = subprocess.run([sys.executable, str(runner), "eval", "--print"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "sim_bridge" in out.stdout and "policy_node" in out.stdout
    monkeypatch.setenv("LPS_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="LPS_ROOT"):
        find_launch_runner()
