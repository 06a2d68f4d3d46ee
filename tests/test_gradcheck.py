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
