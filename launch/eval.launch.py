"""ros2 launch launch/eval.launch.py [name:=value ...]: the `eval` stack of launch/stacks.yaml.

`ros2 launch launch/eval.launch.py --show-args` lists the arguments; scripts/launch_stack.py eval
starts the same processes where `ros2 launch` is not installed.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lps_launch import build  # noqa: E402


def generate_launch_description():
    return build('eval')
