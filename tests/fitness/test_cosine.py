import math

import pytest
import torch

from fitness.cosine import f_cos


def test_identical_outputs_have_zero_error():
    x = torch.randn(4, 3, 5)
    assert f_cos(x, x.clone()) == pytest.approx(0.0, abs=1e-12)


def test_hand_computed_per_sample_mean():
    ref = torch.tensor([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    out = torch.tensor([[0.0, 1.0], [1.0, 0.0], [-3.0, -4.0]])
    # 1 - cos per sample: 1 (orthogonal), 1 - 1/sqrt(2), 2 (opposite).
    expected = (1 + (1 - 1 / math.sqrt(2)) + 2) / 3
    assert f_cos(ref, out) == pytest.approx(expected, rel=1e-12)


def test_scale_does_not_matter():
    ref = torch.tensor([[1.0, 2.0, 3.0]])
    assert f_cos(ref, 10 * ref) == pytest.approx(0.0, abs=1e-12)


def test_zero_vectors():
    zero, one = torch.zeros(1, 3), torch.ones(1, 3)
    assert f_cos(zero, zero) == 0.0
    assert f_cos(zero, one) == 1.0
    assert f_cos(one, zero) == 1.0


def test_lists_of_batches_flatten_each_sample():
    ref = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]])
    out = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    # Sample 0 identical, sample 1 orthogonal; batches of 1 and 1 give the same mean.
    assert f_cos(ref, out) == 0.5
    assert f_cos([ref[:1], ref[1:]], [out[:1], out[1:]]) == 0.5


def test_float64_accumulation_sees_tiny_differences():
    ref = torch.ones(1, 1000)
    out = ref.clone()
    out[0, 0] += 1e-3
    assert f_cos(ref, out) > 0.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="output shapes differ"):
        f_cos(torch.ones(2, 3), torch.ones(2, 4))


def test_batches_of_other_sequence_lengths_are_compared_pairwise():
    short, long = torch.randn(2, 5, 4), torch.randn(3, 9, 4)
    assert f_cos([short, long], [short.clone(), long.clone()]) == pytest.approx(
        0.0, abs=1e-12
    )
    # the long batch's samples turned opposite: 3 of 5 samples at 1 - cos = 2
    assert f_cos([short, long], [short, -long]) == pytest.approx(6 / 5, rel=1e-12)


def test_a_missing_batch_is_an_error():
    with pytest.raises(ValueError, match="2 reference batches but 1 outputs"):
        f_cos([torch.ones(1, 2), torch.ones(1, 2)], [torch.ones(1, 2)])
