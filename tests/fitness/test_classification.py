import pytest
import torch
from torch import nn

from fitness.classification import (
    run_classifier,
    top1_accuracy,
    top1_agreement,
    top1_drop,
    top1_metric,
)

# Predictions: ref -> [0, 1, 2, 1], quantized -> [0, 2, 2, 0].
REF = torch.tensor([[9.0, 0, 0], [0, 9, 0], [0, 0, 9], [0, 9, 0]])
QUANT = torch.tensor([[9.0, 0, 0], [0, 0, 9], [0, 0, 9], [9, 0, 0]])
LABELS = torch.tensor([0, 1, 2, 0])


def test_top1_accuracy():
    assert top1_accuracy(REF, LABELS) == 0.75
    assert top1_accuracy(QUANT, LABELS) == 0.75


def test_top1_accuracy_over_batches():
    assert top1_accuracy([REF[:3], REF[3:]], [LABELS[:3], LABELS[3:]]) == 0.75


def test_top1_agreement():
    assert top1_agreement(REF, QUANT) == 0.5
    assert top1_agreement(REF, REF) == 1.0


def test_top1_drop_in_percentage_points():
    assert top1_drop(REF, QUANT, LABELS) == 0.0
    assert top1_drop(REF, QUANT, torch.tensor([0, 1, 2, 1])) == pytest.approx(50.0)


def test_top1_metric_reads_labels_from_batches():
    batches = [(torch.zeros(3, 1), LABELS[:3]), (torch.zeros(1, 1), LABELS[3:])]
    assert top1_metric([QUANT[:3], QUANT[3:]], batches) == {"top1": 0.75}


def test_run_classifier_feeds_the_images():
    model = nn.Linear(2, 3)
    images = torch.randn(4, 2)
    assert torch.equal(run_classifier(model, (images, LABELS)), model(images))
