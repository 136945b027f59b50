"""One registry mechanism: lookups, the one-line unknown-name error, a user's own part."""

import sys
import textwrap

import pytest

from evoquant.config import parse_config
from evoquant.errors import UserError
from evoquant.registry import (
    CROSSOVERS,
    GENE_POLICIES,
    MUTATIONS,
    RANGE_ESTIMATORS,
    TARGETS,
    UnknownName,
    check,
    lookup,
    names,
)

BASE = {"problem": {"name": "digits"}}


def test_built_in_names_are_registered():
    assert {"adjacent", "random_reset"} <= set(names(MUTATIONS))
    assert {"midpoint", "random", "module"} <= set(names(CROSSOVERS))
    assert {"weight_gene", "thesis", "two_genes"} <= set(names(GENE_POLICIES))
    assert "tensorrt" in names(TARGETS)
    assert {"minmax", "percentile", "mse"} <= set(names(RANGE_ESTIMATORS))
    assert lookup(GENE_POLICIES, "weight_gene") is lookup(GENE_POLICIES, "thesis")


def test_unknown_name_is_one_line_listing_the_registered():
    with pytest.raises(UnknownName) as error:
        check(MUTATIONS, "flip")
    assert str(error.value) == (
        "unknown mutation 'flip': use one of adjacent, random_reset"
    )
    with pytest.raises(UserError) as error:
        parse_config(BASE | {"search": {"crossover": "uniform"}})
    message = str(error.value)
    assert "\n" not in message
    assert message == (
        "config: search.crossover: unknown crossover 'uniform': use one of "
        "midpoint, module, random"
    )
    with pytest.raises(UserError, match="unknown target 'onnx': use one of tensorrt"):
        parse_config(BASE | {"target": "onnx"})


@pytest.fixture
def user_parts(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "my_parts.py").write_text(
        textwrap.dedent(
            """
            from evoquant.operators import AdjacentBitMutation
            from evoquant.registry import MUTATIONS

            @MUTATIONS.register_module("my_mutation")
            class MyMutation(AdjacentBitMutation):
                pass
            """
        )
    )
    saved = dict(MUTATIONS.module_dict)
    yield
    MUTATIONS._module_dict.clear()
    MUTATIONS._module_dict.update(saved)
    sys.modules.pop("my_parts", None)


def test_a_user_part_is_one_decorator_away(user_parts):
    with pytest.raises(UserError, match="unknown mutation 'my_mutation'"):
        parse_config(BASE | {"search": {"mutation": "my_mutation"}})
    config = parse_config(
        BASE | {"custom_imports": ["my_parts"], "search": {"mutation": "my_mutation"}}
    )
    assert config.search.mutation == "my_mutation"
    assert lookup(MUTATIONS, "my_mutation").__name__ == "MyMutation"
    from evoquant.quant.layers import Layer
    from evoquant.search import build_algorithm
    from evoquant.space import SearchSpace

    space = SearchSpace([Layer("a.l", "conv2d", 10), Layer("b.l", "conv2d", 10)])
    assert type(build_algorithm(config, space).mating.mutation).__name__ == "MyMutation"


def test_a_missing_custom_import_is_one_line():
    with pytest.raises(UserError, match="custom_imports: cannot import 'nope_parts'"):
        parse_config(BASE | {"custom_imports": ["nope_parts"]})


def test_empty_custom_imports_keep_the_digest():
    assert (
        parse_config(BASE | {"custom_imports": []}).digest()
        == parse_config(BASE).digest()
    )
