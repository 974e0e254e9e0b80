"""Input messages -> arrays, with every malformation turned into a reason naming message and field.

The control path never indexes a message it has not checked: a JointState with an empty
`position`, a missing or duplicated arm joint, another robot's prefix, names and positions of
different lengths, or a non-finite value raises `InputError` whose text says which topic, which
field and what was wrong. The node turns that into a brake hold (`faults`), never into a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState

from lps_steering.core.robot import arm_joint_names, finger_joint_names


class InputError(ValueError):
    """A message that cannot be used; str() is the reason (topic, field, what is wrong)."""


@dataclass(frozen=True)
class JointSample:
    """The arm as one JointState reported it."""

    q: np.ndarray                    # (7,) arm joint positions, rad
    velocity: np.ndarray | None      # (7,) arm joint velocities, or None when the message has none
    gripper_width: float | None      # sum of the two finger joints, or None without them
    stamp_s: float                   # header.stamp, s


def stamp_seconds(stamp: object) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


class JointStateDecoder:
    """Decodes sensor_msgs/JointState for one robot's arm (and fingers, when present).

    The index of each joint is cached while the name list repeats (drivers send the same list
    every time), so a well-formed stream costs one list comparison per message.
    """

    def __init__(self, robot: str, topic: str) -> None:
        self.robot = robot
        self.topic = topic
        self.arm_names = arm_joint_names(robot)
        self.finger_names = finger_joint_names(robot)
        self._cache: tuple[list[str], list[int], list[int]] | None = None

    def _fail(self, field: str, what: str) -> InputError:
        return InputError(f'{self.topic} (sensor_msgs/JointState) `{field}`: {what}')

    def _index(self, names: list[str]) -> tuple[list[int], list[int]]:
        cache = self._cache
        if cache is not None and cache[0] == names:
            return cache[1], cache[2]
        if len(set(names)) != len(names):
            dup = next(n for i, n in enumerate(names) if n in names[:i])
            raise self._fail('name', f'{dup!r} appears more than once')
        missing = [n for n in self.arm_names if n not in names]
        if missing:
            prefixes = sorted({n.rsplit('_joint', 1)[0] for n in names if '_joint' in n})
            hint = (f'; the message is for {"/".join(prefixes)}, this node is robot_type '
                    f'{self.robot!r}' if prefixes and self.robot not in prefixes else '')
            raise self._fail('name', f'arm joint(s) {", ".join(missing)} missing (got {len(names)} '
                                     f'names{hint})')
        arm = [names.index(n) for n in self.arm_names]
        fingers = [names.index(n) for n in self.finger_names if n in names]
        self._cache = (list(names), arm, fingers)
        return arm, fingers

    def decode(self, msg: JointState) -> JointSample:
        """The arm's sample, or InputError with the reason."""
        names = list(msg.name)
        position = np.asarray(msg.position, dtype=np.float64)
        if position.size == 0:
            raise self._fail('position', f'empty ({len(names)} names)')
        if position.size != len(names):
            raise self._fail('position', f'{position.size} entries for {len(names)} names')
        arm, fingers = self._index(names)
        q = position[arm]
        if not np.all(np.isfinite(q)):
            j = arm[int(np.flatnonzero(~np.isfinite(q))[0])]
            raise self._fail(f'position[{j}]', f'{names[j]} is {position[j]} (not finite)')
        velocity = None
        if len(msg.velocity) != 0:
            v = np.asarray(msg.velocity, dtype=np.float64)
            if v.size != len(names):
                raise self._fail('velocity', f'{v.size} entries for {len(names)} names')
            velocity = v[arm]
            if not np.all(np.isfinite(velocity)):
                j = arm[int(np.flatnonzero(~np.isfinite(velocity))[0])]
                raise self._fail(f'velocity[{j}]', f'{names[j]} is {v[j]} (not finite)')
        width = None
        if len(fingers) == 2:
            width = float(position[fingers].sum())
            if not math.isfinite(width):
                raise self._fail('position', 'a finger joint is not finite')
        stamp = stamp_seconds(msg.header.stamp)
        return JointSample(q=q, velocity=velocity, gripper_width=width, stamp_s=stamp)


def decode_position(topic: str, msg: PoseStamped) -> np.ndarray:
    """The pose's position as (x, y, z), or InputError naming the field that is not finite."""
    p = msg.pose.position
    xyz = np.array((p.x, p.y, p.z), dtype=np.float64)
    if not np.all(np.isfinite(xyz)):
        axis = 'xyz'[int(np.flatnonzero(~np.isfinite(xyz))[0])]
        raise InputError(f'{topic} (geometry_msgs/PoseStamped) `pose.position.{axis}`: '
                         f'{getattr(p, axis)} (not finite)')
    return xyz
