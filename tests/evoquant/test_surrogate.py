import numpy as np

from evoquant.sensitivity import Sensitivity
from evoquant.surrogate import ErrorSurrogate, promising_order, screen


def additive_model(genes=6, seed=0):
    rng = np.random.default_rng(seed)
    error = np.column_stack([rng.uniform(0.5, 2, genes), rng.uniform(0.1, 0.5, genes)])
    error[:, 1] = 0.0  # level 1 is the base
    error[:, 0] = error[:, 0] * 1e-2
    cost = np.column_stack([-np.ones(genes), np.zeros(genes)])
    return Sensitivity(
        genes=tuple(f"g{i}" for i in range(genes)),
        alphabets=((4, 8),) * genes,
        base_bits=8,
        base=np.ones(genes, dtype=int),
        base_cost=float(genes),
        base_error=1e-3,
        cost_increase=cost,
        error_increase=error,
        objectives=("f_bits", "error"),
    )


def true_error(model, levels):
    """The additive model plus an interaction of genes 0 and 1 it cannot see."""
    _, error = model.predict(levels)
    both_low = (levels[:, 0] == 0) & (levels[:, 1] == 0)
    return error * np.where(both_low, 20.0, 1.0)


def test_the_correction_learns_an_interaction_between_neighbours():
    model = additive_model()
    rng = np.random.default_rng(1)
    train = rng.integers(0, 2, size=(40, 6))
    test = rng.integers(0, 2, size=(200, 6))
    fitted = ErrorSurrogate(model).fit(train, true_error(model, train))

    def log_rmse(predicted):
        return np.sqrt(np.mean(np.log(predicted / true_error(model, test)) ** 2))

    _, additive = model.predict(test)
    assert log_rmse(fitted.predict(test)) < 0.5 * log_rmse(additive)


def test_the_fit_is_deterministic():
    model = additive_model()
    train = np.random.default_rng(2).integers(0, 2, size=(30, 6))
    a = ErrorSurrogate(model).fit(train, true_error(model, train)).predict(train)
    b = ErrorSurrogate(model).fit(train, true_error(model, train)).predict(train)
    assert np.array_equal(a, b)


def test_candidates_the_reference_dominates_come_last():
    reference = np.array([[1.0, 1.0], [3.0, 0.1]])
    candidates = np.array([[2.0, 2.0], [0.5, 5.0], [2.0, 0.5], [4.0, 4.0]])
    order = promising_order(candidates, reference)
    assert set(order[:2]) == {1, 2} and order[-1] == 3


def test_screening_explores_with_the_generator_it_is_given():
    candidates = np.column_stack([np.arange(50.0), 50 - np.arange(50.0) ** 0.5])
    reference = np.zeros((0, 2))
    a = screen(candidates, reference, 10, 0.3, np.random.default_rng(5))
    b = screen(candidates, reference, 10, 0.3, np.random.default_rng(5))
    assert np.array_equal(a, b) and len(set(a.tolist())) == 10
    best = promising_order(candidates, reference)[:7]
    assert set(best.tolist()) <= set(a.tolist())
    assert len(screen(candidates, reference, 80, 0.3, np.random.default_rng(5))) == 50
