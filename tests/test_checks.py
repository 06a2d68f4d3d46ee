"""Input validation helpers: the messages name what was expected and what came."""

import numpy as np
import pytest

from normcore import _checks


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: _checks.check_float_array("f", "x", np.arange(3)), TypeError, "got int64"),
        (lambda: _checks.check_float_array("f", "x", [1.0]), TypeError, "got list"),
        (lambda: _checks.check_float_array("f", "x", np.ones(3), ndim=2), ValueError, "shape"),
        (lambda: _checks.check_float_array("f", "x", np.ones(3), min_ndim=2), ValueError,
         "at least 2"),
        (lambda: _checks.check_same_dtype("f", a=np.ones(1), b=np.ones(1, np.float32)),
         TypeError, "share one dtype"),
        (lambda: _checks.check_shape("f", "g", np.ones(3), (4,)), ValueError, r"\(4,\)"),
        (lambda: _checks.check_finite("f", "x", np.array([np.nan])), ValueError, "finite"),
        (lambda: _checks.check_scalar("f", "lr", -1.0, low=0), ValueError, r"\[0, inf\]"),
        (lambda: _checks.check_scalar("f", "p", 1.0, low=0, high=1, high_inclusive=False),
         ValueError, r"\[0, 1\)"),
        (lambda: _checks.check_scalar("f", "lr", "0.1"), TypeError, "real number"),
        (lambda: _checks.check_scalar("f", "n", 2.5, integer=True), TypeError, "integer"),
        (lambda: _checks.check_scalar("f", "n", True, integer=True), TypeError, "integer"),
        (lambda: _checks.check_rng("f", "seed"), TypeError, "Generator"),
    ],
)
def test_bad_input_messages(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_valid_input_passes_through_unchanged():
    x = np.ones((2, 3), dtype=np.float32)
    assert _checks.check_float_array("f", "x", x, ndim=2) is x
    assert _checks.check_scalar("f", "lr", 0.1, low=0) == 0.1
    gen = np.random.default_rng(1)
    assert _checks.check_rng("f", gen) is gen
    assert isinstance(_checks.check_rng("f", 3), np.random.Generator)


# ---------------------------------------------------------------------------- float16
# normcore promises float32 and float64 only. float16 is a floating dtype, so a check
# written as "is it a float?" would let it through; every public function that validates a
# dtype must refuse it with the same TypeError as an integer array.


def _h(*shape):
    return np.ones(shape, dtype=np.float16)


def _float16_calls():
    from normcore import (
        analysis,
        data,
        gradcheck,
        init,
        normalization,
        optim,
        preprocessing,
        regularization,
        weightnorm,
        whitening,
    )

    g16, b16 = _h(3), np.zeros(3, np.float16)
    return {
        "check_float_array": lambda: _checks.check_float_array("f", "x", _h(3)),
        "check_float_dtype": lambda: _checks.check_float_dtype("f", np.float16),
        "batch_norm_forward": lambda: normalization.batch_norm_forward(_h(4, 3), g16, b16),
        "layer_norm_forward": lambda: normalization.layer_norm_forward(_h(4, 3), g16, b16),
        "group_norm_forward": lambda: normalization.group_norm_forward(
            _h(2, 4, 3), 2, _h(4), _h(4)),
        "instance_norm_forward": lambda: normalization.instance_norm_forward(
            _h(2, 3, 4), g16, b16),
        "fit_standardize": lambda: preprocessing.fit_standardize(_h(5, 3)),
        "fit_zca_whitening": lambda: preprocessing.fit_zca_whitening(_h(5, 3)),
        "dropout_forward": lambda: regularization.dropout_forward(_h(4, 3), 0.5, rng=0),
        "weight_decay_step": lambda: regularization.weight_decay_step(_h(3), 0.1, 0.01),
        "weight_norm_forward": lambda: weightnorm.weight_norm_forward(_h(3, 4), g16),
        "batch_whitening_forward": lambda: whitening.batch_whitening_forward(
            _h(8, 3), "zca"),
        "sgd": lambda: optim.sgd(_h(3), _h(3), {}, lr=0.1),
        "adam": lambda: optim.adam(_h(3), _h(3), {}),
        "numerical_gradient": lambda: gradcheck.numerical_gradient(np.sum, _h(3)),
        "init.normal": lambda: init.normal((3, 3), 0.1, rng=0, dtype=np.float16),
        "init.orthogonal": lambda: init.orthogonal((3, 3), rng=0, dtype=np.float16),
        "init.kaiming_normal": lambda: init.kaiming_normal((3, 3), rng=0, dtype=np.float16),
        "data.load_digits_split": lambda: data.load_digits_split(dtype=np.float16),
        "data.ill_conditioned_regression": lambda: data.ill_conditioned_regression(
            50, eigenvalues=[2.0, 1.0], rng=0, dtype=np.float16),
        "data.cutout": lambda: data.cutout(_h(1, 4, 4), rng=0, size=2),
        "data.gaussian_noise": lambda: data.gaussian_noise(_h(1, 4, 4), rng=0, std=0.1),
        "analysis.linear_regression_hessian": lambda: analysis.linear_regression_hessian(
            _h(5, 3)),
        "analysis.gradient_descent_errors": lambda: analysis.gradient_descent_errors(
            _h(5, 3), _h(5)),
        "analysis.stochastic_normalization_disturbance":
            lambda: analysis.stochastic_normalization_disturbance(_h(64, 3), "bn", 8),
    }


@pytest.mark.parametrize("name", sorted(_float16_calls()))
def test_float16_is_refused_everywhere(name):
    call = _float16_calls()[name]
    with pytest.raises(TypeError, match="float32 or float64"):
        call()


def test_float16_arrays_are_not_modified_when_refused():
    from normcore import normalization

    x = np.arange(12, dtype=np.float16).reshape(4, 3)
    before = x.copy()
    with pytest.raises(TypeError):
        normalization.batch_norm_forward(x, np.ones(3, np.float16), np.zeros(3, np.float16))
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", np.dtype("float64")])
def test_float_dtype_accepts_the_two_allowed_dtypes(dtype):
    assert _checks.check_float_dtype("f", dtype) in (np.dtype(np.float32), np.dtype(np.float64))


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble, np.int32, np.complex128, "nope"])
def test_float_dtype_refuses_everything_else(dtype):
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        _checks.check_float_dtype("f", dtype)
