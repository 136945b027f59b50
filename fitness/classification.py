"""Top-1 scores of classifiers, against labels or the FP32 model's own answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


def _cat(tensors: Tensor | Sequence[Tensor]) -> Tensor:
    """One tensor from a tensor or a list of batch tensors."""
    return tensors if isinstance(tensors, Tensor) else torch.cat(list(tensors))


def _predictions(outputs: Tensor | Sequence[Tensor]) -> Tensor:
    return _cat(outputs).argmax(dim=-1)


def top1_accuracy(
    outputs: Tensor | Sequence[Tensor], labels: Tensor | Sequence[Tensor]
) -> float:
    """Fraction (0..1) of samples whose highest logit is the label."""
    return float((_predictions(outputs) == _cat(labels)).double().mean())


def top1_agreement(
    reference_outputs: Tensor | Sequence[Tensor], outputs: Tensor | Sequence[Tensor]
) -> float:
    """Fraction (0..1) of samples where the quantized model picks FP32's class."""
    return float(
        (_predictions(reference_outputs) == _predictions(outputs)).double().mean()
    )


def top1_drop(
    reference_outputs: Tensor | Sequence[Tensor],
    outputs: Tensor | Sequence[Tensor],
    labels: Tensor | Sequence[Tensor],
) -> float:
    """FP32 top-1 minus quantized top-1, in percentage points (positive = worse)."""
    return 100.0 * (
        top1_accuracy(reference_outputs, labels) - top1_accuracy(outputs, labels)
    )


def top1_metric(outputs: Sequence[Tensor], batches: Sequence[Any]) -> dict[str, float]:
    """``Problem.task_metric`` for ``(images, labels)`` batches: ``{"top1": 0..1}``."""
    return {"top1": top1_accuracy(outputs, [labels for _, labels in batches])}


def run_classifier(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """``Problem.run`` for ``(images, labels)`` batches: the logits."""
    return model(batch[0])
