"""Tasks over the one Franka scene, and ``make_task(name, **overrides)``.

See ``lps_sim.tasks.base`` for the task API the bridge node and the training code use.
"""

from __future__ import annotations

from lps_sim.tasks.base import OBSERVATION_SOURCES, FrankaTask, StepResult, TaskConfig, apply_overrides
from lps_sim.tasks.peg_ring import PegRing
from lps_sim.tasks.pick_place import PickPlace

TASKS: dict[str, type[FrankaTask]] = {PickPlace.name: PickPlace, PegRing.name: PegRing}


def make_task(name: str, **overrides) -> FrankaTask:
    """Build a task by name; keyword arguments replace fields of its ``default_config()``.

    Raises:
        KeyError: unknown task name (the message lists the available ones).
        ValueError: an override names a field the config does not have, or has a bad value.
    """
    if name not in TASKS:
        raise KeyError(f"Task '{name}' not found. Available tasks: {', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    return cls(apply_overrides(cls.default_config(), overrides))


__all__ = ["OBSERVATION_SOURCES", "TASKS", "FrankaTask", "PegRing", "PickPlace", "StepResult", "TaskConfig",
           "make_task"]
