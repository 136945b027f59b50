import json

import numpy as np

from evoquant.report.sensitivity import (
    increase_matrix,
    table_lines,
    write_sensitivity,
)
from evoquant.sensitivity import Sensitivity


def model():
    error = np.array([[1e-2, 1e-4, 0.0, -1e-7], [np.inf, 1e-3, 0.0, np.nan]])
    return Sensitivity(
        genes=("conv", "fc"),
        alphabets=((2, 4, 8, 16), (2, 4, 8)),
        base_bits=8,
        base=np.array([2, 2]),
        base_cost=100.0,
        base_error=1e-3,
        cost_increase=np.array([[-6.0, -4.0, 0.0, 8.0], [-6.0, -4.0, 0.0, np.nan]]),
        error_increase=error,
        objectives=("f_bits", "error"),
    )


def test_the_matrix_has_one_column_per_width_and_gaps_where_a_gene_lacks_one():
    matrix, widths = increase_matrix(model())
    assert widths == [2, 4, 8, 16]
    assert matrix[0, 0] == 1e-2 and np.isnan(matrix[1, 3]) and np.isinf(matrix[1, 0])


def test_the_report_writes_the_table_and_the_heat_map(tmp_path):
    table, plot = write_sensitivity(tmp_path, tmp_path / "plots", model())
    data = json.loads(table.read_text())
    assert data["measured_on"] == "fitness batches"
    assert data["genes"][1]["widths"]["2"]["error"] is None  # the failed probe
    assert data["genes"][0]["widths"]["16"]["error_increase"] == -1e-7
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_printed_table_marks_failed_probes_and_missing_widths():
    lines = table_lines(model())
    assert lines[0].split() == ["gene", "W2", "W4", "W8", "W16"]
    assert lines[2].split() == ["fc", "failed", "+0.001", "+0", "-"]
