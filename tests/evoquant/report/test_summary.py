import pytest

from evoquant.report.front import knee_point, pareto_front
from evoquant.report.summary import compact_bits, write_summary

OBJ = ("relative_cost", "error")


@pytest.fixture
def summary(tmp_path, layer_names, uniform_points, labelled_uniform, mixed_points):
    front = pareto_front([*uniform_points, *mixed_points], OBJ)
    knee = knee_point(front, OBJ)
    info = {
        "problem": "toy",
        "generations": 5,
        "evaluations": 120,
        "hypervolume": 0.123456,
    }
    path = write_summary(tmp_path, front, knee, labelled_uniform, layer_names, info)
    return path.read_text(), front, knee


def test_header_and_front_table(summary):
    text, front, _ = summary
    assert text.startswith("# evoquant run summary\n")
    for line in [
        "- **problem**: toy",
        "- **evaluations**: 120",
        "- **hypervolume**: 0.1235",
    ]:
        assert line in text
    assert (
        "| # | relative cost | avg weight bits | error (fitness batches) | f_bits"
        " | top1 (fitness batches) |"
    ) in text
    assert f"## Archive front ({len(front)} points)" in text
    assert "every successful genome evaluated up to this generation" in text


def test_knee_is_named(summary):
    text, front, knee = summary
    k = front.index(knee)
    assert knee["bits"] == [4, 4, 4, 2]
    assert f"Front point #{k}:" in text
    assert "Bits: `4-4-4-2`" in text
    assert f"| {k} (knee) |" in text
    assert "| 0 | conv1 | 4 |" in text and "| 3 | fc | 2 |" in text


def test_uniform_rows_against_nearest_front_point(summary):
    text, front, _ = summary
    rows = {
        line.split(" | ")[0]: line
        for line in text.splitlines()
        if line.startswith("| W")
    }
    assert list(rows) == ["| W2", "| W4", "| W8", "| W16"]
    assert rows["| W4"].endswith("| dominated |")
    assert rows["| W8"].endswith("| dominated |")
    assert rows["| W2"].endswith("| on the front |")
    assert rows["| W16"].endswith("| on the front |")
    w4_nearest = front.index(next(p for p in front if p["bits"] == [4, 4, 4, 2]))
    assert rows["| W4"].split(" | ")[3] == str(w4_nearest)


def test_rejects_knee_outside_front(tmp_path, layer_names, make_point, uniform_points):
    with pytest.raises(ValueError, match="knee"):
        write_summary(
            tmp_path, uniform_points, make_point([8, 4, 4, 2], 0.1), {}, layer_names, {}
        )
    assert list(tmp_path.iterdir()) == []


def test_compact_bits():
    assert compact_bits([8, 4, 4, 2]) == "8-4-4-2"


def test_uniform_outside_the_front_is_not_dominated(
    tmp_path, layer_names, labelled_uniform, mixed_points
):
    front = pareto_front(mixed_points, OBJ)
    text = write_summary(
        tmp_path, front, front[0], labelled_uniform, layer_names, {}
    ).read_text()
    w16 = next(line for line in text.splitlines() if line.startswith("| W16 |"))
    assert w16.endswith("| not dominated |")


def test_a_failed_uniform_is_listed_with_its_reason(
    tmp_path, layer_names, labelled_uniform, mixed_points
):
    failed = {"bits": [2] * 4, "failed": "non-finite error: nan"}
    front = pareto_front(mixed_points, OBJ)
    text = write_summary(
        tmp_path, front, front[0], labelled_uniform | {"W2": failed}, layer_names, {}
    ).read_text()
    assert "- W2 failed: non-finite error: nan" in text
    assert not [line for line in text.splitlines() if line.startswith("| W2 |")]
    assert [line for line in text.splitlines() if line.startswith("| W4 |")]
