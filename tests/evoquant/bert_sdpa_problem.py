"""A Hugging Face BertModel from a small config, as a user's problem (no download).

Named in configs as ``bert_sdpa_problem:bert_problem`` (the tests put this folder on the
path), the way docs/transformers.md plugs in a pretrained model: batches are dicts of
the model's keyword arguments, ``run`` returns ``last_hidden_state`` (so the pooler
is a dead layer), three disjoint random-token sets are the three roles.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from problems.base import Problem

VOCAB = 60


def build_bert(implementation: str = "sdpa") -> nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        attn_implementation=implementation,
    )
    torch.manual_seed(0)
    return BertModel(config).eval()


def token_batches(count: int, batch_size: int, seed: int) -> list[dict[str, Tensor]]:
    """Random sentences of 12 tokens; the first of each batch padded after 8."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        mask = torch.ones(batch_size, 12, dtype=torch.long)
        mask[0, 8:] = 0
        ids = torch.randint(1, VOCAB, (batch_size, 12), generator=generator)
        batches.append({"input_ids": ids, "attention_mask": mask})
    return batches


def run(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    return model(**batch).last_hidden_state


def bert_problem(implementation: str = "sdpa", batch_size: int = 8) -> Problem:
    return Problem(
        name="bert",
        build_model=partial(build_bert, implementation),
        calibration_batches=token_batches(2, batch_size, seed=1),
        fitness_batches=token_batches(2, batch_size, seed=2),
        validation_batches=token_batches(1, batch_size, seed=3),
        run=run,
    )
