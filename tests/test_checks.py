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
