"""``evoquant.api``: the engine's names a problem author uses, the engine's own objects."""

import re
from pathlib import Path

import pytest

from evoquant import api, errors, problem
from evoquant.quant import layers, matmul
from evoquant.registry import PROBLEMS

ROOT = Path(__file__).parents[2]
ENGINE_MODULES = (errors, problem, layers, matmul)


def test_every_public_name_is_the_engines_own_object():
    """Re-exported, not copied: ``isinstance(p, api.Problem)`` holds for the engine's."""
    for name in set(api.__all__) - {"register_problem"}:
        owners = [m for m in ENGINE_MODULES if getattr(m, name, None) is not None]
        assert owners and getattr(api, name) is getattr(owners[0], name), name
    assert sorted(api.__all__) == api.__all__


def documented_names() -> set[str]:
    """Every ``evoquant.api`` name the user docs and README tell authors to use."""
    names = set()
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = page.read_text()
        for imported in re.findall(r"from evoquant\.api import ([\w, ]+)", text):
            names.update(n.strip() for n in imported.split(","))
        names.update(re.findall(r"evoquant\.api\.(\w+)", text))
    return names


def test_the_names_the_docs_use_are_public():
    names = documented_names()
    assert {"Problem", "BATCH_AXIS", "QuantMatMul"} <= names
    assert names <= set(api.__all__)


@pytest.fixture
def isolated_problems(monkeypatch):
    monkeypatch.setattr(PROBLEMS, "_module_dict", dict(PROBLEMS.module_dict))


def test_a_factory_registered_through_the_api_is_built_by_name(isolated_problems):
    @api.register_problem("api_tiny")
    def tiny(width: int = 2) -> api.Problem:
        return api.Problem("api_tiny", list, [[1] * width], [], lambda m, b: b)

    built = problem.build_problem("api_tiny", {"width": 3})
    assert built.name == "api_tiny" and built.calibration_batches == [[1, 1, 1]]
    assert PROBLEMS.get("api_tiny") is tiny
