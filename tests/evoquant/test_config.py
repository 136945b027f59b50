import textwrap
from pathlib import Path

import pytest

from evoquant import cli
from evoquant.config import (
    MAX_ALPHA_POINTS,
    TENSORRT_BIT_CONFIGS,
    AlphaConfig,
    RunConfig,
    load_config,
    parse_config,
    with_overrides,
)
from evoquant.errors import UserError
from evoquant.rundir import scoring_digest

CONFIGS = Path(__file__).parents[2] / "problems" / "configs"
BASE = {"problem": {"name": "digits"}}

PINNED_DIGESTS = {
    "digits": "b5acee44f6ad7df2",
    "bevfusion_mini": "926e5cdc01226da9",
    "bevfusion_mini_demo": "072b613a1c70c1e6",
}
"""Run dirs are matched by digest: a schema change must not move these. They moved
once, deliberately, when per-tensor activation ranges became the thesis scheme's
default (tables built from the same config now hold other scales)."""
LEGACY_DIGESTS = {
    "digits": "3ca68a8dbd5c1c1c",
    "bevfusion_mini": "9b2cc52390315dc6",
    "bevfusion_mini_demo": "228e0babd0b8deb7",
}
"""The digests of evoquant 0.2, before quant.activations: the shipped configs with
per-channel activation ranges (what they meant then) must still give them."""


def config_error(settings: dict) -> str:
    with pytest.raises(UserError) as caught:
        parse_config(BASE | settings)
    message = str(caught.value)
    assert "\n" not in message
    return message


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# ---- existing behaviour -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PINNED_DIGESTS))
def test_shipped_configs_keep_their_digest(name):
    assert load_config(CONFIGS / f"{name}.yaml").digest() == PINNED_DIGESTS[name]


@pytest.mark.parametrize("name", sorted(LEGACY_DIGESTS))
def test_per_channel_activations_keep_the_digests_of_before(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    legacy = with_overrides(config, {"quant": {"activations": PER_CHANNEL}})
    assert legacy.digest() == LEGACY_DIGESTS[name]
    assert config.digest() != legacy.digest()
    stored = parse_config(legacy.model_dump(mode="json"), "run.json", stored=True)
    assert stored == legacy and stored.digest() == LEGACY_DIGESTS[name]


def test_digest_ignores_spelling_defaults_and_placement():
    plain = parse_config(BASE)
    spelled = parse_config(
        {
            "seed": 0,
            "search": {"generations": 50, "pop_size": 100},
            "problem": {"args": {}, "name": "digits"},
            "evaluator": {"backend": "local", "workers": 3, "retries": 0},
        }
    )
    assert spelled.digest() == plain.digest()
    assert parse_config(BASE | {"seed": 1}).digest() != plain.digest()
    threads = parse_config(BASE | {"evaluator": {"threads_per_worker": 2}})
    assert threads.digest() != plain.digest()


def test_where_genomes_are_scored_is_not_part_of_the_run_digest():
    config = {
        "problem": {"name": "digits"},
        "search": {"pop_size": 4, "generations": 1},
    }
    placed = config | {
        "evaluator": {
            "backend": "local",
            "workers": 3,
            "ray_address": "auto",
            "gpus_per_worker": 0.25,
            "retries": 0,
            "ray_dashboard": True,
        }
    }
    threads = config | {"evaluator": {"threads_per_worker": 2}}
    digest = parse_config(config).digest()
    assert parse_config(placed).digest() == digest
    assert parse_config(threads).digest() != digest


def test_target_tensorrt_implies_its_scheme_and_bit_configs():
    config = parse_config(BASE | {"target": "tensorrt"})
    assert config.quant.scheme == "tensorrt"
    assert config.quant.bit_configs == [tuple(c) for c in TENSORRT_BIT_CONFIGS]
    plain = parse_config(BASE)
    assert plain.target is None and plain.quant.scheme == "thesis"
    assert "target" not in parse_config(BASE).model_dump(exclude_defaults=True)
    kept = parse_config(
        BASE | {"target": "tensorrt", "quant": {"bit_configs": [[8, 8]]}}
    )
    assert kept.quant.bit_configs == [(8, 8)]
    message = config_error({"target": "tensorrt", "quant": {"scheme": "thesis"}})
    assert message == (
        "config: target tensorrt deploys symmetric quantization: "
        "quant.scheme must be tensorrt, not thesis"
    )


@pytest.mark.parametrize(
    ("settings", "where"),
    [
        ({"sed": 1}, "sed"),
        ({"search": {"popsize": 4}}, "search.popsize"),
        ({"quant": {"alpha": {"steps": 0.1}}}, "quant.alpha.steps"),
        ({"evaluator": {"gpus": 1}}, "evaluator.gpus"),
    ],
)
def test_unknown_keys_are_named(settings, where):
    assert config_error(settings) == f"config: {where}: unknown key"


def test_a_config_must_be_a_mapping(tmp_path):
    with pytest.raises(UserError, match="expected a mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(UserError, match="expected a mapping"):
        load_config(write(tmp_path, ""))
    with pytest.raises(UserError, match=r"not valid YAML \(ParserError\)"):
        load_config(write(tmp_path, "problem: {name: digits\n  : ]"))


def test_alpha_grid_is_unchanged():
    assert len(AlphaConfig().grid()) == 21
    assert AlphaConfig(enabled=False).grid() == [1.0]


# ---- files that are no config -------------------------------------------------------


def test_a_binary_file_is_one_line(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    with pytest.raises(
        UserError, match=r"model.yaml: not a UTF-8 text file \(byte 0x89"
    ):
        load_config(path)


def test_a_latin1_file_is_one_line(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("problem: {name: digits}\n# café\n".encode("latin-1"))
    with pytest.raises(UserError, match="byte 0xe9 at offset 29"):
        load_config(path)


def test_nul_bytes_are_not_yaml(tmp_path):
    path = tmp_path / "nul.yaml"
    path.write_bytes(b"problem: \x00\x00")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(path)


def test_a_utf8_bom_is_fine(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfproblem: {name: digits}\n")
    assert load_config(path).problem.name == "digits"


def test_a_directory_is_no_config(tmp_path):
    with pytest.raises(UserError, match="is a directory, not a config file"):
        load_config(tmp_path)
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_an_unreadable_file_is_one_line(tmp_path, monkeypatch):
    path = write(tmp_path, "problem: {name: digits}\n")

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(UserError, match=r"cannot read .*bad.yaml: Permission denied"):
        load_config(path)


@pytest.mark.slow
def test_a_file_without_read_permission_is_one_line(tmp_path, evoquant_process):
    """Through a real process that honours permissions, as root too."""
    path = write(tmp_path, "problem: {name: digits}\n")
    path.chmod(0)
    done = evoquant_process(["search", path.name], tmp_path, honour_permissions=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("evoquant: error: cannot read bad.yaml: Permission")
    assert len(done.stderr.splitlines()) == 1


def test_absurdly_nested_yaml_is_one_line(tmp_path):
    with pytest.raises(UserError, match="nested too deeply"):
        load_config(write(tmp_path, "problem: " + "[" * 100_000))


# ---- numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        (-1, "seed: Value error, seed must be in [0, 2**32), not -1"),
        (2**32, "seed: Value error, seed must be in [0, 2**32), not 4294967296"),
        (True, "seed: Input should be a number, not a boolean"),
        (1.5, "seed: Input should be a valid integer, got a number with a fractional"),
    ],
)
def test_seed_is_what_numpy_takes(seed, message):
    assert config_error({"seed": seed}).startswith(f"config: {message}")


def test_seed_edges_are_accepted():
    assert parse_config(BASE | {"seed": 2**32 - 1}).seed == 2**32 - 1
    assert parse_config(BASE | {"seed": 3.0}).seed == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("pop_size: 1e20", "search.pop_size: Input should be a valid integer"),
        ("pop_size: 1.0e+20", "search.pop_size: Unable to parse input string"),
        ("pop_size: 1.0e+18", "pop_size must be at most 100000, not 10"),
        ("pop_size: 100001", "pop_size must be at most 100000"),
        ("pop_size: 2.5", "got a number with a fractional part"),
        ("pop_size: true", "search.pop_size: Input should be a number, not a boolean"),
        ("pop_size: 1", "pop_size must be at least 2"),
        ("generations: 1.0e+9", "generations must be at most 100000"),
        ("generations: 0", "generations must be at least 1"),
        (
            "generations: yes",
            "search.generations: Input should be a number, not a bool",
        ),
    ],
)
def test_population_and_generations_are_bounded(tmp_path, line, message):
    path = write(tmp_path, f"problem: {{name: digits}}\nsearch:\n  {line}\n")
    with pytest.raises(UserError, match="^" + str(path) + ": ") as caught:
        load_config(path)
    assert message in str(caught.value)


def test_integral_floats_still_count():
    config = parse_config(BASE | {"search": {"pop_size": 40.0, "generations": 100_000}})
    assert (config.search.pop_size, config.search.generations) == (40, 100_000)
    assert isinstance(config.search.pop_size, int)


def test_a_tiny_alpha_step_is_refused_with_the_grid_size():
    message = config_error({"quant": {"alpha": {"step": 1e-9}}})
    assert message == (
        "config: quant.alpha: Value error, alpha grid from 0.8 to 1.2 in steps of "
        "1e-09 has 400000001 points; at most 1001 are allowed"
    )
    assert "inf points" in config_error({"quant": {"alpha": {"step": 1e-320}}})


def test_the_largest_alpha_grid_is_allowed():
    alpha = {"start": 0.5, "stop": 1.5, "step": 0.001}
    grid = parse_config(BASE | {"quant": {"alpha": alpha}}).quant.alpha.grid()
    assert len(grid) == MAX_ALPHA_POINTS
    wider = {"start": 0.5, "stop": 1.501, "step": 0.001}
    assert "1002 points" in config_error({"quant": {"alpha": wider}})


@pytest.mark.parametrize(
    ("alpha", "message"),
    [
        ({"step": float("nan")}, "quant.alpha.step: Input should be a finite number"),
        ({"stop": float("inf")}, "quant.alpha.stop: Input should be a finite number"),
        ({"start": True}, "quant.alpha.start: Input should be a number, not a boolean"),
        ({"step": 0}, "alpha grid needs 0 < start <= stop and step > 0"),
    ],
)
def test_alpha_numbers_are_finite(alpha, message):
    assert message in config_error({"quant": {"alpha": alpha}})


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"mutation_prob": 0.0}, "mutation_prob must be in (0, 1], not 0"),
        ({"mutation_prob": 1.5}, "mutation_prob must be in (0, 1], not 1.5"),
        ({"crossover_prob": 1.5}, "crossover_prob must be in [0, 1], not 1.5"),
        ({"crossover_prob": -0.1}, "crossover_prob must be in [0, 1], not -0.1"),
        ({"crossover_prob": True}, "Input should be a number, not a boolean"),
        ({"alphabet": []}, "search.alphabet: Value error, alphabet is empty"),
        ({"alphabet": [3, 8]}, "3 bits is not one of (2, 4, 8, 16)"),
    ],
)
def test_search_settings_fail_at_load(search, message):
    assert message in config_error({"search": search})


def test_probabilities_at_their_edges_are_fine():
    search = {"mutation_prob": 1.0, "crossover_prob": 0.0}
    config = parse_config(BASE | {"search": search})
    assert (config.search.mutation_prob, config.search.crossover_prob) == (1.0, 0.0)


@pytest.mark.parametrize(
    ("evaluator", "message"),
    [
        ({"workers": 10**9}, "workers must be at most 10000"),
        ({"workers": 0}, "evaluator.workers: Value error, workers must be at least 1"),
        ({"threads_per_worker": 10**6}, "threads_per_worker must be at most 1024"),
        ({"threads_per_worker": 0}, "threads_per_worker must be at least 1"),
        ({"retries": 10**9}, "retries must be at most 100"),
        ({"retries": -1}, "retries must be at least 0"),
        ({"retries": False}, "evaluator.retries: Input should be a number, not a bool"),
        ({"gpus_per_worker": -0.5}, "gpus_per_worker must be 0 or more"),
        ({"gpus_per_worker": 1.5}, "more than one GPU must be a whole number"),
        ({"gpus_per_worker": 1e-6}, "finer than Ray's 0.0001 of a GPU"),
        ({"gpus_per_worker": 4096}, "gpus_per_worker must be at most 1024"),
        ({"gpus_per_worker": float("inf")}, "Input should be a finite number"),
    ],
)
def test_evaluator_settings_are_bounded(evaluator, message):
    assert message in config_error({"evaluator": evaluator})


def test_sensible_evaluator_settings_pass():
    evaluator = {"workers": 16, "gpus_per_worker": 0.25, "threads_per_worker": 4}
    assert (
        parse_config(BASE | {"evaluator": evaluator}).evaluator.gpus_per_worker == 0.25
    )
    assert parse_config(BASE | {"evaluator": {"gpus_per_worker": 2}}).evaluator


# ---- objectives ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("objectives", "message"),
    [
        (["f_bits"], "objectives must be two, a cost and error"),
        (["f_bits", "error", "bops"], "objectives must be two, a cost and error"),
        ([], "objectives must be two"),
        (["f_bits", "f_bits"], "the second objective must be error"),
        (["error", "f_bits"], "the second objective must be error"),
        (["error", "error"], "'error' is the error objective"),
        (["f_cos", "error"], "'f_cos' is an error metric"),
        (["compression", "error"], "'compression' is larger when cheaper"),
    ],
)
def test_objectives_are_a_cost_then_the_error(objectives, message):
    assert message in config_error({"search": {"objectives": objectives}})


def test_the_cost_cannot_be_the_configured_error_metric():
    message = config_error(
        {"error": "f_box", "search": {"objectives": ["f_box", "error"]}}
    )
    assert message == (
        "config: search.objectives: the first objective must be a cost, and 'f_box' "
        "is the error metric"
    )


@pytest.mark.parametrize("cost", ["f_bits", "relative_cost", "megabytes", "bops"])
def test_any_cost_metric_can_be_the_first_objective(cost):
    config = parse_config(BASE | {"search": {"objectives": [cost, "error"]}})
    assert config.search.objectives == [cost, "error"]


# ---- across sections, bit-widths, problem arguments -----------------------------------


def test_checks_across_sections():
    fixed = {"layers": {"fixed": {"head": 4}}, "search": {"alphabet": [8, 16]}}
    assert config_error(fixed) == (
        "config: layers.fixed 'head': 4 bits is not in search.alphabet [8, 16]"
    )
    two_genes = {"target": "tensorrt", "search": {"policy": "two_genes"}}
    assert config_error(two_genes) == (
        "config: target tensorrt derives activations from weights: use search.policy thesis"
    )
    assert parse_config(BASE | {"layers": {"fixed": {"head": 8}}}).layers.fixed == {
        "head": 8
    }


@pytest.mark.parametrize(
    ("quant", "message"),
    [
        ({"bit_configs": []}, "bit_configs is empty"),
        ({"bit_configs": [[3, 8]]}, "bit config W3A8: bit-widths must be in"),
        ({"bit_configs": [[True, 8]]}, "Input should be a number, not a boolean"),
    ],
)
def test_bit_configs(quant, message):
    assert message in config_error({"quant": quant})


@pytest.mark.parametrize(
    ("yaml_args", "message"),
    [
        ("{when: 2024-01-01}", "problem.args: Value error, when is a date"),
        ("{blob: !!binary /w==}", "problem.args: Value error, blob is a bytes value"),
        ("{paths: {1: a}}", "problem.args: Value error, paths: key 1 is not text"),
        ("{names: !!set {a, b}}", "names is a set value"),
        ("{deep: [1, [2, 2020-02-02]]}", "deep[1][1] is a date"),
    ],
)
def test_problem_args_are_plain_data(tmp_path, yaml_args, message):
    path = write(tmp_path, f"problem: {{name: digits, args: {yaml_args}}}\n")
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert message in str(caught.value)


def test_plain_problem_args_pass():
    args = {"batch_size": 8, "weights": None, "sizes": [1, 2.5], "opts": {"a": True}}
    config = parse_config({"problem": {"name": "digits", "args": args}})
    assert config.problem.args == args


# ---- the override helper ------------------------------------------------------------


def test_with_overrides_validates_like_a_file():
    config = load_config(CONFIGS / "digits.yaml")
    with pytest.raises(UserError, match=r"^command line: seed: .*seed must be in"):
        with_overrides(config, {"seed": -1})
    with pytest.raises(UserError, match="^command line: search.pop_size: .*at most"):
        with_overrides(config, {"search": {"pop_size": 10**7}})
    with pytest.raises(UserError, match="^flags: search.popsize: unknown key"):
        with_overrides(config, {"search": {"popsize": 4}}, source="flags")


def test_with_overrides_merges_and_skips_none():
    config = load_config(CONFIGS / "digits.yaml")
    same = with_overrides(config, {"seed": None, "search": {"pop_size": None}})
    assert same == config and same.digest() == config.digest()
    changed = with_overrides(
        config,
        {"seed": 5, "search": {"pop_size": 8}, "quant": {"alpha": {"enabled": False}}},
    )
    assert (changed.seed, changed.search.pop_size) == (5, 8)
    assert changed.search.generations == config.search.generations
    assert changed.quant.alpha == config.quant.alpha.model_copy(
        update={"enabled": False}
    )
    assert config.seed == 0  # the original is untouched


def test_with_overrides_keeps_a_target():
    config = parse_config(BASE | {"target": "tensorrt"})
    assert with_overrides(config, {"seed": 1}).quant == config.quant


# ---- through the command line ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("problem: {name: digits}\nseed: -1\n", "seed must be in [0, 2**32)"),
        ("problem: {name: digits}\nsearch: {pop_size: 1.0e+18}\n", "at most 100000"),
        (
            "problem: {name: digits}\nquant: {alpha: {step: 1.0e-9}}\n",
            "has 400000001 points",
        ),
        (
            "problem: {name: digits}\nsearch: {objectives: [f_bits]}\n",
            "objectives must be two",
        ),
        (
            "problem: {name: digits}\nsearch: {objectives: [f_bits, error, bops]}\n",
            "objectives must be two",
        ),
        (
            "problem: {name: digits}\nevaluator: {threads_per_worker: 100000}\n",
            "at most 1024",
        ),
    ],
)
def test_search_refuses_before_writing_anything(
    tmp_path, monkeypatch, capsys, text, message
):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text, "run.yaml")
    assert cli.main(["search", "run.yaml", "--backend", "local", "-q"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("evoquant: error: run.yaml: ")
    assert message in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]


@pytest.mark.parametrize("kind", ["binary", "directory"])
def test_search_of_something_that_is_no_config(tmp_path, monkeypatch, capsys, kind):
    monkeypatch.chdir(tmp_path)
    if kind == "binary":
        (tmp_path / "conf").write_bytes(b"\xff\xfe\x00binary")
    else:
        (tmp_path / "conf").mkdir()
    assert cli.main(["search", "conf"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("evoquant: error: ")
    assert not (tmp_path / "runs").exists()


def test_run_config_is_frozen():
    config = parse_config(BASE)
    with pytest.raises(Exception, match="frozen"):
        config.seed = 3  # type: ignore[misc]
    assert isinstance(config, RunConfig)


# ---- activation ranges ----------------------------------------------------------------


PER_CHANNEL = {"granularity": "per_channel"}


def test_activation_defaults_per_scheme():
    plain = parse_config(BASE)
    assert plain.quant.activations.granularity == "per_tensor"
    assert not plain.quant.per_channel_activations
    thesis = parse_config(BASE | {"quant": {"activations": PER_CHANNEL}})
    assert thesis.quant.per_channel_activations
    # the default is no longer what 0.2 did: it shows in every digest
    assert "activations" in plain.model_dump()["quant"]
    assert "activations" not in thesis.model_dump()["quant"]
    assert scoring_digest(plain) != scoring_digest(thesis)
    # under tensorrt, per tensor is what it always was: nothing moves
    tensorrt = parse_config(BASE | {"target": "tensorrt"})
    assert "activations" not in tensorrt.model_dump()["quant"]
    explicit = parse_config(
        BASE | {"target": "tensorrt", "quant": {"activations": {"estimator": "minmax"}}}
    )
    assert explicit.digest() == tensorrt.digest()


def test_a_stored_config_without_activations_is_what_0_2_ran():
    """A run file of evoquant 0.2 (or of a per-channel run) holds no activations key."""
    stored = parse_config(BASE | {"quant": {"scheme": "thesis"}}, stored=True)
    assert stored.quant.per_channel_activations
    tensorrt = parse_config(BASE | {"target": "tensorrt", "quant": {}}, stored=True)
    assert tensorrt.quant.activations.granularity == "per_tensor"
    fresh = parse_config(BASE | {"quant": {"scheme": "thesis"}})
    assert not fresh.quant.per_channel_activations
    overridden = with_overrides(stored, {"seed": 3})
    assert overridden.quant == stored.quant


@pytest.mark.parametrize(
    "activations",
    [
        {"granularity": "per_tensor"},
        {"granularity": "per_channel"},
        {"estimator": "percentile"},
        {"estimator": "percentile", "percentile": 99.9},
        {"estimator": "mse"},
    ],
)
def test_activation_settings_change_the_digests(activations):
    plain = parse_config(BASE)
    config = parse_config(BASE | {"quant": {"activations": activations}})
    assert (config.digest() == plain.digest()) == (
        activations == {"granularity": "per_tensor"}
    )
    assert (scoring_digest(config) == scoring_digest(plain)) == (
        config.digest() == plain.digest()
    )
    dumped = config.model_dump(mode="json")
    assert parse_config(dumped, stored=True).quant == config.quant


@pytest.mark.parametrize(
    ("activations", "message"),
    [
        (
            {"estimator": "median"},
            (
                "quant.activations.estimator: unknown activation range estimator "
                "'median': use one of minmax, mse, percentile"
            ),
        ),
        ({"granularity": "per_row"}, "quant.activations.granularity: Input should be"),
        ({"percentile": 50}, "percentile must be in (50, 100], not 50"),
        ({"percentile": 100.5}, "percentile must be in (50, 100], not 100.5"),
        ({"percentile": True}, "Input should be a number, not a boolean"),
        ({"bins": 10}, "quant.activations.bins: unknown key"),
    ],
)
def test_wrong_activation_settings_are_one_line(activations, message):
    assert message in config_error({"quant": {"activations": activations}})


def test_tensorrt_refuses_per_channel_activations():
    message = config_error(
        {"target": "tensorrt", "quant": {"activations": {"granularity": "per_channel"}}}
    )
    assert "activations.granularity per_channel needs scheme thesis" in message
    config = parse_config(
        BASE
        | {
            "quant": {
                "scheme": "tensorrt",
                "activations": {"granularity": "per_tensor", "estimator": "mse"},
            }
        }
    )
    assert not config.quant.per_channel_activations


@pytest.mark.parametrize(
    ("new", "old"),
    [
        ({"quant": {"scheme": "affine"}}, {"quant": {"scheme": "thesis"}}),
        ({"quant": {"scheme": "symmetric"}}, {"quant": {"scheme": "tensorrt"}}),
        ({"search": {"policy": "weight_gene"}}, {"search": {"policy": "thesis"}}),
        (
            {"search": {"policy": "weight_and_activation_genes"}},
            {"search": {"policy": "two_genes"}},
        ),
        (
            {"target": "tensorrt", "quant": {"scheme": "symmetric"}},
            {"target": "tensorrt", "quant": {"scheme": "tensorrt"}},
        ),
    ],
)
def test_new_spellings_store_the_old_and_keep_the_digest(new, old):
    base = {"problem": {"name": "digits"}}
    renamed, stored = parse_config(base | new), parse_config(base | old)
    assert renamed == stored
    assert renamed.digest() == stored.digest()
    assert renamed.model_dump() == stored.model_dump()


# ---- quant.weights ------------------------------------------------------------------


def test_weights_are_per_channel_unless_the_target_deploys_blocks():
    plain = parse_config(BASE)
    assert plain.quant.weights.block is None
    assert "weights" not in plain.quant.model_dump()  # older digests stay
    tensorrt = parse_config(BASE | {"target": "tensorrt"})
    assert tensorrt.quant.weights.block == 128
    assert tensorrt.quant.weights.block_alpha == "per_block"
    sized = parse_config(
        BASE | {"target": "tensorrt", "quant": {"weights": {"block_size": 64}}}
    )
    assert sized.quant.weights.block == 64
    chosen = parse_config(
        BASE
        | {"target": "tensorrt", "quant": {"weights": {"granularity": "per_channel"}}}
    )
    assert chosen.quant.weights.block is None
    assert chosen.digest() != tensorrt.digest()


def test_a_stored_config_without_weights_is_per_channel_even_under_the_target():
    """A tensorrt run made before block-wise weights searched per-channel INT4."""
    stored = parse_config(BASE | {"target": "tensorrt", "quant": {}}, stored=True)
    assert stored.quant.weights.block is None
    fresh = parse_config(BASE | {"target": "tensorrt"})
    again = parse_config(fresh.model_dump(mode="json"), stored=True)
    assert again.quant == fresh.quant and again.digest() == fresh.digest()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"quant": {"weights": {"granularity": "blocks"}}},
            "quant.weights.granularity: Input should be 'per_channel' or 'block'",
        ),
        (
            {"quant": {"weights": {"block_size": 0}}},
            (
                "quant.weights.block_size: Value error, block_size must be in "
                "[1, 65536], not 0"
            ),
        ),
        (
            {"target": "tensorrt", "quant": {"weights": {"block_size": 32}}},
            (
                "quant.weights.block_size: target tensorrt runs INT4 blocks of 128 "
                "or 64, not 32"
            ),
        ),
        (
            {"quant": {"weights": {"block_alpha": "per_row"}}},
            "quant.weights.block_alpha: Input should be 'per_block' or 'per_layer'",
        ),
    ],
)
def test_bad_weight_settings_are_one_line(settings, message):
    assert config_error(settings) == f"config: {message}"


# ---- layers.attention and layers.dead -------------------------------------------------


def test_attention_discovery_and_dead_layer_exclusion_are_on_by_default():
    layers = parse_config(BASE).layers
    assert (layers.attention, layers.dead) == ("auto", "exclude")
    switched = parse_config(BASE | {"layers": {"attention": "off", "dead": "keep"}})
    assert (switched.layers.attention, switched.layers.dead) == ("off", "keep")
    assert "layers.attention" in config_error({"layers": {"attention": "yes"}})
    assert "layers.dead" in config_error({"layers": {"dead": "drop"}})


def test_the_layer_switches_count_in_the_digests_only_when_switched():
    plain = parse_config(BASE)
    spelled = parse_config(BASE | {"layers": {"attention": "auto", "dead": "exclude"}})
    assert spelled.digest() == plain.digest()
    assert scoring_digest(spelled) == scoring_digest(plain)
    for switch in ({"attention": "off"}, {"dead": "keep"}):
        other = parse_config(BASE | {"layers": switch})
        assert other.digest() != plain.digest()
        assert scoring_digest(other) != scoring_digest(plain)
