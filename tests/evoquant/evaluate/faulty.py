"""The digits problem with faults to order, for the Ray back-end tests.

Named in configs as ``faulty:faulty_digits``; the tests put this folder on the path of
the driver and of the Ray workers. Faults that model a worker's trouble (slowness, a
crash) happen only inside Ray actors, so a local run of the same config is the
undisturbed reference.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import ray
from torch import nn

from evoquant.api import Problem
from problems.cnn.digits import digits_problem


def in_ray_actor() -> bool:
    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


def faulty_digits(
    delay: float = 0.0,
    fail_fc_2bit: bool = False,
    pid_dir: str | None = None,
    crash_flag: str | None = None,
    **digits_args,
) -> Problem:
    """Digits, where inside an actor every batch takes ``delay`` s longer and each actor
    leaves its pid in ``pid_dir``; once ``crash_flag`` exists, an actor crashes on its
    next batch and no new one can start (a broken node). ``fail_fc_2bit``: any genome
    with the head at 2 bits raises, everywhere."""
    problem = digits_problem(**digits_args)
    actor = in_ray_actor()
    build_model, run = problem.build_model, problem.run

    def build() -> nn.Module:
        if actor and crash_flag and Path(crash_flag).exists():
            raise RuntimeError("this node is broken")
        if actor and pid_dir:
            (Path(pid_dir) / str(os.getpid())).touch()
        return build_model()

    def faulty_run(model: nn.Module, batch):
        if actor:
            if crash_flag and Path(crash_flag).exists():
                os._exit(1)
            time.sleep(delay)
        if fail_fc_2bit and model.fc.weight[0].unique().numel() <= 4:
            raise FloatingPointError("the head at 2 bits diverges")
        return run(model, batch)

    problem.build_model, problem.run = build, faulty_run
    return problem
