"""The numerical-gradient tools that every backward test relies on must themselves be right."""

import numpy as np
import pytest

from normcore.gradcheck import numerical_gradient, numerical_gradient_array, rel_error


def test_numerical_gradient_matches_analytic_cubic(rng):
    x = rng.standard_normal((3, 4))
    x_before = x.copy()
    grad = numerical_gradient(lambda z: np.sum(z**3), x)
    assert rel_error(grad, 3 * x_before**2) < 1e-7
    np.testing.assert_array_equal(x, x_before)  # perturbations are undone exactly


def test_numerical_gradient_array_is_vector_jacobian_product(rng):
    a = rng.standard_normal((4, 5))
    x = rng.standard_normal((2, 4))
    dout = rng.standard_normal((2, 5))
    dx = numerical_gradient_array(lambda z: np.tanh(z @ a), x, dout)
    expected = (dout * (1 - np.tanh(x @ a) ** 2)) @ a.T
    assert rel_error(dx, expected) < 1e-8


def test_rel_error_detects_a_wrong_gradient(rng):
    x = rng.standard_normal(10)
    assert rel_error(x, 1.01 * x) > 1e-3
    assert rel_error(x, x) == 0.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: numerical_gradient(np.sum, np.arange(3)), TypeError, "float32 or float64"),
        (lambda: numerical_gradient(np.sum, [1.0, 2.0]), TypeError, "numpy.ndarray"),
        (lambda: numerical_gradient(np.sum, np.ones(3), h=0.0), ValueError, "h must be"),
        (lambda: numerical_gradient(np.sum, np.ones((4, 4))[:, :2]), ValueError, "contiguous"),
        (lambda: rel_error(np.ones(2), np.ones(3)), ValueError, "shapes differ"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_rel_error_is_the_largest_entry_not_the_mean():
    # Definition: max_i |a_i - b_i| / max(1e-8, |a_i| + |b_i|). One entry 1 vs 2 gives
    # |1 - 2| / (1 + 2) = 1/3; the 99 equal entries give 0. An average would give 1/300.
    a = np.ones(100)
    b = a.copy()
    b[37] = 2.0
    assert rel_error(a, b) == 1.0 / 3.0
    assert rel_error(b, a) == 1.0 / 3.0
    # where both are ~0 the denominator is the 1e-8 floor: |0 - 1e-9| / 1e-8 = 0.1
    assert rel_error(np.zeros(3), np.array([0.0, 1e-9, 0.0])) == pytest.approx(0.1, rel=1e-12)


def test_rel_error_does_not_modify_its_inputs():
    a, b = np.ones(4, dtype=np.float32), np.full(4, 2.0)
    a0, b0 = a.copy(), b.copy()
    rel_error(a, b)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)
