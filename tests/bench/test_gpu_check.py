"""bench/gpu_check.py up to what a CPU allows: every step with ``--device cpu --quick``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.py"
UNAVAILABLE_THERE = ("ray", "pymoo")
"""Not on the GPU machine and not carried: gpu_check must not import them."""


def run_script(prelude: str, *args: str) -> subprocess.CompletedProcess:
    """gpu_check as ``__main__`` in a fresh interpreter, after ``prelude``."""
    code = (
        f"import runpy, sys\n{prelude}\n"
        f"sys.path.insert(0, {str(SCRIPT.parent)!r})\n"
        f"sys.argv = [{str(SCRIPT)!r}, *{list(args)!r}]\n"
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_a_missing_carried_package_is_one_line_and_status_2(tmp_path):
    # a None entry in sys.modules makes find_spec raise, so hide the name on the path
    prelude = (
        "import importlib.util\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'mmengine' "
        "else real(n, *a)"
    )
    result = run_script(prelude, "--output", str(tmp_path / "out.json"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "mmengine missing" in result.stderr and "docs/gpu.md" in result.stderr
    assert not (tmp_path / "out.json").exists()


@pytest.mark.slow
def test_cpu_quick_run_checks_every_step_without_ray_or_pymoo(tmp_path):
    output = tmp_path / "gpu_check.json"
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in UNAVAILABLE_THERE)
    result = run_script(blocked, "--device", "cpu", "--quick", "--output", str(output))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert report["passed"] and report["hardware"]["device"] == "cpu"
    assert set(report["problems"]) == {"digits", "bevfusion_mini"}
    for problem in report["problems"].values():
        assert problem["genomes"], problem
        for row in problem["genomes"].values():
            assert row["f_bits_equal"] and row["repeat_bitwise_equal"]
            # the same device twice: the tolerance is not even needed
            assert row["device"] == row["cpu"]
        assert problem["timing"]["ratio"] > 0
    for bits in ("8_bits", "16_bits"):
        assert report["fused_kernel"][bits] == {
            "fused": False,
            "mismatch_rate": 0.0,
            "max_mismatch_steps": 0.0,
        }
