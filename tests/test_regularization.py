"""Tests for normcore.regularization: dropout (inverted and vanilla), L2 penalty, weight decay."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from normcore.gradcheck import numerical_gradient, numerical_gradient_array, rel_error
from normcore.regularization import (
    dropout_backward,
    dropout_forward,
    l2_penalty,
    vanilla_dropout_backward,
    vanilla_dropout_forward,
    weight_decay_step,
)

SHAPES = [(7,), (4, 5), (2, 3, 4, 5), (1, 1), (0, 3)]
PS = [0.0, 0.1, 0.5, 0.9]
DTYPES = [(np.float64, 1e-12), (np.float32, 1e-6)]


def _data(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------- inverted dropout


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_dropout_forward_equals_torch_formula_for_same_mask(shape, p, dtype, tol):
    x = _data(shape, dtype)
    out, (keep, p_cache, training) = dropout_forward(x, p, rng=1)
    assert out.dtype == dtype and out.shape == x.shape
    assert keep.dtype == bool and keep.shape == x.shape and training and p_cache == p
    # PyTorch's CPU formula: input * (bernoulli(1 - p) / (1 - p)).
    xt = torch.from_numpy(x)
    noise = torch.from_numpy(keep).to(xt.dtype).div_(1 - p)
    expected = (xt * noise).numpy()
    assert rel_error(out, expected) < tol


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_dropout_matches_torch_output_given_torch_mask(p, dtype, tol):
    """Read the mask off torch's own dropout output and apply normcore's formula with it."""
    x = _data((50, 40), dtype)
    x[x == 0] = 1.0
    torch.manual_seed(0)
    out_t = F.dropout(torch.from_numpy(x), p=p, training=True).numpy()
    keep = out_t != 0
    # dropout_backward applies exactly the forward's linear map x -> x * keep / (1 - p).
    mine = dropout_backward(x, (keep, p, True))
    assert rel_error(mine, out_t) < tol


@pytest.mark.parametrize("dtype,_", DTYPES)
def test_dropout_p0_and_eval_equal_torch_exactly(dtype, _):
    x = _data((6, 7), dtype)
    xt = torch.from_numpy(x)
    out, _cache = dropout_forward(x, 0.0, training=True, rng=0)
    np.testing.assert_array_equal(out, F.dropout(xt, p=0.0, training=True).numpy())
    np.testing.assert_array_equal(out, x)
    for p in (0.0, 0.3, 0.99):
        out_eval, cache = dropout_forward(x, p, training=False)
        np.testing.assert_array_equal(out_eval, F.dropout(xt, p=p, training=False).numpy())
        assert out_eval is not x and out_eval.dtype == dtype
        dx = dropout_backward(np.ones_like(x), cache)
        np.testing.assert_array_equal(dx, np.ones_like(x))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.75])
def test_dropout_fraction_zeroed_is_p(p):
    n = 200_000
    out, _ = dropout_forward(np.ones(n), p, rng=3)
    frac = np.mean(out == 0)
    sigma = np.sqrt(p * (1 - p) / n)  # binomial standard deviation of the fraction
    assert abs(frac - p) < 5 * sigma


@pytest.mark.parametrize("p", [0.1, 0.5, 0.75])
def test_dropout_preserves_mean_in_expectation(p):
    n = 200_000
    out, _ = dropout_forward(np.ones(n), p, rng=4)
    # Each output is Bernoulli(1-p)/(1-p): mean 1, variance p/(1-p).
    sigma = np.sqrt(p / (1 - p) / n)
    assert abs(out.mean() - 1.0) < 5 * sigma
    kept = out[out != 0]
    np.testing.assert_allclose(kept, 1.0 / (1.0 - p), rtol=1e-15)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_backward_numerical_gradient(p):
    x = _data((4, 5), np.float64)
    dout = _data((4, 5), np.float64, seed=1)
    # An int seed gives the same mask on every call, so the mask is fixed.
    _, cache = dropout_forward(x, p, rng=7)
    dx = dropout_backward(dout, cache)
    num = numerical_gradient_array(lambda z: dropout_forward(z, p, rng=7)[0], x.copy(), dout)
    assert rel_error(dx, num) < 1e-7


@pytest.mark.parametrize("p", [0.3, 0.6])
@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_dropout_backward_equals_autograd(p, dtype, tol):
    x = _data((3, 4, 5), dtype)
    dout = _data((3, 4, 5), dtype, seed=2)
    out, cache = dropout_forward(x, p, rng=5)
    keep = cache[0]
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = xt * torch.from_numpy(keep).to(xt.dtype) / (1 - p)
    yt.backward(torch.from_numpy(dout))
    dx = dropout_backward(dout, cache)
    assert dx.dtype == dtype
    assert rel_error(dx, xt.grad.numpy()) < tol
    assert rel_error(out, yt.detach().numpy()) < tol


def test_dropout_rng_generator_and_seed_are_deterministic():
    x = _data((20, 30), np.float64)
    a, _ = dropout_forward(x, 0.5, rng=11)
    b, _ = dropout_forward(x, 0.5, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(a, b)
    gen = np.random.default_rng(11)
    c, _ = dropout_forward(x, 0.5, rng=gen)
    d, _ = dropout_forward(x, 0.5, rng=gen)
    assert not np.array_equal(c, d)  # a Generator advances between calls


# ----------------------------------------------------------------------------- vanilla dropout


@pytest.mark.parametrize("p_keep", [0.25, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_vanilla_dropout_semantics(p_keep, dtype, tol):
    x = _data((8, 9), dtype)
    out, (keep, pk, training) = vanilla_dropout_forward(x, p_keep, rng=2)
    assert out.dtype == dtype and training and pk == p_keep
    np.testing.assert_array_equal(out, x * keep)  # no scaling at training time
    test_out, _ = vanilla_dropout_forward(x, p_keep, training=False)
    assert rel_error(test_out, x * p_keep) < tol  # scaling at test time
    # Same generator state -> same mask as inverted dropout with p = 1 - p_keep.
    inv, (inv_keep, _, _) = dropout_forward(x, 1.0 - p_keep, rng=2)
    np.testing.assert_array_equal(inv_keep, keep)
    assert rel_error(inv, out / dtype(p_keep)) < tol


@pytest.mark.parametrize("p_keep", [0.3, 0.5, 0.8])
def test_expected_train_output_equals_test_output_both_schemes(p_keep):
    """E_mask[train output] = test output for vanilla (scale at test) and inverted dropout."""
    T = 20_000
    x = np.linspace(-2.0, 2.0, 11)
    xs = np.broadcast_to(x, (T, x.size)).copy()

    vanilla_train, _ = vanilla_dropout_forward(xs, p_keep, rng=0)
    vanilla_test, _ = vanilla_dropout_forward(x, p_keep, training=False)
    sigma = np.abs(x) * np.sqrt(p_keep * (1 - p_keep) / T)
    assert np.all(np.abs(vanilla_train.mean(axis=0) - vanilla_test) <= 5 * sigma + 1e-15)

    p = 1.0 - p_keep
    inv_train, _ = dropout_forward(xs, p, rng=0)
    inv_test, _ = dropout_forward(x, p, training=False)
    sigma = np.abs(x) * np.sqrt(p / (1 - p) / T)
    assert np.all(np.abs(inv_train.mean(axis=0) - inv_test) <= 5 * sigma + 1e-15)


@pytest.mark.parametrize("training", [True, False])
def test_vanilla_dropout_backward_numerical_gradient(training):
    x = _data((3, 6), np.float64)
    dout = _data((3, 6), np.float64, seed=3)
    _, cache = vanilla_dropout_forward(x, 0.6, training=training, rng=9)
    dx = vanilla_dropout_backward(dout, cache)
    num = numerical_gradient_array(
        lambda z: vanilla_dropout_forward(z, 0.6, training=training, rng=9)[0], x.copy(), dout
    )
    assert rel_error(dx, num) < 1e-7


# ----------------------------------------------------------------------------- L2 and weight decay


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("wd", [0.0, 1e-4, 0.5])
def test_l2_penalty_matches_formula_and_autograd(dtype, tol, wd):
    w = _data((5, 4), dtype)
    loss, grad = l2_penalty(w, wd)
    assert grad.dtype == dtype
    wt = torch.from_numpy(w.astype(np.float64)).requires_grad_(True)
    lt = wd / 2 * wt.pow(2).sum()
    lt.backward()
    assert abs(loss - lt.item()) <= 1e-12 * max(1.0, abs(lt.item()))
    assert rel_error(grad, wt.grad.numpy()) < tol


def test_l2_penalty_numerical_gradient():
    w = _data((4, 3), np.float64)
    _, grad = l2_penalty(w, 0.3)
    num = numerical_gradient(lambda z: l2_penalty(z, 0.3)[0], w.copy())
    assert rel_error(grad, num) < 1e-7


def _quadratic_problem(seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((8, 5))
    b = rng.standard_normal(8)
    w0 = rng.standard_normal(5)
    return A, b, w0


def _torch_steps(opt_cls, w0, A, b, steps, l2_in_loss=0.0, **opt_kwargs):
    w = torch.tensor(w0, requires_grad=True)
    At, bt = torch.from_numpy(A), torch.from_numpy(b)
    opt = opt_cls([w], **opt_kwargs)
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * (At @ w - bt).pow(2).sum() + l2_in_loss / 2 * w.pow(2).sum()
        loss.backward()
        opt.step()
    return w.detach().numpy()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_l2_in_loss_equals_torch_weight_decay(momentum):
    A, b, w0 = _quadratic_problem()
    lr, wd = 0.05, 0.1
    for steps in (1, 5):
        via_wd = _torch_steps(
            torch.optim.SGD, w0, A, b, steps, lr=lr, momentum=momentum, weight_decay=wd
        )
        via_loss = _torch_steps(torch.optim.SGD, w0, A, b, steps, l2_in_loss=wd, lr=lr,
                                momentum=momentum)
        assert rel_error(via_wd, via_loss) < 1e-12
    # One plain SGD step with normcore: coupled (L2 gradient) == decoupled (decay step).
    g0 = A.T @ (A @ w0 - b)
    _, g_l2 = l2_penalty(w0, wd)
    coupled = w0 - lr * (g0 + g_l2)
    decoupled = weight_decay_step(w0, lr, wd) - lr * g0
    lecture = w0 - lr * g0 - lr * wd * w0  # W <- W - eta dL0/dW - eta lambda W
    torch_one = _torch_steps(torch.optim.SGD, w0, A, b, 1, lr=lr, weight_decay=wd)
    for ours in (coupled, decoupled, lecture):
        assert rel_error(ours, torch_one) < 1e-12


def test_adam_weight_decay_is_l2_but_adamw_is_decoupled():
    A, b, w0 = _quadratic_problem(1)
    lr, wd, eps = 0.01, 0.5, 1e-8
    adam_wd = _torch_steps(torch.optim.Adam, w0, A, b, 1, lr=lr, weight_decay=wd, eps=eps)
    adam_l2 = _torch_steps(torch.optim.Adam, w0, A, b, 1, l2_in_loss=wd, lr=lr, eps=eps)
    adamw = _torch_steps(torch.optim.AdamW, w0, A, b, 1, lr=lr, weight_decay=wd, eps=eps)
    adam_plain = _torch_steps(torch.optim.Adam, w0, A, b, 1, lr=lr, eps=eps)

    # Adam's weight_decay is an L2 term in the loss (coupled).
    assert rel_error(adam_wd, adam_l2) < 1e-12
    # AdamW = decoupled decay step, then the Adam update of the data loss alone.
    assert rel_error(adamw, weight_decay_step(w0, lr, wd) + (adam_plain - w0)) < 1e-12
    # Closed form of the first step: the bias-corrected update is g / (|g| + eps).
    g0 = A.T @ (A @ w0 - b)
    g = g0 + l2_penalty(w0, wd)[1]
    assert rel_error(adam_wd, w0 - lr * g / (np.abs(g) + eps)) < 1e-10
    assert rel_error(adamw, w0 * (1 - lr * wd) - lr * g0 / (np.abs(g0) + eps)) < 1e-10
    # ... and the two differ by far more than rounding.
    assert np.max(np.abs(adam_wd - adamw)) > 1e-4


@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_weight_decay_step_matches_adamw_decay(dtype, tol):
    w = _data((6, 3), dtype)
    lr, wd = 0.1, 0.01
    new = weight_decay_step(w, lr, wd)
    assert new.dtype == dtype
    wt = torch.from_numpy(w.copy())
    wt.mul_(1 - lr * wd)  # the line torch.optim.AdamW runs before its Adam update
    assert rel_error(new, wt.numpy()) < tol
    assert rel_error(new, w - lr * wd * w) < tol


# ----------------------------------------------------------------------------- input handling


def test_inputs_not_modified():
    x = _data((5, 6), np.float64)
    dout = _data((5, 6), np.float64, seed=1)
    x0, d0 = x.copy(), dout.copy()
    _, cache = dropout_forward(x, 0.5, rng=0)
    dropout_backward(dout, cache)
    _, cache = vanilla_dropout_forward(x, 0.5, rng=0)
    vanilla_dropout_backward(dout, cache)
    vanilla_dropout_forward(x, 0.5, training=False)
    l2_penalty(x, 0.1)
    weight_decay_step(x, 0.1, 0.1)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dout, d0)


X = np.ones((3, 4))
BAD = [
    (lambda: dropout_forward(X, 1.0), ValueError, r"dropout_forward: p must be in \[0\.0, 1\.0\)"),
    (lambda: dropout_forward(X, -0.1), ValueError, r"dropout_forward: p must be in"),
    (lambda: dropout_forward(X, 1.5), ValueError, r"got 1\.5"),
    (lambda: dropout_forward(X, "0.5"), TypeError, r"dropout_forward: p must be a real number"),
    (lambda: dropout_forward([1.0, 2.0], 0.5), TypeError, r"dropout_forward: x must be a numpy"),
    (lambda: dropout_forward(np.ones(3, dtype=int), 0.5), TypeError, r"dtype float32 or float64"),
    (lambda: dropout_forward(torch.ones(3), 0.5), TypeError, r"got Tensor"),
    (lambda: dropout_forward(X, 0.5, rng="seed"), TypeError, r"rng must be a numpy"),
    (
        lambda: dropout_backward(np.ones((2, 2)), dropout_forward(X, 0.5, rng=0)[1]),
        ValueError,
        r"dropout_backward: dout must have shape \(3, 4\), got \(2, 2\)",
    ),
    (lambda: vanilla_dropout_forward(X, 0.0), ValueError, r"p_keep must be in \(0\.0, 1\.0\]"),
    (lambda: vanilla_dropout_forward(X, 1.01), ValueError, r"vanilla_dropout_forward: p_keep"),
    (
        lambda: vanilla_dropout_backward(np.ones(5), vanilla_dropout_forward(X, 0.5, rng=0)[1]),
        ValueError,
        r"vanilla_dropout_backward: dout must have shape",
    ),
    (lambda: l2_penalty(X, -1.0), ValueError, r"l2_penalty: weight_decay must be in \[0\.0, inf\]"),
    (lambda: l2_penalty(np.ones(2, dtype=np.int64), 0.1), TypeError, r"l2_penalty: w must have"),
    (lambda: weight_decay_step(X, -0.1, 0.1), ValueError, r"weight_decay_step: lr must be"),
    (lambda: weight_decay_step(X, 0.1, float("nan")), ValueError, r"weight_decay must be finite"),
]


@pytest.mark.parametrize("call,err,msg", BAD)
def test_bad_inputs(call, err, msg):
    with pytest.raises(err, match=msg):
        call()
