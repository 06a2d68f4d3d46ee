"""Tests for normcore.normalization: parity with torch.nn.functional, gradient checks,
numerics, bad inputs and batch-norm folding."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from normcore import normalization as nn_norm
from normcore.gradcheck import numerical_gradient_array, rel_error

DTYPES = [np.float64, np.float32]
TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-12}, np.float32: {"rtol": 1e-5, "atol": 1e-5}}

BN_SHAPES = [(2, 1), (4, 3), (7, 5), (2, 3, 5), (5, 2, 1), (3, 4, 2, 3), (2, 6, 2, 2, 3)]
LN_CASES = [  # (x shape, number of normalized trailing axes)
    ((2, 1), 2),
    ((4, 3), 1),
    ((4, 3), 2),
    ((2, 3, 5), 1),
    ((2, 3, 5), 2),
    ((3, 4, 2, 3), 3),
    ((2, 6, 2, 2, 3), 2),
]
IN_SHAPES = [(2, 1, 5), (2, 3, 5), (1, 2, 4), (3, 4, 2, 3), (2, 6, 2, 2, 3)]
GN_CASES = [  # (x shape, num_groups)
    ((2, 1, 3), 1),
    ((2, 4), 2),
    ((4, 6), 3),
    ((2, 6, 5), 1),
    ((2, 6, 5), 6),
    ((3, 4, 2, 3), 2),
    ((2, 6, 2, 2, 3), 1),
    ((2, 6, 2, 2, 3), 3),
    ((2, 6, 2, 2, 3), 6),
]


def _params(rng, shape, dtype):
    gamma = (1.0 + 0.5 * rng.standard_normal(shape)).astype(dtype)
    beta = rng.standard_normal(shape).astype(dtype)
    return gamma, beta


def _data(rng, shape, dtype):
    x = (3.0 + 2.0 * rng.standard_normal(shape)).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    return x, dout


def _torch_grads(fn, dout, *arrays):
    """Run ``fn`` on tensors of ``arrays`` and backpropagate ``dout`` with autograd."""
    tensors = [torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(torch.tensor(np.ascontiguousarray(dout)))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def _assert_close(actual, desired, dtype):
    assert actual.dtype == dtype
    np.testing.assert_allclose(actual, desired, **TOL[dtype])


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_training_matches_torch(rng, shape, dtype):
    x, dout = _data(rng, shape, dtype)
    gamma, beta = _params(rng, shape[1], dtype)
    rm = rng.standard_normal(shape[1]).astype(dtype)
    rv = rng.uniform(0.5, 2.0, shape[1]).astype(dtype)
    rm_t, rv_t = torch.tensor(rm), torch.tensor(rv)

    out, cache = nn_norm.batch_norm_forward(x, gamma, beta, rm, rv, training=True, momentum=0.3)
    ref, (dx_ref, dg_ref, db_ref) = _torch_grads(
        lambda a, g, b: F.batch_norm(a, rm_t, rv_t, g, b, training=True, momentum=0.3),
        dout, x, gamma, beta,
    )
    _assert_close(out, ref, dtype)
    _assert_close(rm, rm_t.numpy(), dtype)
    _assert_close(rv, rv_t.numpy(), dtype)
    for backward in (nn_norm.batch_norm_backward, nn_norm.batch_norm_backward_alt):
        dx, dgamma, dbeta = backward(dout, cache)
        _assert_close(dx, dx_ref, dtype)
        _assert_close(dgamma, dg_ref, dtype)
        _assert_close(dbeta, db_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES + [(1, 3)])
def test_batch_norm_eval_matches_torch(rng, shape, dtype):
    x, dout = _data(rng, shape, dtype)
    gamma, beta = _params(rng, shape[1], dtype)
    rm = rng.standard_normal(shape[1]).astype(dtype)
    rv = rng.uniform(0.5, 2.0, shape[1]).astype(dtype)
    rm0, rv0 = rm.copy(), rv.copy()

    out, cache = nn_norm.batch_norm_forward(x, gamma, beta, rm, rv, training=False)
    ref, (dx_ref, dg_ref, db_ref) = _torch_grads(
        lambda a, g, b: F.batch_norm(a, torch.tensor(rm0), torch.tensor(rv0), g, b),
        dout, x, gamma, beta,
    )
    _assert_close(out, ref, dtype)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)
    for backward in (nn_norm.batch_norm_backward, nn_norm.batch_norm_backward_alt):
        dx, dgamma, dbeta = backward(dout, cache)
        _assert_close(dx, dx_ref, dtype)
        _assert_close(dgamma, dg_ref, dtype)
        _assert_close(dbeta, db_ref, dtype)


def test_batch_norm_eval_dx_closed_form(rng):
    x, dout = _data(rng, (4, 3, 2), np.float64)
    gamma, beta = _params(rng, 3, np.float64)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    _, cache = nn_norm.batch_norm_forward(x, gamma, beta, rm, rv, training=False, eps=1e-3)
    expected = dout * (gamma / np.sqrt(rv + 1e-3))[:, None]
    for backward in (nn_norm.batch_norm_backward, nn_norm.batch_norm_backward_alt):
        np.testing.assert_allclose(backward(dout, cache)[0], expected, rtol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 3), (6, 2, 4, 4)])
def test_batch_norm_running_stats_over_steps_then_eval(rng, shape, dtype):
    c = shape[1]
    gamma, beta = _params(rng, c, dtype)
    rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
    bn = torch.nn.BatchNorm2d(c) if len(shape) == 4 else torch.nn.BatchNorm1d(c)
    bn = bn.to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    for step in range(4):
        x = (step + (1 + step) * rng.standard_normal(shape)).astype(dtype)
        out, _ = nn_norm.batch_norm_forward(x, gamma, beta, rm, rv, training=True)
        ref = bn.train()(torch.tensor(x)).detach().numpy()
        _assert_close(out, ref, dtype)
        _assert_close(rm, bn.running_mean.numpy(), dtype)
        _assert_close(rv, bn.running_var.numpy(), dtype)
    x = rng.standard_normal(shape).astype(dtype)
    out, _ = nn_norm.batch_norm_forward(x, gamma, beta, rm, rv, training=False)
    _assert_close(out, bn.eval()(torch.tensor(x)).detach().numpy(), dtype)


def test_batch_norm_lecture_momentum_convention(rng):
    """Huang's slides: E[x] <- b mu_B + (1 - b) E[x], the weight b on the new batch: torch's
    momentum is b itself (not 1 - b)."""
    x = rng.standard_normal((10, 3))
    gamma, beta = np.ones(3), np.zeros(3)
    rm, rv = rng.standard_normal(3), rng.uniform(1.0, 2.0, 3)
    b = 0.3
    expected_rm = b * x.mean(axis=0) + (1 - b) * rm
    expected_rv = b * x.var(axis=0, ddof=1) + (1 - b) * rv
    nn_norm.batch_norm_forward(x, gamma, beta, rm, rv, momentum=b)
    np.testing.assert_allclose(rm, expected_rm, rtol=1e-13)
    np.testing.assert_allclose(rv, expected_rv, rtol=1e-13)


def test_batch_norm_docstring_attributes_the_momentum_convention_to_the_slides():
    """Neither lecture writes rho * running + (1 - rho) * batch with rho = 0.9."""
    notes = nn_norm.batch_norm_forward.__doc__.split("Notes")[1]
    assert "0.9`" not in notes and "= 0.9" not in notes
    assert "weight :math:`\\beta` on the *new batch*" in notes


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_batch_norm_momentum_limits(rng, momentum):
    x = rng.standard_normal((6, 2, 3))
    rm, rv = np.full(2, 5.0), np.full(2, 7.0)
    nn_norm.batch_norm_forward(x, np.ones(2), np.zeros(2), rm, rv, momentum=momentum)
    if momentum == 0.0:
        np.testing.assert_array_equal(rm, 5.0)
        np.testing.assert_array_equal(rv, 7.0)
    else:
        np.testing.assert_allclose(rm, x.mean(axis=(0, 2)), rtol=1e-13)
        np.testing.assert_allclose(rv, x.var(axis=(0, 2), ddof=1), rtol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "k"), LN_CASES)
def test_layer_norm_matches_torch(rng, shape, k, dtype):
    x, dout = _data(rng, shape, dtype)
    gamma, beta = _params(rng, shape[len(shape) - k :], dtype)
    out, cache = nn_norm.layer_norm_forward(x, gamma, beta, eps=1e-5)
    ref, grads_ref = _torch_grads(
        lambda a, g, b: F.layer_norm(a, g.shape, g, b, eps=1e-5), dout, x, gamma, beta
    )
    _assert_close(out, ref, dtype)
    for got, want in zip(nn_norm.layer_norm_backward(dout, cache), grads_ref):
        _assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_of_one_element_is_beta(rng, dtype):
    x, dout = _data(rng, (3, 1), dtype)
    gamma, beta = _params(rng, (1,), dtype)
    out, cache = nn_norm.layer_norm_forward(x, gamma, beta)
    np.testing.assert_array_equal(out, np.broadcast_to(beta, x.shape))
    dx, dgamma, dbeta = nn_norm.layer_norm_backward(dout, cache)
    np.testing.assert_array_equal(dx, 0.0)
    np.testing.assert_array_equal(dgamma, 0.0)
    np.testing.assert_allclose(dbeta, dout.sum(axis=0), rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", IN_SHAPES)
def test_instance_norm_matches_torch(rng, shape, dtype):
    x, dout = _data(rng, shape, dtype)
    gamma, beta = _params(rng, shape[1], dtype)
    out, cache = nn_norm.instance_norm_forward(x, gamma, beta, eps=1e-4)
    ref, grads_ref = _torch_grads(
        lambda a, g, b: F.instance_norm(a, weight=g, bias=b, eps=1e-4), dout, x, gamma, beta
    )
    _assert_close(out, ref, dtype)
    for got, want in zip(nn_norm.instance_norm_backward(dout, cache), grads_ref):
        _assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "num_groups"), GN_CASES)
def test_group_norm_matches_torch(rng, shape, num_groups, dtype):
    x, dout = _data(rng, shape, dtype)
    gamma, beta = _params(rng, shape[1], dtype)
    out, cache = nn_norm.group_norm_forward(x, num_groups, gamma, beta)
    ref, grads_ref = _torch_grads(
        lambda a, g, b: F.group_norm(a, num_groups, g, b), dout, x, gamma, beta
    )
    _assert_close(out, ref, dtype)
    for got, want in zip(nn_norm.group_norm_backward(dout, cache), grads_ref):
        _assert_close(got, want, dtype)


def test_non_contiguous_input_matches_torch(rng):
    x = rng.standard_normal((3, 5, 4, 2)).transpose(0, 3, 2, 1)  # (3, 2, 4, 5), a view
    dout = rng.standard_normal(x.shape)[..., ::-1]
    gamma, beta = _params(rng, 2, np.float64)
    out, cache = nn_norm.group_norm_forward(x, 2, gamma, beta)
    ref, grads_ref = _torch_grads(lambda a, g, b: F.group_norm(a, 2, g, b), dout, x, gamma, beta)
    _assert_close(out, ref, np.float64)
    for got, want in zip(nn_norm.group_norm_backward(dout, cache), grads_ref):
        _assert_close(got, want, np.float64)
    out, cache = nn_norm.batch_norm_forward(x, gamma, beta)
    ref, grads_ref = _torch_grads(
        lambda a, g, b: F.batch_norm(a, None, None, g, b, training=True), dout, x, gamma, beta
    )
    _assert_close(out, ref, np.float64)
    for got, want in zip(nn_norm.batch_norm_backward(dout, cache), grads_ref):
        _assert_close(got, want, np.float64)


# --------------------------------------------------------------------------- equivalences


@pytest.mark.parametrize("shape", [(4, 6), (3, 6, 5), (2, 6, 2, 3)])
def test_group_norm_one_group_is_layer_norm(rng, shape):
    x, dout = _data(rng, shape, np.float64)
    gamma, beta = _params(rng, shape[1], np.float64)
    expand = (slice(None),) + (None,) * (len(shape) - 2)
    gamma_full = np.broadcast_to(gamma[expand], shape[1:]).copy()
    beta_full = np.broadcast_to(beta[expand], shape[1:]).copy()
    out_gn, cache_gn = nn_norm.group_norm_forward(x, 1, gamma, beta)
    out_ln, cache_ln = nn_norm.layer_norm_forward(x, gamma_full, beta_full)
    np.testing.assert_allclose(out_gn, out_ln, rtol=1e-12, atol=1e-12)
    dx_gn, dg_gn, db_gn = nn_norm.group_norm_backward(dout, cache_gn)
    dx_ln, dg_ln, db_ln = nn_norm.layer_norm_backward(dout, cache_ln)
    np.testing.assert_allclose(dx_gn, dx_ln, rtol=1e-12, atol=1e-12)
    axes = tuple(range(1, len(shape) - 1))
    np.testing.assert_allclose(dg_gn, dg_ln.sum(axis=axes), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db_gn, db_ln.sum(axis=axes), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 6, 2, 3)])
def test_group_norm_c_groups_is_instance_norm(rng, shape):
    x, dout = _data(rng, shape, np.float64)
    gamma, beta = _params(rng, shape[1], np.float64)
    out_gn, cache_gn = nn_norm.group_norm_forward(x, shape[1], gamma, beta)
    out_in, cache_in = nn_norm.instance_norm_forward(x, gamma, beta)
    np.testing.assert_allclose(out_gn, out_in, rtol=1e-12, atol=1e-12)
    grads_gn = nn_norm.group_norm_backward(dout, cache_gn)
    grads_in = nn_norm.instance_norm_backward(dout, cache_in)
    for a, b in zip(grads_gn, grads_in):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3), (16, 5), (3, 4, 2, 3), (2, 6, 2, 2, 3)])
def test_two_batch_norm_backwards_agree(rng, shape):
    x, dout = _data(rng, shape, np.float64)
    gamma, beta = _params(rng, shape[1], np.float64)
    _, cache = nn_norm.batch_norm_forward(x, gamma, beta)
    staged = nn_norm.batch_norm_backward(dout, cache)
    closed = nn_norm.batch_norm_backward_alt(dout, cache)
    for a, b in zip(staged, closed):
        assert rel_error(a, b) < 1e-12
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------- gradient checks


def _gradcheck(forward, backward, x, gamma, beta, dout):
    """rel_error of dx, dgamma and dbeta against centered differences."""
    grads = backward(dout, forward(x, gamma, beta)[1])
    numeric = [
        numerical_gradient_array(lambda a: forward(a, gamma, beta)[0], x, dout),
        numerical_gradient_array(lambda g: forward(x, g, beta)[0], gamma, dout),
        numerical_gradient_array(lambda b: forward(x, gamma, b)[0], beta, dout),
    ]
    return [rel_error(g, n) for g, n in zip(grads, numeric)]


GRADCHECK_CASES = {
    "bn_staged": (
        lambda x, g, b: nn_norm.batch_norm_forward(x, g, b),
        nn_norm.batch_norm_backward,
        (5, 3, 2),
        3,
    ),
    "bn_closed": (
        lambda x, g, b: nn_norm.batch_norm_forward(x, g, b),
        nn_norm.batch_norm_backward_alt,
        (6, 4),
        4,
    ),
    "ln": (nn_norm.layer_norm_forward, nn_norm.layer_norm_backward, (3, 2, 4), (2, 4)),
    "in": (nn_norm.instance_norm_forward, nn_norm.instance_norm_backward, (2, 3, 5), 3),
    "gn": (
        lambda x, g, b: nn_norm.group_norm_forward(x, 2, g, b),
        nn_norm.group_norm_backward,
        (2, 4, 3),
        4,
    ),
}


@pytest.mark.parametrize("name", list(GRADCHECK_CASES))
def test_backward_matches_numerical_gradient(rng, name):
    forward, backward, x_shape, p_shape = GRADCHECK_CASES[name]
    x, dout = _data(rng, x_shape, np.float64)
    gamma, beta = _params(rng, p_shape, np.float64)
    errors = _gradcheck(forward, backward, x, gamma, beta, dout)
    assert max(errors) < 1e-7, f"rel errors dx, dgamma, dbeta: {errors}"


@pytest.mark.parametrize("backward", [nn_norm.batch_norm_backward, nn_norm.batch_norm_backward_alt])
def test_batch_norm_eval_backward_matches_numerical_gradient(rng, backward):
    x, dout = _data(rng, (4, 3, 2), np.float64)
    gamma, beta = _params(rng, 3, np.float64)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)

    def forward(a, g, b):
        return nn_norm.batch_norm_forward(a, g, b, rm, rv, training=False)

    assert max(_gradcheck(forward, backward, x, gamma, beta, dout)) < 1e-7


# --------------------------------------------------------------------------- numerics


def _reference_standardize(x64, axes, eps=1e-5):
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x64 - mean) / np.sqrt(var + eps)


OFFSET_CASES = {
    "bn": (
        lambda x, g, b: nn_norm.batch_norm_forward(x, g, b),
        lambda t: F.batch_norm(t, None, None, training=True),
        (0, 2, 3),
    ),
    "ln": (
        lambda x, g, b: nn_norm.layer_norm_forward(x, np.ones(x.shape[1:], x.dtype),
                                                   np.zeros(x.shape[1:], x.dtype)),
        lambda t: F.layer_norm(t, t.shape[1:]),
        (1, 2, 3),
    ),
    "in": (nn_norm.instance_norm_forward, lambda t: F.instance_norm(t), (2, 3)),
    "gn": (
        lambda x, g, b: nn_norm.group_norm_forward(x, 4, g, b),
        lambda t: F.group_norm(t, 4),
        None,
    ),
}


@pytest.mark.parametrize("name", list(OFFSET_CASES))
def test_float32_large_offset_normalizes_correctly(rng, name):
    """1e4 + N(0, 1) in float32: E[x^2] - E[x]^2 would lose every digit of the variance."""
    forward, torch_forward, axes = OFFSET_CASES[name]
    shape = (64, 8, 16, 16)
    x = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    gamma, beta = np.ones(8, np.float32), np.zeros(8, np.float32)
    out, _ = forward(x, gamma, beta)
    assert out.dtype == np.float32
    x64 = x.astype(np.float64)
    if axes is None:  # group norm, 4 groups of 2 channels
        ref = _reference_standardize(x64.reshape(64, 4, -1), (2,)).reshape(shape)
    else:
        ref = _reference_standardize(x64, axes)
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)
    # torch itself is off by ~1e-3 here (the float32 mean is rounded at 1e4)
    np.testing.assert_allclose(out, torch_forward(torch.tensor(x)).numpy(), atol=5e-3, rtol=0)


def test_float32_offset_running_mean(rng):
    x = (1e4 + rng.standard_normal((256, 3, 8, 8))).astype(np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    nn_norm.batch_norm_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32), rm, rv,
                               momentum=1.0)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(rm, x64.mean(axis=(0, 2, 3)), rtol=1e-7)
    np.testing.assert_allclose(rv, x64.var(axis=(0, 2, 3), ddof=1), rtol=1e-5)


# --------------------------------------------------------------------------- bad inputs

_X = np.ones((4, 6, 3))
_G, _B = np.ones(6), np.zeros(6)
_RM, _RV = np.zeros(6), np.ones(6)

BAD_INPUTS = [
    pytest.param(lambda: nn_norm.group_norm_forward(_X, 4, _G, _B), ValueError,
                 r"group_norm_forward: num_groups=4 does not divide C=6", id="gn-groups"),
    pytest.param(lambda: nn_norm.group_norm_forward(_X, 0, _G, _B), ValueError,
                 r"num_groups must be in \[1, inf\], got 0", id="gn-zero-groups"),
    pytest.param(lambda: nn_norm.group_norm_forward(_X, 2.0, _G, _B), TypeError,
                 r"num_groups must be an integer", id="gn-float-groups"),
    pytest.param(lambda: nn_norm.group_norm_forward(_X, 2, np.ones(5), _B), ValueError,
                 r"gamma must have shape \(6,\), got \(5,\)", id="gn-gamma-shape"),
    pytest.param(lambda: nn_norm.batch_norm_forward(_X, _G, np.zeros((6, 1))), ValueError,
                 r"beta must have shape \(6,\), got \(6, 1\)", id="bn-beta-shape"),
    pytest.param(lambda: nn_norm.instance_norm_forward(_X, np.ones(3), _B), ValueError,
                 r"instance_norm_forward: gamma must have shape \(6,\)", id="in-gamma-shape"),
    pytest.param(lambda: nn_norm.layer_norm_forward(_X, np.ones((3, 6)), np.zeros((3, 6))),
                 ValueError, r"gamma.shape must be a suffix of x.shape", id="ln-not-suffix"),
    pytest.param(lambda: nn_norm.layer_norm_forward(_X, np.ones((2, 4, 6, 3)),
                                                    np.zeros((2, 4, 6, 3))),
                 ValueError, r"suffix", id="ln-too-many-axes"),
    pytest.param(lambda: nn_norm.layer_norm_forward(_X, np.ones(3), np.zeros(4)), ValueError,
                 r"beta must have shape \(3,\), got \(4,\)", id="ln-beta-shape"),
    pytest.param(lambda: nn_norm.batch_norm_forward(np.ones((1, 6)), _G, _B), ValueError,
                 r"expected more than 1 value per channel when training", id="bn-one-value"),
    pytest.param(lambda: nn_norm.batch_norm_forward(np.ones((1, 6, 1, 1)), _G, _B), ValueError,
                 r"more than 1 value per channel", id="bn-one-value-spatial"),
    pytest.param(lambda: nn_norm.instance_norm_forward(np.ones((4, 6, 1, 1)), _G, _B),
                 ValueError, r"more than 1 spatial element", id="in-one-value"),
    pytest.param(lambda: nn_norm.batch_norm_forward(np.ones((4, 6), dtype=np.int64), _G, _B),
                 TypeError, r"x must have dtype float32 or float64, got int64", id="bn-int"),
    pytest.param(lambda: nn_norm.layer_norm_forward(_X.tolist(), np.ones(3), np.zeros(3)),
                 TypeError, r"x must be a numpy.ndarray", id="ln-list"),
    pytest.param(lambda: nn_norm.group_norm_forward(torch.ones(4, 6), 2, _G, _B), TypeError,
                 r"got Tensor", id="gn-tensor"),
    pytest.param(lambda: nn_norm.instance_norm_forward(_X, _G.astype(np.float32), _B),
                 TypeError, r"all arrays must share one dtype", id="in-mixed-dtype"),
    pytest.param(lambda: nn_norm.batch_norm_forward(_X, _G, _B, eps=-1e-5), ValueError,
                 r"eps must be in \[0.0, inf\], got -1e-05", id="bn-negative-eps"),
    pytest.param(lambda: nn_norm.layer_norm_forward(_X, np.ones(3), np.zeros(3), eps=-1.0),
                 ValueError, r"layer_norm_forward: eps", id="ln-negative-eps"),
    pytest.param(lambda: nn_norm.group_norm_forward(_X, 2, _G, _B, eps=-0.1), ValueError,
                 r"group_norm_forward: eps", id="gn-negative-eps"),
    pytest.param(lambda: nn_norm.instance_norm_forward(_X, _G, _B, eps=-0.1), ValueError,
                 r"instance_norm_forward: eps", id="in-negative-eps"),
    pytest.param(lambda: nn_norm.batch_norm_forward(_X, _G, _B, momentum=1.5), ValueError,
                 r"momentum must be in \[0.0, 1.0\], got 1.5", id="bn-momentum-high"),
    pytest.param(lambda: nn_norm.batch_norm_forward(_X, _G, _B, momentum=-0.1), ValueError,
                 r"momentum must be in \[0.0, 1.0\]", id="bn-momentum-low"),
    pytest.param(lambda: nn_norm.batch_norm_forward(_X, _G, _B, momentum=None), TypeError,
                 r"momentum must be a real number", id="bn-momentum-none"),
    pytest.param(lambda: nn_norm.batch_norm_forward(np.ones(6), _G, _B), ValueError,
                 r"x must have at least 2 dimensions, got shape \(6,\)", id="bn-1d"),
    pytest.param(lambda: nn_norm.layer_norm_forward(np.ones(6), np.ones(6), np.ones(6)),
                 ValueError, r"at least 2 dimensions", id="ln-1d"),
    pytest.param(lambda: nn_norm.group_norm_forward(np.ones(6), 1, _G, _B), ValueError,
                 r"at least 2 dimensions", id="gn-1d"),
    pytest.param(lambda: nn_norm.instance_norm_forward(np.ones((4, 6)), _G, _B), ValueError,
                 r"at least 3 dimensions, got shape \(4, 6\)", id="in-2d"),
    pytest.param(lambda: nn_norm.batch_norm_forward(np.ones((0, 6)), _G, _B), ValueError,
                 r"x must not be empty", id="bn-empty"),
    pytest.param(lambda: nn_norm.batch_norm_forward(_X, _G, _B, _RM, None), ValueError,
                 r"both be arrays or both be None, got only running_mean", id="bn-only-mean"),
    pytest.param(lambda: nn_norm.batch_norm_forward(_X, _G, _B, None, _RV), ValueError,
                 r"got only running_var", id="bn-only-var"),
    pytest.param(lambda: nn_norm.batch_norm_forward(_X, _G, _B, training=False), ValueError,
                 r"evaluation mode \(training=False\) needs running_mean", id="bn-eval-no-stats"),
    pytest.param(lambda: nn_norm.batch_norm_forward(_X, _G, _B, training="eval"), TypeError,
                 r"training must be a bool", id="bn-training-str"),
    pytest.param(lambda: nn_norm.batch_norm_forward(_X, _G, _B, np.zeros(5), _RV), ValueError,
                 r"running_mean must have shape \(6,\), got \(5,\)", id="bn-running-shape"),
    pytest.param(lambda: nn_norm.batch_norm_backward(np.ones((4, 6)),
                                                     nn_norm.batch_norm_forward(_X, _G, _B)[1]),
                 ValueError, r"batch_norm_backward: dout must have shape \(4, 6, 3\)",
                 id="bn-dout-shape"),
    pytest.param(lambda: nn_norm.fold_batch_norm(np.ones((6, 3)), None, _G, _B, _RM,
                                                 np.ones(4)),
                 ValueError, r"running_var must have shape \(6,\), got \(4,\)", id="fold-shape"),
    pytest.param(lambda: nn_norm.fold_batch_norm(np.ones(6), None, _G, _B, _RM, _RV),
                 ValueError, r"weight must have at least 2 dimensions", id="fold-1d"),
    pytest.param(lambda: nn_norm.fold_batch_norm(np.ones((6, 3), np.float32), None, _G, _B,
                                                 _RM, _RV),
                 TypeError, r"all arrays must share one dtype", id="fold-dtype"),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_INPUTS)
def test_bad_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------- no mutation


def _forwards(rng):
    x, dout = _data(rng, (4, 6, 3), np.float64)
    gamma, beta = _params(rng, 6, np.float64)
    rm, rv = np.zeros(6), np.ones(6)
    return x, dout, gamma, beta, {
        "bn_train": (nn_norm.batch_norm_forward, (x, gamma, beta), nn_norm.batch_norm_backward),
        "bn_eval": (
            lambda *a: nn_norm.batch_norm_forward(*a, rm, rv, training=False),
            (x, gamma, beta),
            nn_norm.batch_norm_backward_alt,
        ),
        "ln": (nn_norm.layer_norm_forward, (x, gamma[:3].copy(), beta[:3].copy()),
               nn_norm.layer_norm_backward),
        "in": (nn_norm.instance_norm_forward, (x, gamma, beta), nn_norm.instance_norm_backward),
        "gn": (lambda *a: nn_norm.group_norm_forward(a[0], 3, *a[1:]), (x, gamma, beta),
               nn_norm.group_norm_backward),
    }


@pytest.mark.parametrize("name", ["bn_train", "bn_eval", "ln", "in", "gn"])
def test_inputs_not_modified_and_backward_repeatable(rng, name):
    x, dout, _, _, cases = _forwards(rng)
    forward, args, backward = cases[name]
    args = tuple(args)
    copies = [a.copy() for a in args]
    dout_copy = dout.copy()
    out, cache = forward(*args)
    first = backward(dout, cache)
    second = backward(dout, cache)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(dout, dout_copy)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.shares_memory(out, x)


def test_batch_norm_updates_only_running_stats(rng):
    x, _ = _data(rng, (4, 6, 3), np.float64)
    gamma, beta = _params(rng, 6, np.float64)
    rm, rv = np.zeros(6), np.ones(6)
    saved = [a.copy() for a in (x, gamma, beta)]
    nn_norm.batch_norm_forward(x, gamma, beta, rm, rv)
    for a, c in zip((x, gamma, beta), saved):
        np.testing.assert_array_equal(a, c)
    assert not np.array_equal(rm, 0.0) and not np.array_equal(rv, 1.0)


# --------------------------------------------------------------------------- folding


def _bn_params(rng, c, dtype=np.float64):
    gamma, beta = _params(rng, c, dtype)
    rm = rng.standard_normal(c).astype(dtype)
    rv = rng.uniform(0.2, 3.0, c).astype(dtype)
    return gamma, beta, rm, rv


def _torch_bn_eval(y, gamma, beta, rm, rv, eps):
    return F.batch_norm(y, torch.tensor(rm), torch.tensor(rv), torch.tensor(gamma),
                        torch.tensor(beta), training=False, eps=eps)


@pytest.mark.parametrize("with_bias", [True, False])
def test_fold_batch_norm_conv2d(rng, with_bias):
    weight = rng.standard_normal((5, 3, 3, 3))
    bias = rng.standard_normal(5) if with_bias else None
    gamma, beta, rm, rv = _bn_params(rng, 5)
    x = torch.tensor(rng.standard_normal((2, 3, 7, 6)))
    conv = F.conv2d(x, torch.tensor(weight), None if bias is None else torch.tensor(bias),
                    padding=1)
    ref = _torch_bn_eval(conv, gamma, beta, rm, rv, 1e-3).numpy()
    w_f, b_f = nn_norm.fold_batch_norm(weight, bias, gamma, beta, rm, rv, eps=1e-3)
    folded = F.conv2d(x, torch.tensor(w_f), torch.tensor(b_f), padding=1).numpy()
    np.testing.assert_allclose(folded, ref, rtol=1e-11, atol=1e-12)
    assert w_f.shape == weight.shape and b_f.shape == (5,)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fold_batch_norm_linear(rng, dtype):
    weight = rng.standard_normal((4, 7)).astype(dtype)
    bias = rng.standard_normal(4).astype(dtype)
    gamma, beta, rm, rv = _bn_params(rng, 4, dtype)
    x = torch.tensor(rng.standard_normal((10, 7)).astype(dtype))
    ref = _torch_bn_eval(F.linear(x, torch.tensor(weight), torch.tensor(bias)),
                         gamma, beta, rm, rv, 1e-5).numpy()
    w_f, b_f = nn_norm.fold_batch_norm(weight, bias, gamma, beta, rm, rv)
    folded = F.linear(x, torch.tensor(w_f), torch.tensor(b_f)).numpy()
    assert w_f.dtype == dtype and b_f.dtype == dtype
    tol = {"rtol": 1e-11, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-5}
    np.testing.assert_allclose(folded, ref, **tol)


def test_fold_batch_norm_matches_own_eval_forward(rng):
    weight, bias = rng.standard_normal((3, 4)), rng.standard_normal(3)
    gamma, beta, rm, rv = _bn_params(rng, 3)
    x = rng.standard_normal((6, 4))
    bn_out, _ = nn_norm.batch_norm_forward(x @ weight.T + bias, gamma, beta, rm, rv,
                                           training=False)
    w_f, b_f = nn_norm.fold_batch_norm(weight, bias, gamma, beta, rm, rv)
    np.testing.assert_allclose(x @ w_f.T + b_f, bn_out, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- batch renorm

BRN_SHAPES = [(4, 3), (7, 5), (2, 3, 5), (3, 4, 2, 3)]


def _brn_running(rng, channels, dtype, offset=0.5, spread=1.5):
    """Running statistics near, but not at, those of ``_data`` (mean 3, std 2)."""
    mean = (3.0 + offset * rng.standard_normal(channels)).astype(dtype)
    var = (4.0 * spread ** rng.uniform(-1, 1, channels)).astype(dtype)
    return mean, var


def _brn_by_hand(x, gamma, beta, run_mean, run_var, eps, rmax, dmax):
    """The paper's formula written out in float64 with explicit loops over channels."""
    out = np.empty(x.shape)
    r_all, d_all = [], []
    for c in range(x.shape[1]):
        values = x[:, c].astype(np.float64)
        mu_b = values.mean()
        sigma_b = np.sqrt(((values - mu_b) ** 2).mean() + eps)
        sigma = np.sqrt(float(run_var[c]) + eps)
        r = min(max(sigma_b / sigma, 1 / rmax), rmax)
        d = min(max((mu_b - float(run_mean[c])) / sigma, -dmax), dmax)
        out[:, c] = gamma[c] * ((values - mu_b) / sigma_b * r + d) + beta[c]
        r_all.append(r)
        d_all.append(d)
    return out, np.array(r_all), np.array(d_all)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BRN_SHAPES)
@pytest.mark.parametrize(("rmax", "dmax"), [(3.0, 5.0), (1.1, 0.05)])
def test_batch_renorm_matches_torch_autograd(rng, shape, dtype, rmax, dmax):
    from normcore.nn import batch_renorm

    x, dout = _data(rng, shape, dtype)
    gamma, beta = _params(rng, shape[1], dtype)
    rm, rv = _brn_running(rng, shape[1], dtype)
    rm_np, rv_np = rm.copy(), rv.copy()
    out, cache = nn_norm.batch_renorm_forward(x, gamma, beta, rm_np, rv_np, rmax=rmax, dmax=dmax)
    dx, dgamma, dbeta = nn_norm.batch_renorm_backward(dout, cache)

    rm_t, rv_t = torch.tensor(rm), torch.tensor(rv)
    out_t, (dx_t, dgamma_t, dbeta_t) = _torch_grads(
        lambda xt, gt, bt: batch_renorm(xt, rm_t, rv_t, gt, bt, rmax=rmax, dmax=dmax),
        dout, x, gamma, beta)
    for actual, desired in [(out, out_t), (dx, dx_t), (dgamma, dgamma_t), (dbeta, dbeta_t),
                            (rm_np, rm_t.numpy()), (rv_np, rv_t.numpy())]:
        _assert_close(actual, desired, dtype)


@pytest.mark.parametrize(("rmax", "dmax"), [(3.0, 5.0), (1.2, 0.1)])
def test_batch_renorm_forward_is_the_papers_formula(rng, rmax, dmax):
    x, _ = _data(rng, (6, 4, 3), np.float64)
    gamma, beta = _params(rng, 4, np.float64)
    rm, rv = _brn_running(rng, 4, np.float64, offset=1.0, spread=3.0)
    expected, r, d = _brn_by_hand(x, gamma, beta, rm, rv, 1e-5, rmax, dmax)
    out, cache = nn_norm.batch_renorm_forward(x, gamma, beta, rm.copy(), rv.copy(),
                                              rmax=rmax, dmax=dmax)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cache["r"], r, rtol=1e-12)
    np.testing.assert_allclose(cache["d"], d, rtol=1e-12, atol=1e-14)
    if rmax < 2:   # the tight bounds must actually clip, or this case tests nothing new
        assert np.any(np.isclose(r, rmax) | np.isclose(r, 1 / rmax))
        assert np.any(np.isclose(np.abs(d), dmax))


def test_batch_renorm_unclipped_training_output_is_the_eval_output(rng):
    x, _ = _data(rng, (16, 5), np.float64)
    gamma, beta = _params(rng, 5, np.float64)
    rm, rv = _brn_running(rng, 5, np.float64)
    evaluated, _ = nn_norm.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy(),
                                              training=False)
    trained, cache = nn_norm.batch_renorm_forward(x, gamma, beta, rm.copy(), rv.copy(),
                                                  rmax=100.0, dmax=100.0)
    assert np.all(cache["r"] != 1.0)
    np.testing.assert_allclose(trained, evaluated, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4)])
def test_batch_renorm_with_rmax_1_dmax_0_is_batch_norm(rng, shape):
    x, dout = _data(rng, shape, np.float64)
    gamma, beta = _params(rng, shape[1], np.float64)
    rm, rv = _brn_running(rng, shape[1], np.float64)
    rm_bn, rv_bn, rm_brn, rv_brn = rm.copy(), rv.copy(), rm.copy(), rv.copy()
    out_bn, cache_bn = nn_norm.batch_norm_forward(x, gamma, beta, rm_bn, rv_bn, momentum=0.3)
    out, cache = nn_norm.batch_renorm_forward(x, gamma, beta, rm_brn, rv_brn, momentum=0.3,
                                              rmax=1.0, dmax=0.0)
    np.testing.assert_allclose(out, out_bn, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm_brn, rm_bn, rtol=1e-14)
    np.testing.assert_allclose(rv_brn, rv_bn, rtol=1e-14)
    for a, b in zip(nn_norm.batch_renorm_backward(dout, cache),
                    nn_norm.batch_norm_backward(dout, cache_bn), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_batch_renorm_backward_matches_numerical_gradient(rng, training):
    """Gradient check with r and d clipped in every channel: there they are locally constant,
    so the stop-gradient backward is the true derivative of the forward."""
    x, dout = _data(rng, (5, 3, 2), np.float64)
    gamma, beta = _params(rng, 3, np.float64)
    rm = np.array([-10.0, 40.0, 30.0])        # far from the batch mean 3: d is clipped
    rv = np.array([0.25, 400.0, 0.1])         # far from the batch variance 4: r is clipped
    kwargs = dict(training=training, rmax=2.0, dmax=1.5)

    def forward(x_, g_, b_):
        return nn_norm.batch_renorm_forward(x_, g_, b_, rm.copy(), rv.copy(), **kwargs)[0]

    _, cache = nn_norm.batch_renorm_forward(x, gamma, beta, rm.copy(), rv.copy(), **kwargs)
    if training:
        assert np.all(np.isclose(cache["r"], 2.0) | np.isclose(cache["r"], 0.5))
        assert np.allclose(np.abs(cache["d"]), 1.5)
    dx, dgamma, dbeta = nn_norm.batch_renorm_backward(dout, cache)
    numeric = [
        numerical_gradient_array(lambda v: forward(v, gamma, beta), x.copy(), dout),
        numerical_gradient_array(lambda v: forward(x, v, beta), gamma.copy(), dout),
        numerical_gradient_array(lambda v: forward(x, gamma, v), beta.copy(), dout),
    ]
    for analytic, num in zip((dx, dgamma, dbeta), numeric, strict=True):
        assert rel_error(analytic, num) < 1e-6


def test_batch_renorm_backward_treats_r_and_d_as_constants(rng):
    """Unclipped, the backward is the derivative of the formula with r and d frozen."""
    x, dout = _data(rng, (6, 3), np.float64)
    gamma, beta = _params(rng, 3, np.float64)
    rm, rv = _brn_running(rng, 3, np.float64)
    _, cache = nn_norm.batch_renorm_forward(x, gamma, beta, rm.copy(), rv.copy())
    r, d = cache["r"], cache["d"]
    assert np.all((r > 1 / 3) & (r < 3) & (np.abs(d) < 5))

    def frozen(v):
        mu = v.mean(axis=0)
        sigma = np.sqrt(v.var(axis=0) + 1e-5)
        return gamma * ((v - mu) / sigma * r + d) + beta

    dx, _, _ = nn_norm.batch_renorm_backward(dout, cache)
    assert rel_error(dx, numerical_gradient_array(frozen, x.copy(), dout)) < 1e-7


def test_batch_renorm_does_not_modify_inputs_and_updates_running_stats(rng):
    x, dout = _data(rng, (4, 6, 3), np.float64)
    gamma, beta = _params(rng, 6, np.float64)
    rm, rv = _brn_running(rng, 6, np.float64)
    saved = [a.copy() for a in (x, dout, gamma, beta)]
    rm_before, rv_before = rm.copy(), rv.copy()
    _, cache = nn_norm.batch_renorm_forward(x, gamma, beta, rm, rv, momentum=0.25)
    first = nn_norm.batch_renorm_backward(dout, cache)
    second = nn_norm.batch_renorm_backward(dout, cache)
    for a, b in zip(saved, (x, dout, gamma, beta), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    m = 4 * 3
    mean = x.mean(axis=(0, 2))
    var = x.var(axis=(0, 2)) * m / (m - 1)
    np.testing.assert_allclose(rm, 0.75 * rm_before + 0.25 * mean, rtol=1e-12)
    np.testing.assert_allclose(rv, 0.75 * rv_before + 0.25 * var, rtol=1e-12)


_BX = np.ones((4, 3))
_BG, _BB = np.ones(3), np.zeros(3)

BRN_BAD_INPUTS = [
    pytest.param(lambda: nn_norm.batch_renorm_forward(_BX, _BG, _BB, None, None), ValueError,
                 r"running_mean and running_var are required", id="brn-no-running"),
    pytest.param(lambda: nn_norm.batch_renorm_forward(_BX, _BG, _BB, np.zeros(3), np.ones(3),
                                                      rmax=0.5),
                 ValueError, r"rmax must be in \[1.0, inf\], got 0.5", id="brn-rmax"),
    pytest.param(lambda: nn_norm.batch_renorm_forward(_BX, _BG, _BB, np.zeros(3), np.ones(3),
                                                      dmax=-1.0),
                 ValueError, r"dmax must be in \[0.0, inf\], got -1.0", id="brn-dmax"),
    pytest.param(lambda: nn_norm.batch_renorm_forward(_BX.astype(np.int64), _BG, _BB,
                                                      np.zeros(3), np.ones(3)),
                 TypeError, r"batch_renorm_forward: x must have dtype float32 or float64",
                 id="brn-int"),
    pytest.param(lambda: nn_norm.batch_renorm_forward(_BX, _BG, _BB, np.zeros(2), np.ones(3)),
                 ValueError, r"running_mean must have shape \(3,\), got \(2,\)", id="brn-shape"),
    pytest.param(lambda: nn_norm.batch_renorm_forward(_BX[:1], _BG, _BB, np.zeros(3),
                                                      np.ones(3)),
                 ValueError, r"more than 1 value per channel", id="brn-one-value"),
    pytest.param(lambda: nn_norm.batch_renorm_backward(
        np.ones((4, 3)), nn_norm.batch_norm_forward(_BX, _BG, _BB)[1]),
        ValueError, r"cache must come from batch_renorm_forward", id="brn-foreign-cache"),
]


@pytest.mark.parametrize(("call", "error", "match"), BRN_BAD_INPUTS)
def test_batch_renorm_bad_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_batch_renorm_module_in_the_builder_trains_and_shares_batchnorm_state():
    from normcore import nn as ncnn

    model = ncnn.build_mlp(8, (6,), 3, norm="brn", seed=0)
    assert isinstance(model.norm1, ncnn.BatchRenorm)
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    model.train()
    loss = model(x).square().mean()
    loss.backward()
    assert model.fc1.weight.grad is not None and torch.isfinite(model.fc1.weight.grad).all()
    assert model.norm1.num_batches_tracked.item() == 1
    bn = torch.nn.BatchNorm1d(6)
    bn.load_state_dict(model.norm1.state_dict())
    model.eval()
    bn.eval()
    with torch.no_grad():
        h = model.fc1(x)
        torch.testing.assert_close(model.norm1(h), bn(h))
    cnn = ncnn.build_cnn(1, 10, channels=(4,), norm="brn")
    assert cnn(torch.rand(3, 1, 8, 8)).shape == (3, 10)


# --------------------------------------------------------------------------- batch group norm

BGN_CASES = [((4, 6), 3), ((3, 6, 5), 2), ((2, 4, 3, 3), 4), ((5, 4, 2, 2), 1)]


def _torch_batch_group_norm(x, gamma, beta, num_groups):
    """BGN in torch: batch norm of the (N, G, rest) view, then a per-channel affine."""
    n, c = x.shape[:2]
    out = F.batch_norm(x.reshape(n, num_groups, -1), None, None, training=True, eps=1e-5)
    shape = (1, c) + (1,) * (x.dim() - 2)
    return out.reshape(x.shape) * gamma.view(shape) + beta.view(shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "num_groups"), BGN_CASES)
def test_batch_group_norm_matches_torch(rng, shape, num_groups, dtype):
    x, dout = _data(rng, shape, dtype)
    gamma, beta = _params(rng, shape[1], dtype)
    out, cache = nn_norm.batch_group_norm_forward(x, num_groups, gamma, beta)
    grads = nn_norm.batch_group_norm_backward(dout, cache)
    out_t, grads_t = _torch_grads(
        lambda xt, gt, bt: _torch_batch_group_norm(xt, gt, bt, num_groups), dout, x, gamma, beta)
    _assert_close(out, out_t, dtype)
    for g, gt in zip(grads, grads_t, strict=True):
        _assert_close(g, gt, dtype)


@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2, 3)])
def test_batch_group_norm_special_cases_are_batch_and_group_norm(rng, shape):
    x, dout = _data(rng, shape, np.float64)
    gamma, beta = _params(rng, shape[1], np.float64)
    bgn_c, _ = nn_norm.batch_group_norm_forward(x, shape[1], gamma, beta)
    np.testing.assert_allclose(bgn_c, nn_norm.batch_norm_forward(x, gamma, beta)[0],
                               rtol=1e-12, atol=1e-12)
    one = x[:1]
    bgn_1, _ = nn_norm.batch_group_norm_forward(one, 2, gamma, beta)
    np.testing.assert_allclose(bgn_1, nn_norm.group_norm_forward(one, 2, gamma, beta)[0],
                               rtol=1e-12, atol=1e-12)


def test_batch_group_norm_backward_matches_numerical_gradient(rng):
    x, dout = _data(rng, (3, 4, 2), np.float64)
    gamma, beta = _params(rng, 4, np.float64)
    _, cache = nn_norm.batch_group_norm_forward(x, 2, gamma, beta)
    dx, dgamma, dbeta = nn_norm.batch_group_norm_backward(dout, cache)

    def forward(x_, g_, b_):
        return nn_norm.batch_group_norm_forward(x_, 2, g_, b_)[0]

    numeric = [
        numerical_gradient_array(lambda v: forward(v, gamma, beta), x.copy(), dout),
        numerical_gradient_array(lambda v: forward(x, v, beta), gamma.copy(), dout),
        numerical_gradient_array(lambda v: forward(x, gamma, v), beta.copy(), dout),
    ]
    for analytic, num in zip((dx, dgamma, dbeta), numeric, strict=True):
        assert rel_error(analytic, num) < 1e-7


def test_batch_group_norm_does_not_modify_inputs(rng):
    x, dout = _data(rng, (4, 6, 3), np.float64)
    gamma, beta = _params(rng, 6, np.float64)
    saved = [a.copy() for a in (x, dout, gamma, beta)]
    _, cache = nn_norm.batch_group_norm_forward(x, 3, gamma, beta)
    nn_norm.batch_group_norm_backward(dout, cache)
    for a, b in zip(saved, (x, dout, gamma, beta), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: nn_norm.batch_group_norm_forward(np.ones((4, 6)), 4, np.ones(6), np.zeros(6)),
     ValueError, r"num_groups=4 does not divide C=6"),
    (lambda: nn_norm.batch_group_norm_forward(np.ones((1, 2)), 2, np.ones(2), np.zeros(2)),
     ValueError, r"more than 1 value per group"),
    (lambda: nn_norm.batch_group_norm_forward(np.ones((4, 6)), 2.0, np.ones(6), np.zeros(6)),
     TypeError, r"num_groups must be an integer"),
    (lambda: nn_norm.batch_group_norm_backward(
        np.ones((4, 6)), nn_norm.group_norm_forward(np.ones((4, 6)), 2, np.ones(6),
                                                    np.zeros(6))[1]),
     ValueError, r"cache must come from batch_group_norm_forward"),
])
def test_batch_group_norm_bad_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------- affine conventions


def test_layer_norm_elementwise_affine_vs_per_channel_affine(rng):
    """PyTorch's LayerNorm over (C, H, W) learns C*H*W scales; GN with one group learns C.
    They agree exactly when the elementwise scale is constant over each channel, and differ
    otherwise."""
    x, _ = _data(rng, (3, 4, 2, 3), np.float64)
    gamma_c, beta_c = _params(rng, 4, np.float64)
    per_channel, _ = nn_norm.group_norm_forward(x, 1, gamma_c, beta_c)
    spread = np.broadcast_to(gamma_c[:, None, None], (4, 2, 3)).copy()
    shift = np.broadcast_to(beta_c[:, None, None], (4, 2, 3)).copy()
    elementwise, _ = nn_norm.layer_norm_forward(x, spread, shift)
    np.testing.assert_allclose(elementwise, per_channel, rtol=1e-12, atol=1e-12)
    ln = torch.nn.LayerNorm((4, 2, 3)).double()
    gn = torch.nn.GroupNorm(1, 4).double()
    assert ln.weight.shape == (4, 2, 3) and gn.weight.shape == (4,)
    spread[0, 0, 0] += 1.0                     # one position scaled differently: not per channel
    varied, _ = nn_norm.layer_norm_forward(x, spread, shift)
    assert np.abs(varied - per_channel).max() > 0.1
