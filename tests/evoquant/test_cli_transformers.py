"""Acceptance: ``evoquant search`` on transformers whose attention it finds by itself.

A tiny search (8 x 2) of the built-in ViT and of a config-built Hugging Face
BertModel plugged in as ``package.module:factory`` (``tests/evoquant/bert_sdpa_problem.py``):
their attention products are genes, and the front has them below 16 bits.
"""

import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
SEARCH = {"pop_size": 8, "generations": 2}
QUANT = {"bit_configs": [[2, 8], [4, 8], [8, 8], [16, 16]], "alpha": {"enabled": False}}
VIT_ARGS = {"batch_size": 32, "calibration_batches": 2, "fitness_batches": 2}
PROBLEMS = {
    "digits_vit": (
        {"name": "digits_vit", "args": VIT_ARGS},
        [
            f"blocks.{i}.attn.{p}"
            for i in range(3)
            for p in ("q_k_matmul", "attn_v_matmul")
        ],
    ),
    "bert": (
        {"name": "bert_sdpa_problem:bert_problem"},
        [
            f"encoder.layer.{i}.attention.self.{p}"
            for i in range(2)
            for p in ("q_k_matmul", "attn_v_matmul")
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_the_front_searches_the_attention_genes(name, cli, tmp_path, monkeypatch):
    problem, attention = PROBLEMS[name]
    monkeypatch.syspath_prepend(str(HERE))  # bert_sdpa_problem, as a user's PYTHONPATH
    monkeypatch.chdir(tmp_path)
    config = {
        "problem": problem,
        "quant": QUANT,
        "search": SEARCH,
        "evaluator": {"backend": "local"},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert cli("search", "run.yaml", "--name", name, "-q") == 0
    points = json.loads((tmp_path / "runs" / name / "front.json").read_text())["points"]
    genes = list(points[0]["bits"])
    assert [gene for gene in genes if gene in attention] == attention
    assert "pooler.dense" not in genes  # dead in bert: excluded
    assert any(point["bits"][gene] < 16 for point in points for gene in attention)
