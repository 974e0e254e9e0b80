"""Build a `launch.LaunchDescription` for one stack of `stacks.yaml` (used by `*.launch.py`).

Every launch action is made here from the description, so `sim.launch.py`, `eval.launch.py` and
`real.launch.py` are one line each and cannot drift from `scripts/launch_stack.py`, which reads the
same description. `launch` / `launch_ros` are imported inside `build()`: this module stays
importable (for the tests) where ROS 2 is installed from PyPI without them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lps_stacks  # noqa: E402


def build(stack_name: str, description_path: str | Path = lps_stacks.DESCRIPTION_PATH) -> Any:
    from launch.actions import (
        DeclareLaunchArgument,
        EmitEvent,
        IncludeLaunchDescription,
        RegisterEventHandler,
    )
    from launch.conditions import IfCondition, UnlessCondition
    from launch.events import matches_action
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.substitutions import LaunchConfiguration, TextSubstitution
    from launch_ros.actions import LifecycleNode, Node
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from launch_ros.substitutions import FindPackageShare
    from lifecycle_msgs.msg import Transition

    from launch import LaunchDescription

    stack = lps_stacks.load(description_path).stack(stack_name)
    # Before any action exists: `ros2 launch` would start an unsuitable include and silently drop
    # the arguments it does not declare. The exception's text is what `ros2 launch` prints.
    for inc in stack.includes:
        problem = lps_stacks.include_problem(stack_name, inc.package, inc.requires,
                                             lps_stacks.installed_version(inc.package))
        if problem:
            raise RuntimeError(problem)

    def subs(value: Any) -> Any:
        """A description value -> a plain value, or a list of substitutions launch concatenates."""
        if not isinstance(value, str):
            return value
        parts = lps_stacks.parse_value(value)
        if all(kind == "text" for kind, _ in parts):
            return value
        return [TextSubstitution(text=t) if kind == "text" else
                LaunchConfiguration(t) if kind == "arg" else FindPackageShare(t)
                for kind, t in parts]

    entities: list[Any] = [
        DeclareLaunchArgument(a.name, default_value=a.default, description=a.description,
                              **({"choices": list(a.choices)} if a.choices else {}))
        for a in stack.arguments.values()]

    for inc in stack.includes:
        entities.append(IncludeLaunchDescription(
            PythonLaunchDescriptionSource(subs(inc.file)),
            launch_arguments=[(k, subs(v)) for k, v in inc.arguments.items()]))

    for spec in stack.nodes:
        kwargs: dict[str, Any] = dict(
            package=spec.package, executable=spec.executable, name=spec.name,
            namespace=subs(spec.namespace), output="screen",
            parameters=[subs(f) for f in spec.parameter_files] + (
                [{k: subs(v) for k, v in spec.parameters.items()}] if spec.parameters else []),
            remappings=[(subs(a), subs(b)) for a, b in spec.remappings],
            arguments=[subs(a) for a in spec.arguments])
        if spec.condition is not None:
            kwargs["condition"] = IfCondition(subs(spec.condition))
        if not spec.lifecycle:
            entities.append(Node(**kwargs))
            continue
        if spec.self_start:
            # One of the two starts: with `--autostart` the node brings itself up, at the robot's pace.
            on = dict(kwargs, arguments=kwargs["arguments"] + [lps_stacks.SELF_START_FLAG])
            entities += [LifecycleNode(**on, condition=IfCondition(subs(spec.autostart))),
                         LifecycleNode(**kwargs, condition=UnlessCondition(subs(spec.autostart)))]
            continue
        node = LifecycleNode(**kwargs)
        autostart = IfCondition(subs(spec.autostart))

        def change(transition: int, node: Any = node, **condition: Any) -> Any:
            return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                               transition_id=transition), **condition)
        entities += [
            node,
            # Activate once configure succeeded (configuring -> inactive only: a later deactivate,
            # deactivating -> inactive, must not be undone by the launch).
            RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
                entities=[change(Transition.TRANSITION_ACTIVATE)]), condition=autostart),
            change(Transition.TRANSITION_CONFIGURE, condition=autostart),
        ]
    return LaunchDescription(entities)

