#!/usr/bin/env python3
"""Start a stack of launch/stacks.yaml without `ros2 launch` (ROS 2 installed from PyPI).

    scripts/with-env python scripts/launch_stack.py sim decoder:=models/pick_place/decoder.onnx
    scripts/with-env python scripts/launch_stack.py eval --print        # what would start, then exit
    scripts/with-env python scripts/launch_stack.py real --no-includes robot_ip:=172.16.0.2

The same executables (console scripts of the colcon install space), parameter files, overrides,
remappings and lifecycle transitions as `ros2 launch launch/<stack>.launch.py`, read from the same
description. Output of each process is prefixed with its node name. Ctrl-C (SIGINT) or SIGTERM is
forwarded to every process as SIGINT (the nodes' clean path: the arm holds), then SIGKILL after
`--grace` seconds. A process exiting non-zero stops the whole stack: nothing keeps commanding a
robot beside a dead part. The runner's exit code is 0 only if every process stopped by itself
with code 0. Every process runs with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# Before rclpy is imported, here and in every child: discovery never leaves this machine.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

ROOT = Path(__file__).resolve().parents[1]
PUMP_DRAIN_S = 2.0  # after the processes exit, for their last lines to pass through
sys.path.insert(0, str(ROOT / "launch"))
import lps_stacks  # noqa: E402


def find_share(package: str) -> str:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        return get_package_share_directory(package)
    except PackageNotFoundError:
        raise lps_stacks.StackError(
            f"package {package!r} is not in the install space (AMENT_PREFIX_PATH); build it with "
            f"scripts/bootstrap.sh or install it") from None


def find_executable(package: str, executable: str) -> str:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        path = Path(get_package_prefix(package)) / "lib" / package / executable
    except PackageNotFoundError:
        raise lps_stacks.StackError(f"package {package!r} (executable {executable!r}) is not in the "
                                    f"install space") from None
    if not os.access(path, os.X_OK):
        raise lps_stacks.StackError(f"executable {executable!r} of package {package!r} not found at "
                                    f"{path}: is it in the package's console_scripts?")
    return str(path)


def command_line(node: lps_stacks.ResolvedNode) -> list[str]:
    return [find_executable(node.package, node.executable), *node.arguments, *node.ros_arguments()]


def parse_launch_args(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if ":=" not in item:
            raise lps_stacks.StackError(f"launch arguments are written name:=value, got {item!r}")
        key, value = item.split(":=", 1)
        out[key] = value
    return out


class Stack:
    """The running processes of one stack."""

    def __init__(self, nodes: list[lps_stacks.ResolvedNode], grace_s: float) -> None:
        self.nodes = nodes
        self.grace_s = grace_s
        self.procs: dict[str, subprocess.Popen] = {}
        self.pumps: list[threading.Thread] = []
        self.stopping = threading.Event()
        self._print_lock = threading.Lock()

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
        for node in self.nodes:
            cmd = command_line(node)
            self.say(f"starting {node.fully_qualified_name}: {' '.join(cmd)}")
            # Own session: a terminal's Ctrl-C reaches us only, and we stop the children in order.
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, text=True, bufsize=1, errors="replace")
            self.procs[node.name] = proc
            self.say(f"started {node.fully_qualified_name} (pid {proc.pid})")
            pump = threading.Thread(target=self._pump, args=(node.name, proc), daemon=True)
            pump.start()
            self.pumps.append(pump)

    def say(self, text: str, name: str = "launch_stack") -> None:
        with self._print_lock:
            print(f"[{name}] {text}", flush=True)

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.say(line.rstrip("\n"), name)

    def drive_lifecycles(self, timeout_s: float) -> bool:
        """configure, then activate, every autostart lifecycle node; False if one refused."""
        managed = [n for n in self.nodes if n.autostart]
        if not managed:
            return True
        import rclpy
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        context = rclpy.Context()
        # Our own SIGINT handler stays in charge: it stops the children in order.
        rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node("launch_stack_lifecycle", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        ok = True
        try:
            for target in managed:
                fqn = target.fully_qualified_name
                client = node.create_client(ChangeState, f"{fqn}/change_state")
                if not _wait_service(executor, client, timeout_s, self.stopping):
                    self.say(f"{fqn}/change_state did not appear within {timeout_s} s")
                    return False
                for label, tid in (("configure", Transition.TRANSITION_CONFIGURE),
                                   ("activate", Transition.TRANSITION_ACTIVATE)):
                    req = ChangeState.Request()
                    req.transition.id = tid
                    future = client.call_async(req)
                    executor.spin_until_future_complete(future, timeout_sec=timeout_s)
                    result = future.result()
                    if result is None or not result.success:
                        self.say(f"{label} of {fqn} failed (see its log above); it stays "
                                 f"{'unconfigured' if label == 'configure' else 'inactive'}")
                        ok = False
                        break
                    self.say(f"{label} of {fqn}: ok")
        finally:
            executor.shutdown(timeout_sec=1.0)
            node.destroy_node()
            rclpy.try_shutdown(context=context)
        return ok

    def watch(self) -> int:
        """Block until a stop is asked or a process fails; return the exit code for the runner."""
        while not self.stopping.wait(0.2):
            for name, proc in self.procs.items():
                rc = proc.poll()
                if rc is not None and rc != 0:
                    self.say(f"{name} exited with code {rc}: stopping the stack")
                    return 1
            if all(p.poll() is not None for p in self.procs.values()):
                self.say("every process has exited")
                return 0
        return 0

    def stop(self) -> bool:
        """SIGINT to every process (reverse start order), SIGKILL after the grace; True when every
        process exited by itself with code 0."""
        self.stopping.set()
        # Reverse start order: the policy stops (and holds) before what it commands goes away.
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + self.grace_s
        clean = True
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{name} did not stop within {self.grace_s} s: SIGKILL")
                proc.kill()
                proc.wait(5)
                clean = False
                continue
            if proc.returncode != 0:
                self.say(f"{name} exited with code {proc.returncode}")
                clean = False
        # A node's last lines (how it stopped, whether the arm holds) are still in its pipe when
        # it exits; bounded, since a grandchild may keep the pipe open.
        drained = time.monotonic() + PUMP_DRAIN_S
        for pump in self.pumps:
            pump.join(max(0.0, drained - time.monotonic()))
        return clean


def _stop_when_orphaned(running: Stack, parent: int) -> None:
    """A parent killed without the chance to stop us (SIGKILL, a crash) would leave the stack
    running, and the next evaluation in the same ROS domain would find two sim bridges answering.
    The kernel hands orphans to another process, so a changed parent pid means ours is gone."""
    while not running.stopping.wait(0.5):
        if os.getppid() != parent:
            running.say(f"the parent process (pid {parent}) has exited: stopping the stack")
            running.stopping.set()


def _wait_service(executor, client, timeout_s: float, stopping: threading.Event) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stopping.is_set():
        if client.service_is_ready():
            return True
        executor.spin_once(timeout_sec=0.1)
    return client.service_is_ready()


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("stack", help="stack name in launch/stacks.yaml (sim, eval, real)")
    cli.add_argument("launch_args", nargs="*", metavar="name:=value", help="launch arguments")
    cli.add_argument("--description", default=str(lps_stacks.DESCRIPTION_PATH),
                     help="description file (default: launch/stacks.yaml)")
    cli.add_argument("--print", action="store_true", help="print the command lines and exit")
    cli.add_argument("--show-args", action="store_true", help="list the stack's launch arguments and exit")
    cli.add_argument("--no-includes", action="store_true",
                     help="start the stack without its included launch files (they need ros2 launch: "
                          "start them separately)")
    cli.add_argument("--lifecycle-timeout", type=float, default=60.0,
                     help="seconds to wait for each lifecycle service and transition")
    cli.add_argument("--grace", type=float, default=10.0, help="seconds between SIGINT and SIGKILL")
    cli.add_argument("--stop-with-parent", action="store_true",
                     help="stop the stack, as on Ctrl-C, when the process that started this one exits "
                          "(a program that launches a stack for itself and may be killed)")
    # Intermixed: `real --no-includes robot_ip:=...` puts launch arguments after an option.
    opts = cli.parse_intermixed_args(argv)
    parent = os.getppid()  # now: a parent that dies during start-up must still be noticed
    try:
        stack = lps_stacks.load(opts.description).stack(opts.stack)
        if opts.show_args:
            for a in stack.arguments.values():
                choices = f" (one of {', '.join(a.choices)})" if a.choices else ""
                print(f"{a.name}:\n    {a.description}{choices}\n    default: {a.default!r}")
            return 0
        for inc in stack.includes:
            found = lps_stacks.installed_version(inc.package)
            problem = lps_stacks.include_problem(opts.stack, inc.package, inc.requires, found)
            # Started by hand elsewhere (another machine) the include need not be installed here;
            # installed but unsuitable, it is refused either way.
            if problem and not (opts.no_includes and found is None):
                raise lps_stacks.StackError(problem)
        if stack.includes and not opts.no_includes:
            files = ", ".join(i.file for i in stack.includes)
            raise lps_stacks.StackError(
                f"stack {opts.stack!r} includes {files}, which needs `ros2 launch`; use "
                f"`ros2 launch launch/{opts.stack}.launch.py`, or start the include yourself and pass "
                f"--no-includes")
        absent = {i.package for i in stack.includes if lps_stacks.installed_version(i.package) is None}

        def share(package: str) -> str:
            # An include started elsewhere (--no-includes) is only printed, never opened here.
            return f"<share of {package}>" if package in absent else find_share(package)

        nodes, includes = lps_stacks.resolve(stack, parse_launch_args(opts.launch_args), share)
        if opts.print:
            for inc in includes:
                print(f"# include {inc.file} " + " ".join(f"{k}:={v}" for k, v in inc.arguments.items()))
            for n in nodes:
                print(" ".join(command_line(n)) + ("   # lifecycle: configure, activate" if n.autostart else ""))
            return 0
    except lps_stacks.StackError as exc:
        print(f"launch_stack: {exc}", file=sys.stderr)
        return 2

    running = Stack(nodes, opts.grace)
    signal.signal(signal.SIGINT, lambda *_: running.stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: running.stopping.set())
    if opts.stop_with_parent:
        threading.Thread(target=_stop_when_orphaned, args=(running, parent), daemon=True).start()
    rc = 0
    try:
        running.start()
        if not running.drive_lifecycles(opts.lifecycle_timeout) and not running.stopping.is_set():
            running.say("a lifecycle transition failed; the other nodes keep running (Ctrl-C stops all)")
        if not running.stopping.is_set():
            running.say(f"stack {opts.stack!r} up: {', '.join(n.fully_qualified_name for n in nodes)}")
        rc = running.watch()
    except lps_stacks.StackError as exc:
        running.say(str(exc))
        rc = 2
    finally:
        if not running.stop() and rc == 0:
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
