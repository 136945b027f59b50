import io

from evoquant.config import AlphaConfig, QuantConfig
from evoquant.quant import progress as progress_module
from evoquant.quant.layers import find_layers
from evoquant.quant.progress import CalibrationProgress
from evoquant.quant.table import build_quant_table


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_are_throttled_and_carry_an_eta():
    clock, stream = Clock(), io.StringIO()
    progress = CalibrationProgress(100, stream, interval=10.0, clock=clock)
    for _ in range(50):  # 50 units over 25 s: the first line, then one per 10 s
        clock.now += 0.5
        progress.step(1, "alpha_w of fc at W4")
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4  # at 0.5 s, 10.5 s, 20.5 s, and the end
    assert lines[2] == (
        "calibration: alpha_w of fc at W4: 41% done, 20s elapsed, ETA 29s"
    )
    assert lines[-1] == "calibration: done in 25s"


def test_without_a_stream_nothing_is_written(capsys):
    progress = CalibrationProgress(10, stream=None)
    progress.step(5, "ranges of fc")
    progress.finish()
    assert capsys.readouterr() == ("", "")


def test_a_table_build_reports_its_stages_layers_and_configs(
    tiny_model, tiny_batches, tiny_run
):
    stream = io.StringIO()
    quant = QuantConfig(
        bit_configs=[(4, 8), (8, 8)], alpha=AlphaConfig(start=0.9, stop=1.1, step=0.1)
    )
    layers = find_layers(tiny_model)
    build_quant_table(tiny_model, layers, tiny_run, tiny_batches, quant, stream)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("calibration: ranges of stem.0: ")
    assert lines[-1].startswith("calibration: done in ")


def test_a_slow_build_names_the_layer_and_bit_config(
    tiny_model, tiny_batches, tiny_run, monkeypatch
):
    stream = io.StringIO()
    monkeypatch.setattr(progress_module, "INTERVAL_S", 0.0)  # every step a line
    quant = QuantConfig(
        bit_configs=[(4, 8)], alpha=AlphaConfig(start=0.9, stop=1.1, step=0.1)
    )
    layers = find_layers(tiny_model)
    build_quant_table(tiny_model, layers, tiny_run, tiny_batches, quant, stream)
    text = stream.getvalue()
    assert "alpha_w of attn.q at W4:" in text
    assert "alpha_a of attn.q_k_matmul at W4A8:" in text
    assert "histograms" not in text  # minmax ranges need no histogram pass
    shares = [
        int(line.split("% done")[0].rsplit(" ", 1)[1])
        for line in text.splitlines()[:-1]
    ]
    assert shares == sorted(shares) and shares[-1] == 99
