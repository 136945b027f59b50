import sqlite3

import pytest

from evoquant.archive import Archive, genome_key
from evoquant.errors import UserError

OBJECTIVES = ("f_bits", "error")


def test_results_round_trip_and_survive_a_reopen(tmp_path):
    path = tmp_path / "archive.sqlite"
    archive = Archive(path, OBJECTIVES)
    archive.put([8, 4, 16], {"f_bits": 120.0, "error": 0.25, "top1": 0.9}, generation=0)
    archive.put([2, 2, 2], {"failed": "CUDA out of memory"}, generation=1)
    archive.close()

    reopened = Archive(path, OBJECTIVES)
    found = reopened.get_many([[8, 4, 16], (2, 2, 2), [4, 4, 4]])
    assert found == {
        (8, 4, 16): {"f_bits": 120.0, "error": 0.25, "top1": 0.9},
        (2, 2, 2): {"failed": "CUDA out of memory"},
    }
    assert len(reopened) == 2
    records = reopened.records()
    assert [r["genome"] for r in records] == [[8, 4, 16], [2, 2, 2]]
    assert [(r["status"], r["error"], r["generation"]) for r in records] == [
        ("ok", None, 0),
        ("failed", "CUDA out of memory", 1),
    ]
    reopened.close()


def test_a_genome_keeps_its_first_result(tmp_path):
    archive = Archive(tmp_path / "a.sqlite", OBJECTIVES)
    archive.put([8, 8], {"f_bits": 1.0, "error": 0.5}, generation=2)
    archive.put([8, 8], {"f_bits": 9.0, "error": 9.0}, generation=5)
    assert archive.get_many([[8, 8]]) == {(8, 8): {"f_bits": 1.0, "error": 0.5}}
    assert [r["generation"] for r in archive.records()] == [2]
    archive.close()


def test_rows_are_committed_as_they_arrive_with_objective_columns(tmp_path):
    path = tmp_path / "a.sqlite"
    archive = Archive(path, OBJECTIVES)
    archive.put([4, 16], {"f_bits": 3.0, "error": 0.125}, generation=0)
    archive.put([2, 16], {"failed": "boom"}, generation=0)
    reader = sqlite3.connect(path)
    rows = reader.execute(
        "SELECT genome, status, obj_f_bits, obj_error FROM evaluations ORDER BY rowid"
    ).fetchall()
    assert rows == [("4,16", "ok", 3.0, 0.125), ("2,16", "failed", None, None)]
    assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    reader.close()
    archive.close()


def test_new_objectives_add_columns_to_an_existing_archive(tmp_path):
    path = tmp_path / "a.sqlite"
    Archive(path, OBJECTIVES).close()
    archive = Archive(path, ("bops", "error"))
    archive.put([4], {"bops": 7, "error": 0.5}, generation=0)
    assert archive.get_many([[4]]) == {(4,): {"bops": 7, "error": 0.5}}
    archive.close()


def test_many_genomes_at_once(tmp_path):
    archive = Archive(tmp_path / "a.sqlite", OBJECTIVES)
    genomes = [[i % 4, i // 4] for i in range(1200)]
    for g in genomes[::2]:
        archive.put(g, {"f_bits": float(sum(g)), "error": 0.0}, generation=0)
    found = archive.get_many(genomes)
    assert set(found) == {tuple(g) for g in genomes[::2]}
    archive.close()


def test_genome_key_is_canonical():
    assert genome_key([8, 4, 16]) == genome_key((8, 4, 16)) == "8,4,16"


def test_a_file_that_is_not_sqlite_is_a_user_error(tmp_path):
    path = tmp_path / "archive.sqlite"
    path.write_bytes(b"definitely not a database" * 100)
    with pytest.raises(UserError, match="not a usable SQLite database"):
        Archive(path, OBJECTIVES)


OWNER = ("run-1", "digest-1")


def test_a_new_archive_is_bound_to_its_run_and_refuses_another(tmp_path):
    path = tmp_path / "a.sqlite"
    archive = Archive(path, OBJECTIVES, owner=OWNER)
    archive.put([8, 8], {"f_bits": 1.0, "error": 0.5}, generation=0)
    archive.close()
    Archive(path, OBJECTIVES, owner=OWNER).close()
    with pytest.raises(UserError, match="belongs to another run"):
        Archive(path, OBJECTIVES, owner=("run-2", "digest-1"))
    with pytest.raises(UserError, match="scored under other"):
        Archive(path, OBJECTIVES, owner=("run-1", "digest-2"))


def test_an_unbound_archive_with_results_is_refused(tmp_path):
    path = tmp_path / "a.sqlite"
    archive = Archive(path, OBJECTIVES)
    archive.put([8, 8], {"f_bits": 1.0, "error": 0.5}, generation=0)
    archive.close()
    with pytest.raises(UserError, match="evaluations of an unknown run"):
        Archive(path, OBJECTIVES, owner=OWNER)


def test_read_only_writes_nothing_and_needs_the_file(tmp_path):
    with pytest.raises(UserError, match="is missing"):
        Archive(tmp_path / "none.sqlite", read_only=True)
    path = tmp_path / "a.sqlite"
    Archive(path, OBJECTIVES, owner=OWNER).close()
    before = path.read_bytes()
    archive = Archive(path, owner=OWNER, read_only=True)
    assert len(archive) == 0
    with pytest.raises(UserError, match="cannot use archive"):
        archive.put([8], {"f_bits": 1.0}, generation=0)
    archive.close()
    assert path.read_bytes() == before


def test_rows_that_do_not_parse_are_damage(tmp_path):
    path = tmp_path / "a.sqlite"
    archive = Archive(path, OBJECTIVES)
    archive.put([8, 8], {"f_bits": 1.0, "error": 0.5}, generation=0)
    archive._db.execute("UPDATE evaluations SET genome = '8,x'")
    archive._db.commit()
    with pytest.raises(UserError, match="is damaged"):
        archive.records()
    archive.close()
