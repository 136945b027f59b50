import csv
import json
import math

import pytest

from evoquant.report.front import (
    ArchiveFront,
    archived_points,
    column_label,
    knee_point,
    pareto_front,
    stored_configs,
    successful,
    write_front,
)

OBJ = ("relative_cost", "error")


def test_front_excludes_dominated_and_duplicates(
    make_point, uniform_points, mixed_points
):
    points = [*uniform_points, *mixed_points, dict(mixed_points[1])]
    twin = make_point([4, 2, 4, 4], 0.04)  # other genome, same objectives as [4,4,4,2]
    front = pareto_front([*points, twin], OBJ)
    assert [p["bits"] for p in front] == [
        [2, 2, 2, 2],
        [2, 2, 4, 4],
        [4, 4, 4, 2],
        [8, 4, 4, 4],
        [8, 8, 8, 4],
        [16, 16, 16, 16],
    ]


def test_front_default_objectives_sorted_by_cost(make_point):
    points = [
        make_point([8] * 4, 0.1),
        make_point([2] * 4, 0.9),
        make_point([4] * 4, 0.95),
    ]
    front = pareto_front(points)
    assert [p["f_bits"] for p in front] == [800.0, 3200.0]


def test_front_edge_cases(make_point):
    assert pareto_front([]) == []
    with pytest.raises(ValueError, match="top5"):
        pareto_front([make_point([2] * 4, 0.1)], ("f_bits", "top5"))


def test_knee_on_convex_front(make_point):
    # Normalised (cost, error): (0,1) (.1,.5) (.2,.2) (.5,.1) (1,0); 1-x-y is largest at (.2,.2).
    shape = [(0.0, 1.0), (0.1, 0.5), (0.2, 0.2), (0.5, 0.1), (1.0, 0.0)]
    front = [
        {"bits": [i], "f_bits": 1e4 * (1 + x), "error": 0.5 * y}
        for i, (x, y) in enumerate(shape)
    ]
    assert knee_point(front)["bits"] == [2]


def test_knee_never_on_concave_side():
    # Both interior points lie above the extremes' line; the one closest to it wins.
    shape = [(0.0, 1.0), (0.3, 0.75), (0.8, 0.35), (1.0, 0.0)]
    front = [{"bits": [i], "f_bits": x, "error": y} for i, (x, y) in enumerate(shape)]
    assert knee_point(front)["bits"] == [1]


def test_knee_of_small_fronts(make_point):
    a, b = make_point([2] * 4, 0.5), make_point([8] * 4, 0.01)
    assert knee_point([a]) is a
    assert knee_point([a, b]) is b
    with pytest.raises(ValueError):
        knee_point([])
    with pytest.raises(ValueError, match="2 objectives"):
        knee_point([a, b], ("f_bits", "error", "top1"))


def test_non_finite_points_are_never_on_the_front(make_point, mixed_points):
    nan, inf = make_point([2] * 4, math.nan), make_point([4] * 4, math.inf)
    front = pareto_front([nan, *mixed_points, inf], OBJ)
    assert front == pareto_front(mixed_points, OBJ)
    assert pareto_front([nan, inf], OBJ) == []


def record(bits, error, generation, make_point, failed=None) -> dict:
    """One row as ``Archive.records()`` gives it."""
    metrics = {k: v for k, v in make_point(bits, error).items() if k != "bits"}
    return {
        "genome": bits,
        "status": "failed" if failed else "ok",
        "metrics": metrics | ({"failed": failed} if failed else {}),
        "generation": generation,
    }


def test_the_archive_front_keeps_what_it_has_seen(make_point):
    """Generation g's front is over every genome first evaluated by g, failures aside;
    walking forward gives what each generation computed alone gives."""
    rows = [
        record([8, 8, 8, 8], 0.004, 0, make_point),
        record([2, 2, 2, 2], 0.8, 0, make_point),
        record([2, 2, 2, 4], 0.0, 1, make_point, failed="non-finite error: nan"),
        record([4, 4, 4, 4], 0.05, 1, make_point),
        record([4, 4, 4, 2], 0.04, 2, make_point),  # dominates W4 from generation 2 on
    ]
    archived = archived_points(rows)
    walking = ArchiveFront(OBJ)
    fronts = {g: [p["bits"] for p in walking.at(archived, g)] for g in range(3)}
    assert fronts == {
        0: [[2, 2, 2, 2], [8, 8, 8, 8]],
        1: [[2, 2, 2, 2], [4, 4, 4, 4], [8, 8, 8, 8]],
        2: [[2, 2, 2, 2], [4, 4, 4, 2], [8, 8, 8, 8]],
    }
    for g, bits in fronts.items():
        assert [p["bits"] for p in ArchiveFront(OBJ).at(archived, g)] == bits
    assert [p["bits"] for p in walking.at(archived, 1)] == fronts[1]  # back in time
    assert [p["bits"] for p in successful(archived, [[2, 2, 2, 4], [4] * 4], 1)] == [
        [4] * 4
    ]
    assert successful(archived, [[4, 4, 4, 2]], 1) == []


def test_column_labels_name_the_data():
    assert column_label("error") == "error (fitness batches)"
    assert column_label("error", "front error") == "front error (fitness batches)"
    assert column_label("relative_cost") == "relative_cost"


def test_write_front_round_trip(tmp_path, layer_names, uniform_points, mixed_points):
    front = pareto_front([*uniform_points, *mixed_points], OBJ)
    csv_path, json_path = write_front(tmp_path, front, layer_names, generation=7)

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(front)
    assert list(rows[0]) == [
        "f_bits",
        "relative_cost",
        "avg_weight_bits",
        "error (fitness batches)",
        "top1 (fitness batches)",
        *layer_names,
    ]
    for row, p in zip(rows, front):
        assert [int(row[name]) for name in layer_names] == p["bits"]
        assert float(row["error (fitness batches)"]) == p["error"]
        assert float(row["relative_cost"]) == p["relative_cost"]

    document = json.loads(json_path.read_text())
    assert document["generation"] == 7
    assert "every successful genome" in document["front"]
    assert document["measured_on"] == {
        "error": "fitness batches",
        "top1": "fitness batches",
    }
    for rec, p in zip(document["points"], front, strict=True):
        assert list(rec["bits"]) == layer_names
        assert list(rec["bits"].values()) == p["bits"]
        assert {k: v for k, v in rec.items() if k != "bits"} == {
            k: v for k, v in p.items() if k != "bits"
        }

    assert sorted(f.name for f in tmp_path.iterdir()) == ["front.csv", "front.json"]


def test_write_front_puts_each_points_configs_beside_its_genes(
    tmp_path, layer_names, uniform_points
):
    configs = [
        {name: (b, 16 if b > 8 else 8) for name, b in zip(layer_names, p["bits"])}
        for p in uniform_points
    ]
    _, json_path = write_front(tmp_path, uniform_points, layer_names, 0, configs)
    points = json.loads(json_path.read_text())["points"]
    assert [p["configs"] for p in points] == [
        {name: list(pair) for name, pair in c.items()} for c in configs
    ]
    assert points[-1]["configs"]["fc"] == [16, 16]
    _, json_path = write_front(tmp_path, uniform_points, layer_names, 0)
    assert not any("configs" in p for p in json.loads(json_path.read_text())["points"])
    with pytest.raises(ValueError, match="3 configs for 4 front points"):
        write_front(tmp_path, uniform_points, layer_names, 0, configs[:3])


def test_stored_configs_read_back_what_write_front_wrote(
    tmp_path, layer_names, uniform_points
):
    assert stored_configs(tmp_path, layer_names) == {}  # no front.json yet
    configs = [
        {name: (b, 16 if b > 8 else 8) for name, b in zip(layer_names, p["bits"])}
        for p in uniform_points
    ]
    write_front(tmp_path, uniform_points, layer_names, 0, configs)
    known = stored_configs(tmp_path, layer_names)
    assert known == {
        tuple(p["bits"]): list(c.values()) for p, c in zip(uniform_points, configs)
    }
    write_front(tmp_path, uniform_points, layer_names, 0)  # a front without configs
    assert stored_configs(tmp_path, layer_names) == {}
    (tmp_path / "front.json").write_text("{not json")
    assert stored_configs(tmp_path, layer_names) == {}


def test_write_front_rejects_wrong_genome_length(tmp_path, layer_names, make_point):
    with pytest.raises(ValueError, match="3 genes"):
        write_front(tmp_path, [make_point([2, 4, 8], 0.1)], layer_names)
    assert list(tmp_path.iterdir()) == []
