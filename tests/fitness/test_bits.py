import numpy as np
import pytest

from evoquant.errors import UserError
from evoquant.quant.layers import Layer
from fitness.bits import bit_metrics, f_bits

LAYERS = [
    Layer("conv", "conv2d", 100),
    Layer("attn", "matmul", 0),
    Layer("fc", "linear", 50),
]


def test_f_bits_sums_bits_times_weights_and_matmul_is_free():
    assert f_bits(LAYERS, [4, 2, 8]) == 4 * 100 + 8 * 50
    assert f_bits(LAYERS, [4, 16, 8]) == 800


def test_f_bits_none_and_32_mean_fp32():
    assert f_bits(LAYERS, [None, 8, 32]) == 32 * 150


def test_f_bits_vectorised_over_genomes():
    genomes = np.array([[2, 2, 2], [16, 8, 4]])
    np.testing.assert_array_equal(f_bits(LAYERS, genomes), [300.0, 1800.0])


def test_f_bits_rejects_wrong_genome_length():
    with pytest.raises(UserError, match="2 bit-widths but the model has 3"):
        f_bits(LAYERS, [4, 4])


def test_bit_metrics_hand_computed():
    metrics = bit_metrics(LAYERS, [4, 8, 8])
    # 4*100 + 8*50 = 800 bits; FP32 = 32*150 = 4800 bits.
    assert metrics == pytest.approx(
        {
            "f_bits": 800.0,
            "relative_cost": 800 / 4800,
            "compression": 6.0,
            "avg_weight_bits": 800 / 150,
            "megabytes": 800 / 8 / 1e6,
        }
    )


def test_bit_metrics_uniform_8_bit_is_a_quarter():
    metrics = bit_metrics(LAYERS, [8, 8, 8])
    assert metrics["relative_cost"] == 0.25
    assert metrics["compression"] == 4.0
    assert metrics["avg_weight_bits"] == 8.0


def test_bit_metrics_without_weights_is_a_user_error():
    with pytest.raises(UserError, match="no selected layer has weights"):
        bit_metrics([Layer("attn", "matmul", 0)], [8])
