"""The problem protocol: everything evoquant needs to know about a model and its data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

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
    between them); empty means the whole model is one graph.
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
