"""The problem protocol: everything evoquant needs to know about a model and its data.

The engine owns the protocol; problems (``problems/``, a user's package) sit above the
engine and implement it through ``evoquant.api``. The engine reaches the problem
registry only by its import path at run time (``build_problem``, ``validate_args``
below), so nothing in evoquant imports ``problems`` when it is loaded.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import torch
from torch import nn

from evoquant.quant.table import tensors_in

log = logging.getLogger(__name__)

PROBLEM_REGISTRY = "problems.registry"
"""The module that maps problem names (and ``package.module:factory`` paths) to factories."""

Batch = Any
"""Whatever the problem's ``run`` accepts: a tensor, a tuple (inputs, labels), a dict."""

Outputs = Any
"""What ``run`` returns for one batch: a tensor whose first dimension is the sample, or
anything the problem's ``error_metrics`` understands (e.g. per-sample detections)."""


@dataclass(frozen=True)
class ExportPart:
    """A sub-network exported as its own ONNX graph: ``module`` is its dotted path in the model.

    Its example inputs are whatever it receives while ``run`` processes the fitness
    batches, so the export is validated on exactly those inputs.
    """

    name: str
    module: str


BATCH_AXIS: Mapping[str, Mapping[int, str]] = {"*": {0: "batch"}}
"""The default ``Problem.dynamic_axes``: axis 0 of every graph input is the batch."""


@dataclass
class Problem:
    """A model, its data and how to run it.

    ``build_model`` returns the FP32 model in eval mode; it is called once per process
    (the driver, each worker). ``run(model, batch)`` is the only way evoquant calls the
    model, so detectors and multi-input models need nothing special. ``task_metric``,
    when given, scores the outputs of the fitness batches against the problem's own
    labels (e.g. top-1) and returns named floats; evoquant reports it next to the error.
    ``error_metrics(reference_outputs, outputs)``, when given, compares quantized with
    FP32 outputs (e.g. F_box for detectors); the config's ``error`` names which of its
    metrics (or ``f_cos``, computed for tensor outputs) the search minimises.
    ``export_parts`` names the sub-networks ``evoquant export`` writes as separate ONNX
    graphs, for models ONNX or TensorRT cannot take whole (e.g. a custom BEV pooling
    between them); empty means the whole model is one graph. ``dynamic_axes`` says
    which axes of the exported graphs' inputs stay free, so that one graph runs every
    batch: glob patterns on input names (a ``forward`` parameter, then dict keys or
    list positions joined by dots: ``input_ids``, ``input.attention_mask``) mapped to
    ``{axis: name}``; the default leaves axis 0 of every input free as ``batch``, and
    outputs follow. Token models add their sequence axis, e.g.
    ``{"*": {0: "batch"}, "*input_ids": {1: "sequence"}, "*attention_mask": {1: "sequence"}}``.
    ``discover_attention`` False keeps the genome to the model's own modules: attention products it computes
    without a ``QuantMatMul`` stay FP32 whatever ``layers.attention`` says (a genome
    pinned to a published layer list, as the thesis's BEVFusion).
    ``compilable`` False says ``torch.compile`` cannot run the problem's model (or was
    never tried on it); ``evaluator.compile`` is then refused. Compiled, the model's
    forward is compiled, or with ``export_parts`` each part's: a ``run`` that goes
    through another method than the forward (mmengine's ``test_step``) needs parts.

    The batches play three roles, which must not share samples: ``calibration_batches``
    set the quantizers' ranges, ``fitness_batches`` give the error the search minimises,
    ``validation_batches`` (held out; may be empty) give the error reported for the
    front after the search (``evoquant validate``). A sample met in two roles is
    reported with a warning when the problem is made: an error measured on the
    samples the ranges were taken from hides every value those ranges clip.
    """

    name: str
    build_model: Callable[[], nn.Module]
    calibration_batches: Sequence[Batch]
    fitness_batches: Sequence[Batch]
    run: Callable[[nn.Module, Batch], Outputs]
    task_metric: (
        Callable[[Sequence[Outputs], Sequence[Batch]], dict[str, float]] | None
    ) = None
    error_metrics: (
        Callable[[Sequence[Outputs], Sequence[Outputs]], dict[str, float]] | None
    ) = None
    layer_include: Sequence[str] = field(default_factory=tuple)
    layer_exclude: Sequence[str] = field(default_factory=tuple)
    export_parts: Sequence[ExportPart] = field(default_factory=tuple)
    validation_batches: Sequence[Batch] = field(default_factory=tuple)
    dynamic_axes: Mapping[str, Mapping[int, str]] = field(
        default_factory=lambda: dict(BATCH_AXIS)
    )
    discover_attention: bool = True
    compilable: bool = True

    def __post_init__(self) -> None:
        for (first, second), shared in role_overlaps(self).items():
            log.warning(
                "problem %s: %d %s sample(s) are also %s samples: an error measured "
                "on them is not an error on data the quantizer has not seen",
                self.name,
                shared,
                second,
                first,
            )


ROLES = ("calibration", "fitness", "validation")


def sample_fingerprints(batches: Sequence[Batch]) -> set[str]:
    """A hash of every sample in ``batches``, to find one sample given for two roles.

    A batch's samples are the slices along the first dimension of its first tensor;
    sample i hashes the i-th slice of every tensor of the batch with that first
    dimension (inputs and labels together, so equal masks or labels alone are no match).
    """
    fingerprints = set()
    for batch in batches:
        tensors = [t.detach() for t in tensors_in(batch) if t.ndim > 0]
        if not tensors:
            continue
        size = tensors[0].shape[0]
        rows = [t.cpu() for t in tensors if t.shape[0] == size]
        for i in range(size):
            digest = hashlib.blake2b(digest_size=16)
            for t in rows:
                row = t[i].contiguous()
                digest.update(f"{row.dtype}{tuple(row.shape)}".encode())
                digest.update(row.reshape(-1).view(torch.uint8).numpy().tobytes())
            fingerprints.add(digest.hexdigest())
    return fingerprints


def role_overlaps(problem: Problem) -> dict[tuple[str, str], int]:
    """For each pair of roles that share samples, how many of the second role's they are."""
    samples = {
        role: sample_fingerprints(getattr(problem, f"{role}_batches")) for role in ROLES
    }
    return {
        (first, second): len(samples[first] & samples[second])
        for first, second in combinations(ROLES, 2)
        if samples[first] & samples[second]
    }


def _registry() -> Any:
    return importlib.import_module(PROBLEM_REGISTRY)


def build_problem(name: str, args: Mapping[str, Any]) -> Problem:
    """The named problem, built by the registry's factory for ``name``."""
    return _registry().build_problem(name, args)


def validate_args(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` checked against the named factory's signature (one UserError if wrong)."""
    return _registry().validate_args(name, args)
