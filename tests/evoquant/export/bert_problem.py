"""A config-built BERT (random weights, nothing downloaded) plugged in as a user would.

Named in configs as ``bert_problem:bert_problem`` (the tests put this folder on the
path). Batches are dicts of ``input_ids`` and ``attention_mask`` whose batch size and
sequence length differ from batch to batch, as sentences do. ``wrapped`` puts the
encoder inside a sentence-embedding wrapper that, like sentence-embedding libraries,
takes the batch dict as one positional argument and calls ``self.bert.forward``
directly, so hooks on the encoder never fire.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import BertConfig, BertModel

from evoquant.api import BATCH_AXIS, ExportPart, Problem

VOCAB = 100
SHAPES = {
    "calibration": [(4, 12), (3, 9)],
    "fitness": [(4, 10), (2, 7), (3, 13)],
    "validation": [(3, 8), (2, 11)],
}
"""(batch size, sequence length) of each role's batches."""

TOKEN_AXES = {
    **BATCH_AXIS,
    "*input_ids": {1: "sequence"},
    "*attention_mask": {1: "sequence"},
}
"""Batch and sequence free in every token input (``input_ids``, ``input.input_ids``)."""


def make_bert(layers: int = 3, hidden: int = 64) -> BertModel:
    """Six Linears per layer plus the pooler; ``hidden`` 64 lets INT4 run in blocks of 64."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        attn_implementation="eager",
    )
    return BertModel(config).eval()


class SentenceEncoder(nn.Module):
    """Mean-pooled BERT, entered the way sentence-embedding libraries enter it."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input: dict[str, Tensor]) -> Tensor:
        hidden = self.bert.forward(
            input_ids=input["input_ids"], attention_mask=input["attention_mask"]
        ).last_hidden_state
        mask = input["attention_mask"].unsqueeze(-1).float()
        return (hidden * mask).sum(1) / mask.sum(1)


def _batches(role: str, seed: int) -> list[dict[str, Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for size, length in SHAPES[role]:
        ids = torch.randint(1, VOCAB, (size, length), generator=generator)
        mask = torch.ones(size, length, dtype=torch.long)
        mask[0, length - 2 :] = 0  # one padded sentence per batch
        batches.append({"input_ids": ids, "attention_mask": mask})
    return batches


def run_bert(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    return model(**batch).last_hidden_state


def run_wrapped(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    return model(batch)


def bert_problem(
    wrapped: bool = False,
    layers: int = 3,
    parts: list[str] | None = None,
    sequence_axis: bool = True,
) -> Problem:
    """``parts``: module paths exported as their own graphs; ``sequence_axis``: declare
    axis 1 of the token inputs dynamic (the batch axis always is)."""

    def build() -> nn.Module:
        bert = make_bert(layers)
        return SentenceEncoder(bert).eval() if wrapped else bert

    return Problem(
        name="bert",
        build_model=build,
        calibration_batches=_batches("calibration", 1),
        fitness_batches=_batches("fitness", 2),
        validation_batches=_batches("validation", 3),
        run=run_wrapped if wrapped else run_bert,
        # the wrapper pools the hidden states itself: BERT's pooler never reaches the output
        layer_exclude=["bert.pooler.*"] if wrapped else [],
        export_parts=[ExportPart(p.replace(".", "_"), p) for p in parts or ()],
        dynamic_axes=TOKEN_AXES if sequence_axis else BATCH_AXIS,
    )
