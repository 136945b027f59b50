import json

import pytest

from evoquant.config import parse_config, with_overrides
from evoquant.errors import UserError
from evoquant.rundir import (
    ARCHIVE_FILE,
    CHECKPOINT_DIR,
    REPORTS,
    RUN_FILE,
    STATE,
    TABLE_META_FILE,
    RunDir,
    run_dir_for,
    scoring_digest,
)

CONFIG = parse_config({"problem": {"name": "digits"}})
LAYERS = ["stem.0", "fc"]
UNIFORM = [[2, 2], [16, 16]]


def test_state_and_reports_are_apart():
    assert not set(STATE) & set(REPORTS)


@pytest.mark.parametrize("name", ["demo", "bevfusion_mini", "run-2.b", "A" * 100])
def test_plain_names_go_under_runs(name):
    assert str(run_dir_for(name)) == f"runs/{name}"


def test_the_scoring_digest_follows_only_what_scores_depend_on():
    same = [
        {"search": {"pop_size": 8, "generations": 3, "mutation": "random_reset"}},
        {"seed": 5},
        {"evaluator": {"backend": "local", "workers": 3}},
        {"layers": {"fixed": {"fc": 8}}},
    ]
    for updates in same:
        assert scoring_digest(with_overrides(CONFIG, updates)) == scoring_digest(CONFIG)
    changed = [
        {"quant": {"scheme": "tensorrt"}},
        {"quant": {"alpha": {"enabled": False}}},
        {"problem": {"args": {"batch_size": 8}}},
        {"layers": {"exclude": ["fc"]}},
        {"error": "f_cos_max"},
        {"evaluator": {"threads_per_worker": 2}},
        {"evaluator": {"compile": True}},  # fused kernels round differently
    ]
    for updates in changed:
        assert scoring_digest(with_overrides(CONFIG, updates)) != scoring_digest(CONFIG)


def test_a_record_round_trips(tmp_path):
    created = RunDir(tmp_path / "r").create(CONFIG, LAYERS, UNIFORM)
    assert RunDir(tmp_path / "r").read() == created
    assert len(created.run_id) == 32 and created.config_digest == CONFIG.digest()
    assert created.uniform_genomes == ((2, 2), (16, 16))


def test_a_new_run_may_reuse_a_calibrated_table_but_nothing_else(tmp_path):
    run = RunDir(tmp_path)
    (tmp_path / TABLE_META_FILE).write_text("{}")
    (tmp_path / ARCHIVE_FILE).write_bytes(b"")  # empty: no run's results in it
    run.check_new()
    (tmp_path / CHECKPOINT_DIR).mkdir()
    (tmp_path / CHECKPOINT_DIR / "gen_0000.json").write_text("{}")
    with pytest.raises(UserError, match="holds checkpoints/ of a run whose run.json"):
        run.check_new()


def test_resume_checks_read_only_and_force_keeps_the_history(tmp_path):
    run = RunDir(tmp_path)
    record = run.create(CONFIG, LAYERS, UNIFORM)
    before = (tmp_path / RUN_FILE).read_bytes()
    wider = with_overrides(CONFIG, {"search": {"pop_size": 8}})
    with pytest.raises(UserError, match="add --force"):
        run.check_resume(wider, force=False)
    assert run.check_resume(wider, force=True) == record
    assert (tmp_path / RUN_FILE).read_bytes() == before
    updated = run.record_resume(record, wider)
    assert updated.config_digests == (CONFIG.digest(), wider.digest())
    assert run.read() == updated and updated.run_id == record.run_id
    rescored = with_overrides(wider, {"quant": {"scheme": "tensorrt"}})
    with pytest.raises(UserError, match=r"changes how genomes are scored \(quant\)"):
        run.check_resume(rescored, force=True)


@pytest.mark.parametrize(
    "text, match",
    [
        ("[1, 2]", "is corrupt: not a JSON object"),
        ('{"run_id": "x"}', "run.json: expected a mapping of settings"),
        ("\xff", "is corrupt"),
    ],
)
def test_a_bad_run_file_is_one_line(tmp_path, text, match):
    (tmp_path / RUN_FILE).write_text(text, encoding="latin-1")
    with pytest.raises(UserError, match=match):
        RunDir(tmp_path).read()


def test_a_run_file_missing_a_field_is_corrupt(tmp_path):
    record = RunDir(tmp_path).create(CONFIG, LAYERS, UNIFORM).to_json()
    del record["uniform_genomes"]
    (tmp_path / RUN_FILE).write_text(json.dumps(record))
    with pytest.raises(UserError, match="is corrupt: missing or bad 'uniform_genomes'"):
        RunDir(tmp_path).read()


def test_no_run_here_says_why(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        RunDir(tmp_path / "nowhere").read()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file, not a run directory"):
        RunDir(tmp_path / "file").read()
