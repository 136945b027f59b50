"""The Ray back-end: a pool of evaluation actors that loses no genome when one of them dies.

``ray.util.ActorPool`` forgets the work of an actor that dies, so the pool is ours.
Each actor builds the problem once and holds it; the driver keeps at most
``IN_FLIGHT`` genomes queued on each ready actor and yields results as they arrive.
Evaluations are idempotent and keyed by genome: the genomes of an actor that dies go
back to the front of the queue, the other actors take them, and a new actor replaces
the dead one. An actor gets work once it has answered a ping, so one that is still
building the problem, or waits for a node, holds no genome hostage.

The pool replaces dead actors itself instead of using Ray's ``max_restarts``: Ray
cannot promise a restart the table (a constructor argument in the object store), and
says so on every start; the pool holds that reference for as long as it runs.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from evoquant.archive import FAILED
from evoquant.config import EvaluatorConfig
from evoquant.errors import RunStopped, UserError
from evoquant.evaluate.attempt import RetryPolicy
from evoquant.evaluate.ray_session import ray_session
from evoquant.evaluate.shared_table import to_arrays
from evoquant.evaluate.worker import EvaluationWorker, MakeFitness, WorkerState
from evoquant.quant.table import QuantTable
from evoquant.targets import ToConfigs

IN_FLIGHT = 2
"""Genomes queued per actor: one running, one waiting, so no actor idles on a round trip."""
MAX_RESTARTS = 3
"""Times a dead actor is replaced before its place in the pool is given up."""
MAX_LOSSES = 3
"""A genome whose worker died under it this often is taken to be what kills workers
(a segfault, the OOM killer) and is recorded as failed instead of sent out again."""

Genome = tuple[int, ...]

log = logging.getLogger(__name__)


class WorkersLost(RunStopped):
    """Every Ray worker is gone: not the user's mistake, but reported the same way (one
    line, exit status 2): the run dir holds a valid checkpoint and resumes."""


@dataclass
class _Slot:
    """One place in the pool: its current actor and what the driver knows about it."""

    index: int
    actor: Any
    probe: Any
    """The ping sent to this actor when it started, until it answers."""
    state: WorkerState | None = None
    """The ping's answer: None until the actor is ready."""
    restarts: int = 0
    dead: bool = False


@dataclass
class _Batch:
    """One ``evaluate`` call's bookkeeping: what waits, what runs where, what failed."""

    queue: deque[Genome]
    running: dict[Any, tuple[_Slot, Any, Genome]] = field(default_factory=dict)
    """Result ref -> (slot, the actor it was sent to, genome)."""
    load: Counter[Any] = field(default_factory=Counter)
    tries: Counter[Genome] = field(default_factory=Counter)
    losses: Counter[Genome] = field(default_factory=Counter)


def _reason(error: Exception) -> str:
    """One line out of Ray's multi-line error text (the exception line for a failed start)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    line = lines[-1] if getattr(error, "actor_init_failed", False) else lines[0]
    return line.rstrip(".")


def placement(
    options: EvaluatorConfig, resources: Mapping[str, float], on_cuda: bool
) -> tuple[int, float]:
    """(workers, GPUs each) on a cluster with ``resources``: as configured, or all of it.

    Workers that do not fit are refused: Ray would leave them pending, forever on a
    private instance.
    """
    cpus, gpus_total = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    threads = options.threads_per_worker
    gpus = options.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if on_cuda else 0.0
    workers = options.workers
    if workers is None:
        workers = int(gpus_total // gpus) if gpus else int(cpus // threads)
    if workers < 1 or workers * threads > cpus or workers * gpus > gpus_total + 1e-6:
        raise UserError(
            f"{max(workers, 1)} Ray worker(s) of {threads} CPU and {gpus:g} GPU each "
            f"do not fit the Ray cluster ({cpus:g} CPUs, {gpus_total:g} GPUs): "
            "lower --workers, --gpus-per-worker or evaluator.threads_per_worker"
        )
    return workers, gpus


class RayEvaluator(AbstractContextManager):
    """Genomes in, ``(bits, metrics)`` out as each finishes, scored by Ray actors.

    Inside ``with``: Ray is up (``ray_session``), the table is in the object store
    (once) and one actor per worker builds the problem; on exit the actors and the
    session are shut down.
    """

    worker_class: type = EvaluationWorker
    """What each actor runs; a benchmark swaps in a simulated evaluator of its own."""

    def __init__(
        self,
        factory: MakeFitness,
        table: QuantTable,
        to_configs: ToConfigs,
        options: EvaluatorConfig,
        run_dir: Path,
        on_cuda: bool = False,
    ):
        self.factory = factory
        self.table = table
        self.to_configs = to_configs
        self.options = options
        self.policy = RetryPolicy(options.retries)
        self.run_dir = run_dir
        self.on_cuda = on_cuda
        self.slots: list[_Slot] = []
        self.last_loss = "no worker started"
        self._stack = ExitStack()
        self._table_ref: Any = None
        self._actor_class: Any = None

    def __enter__(self) -> Self:
        options = self.options
        with ExitStack() as stack:
            stack.enter_context(
                ray_session(options.ray_address, self.run_dir, options.ray_dashboard)
            )
            stack.callback(self._stop_workers)  # a shared session outlives them
            self._start_workers()
            self._first_ready()
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def workers(self) -> int:
        """Places in the pool: the genomes scored at once while every worker is up."""
        return len(self.slots)

    def _stop_workers(self) -> None:
        import ray

        for slot in self.slots:
            ray.kill(slot.actor)
        self.slots = []
        self._table_ref = None

    def _start_workers(self) -> None:
        import ray

        workers, gpus = placement(self.options, ray.cluster_resources(), self.on_cuda)
        self._table_ref = ray.put(to_arrays(self.table))  # every (re)start reads it
        self._actor_class = ray.remote(self.worker_class).options(
            num_cpus=self.options.threads_per_worker, num_gpus=gpus
        )
        self.slots = [_Slot(i, *self._spawn()) for i in range(workers)]
        log.info(
            "%d Ray workers (%d CPU, %g GPU each) building the problem",
            workers,
            self.options.threads_per_worker,
            gpus,
        )

    def _first_ready(self) -> None:
        """Wait for one actor to answer: a config no worker can build fails here, before
        the search writes anything; the other actors join as they come up."""
        import ray

        while all(slot.state is None for slot in self.slots):
            self._check_alive()
            probes = {slot.probe: slot for slot in self.slots if slot.probe is not None}
            [probe], _ = ray.wait(list(probes), num_returns=1)
            self._answered(probes[probe])

    def _spawn(self) -> tuple[Any, Any]:
        """A new actor and its first ping."""
        actor = self._actor_class.remote(
            self.factory, self._table_ref, self.options.threads_per_worker
        )
        return actor, actor.ping.remote()

    def evaluate(self, genomes: list[list[int]]) -> Iterator[tuple[list[int], dict]]:
        """Each distinct genome once; retried after it raised or after its worker died."""
        import ray

        batch = _Batch(deque(dict.fromkeys(tuple(g) for g in genomes)))
        while batch.queue or batch.running:
            self._check_alive()
            self._submit(batch)
            probes = {slot.probe: slot for slot in self.slots if slot.probe is not None}
            [ref], _ = ray.wait([*batch.running, *probes], num_returns=1)
            if ref in probes:
                self._answered(probes[ref])
                continue
            result = self._collect(batch, ref)
            if result is not None:
                yield result

    def _submit(self, batch: _Batch) -> None:
        """Fill the ready actors from the queue, one genome each per round up to
        ``IN_FLIGHT``: a queue shorter than the pool's capacity (a generation's last
        wave) goes to every worker, not twice to the first ones while others idle."""
        for depth in range(IN_FLIGHT):
            for slot in self.slots:
                if not batch.queue:
                    return
                if slot.state is not None and batch.load[slot.actor] <= depth:
                    genome = batch.queue.popleft()
                    ref = slot.actor.evaluate.remote(self.to_configs(list(genome)))
                    batch.running[ref] = (slot, slot.actor, genome)
                    batch.load[slot.actor] += 1

    def _collect(self, batch: _Batch, ref: Any) -> tuple[list[int], dict] | None:
        """The finished ``ref``'s result, or None when its genome went back to the queue."""
        import ray
        from ray.exceptions import RayActorError

        slot, actor, genome = batch.running.pop(ref)
        batch.load[actor] -= 1
        try:
            metrics = ray.get(ref)
        except RayActorError as error:
            metrics = self._handle_death(batch, slot, actor, genome, error)
            return None if metrics is None else (list(genome), metrics)
        return self._retry(batch, genome, metrics)

    def _handle_death(
        self, batch: _Batch, slot: _Slot, actor: Any, genome: Genome, error: Exception
    ) -> dict | None:
        """``genome``'s worker died: requeue it first, or fail it after ``MAX_LOSSES``."""
        self._lost(slot, actor, error)
        batch.losses[genome] += 1
        if batch.losses[genome] < MAX_LOSSES:
            batch.queue.appendleft(genome)
            return None
        return {FAILED: f"its Ray worker died {MAX_LOSSES} times under it"}

    def _retry(
        self, batch: _Batch, genome: Genome, metrics: dict
    ) -> tuple[list[int], dict] | None:
        """The retry policy on an answered attempt: requeue a failed one, or return it."""
        batch.tries[genome] += 1
        if self.policy.again(genome, batch.tries[genome], metrics):
            batch.queue.append(genome)
            return None
        return list(genome), metrics

    def _check_alive(self) -> None:
        if all(slot.dead for slot in self.slots):
            raise WorkersLost(
                f"every Ray worker is gone ({self.last_loss}); finished evaluations are "
                f"archived and 'evoquant resume {self.run_dir}' continues the run"
            )

    def _answered(self, slot: _Slot) -> None:
        """A started actor answered its ping: ready, or dead before it could start."""
        import ray
        from ray.exceptions import RayActorError

        probe, slot.probe = slot.probe, None
        try:
            state = ray.get(probe)
        except RayActorError as error:
            self._lost(slot, slot.actor, error)
            return
        if state.error is not None:
            raise UserError(state.error)
        slot.state = state
        log.info("Ray worker %d ready: pid %d on %s", slot.index, state.pid, state.host)

    def _lost(self, slot: _Slot, actor: Any, error: Exception) -> None:
        """``actor`` died: replace it, unless it failed to start or used up its restarts."""
        import ray

        if slot.actor is not actor:  # another call already reported this death
            return
        self.last_loss = _reason(error)
        pid = f" (pid {slot.state.pid})" if slot.state is not None else ""
        ray.kill(actor)  # it may only be unreachable: make sure it stops
        slot.state = None
        if getattr(error, "actor_init_failed", False) or slot.restarts == MAX_RESTARTS:
            slot.dead, slot.probe = True, None
            log.warning("Ray worker %d%s is gone: %s", slot.index, pid, self.last_loss)
            return
        slot.restarts += 1
        slot.actor, slot.probe = self._spawn()
        log.warning(
            "Ray worker %d%s lost: %s; its genomes go to the others while it restarts",
            slot.index,
            pid,
            self.last_loss,
        )
