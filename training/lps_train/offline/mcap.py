"""The stack's MCAP recordings (one episode per file, ROS 2 CDR) -> the trajectory format.

Topics read, under the recording's namespace:

    joint_states                          sensor_msgs/JointState    arm joints, finger joints (gripper width)
    object_pose, target_pose              geometry_msgs/PoseStamped object_position, target_position
    fr3_arm_controller/joint_trajectory   trajectory_msgs/JointTrajectory   commanded arm joint positions
    gripper_command                       std_msgs/Float64          commanded gripper width
    task_status                           lps_msgs/TaskStatus       reward, success, termination (sim)

The streams are resampled on the ROS clock (header stamps) at the layout's policy rate: step k at
t_k = t_0 + k / rate (t_0: the first time every observation source has a value). Its observation is
the newest value of each source at t_k, in the manifest's layout (tcp_position by forward kinematics
of the arm joints, as the runtime computes it); its action is the command in force at the end of the
step, the newest stamped before t_{k+1}: the arm's commanded joint positions minus the measured ones
at t_k (joint_position_delta) and the commanded gripper width.
The episode ends at the first step after which task_status reports `done`, or where the commands
stop; its success is task_status's `success`, and an episode that ends by time-out (or with no
termination) bootstraps from its final observation. Messages are decoded by the policy node's own
decoders, so a malformed message is refused with the node's reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lps_train.offline.format import DatasetError, Entry, Trajectories, from_episodes

TOPICS = {"joint_states": "joints", "object_pose": "object_position", "target_pose": "target_position",
          "fr3_arm_controller/joint_trajectory": "arm_command", "gripper_command": "gripper_command",
          "task_status": "status"}


def _layout(decoder_onnx: str | None) -> tuple[tuple[Entry, ...], tuple[Entry, ...], float, str]:
    if decoder_onnx:
        from lps_steering.core.manifest import load_manifest

        m = load_manifest(decoder_onnx)
        obs = tuple(Entry(e.name, e.size, e.source) for e in m.observation.entries)
        act = tuple(Entry(e.name, e.size, units=e.units, mode=e.mode) for e in m.action.entries)
        return obs, act, m.policy_rate_hz, m.robot
    from lps_train.pick_place.layout import ACTION_ENTRIES, OBSERVATION_LAYOUT, POLICY_RATE_HZ

    obs = tuple(Entry(name, size, source) for name, source, size in OBSERVATION_LAYOUT)
    act = tuple(Entry(name, size, units=units, mode=mode) for name, size, units, mode in ACTION_ENTRIES)
    return obs, act, POLICY_RATE_HZ, "fr3"


def _streams(path: Path, namespace: str, robot: str) -> dict[str, tuple[np.ndarray, list[Any]]]:
    """topic role -> (log times in s, decoded values), in log-time order."""
    from lps_steering.nodes.policy.decoding import InputError, JointStateDecoder, decode_position
    from mcap_ros2.reader import read_ros2_messages

    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    roles = {f"{ns}/{topic}": role for topic, role in TOPICS.items()}
    joints = JointStateDecoder(robot, f"{ns}/joint_states")
    out: dict[str, tuple[list[float], list[Any]]] = {role: ([], []) for role in TOPICS.values()}
    obs_stamp = None
    try:
        for m in read_ros2_messages(str(path), topics=list(roles)):
            topic, msg = m.channel.topic, m.ros_msg
            role = roles[topic]
            # Time is the ROS clock of the stamps (simulated time in sim, where the recorder's wall-clock
            # log times run at another pace). A message without a stamp (or a zero one: "start on
            # receipt") is placed at the newest joint state logged before it, the observation it answers.
            stamp = getattr(getattr(msg, "header", None), "stamp", None)
            t = stamp.sec + 1e-9 * stamp.nanosec if stamp is not None and (stamp.sec or stamp.nanosec) else obs_stamp
            if role == "joints":
                value: Any = joints.decode(msg)
                obs_stamp = t = value.stamp_s
            elif role in ("object_position", "target_position"):
                value = decode_position(topic, msg)
            elif role == "arm_command":
                if not msg.points:
                    raise InputError(f"{topic} (trajectory_msgs/JointTrajectory) `points`: empty")
                value = np.asarray(msg.points[-1].positions, np.float64)
            elif role == "gripper_command":
                value = float(msg.data)
            else:
                value = msg
            if t is None:
                continue  # before the first joint state: nothing it could answer
            out[role][0].append(t)
            out[role][1].append(value)
    except InputError as e:
        raise DatasetError(f"{path}: {e}") from None
    except Exception as e:  # the mcap reader's own errors: truncated file, bad magic, unknown schema
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(f"{path}: not a readable MCAP recording ({type(e).__name__}: {e})") from None
    streams = {}
    for role, (ts, vals) in out.items():
        order = np.argsort(np.asarray(ts, np.float64), kind="stable")
        streams[role] = (np.asarray(ts, np.float64)[order], [vals[i] for i in order])
    return streams


def _at(stream: tuple[np.ndarray, list[Any]], t: float) -> Any:
    """The newest value stamped at or before t (None before the first); a microsecond's slack keeps
    the resampling grid's rounding from missing a message stamped on the grid point."""
    ts, vals = stream
    i = int(np.searchsorted(ts, t + 1e-6, side="right")) - 1
    return vals[i] if i >= 0 else None


def _before(stream: tuple[np.ndarray, list[Any]], t: float) -> Any:
    """The newest value stamped strictly before t: the command in force at the end of a step, not
    the one that answers the observation at t."""
    return _at(stream, t - 2e-6)


def _observation(streams: dict, layout: tuple[Entry, ...], t: float) -> np.ndarray | None:
    from lps_steering.core.kinematics import tcp_position

    joints = _at(streams["joints"], t)
    if joints is None:
        return None
    parts = []
    for e in layout:
        if e.source == "arm_joint_positions":
            v = joints.q
        elif e.source == "arm_joint_velocities":
            v = joints.velocity
        elif e.source == "gripper_width":
            v = None if joints.gripper_width is None else np.array([joints.gripper_width])
        elif e.source == "tcp_position":
            v = tcp_position(joints.q)
        elif e.source in ("object_position", "target_position"):
            v = _at(streams[e.source], t)
        else:
            raise DatasetError(f"observation source {e.source!r} of entry {e.name!r} is not recorded on a topic")
        if v is None:
            return None
        parts.append(np.asarray(v, np.float64).reshape(-1))
    return np.concatenate(parts)


def convert_recording(path: str | Path, observation: tuple[Entry, ...], action: tuple[Entry, ...], rate_hz: float,
                      robot: str, namespace: str = "") -> dict[str, Any]:
    """One recording -> one episode dict (`format.from_episodes`)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such recording")
    streams = _streams(path, namespace, robot)
    for role in ("joints", "arm_command"):
        if len(streams[role][0]) == 0:
            topic = next(t for t, r in TOPICS.items() if r == role)
            raise DatasetError(f"{path}: topic {topic!r} has no messages (is it recorded, under namespace "
                               f"{namespace!r}?)")
    modes = [e.mode for e in action]
    if modes != ["joint_position_delta", "gripper_width"]:
        raise DatasetError(f"{path}: actions are read as [joint_position_delta, gripper_width], the layout has {modes}")
    starts = [_first_complete(streams, observation)]
    t0, t_end = starts[0], float(streams["arm_command"][0][-1])
    dt = 1.0 / rate_hz
    obs, acts, rewards, terminal, success, termination = [], [], [], False, False, ""
    k = 0
    while t0 + (k + 1) * dt <= t_end + 1e-9:
        t, t_next = t0 + k * dt, t0 + (k + 1) * dt
        o = _observation(streams, observation, t)
        q = _at(streams["joints"], t).q
        command = _before(streams["arm_command"], t_next)
        grip = _before(streams["gripper_command"], t_next)
        if grip is None:
            grip = _at(streams["joints"], t).gripper_width or 0.0
        obs.append(o)
        acts.append(np.concatenate([command - q, [grip]]))
        status = _at(streams["status"], t_next)
        rewards.append(float(status.sparse_reward) if status is not None else 0.0)
        k += 1
        if status is not None and status.done:
            success, termination = bool(status.success), str(status.termination)
            terminal = termination in ("success", "failure")
            break
    if not acts:
        raise DatasetError(f"{path}: shorter than one policy step ({dt:.3f} s) after every observation source has "
                           "a value")
    obs.append(_observation(streams, observation, t0 + k * dt))
    terminals = np.zeros(len(acts), bool)
    terminals[-1] = terminal
    return {"observations": np.asarray(obs), "actions": np.asarray(acts), "rewards": np.asarray(rewards),
            "terminals": terminals, "success": success, "timeout": not terminal,
            "task": _at(streams["status"], t_end).task if len(streams["status"][0]) else ""}


def _first_complete(streams: dict, observation: tuple[Entry, ...]) -> float:
    candidates = sorted(set(np.concatenate([streams[r][0] for r in ("joints", "object_position", "target_position")])))
    for t in candidates:
        if _observation(streams, observation, t) is not None:
            return float(t)
    missing = [e.source for e in observation if e.source in ("object_position", "target_position")
               and len(streams[e.source][0]) == 0]
    raise DatasetError(f"no time at which every observation source has a value (never recorded: {missing or 'none'})")


def convert_recordings(paths: list[str], decoder_onnx: str | None = None, namespace: str = "") -> Trajectories:
    """Recordings (one episode each, in the given order) in the layout of `decoder_onnx`'s manifest
    (the pick_place layout without one)."""
    if not paths:
        raise DatasetError("no recordings given")
    observation, action, rate_hz, robot = _layout(decoder_onnx)
    episodes = [convert_recording(p, observation, action, rate_hz, robot, namespace) for p in paths]
    return from_episodes(observation, action, episodes, rate_hz=rate_hz, robot=robot,
                         source={"converter": "mcap", "files": [Path(p).name for p in paths],
                                 "layout_from": Path(decoder_onnx).name if decoder_onnx else "pick_place"})
