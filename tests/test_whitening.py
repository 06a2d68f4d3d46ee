"""Tests for normcore.whitening: PCA / ZCA / Cholesky batch whitening and group whitening."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from normcore.gradcheck import numerical_gradient_array, rel_error
from normcore.whitening import (
    WHITENING_METHODS,
    batch_whitening_backward,
    batch_whitening_forward,
    group_whitening_backward,
    group_whitening_forward,
    whitening_matrix,
)

METHODS = list(WHITENING_METHODS)
# float32 rounding is amplified by the condition number of the batch covariance (about 1e3
# for N=10, d=9), hence the looser float32 tolerance.
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-5)}


def torch_whiten(x, method, eps):
    """Reference batch whitening in torch, built from eigh / cholesky and differentiated by
    autograd. PCA eigenvectors get the same sign convention as normcore (largest-magnitude
    entry positive); the sign is a locally constant factor, so it carries no gradient."""
    n, d = x.shape
    eye = torch.eye(d, dtype=x.dtype)
    xc = x - x.mean(dim=0, keepdim=True)
    sigma = xc.T @ xc / n + eps * eye
    if method == "cd":
        chol = torch.linalg.cholesky(sigma)
        whiten = torch.linalg.solve_triangular(chol, eye, upper=False)
    else:
        lam, vecs = torch.linalg.eigh(sigma)
        biggest = vecs.abs().argmax(dim=0)
        vecs = vecs * torch.sign(vecs[biggest, torch.arange(d)]).detach()
        whiten = torch.diag(lam.rsqrt()) @ vecs.T
        if method == "zca":
            whiten = vecs @ whiten
    return xc @ whiten.T


def torch_group_whiten(x, num_groups, method, eps):
    c = x.shape[1] // num_groups
    parts = [torch_whiten(x[:, k * c:(k + 1) * c], method, eps) for k in range(num_groups)]
    return torch.cat(parts, dim=1)


def correlated(rng, n, d, dtype=np.float64):
    """Correlated data with a nonzero mean; the population covariance has eigenvalues spread
    over [1, 9] (distinct, and a condition number small enough for float32)."""
    mix = np.diag(np.linspace(1.0, 3.0, d)) @ orthogonal(rng, d)
    return (rng.standard_normal((n, d)) @ mix + rng.standard_normal(d)).astype(dtype)


def orthogonal(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# --------------------------------------------------------------------------- parity with torch
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(16, 3), (64, 8), (10, 9), (5, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_batch_whitening_matches_torch(rng, method, shape, dtype, eps):
    x = correlated(rng, *shape, dtype=dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    out, cache = batch_whitening_forward(x, method, eps=eps)
    dx = batch_whitening_backward(dout, cache)

    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ref = torch_whiten(xt, method, eps)
    (ref * torch.tensor(dout, dtype=torch.float64)).sum().backward()

    assert out.dtype == dx.dtype == dtype and out.shape == dx.shape == shape
    np.testing.assert_allclose(out, ref.detach().numpy(), **TOL[dtype])
    scale = np.max(np.abs(xt.grad.numpy()))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=TOL[dtype]["rtol"],
                               atol=TOL[dtype]["atol"] * scale)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("num_groups", [1, 2, 3, 6])
def test_group_whitening_matches_torch(rng, method, num_groups):
    x = correlated(rng, 20, 6)
    dout = rng.standard_normal(x.shape)
    out, cache = group_whitening_forward(x, num_groups, method)
    dx = group_whitening_backward(dout, cache)

    xt = torch.tensor(x, requires_grad=True)
    ref = torch_group_whiten(xt, num_groups, method, 1e-5)
    (ref * torch.tensor(dout)).sum().backward()
    np.testing.assert_allclose(out, ref.detach().numpy(), **TOL[np.float64])
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL[np.float64])


# --------------------------------------------------------------------------- gradient checks
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_batch_whitening_numerical_gradient(rng, method, eps):
    x = correlated(rng, 6, 3)
    dout = rng.standard_normal(x.shape)
    _, cache = batch_whitening_forward(x, method, eps=eps)
    dx = batch_whitening_backward(dout, cache)
    num = numerical_gradient_array(lambda z: batch_whitening_forward(z, method, eps=eps)[0],
                                   x.copy(), dout)
    assert rel_error(dx, num) < 1e-7


@pytest.mark.parametrize("method", METHODS)
def test_group_whitening_numerical_gradient(rng, method):
    x = correlated(rng, 7, 4)
    dout = rng.standard_normal(x.shape)
    _, cache = group_whitening_forward(x, 2, method)
    dx = group_whitening_backward(dout, cache)
    num = numerical_gradient_array(lambda z: group_whitening_forward(z, 2, method)[0],
                                   x.copy(), dout)
    assert rel_error(dx, num) < 1e-7


@pytest.mark.parametrize("method", METHODS)
def test_eval_mode_numerical_gradient(rng, method):
    x = correlated(rng, 4, 3)
    dout = rng.standard_normal(x.shape)
    stats = dict(running_mean=rng.standard_normal(3), running_cov=np.cov(correlated(rng, 30, 3),
                                                                         rowvar=False))
    _, cache = batch_whitening_forward(x, method, training=False, **stats)
    dx = batch_whitening_backward(dout, cache)
    num = numerical_gradient_array(
        lambda z: batch_whitening_forward(z, method, training=False, **stats)[0], x.copy(), dout)
    assert rel_error(dx, num) < 1e-7


# --------------------------------------------------------------------------- identities
@pytest.mark.parametrize("method", METHODS)
def test_output_is_white(rng, method):
    x = correlated(rng, 50, 5)
    out, _ = batch_whitening_forward(x, method, eps=0.0)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-13)
    np.testing.assert_allclose(out.T @ out / 50, np.eye(5), atol=1e-12)
    # with eps > 0 the covariance is I - eps W W^T (slightly below identity)
    eps = 1e-2
    out, cache = batch_whitening_forward(x, method, eps=eps)
    w = cache["whiten"][0]
    np.testing.assert_allclose(out.T @ out / 50, np.eye(5) - eps * w @ w.T, atol=1e-12)


def test_zca_is_closest_to_centered_input(rng):
    x = correlated(rng, 40, 4)
    xc = x - x.mean(axis=0)
    outs = {m: batch_whitening_forward(x, m, eps=0.0)[0] for m in METHODS}
    zca_dist = np.linalg.norm(outs["zca"] - xc)
    # every whitening of xc is zca_out @ Q for an orthogonal Q; ZCA (Q = I) is the closest
    for _ in range(50):
        assert np.linalg.norm(outs["zca"] @ orthogonal(rng, 4) - xc) > zca_dist
    assert np.linalg.norm(outs["pca"] - xc) > zca_dist
    assert np.linalg.norm(outs["cd"] - xc) > zca_dist


def test_pca_and_zca_differ_by_a_rotation(rng):
    x = correlated(rng, 30, 4)
    zca, _ = batch_whitening_forward(x, "zca", eps=0.0)
    pca, _ = batch_whitening_forward(x, "pca", eps=0.0)
    rot = zca.T @ pca / 30  # zca is white, so this recovers R in pca = zca @ R
    np.testing.assert_allclose(rot.T @ rot, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(zca @ rot, pca, atol=1e-12)
    assert not np.allclose(rot, np.eye(4), atol=1e-3)


def test_cd_whitening_matrix_is_lower_triangular(rng):
    x = correlated(rng, 30, 5)
    xc = x - x.mean(axis=0)
    cov = xc.T @ xc / 30
    w = whitening_matrix(cov, "cd", eps=1e-5)
    assert np.all(np.triu(w, 1) == 0)
    np.testing.assert_allclose(w, np.linalg.inv(np.linalg.cholesky(cov + 1e-5 * np.eye(5))),
                               rtol=1e-10, atol=1e-12)
    # so the first output channel is the first input channel, standardized
    out, _ = batch_whitening_forward(x, "cd")
    np.testing.assert_allclose(out[:, 0], xc[:, 0] / np.sqrt(cov[0, 0] + 1e-5), rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_whitening_matrix_properties(rng, method):
    a = rng.standard_normal((20, 4))
    cov = a.T @ a / 20
    w = whitening_matrix(cov, method, eps=1e-3)
    np.testing.assert_allclose(w @ (cov + 1e-3 * np.eye(4)) @ w.T, np.eye(4), atol=1e-12)
    lam, vecs = np.linalg.eigh(cov + 1e-3 * np.eye(4))
    if method == "zca":
        np.testing.assert_allclose(w, w.T, atol=1e-14)
        np.testing.assert_allclose(w @ w, np.linalg.inv(cov + 1e-3 * np.eye(4)), rtol=1e-10)
    if method == "pca":
        # rows are eigenvectors / sqrt(eigenvalue), ascending, largest entry positive
        np.testing.assert_allclose(np.abs(w), np.abs(vecs.T) / np.sqrt(lam)[:, None],
                                   rtol=1e-10)
        biggest = np.argmax(np.abs(w), axis=1)
        assert np.all(w[np.arange(4), biggest] > 0)
    # a stack of covariances gives the stack of whitening matrices
    stack = np.stack([cov, 2 * cov + np.eye(4)])
    ws = whitening_matrix(stack, method, eps=1e-3)
    np.testing.assert_allclose(ws[0], w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ws[1], whitening_matrix(stack[1], method, eps=1e-3), rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("method", METHODS)
def test_whitening_matrix_closed_form(method):
    w = whitening_matrix(np.diag([4.0, 0.25]), method, eps=0.0)
    expected = {"zca": [[0.5, 0], [0, 2]], "cd": [[0.5, 0], [0, 2]], "pca": [[0, 2], [0.5, 0]]}
    np.testing.assert_allclose(w, expected[method], atol=1e-15)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_per_channel_groups_equal_batch_norm(rng, method, dtype):
    x = correlated(rng, 12, 5, dtype=dtype)
    out, _ = group_whitening_forward(x, 5, method)
    expected = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)  # biased variance
    np.testing.assert_allclose(out, expected, **TOL[dtype])
    bn = F.batch_norm(torch.tensor(x), None, None, training=True, eps=1e-5)
    np.testing.assert_allclose(out, bn.numpy(), **TOL[dtype])


@pytest.mark.parametrize("method", METHODS)
def test_one_group_equals_batch_whitening(rng, method):
    x = correlated(rng, 15, 4)
    dout = rng.standard_normal(x.shape)
    out_g, cache_g = group_whitening_forward(x, 1, method)
    out_b, cache_b = batch_whitening_forward(x, method)
    np.testing.assert_array_equal(out_g, out_b)
    np.testing.assert_array_equal(group_whitening_backward(dout, cache_g),
                                  batch_whitening_backward(dout, cache_b))


def test_groups_whiten_within_not_across(rng):
    x = correlated(rng, 40, 6)
    out, _ = group_whitening_forward(x, 2, "zca", eps=0.0)
    cov = out.T @ out / 40
    np.testing.assert_allclose(cov[:3, :3], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(cov[3:, 3:], np.eye(3), atol=1e-12)
    assert np.max(np.abs(cov[:3, 3:])) > 1e-2  # correlations across groups remain


# --------------------------------------------------------------------------- running statistics
@pytest.mark.parametrize("method", METHODS)
def test_running_statistics_update_and_eval(rng, method):
    d, m = 4, 0.3
    running_mean, running_cov = np.zeros(d), np.eye(d)
    expected_mean, expected_cov = np.zeros(d), np.eye(d)
    for _ in range(3):
        x = correlated(rng, 10, d)
        batch_whitening_forward(x, method, running_mean=running_mean, running_cov=running_cov,
                                momentum=m)
        expected_mean = (1 - m) * expected_mean + m * x.mean(axis=0)
        expected_cov = (1 - m) * expected_cov + m * np.cov(x, rowvar=False)  # unbiased
    np.testing.assert_allclose(running_mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(running_cov, expected_cov, rtol=1e-12)

    x = correlated(rng, 3, d)
    rm0, rc0 = running_mean.copy(), running_cov.copy()
    out, _ = batch_whitening_forward(x, method, running_mean=running_mean,
                                     running_cov=running_cov, training=False, eps=1e-3)
    np.testing.assert_array_equal(running_mean, rm0)
    np.testing.assert_array_equal(running_cov, rc0)
    w = whitening_matrix(running_cov, method, eps=1e-3)
    np.testing.assert_allclose(out, (x - running_mean) @ w.T, rtol=1e-12)
    if method == "zca":  # independent closed form: (Sigma + eps I)^{-1/2}
        lam, vecs = np.linalg.eigh(running_cov + 1e-3 * np.eye(d))
        inv_sqrt = vecs @ np.diag(lam**-0.5) @ vecs.T
        np.testing.assert_allclose(out, (x - running_mean) @ inv_sqrt, rtol=1e-10)
    # a single sample is fine in eval mode
    one, _ = batch_whitening_forward(x[:1], method, running_mean=running_mean,
                                     running_cov=running_cov, training=False, eps=1e-3)
    np.testing.assert_allclose(one, out[:1], rtol=1e-13)


@pytest.mark.parametrize("method", METHODS)
def test_per_channel_running_stats_match_torch_batch_norm(rng, method):
    d = 3
    running_mean, running_cov = np.zeros(d), np.ones((d, 1, 1))
    torch_mean, torch_var = torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)
    for _ in range(4):
        x = correlated(rng, 8, d)
        group_whitening_forward(x, d, method, running_mean=running_mean,
                                running_cov=running_cov, momentum=0.2)
        F.batch_norm(torch.tensor(x), torch_mean, torch_var, training=True, momentum=0.2)
    np.testing.assert_allclose(running_mean, torch_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(running_cov.reshape(d), torch_var.numpy(), rtol=1e-12)
    x = correlated(rng, 5, d)
    out, _ = group_whitening_forward(x, d, method, running_mean=running_mean,
                                     running_cov=running_cov, training=False)
    ref = F.batch_norm(torch.tensor(x), torch_mean, torch_var, training=False, eps=1e-5)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-12)


def test_group_running_cov_is_block_diagonal_part(rng):
    x = correlated(rng, 10, 6)
    running_mean, running_cov = np.zeros(6), np.zeros((2, 3, 3))
    group_whitening_forward(x, 2, "cd", running_mean=running_mean, running_cov=running_cov,
                            momentum=1.0)
    full = np.cov(x, rowvar=False)
    np.testing.assert_allclose(running_cov[0], full[:3, :3], rtol=1e-12)
    np.testing.assert_allclose(running_cov[1], full[3:, 3:], rtol=1e-12)
    np.testing.assert_allclose(running_mean, x.mean(axis=0), rtol=1e-12)


# --------------------------------------------------------------------------- inputs and errors
@pytest.mark.parametrize("method", METHODS)
def test_inputs_not_modified(rng, method):
    x = correlated(rng, 9, 4)
    dout = rng.standard_normal(x.shape)
    x0, dout0 = x.copy(), dout.copy()
    _, cache = group_whitening_forward(x, 2, method)
    group_whitening_backward(dout, cache)
    _, cache = batch_whitening_forward(x, method)
    batch_whitening_backward(dout, cache)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dout, dout0)
    cov = np.cov(x, rowvar=False)
    cov0 = cov.copy()
    whitening_matrix(cov, method)
    np.testing.assert_array_equal(cov, cov0)


def test_pca_backward_rejects_repeated_eigenvalues():
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # covariance 0.5 * I
    _, cache = batch_whitening_forward(x, "pca")
    with pytest.raises(ValueError, match="batch_whitening_backward: .*repeated eigenvalues"):
        batch_whitening_backward(np.ones_like(x), cache)
    # ZCA and CD stay differentiable there
    for method in ("zca", "cd"):
        _, cache = batch_whitening_forward(x, method)
        dout = np.arange(8.0).reshape(4, 2)
        num = numerical_gradient_array(lambda z, m=method: batch_whitening_forward(z, m)[0],
                                       x.copy(), dout)
        assert rel_error(batch_whitening_backward(dout, cache), num) < 1e-7


X = np.random.default_rng(1).standard_normal((8, 3))
COLLINEAR = np.column_stack([X[:, 0], X[:, 1], X[:, 0] + X[:, 1]])
BAD_BATCH = [
    (dict(x=X, method="svd"), ValueError, "method must be one of 'pca', 'zca', 'cd', got 'svd'"),
    (dict(x=X, method=None), ValueError, "method must be one of .*got None"),
    (dict(x=X.astype(int), method="zca"), TypeError, "x must have dtype float32 or float64"),
    (dict(x=X.tolist(), method="zca"), TypeError, "x must be a numpy.ndarray"),
    (dict(x=torch.tensor(X), method="zca"), TypeError, "x must be a numpy.ndarray"),
    (dict(x=X[0], method="zca"), ValueError, r"x must have 2 dimensions, got shape \(3,\)"),
    (dict(x=X[None], method="zca"), ValueError, "x must have 2 dimensions"),
    (dict(x=np.where(X > 1, np.nan, X), method="zca"), ValueError, "x must be finite"),
    (dict(x=np.where(X > 1, np.inf, X), method="cd"), ValueError, "x must be finite"),
    (dict(x=X[:1], method="zca"), ValueError, "at least 2 samples, got N=1"),
    (dict(x=X[:3], method="pca", eps=0.0), ValueError, "singular unless N > 3, got N=3"),
    (dict(x=COLLINEAR, method="pca", eps=0.0), ValueError, "positive definite"),
    (dict(x=COLLINEAR, method="zca", eps=0.0), ValueError, "positive definite"),
    (dict(x=COLLINEAR, method="cd", eps=0.0), ValueError, "positive definite"),
    (dict(x=X, method="zca", eps=-1.0), ValueError, r"eps must be in \[0.0, inf\]"),
    (dict(x=X, method="zca", momentum=1.5), ValueError, r"momentum must be in \[0.0, 1.0\]"),
    (dict(x=X, method="zca", training="yes"), TypeError, "training must be a bool"),
    (dict(x=X, method="zca", running_mean=np.zeros(3)), ValueError, "both running_mean and"),
    (dict(x=X, method="zca", training=False), ValueError, "training=False whitens with running"),
    (dict(x=X, method="zca", running_mean=np.zeros(3), running_cov=np.eye(4)), ValueError,
     r"running_cov must have shape \(3, 3\), got \(4, 4\)"),
    (dict(x=X, method="zca", running_mean=np.zeros(2), running_cov=np.eye(3)), ValueError,
     r"running_mean must have shape \(3,\)"),
    (dict(x=X, method="zca", running_mean=np.zeros(3, np.float32), running_cov=np.eye(3)),
     TypeError, "share one dtype"),
    (dict(x=X, method="cd", running_mean=np.zeros(3), running_cov=np.zeros((3, 3)),
          training=False, eps=0.0), ValueError, "positive definite"),
]


@pytest.mark.parametrize("kwargs, err, msg", BAD_BATCH)
def test_batch_whitening_bad_inputs(kwargs, err, msg):
    with pytest.raises(err, match=f"^batch_whitening_forward: .*{msg}"):
        batch_whitening_forward(**kwargs)


X6 = np.random.default_rng(2).standard_normal((10, 6))
BAD_GROUP = [
    (dict(num_groups=4), ValueError, "num_groups=4 does not divide d=6"),
    (dict(num_groups=0), ValueError, r"num_groups must be in \[1, inf\], got 0"),
    (dict(num_groups=1.5), TypeError, "num_groups must be an integer"),
    (dict(num_groups=2, method="chol"), ValueError, "method must be one of"),
    (dict(num_groups=2, running_mean=np.zeros(6), running_cov=np.eye(6)), ValueError,
     r"running_cov must have shape \(2, 3, 3\), got \(6, 6\)"),
    (dict(num_groups=1, x=X6[:6], eps=0.0), ValueError, "singular unless N > 6"),
]


@pytest.mark.parametrize("kwargs, err, msg", BAD_GROUP)
def test_group_whitening_bad_inputs(kwargs, err, msg):
    kwargs = {"x": X6, "method": "zca", **kwargs}
    with pytest.raises(err, match=f"^group_whitening_forward: .*{msg}"):
        group_whitening_forward(**kwargs)


def test_group_small_batch_ok_when_groups_small():
    # with eps=0 the batch only has to exceed the group size, not d
    out, _ = group_whitening_forward(X6[:4], 3, "cd", eps=0.0)
    assert np.all(np.isfinite(out))


SPD = np.array([[2.0, 0.5], [0.5, 1.0]])
BAD_MATRIX = [
    (dict(cov=SPD, method="eig"), ValueError, "method must be one of"),
    (dict(cov=np.ones((2, 3)), method="zca"), ValueError, r"square .*got shape \(2, 3\)"),
    (dict(cov=np.ones(3), method="zca"), ValueError, "cov must have 2 or 3 dimensions"),
    (dict(cov=np.array([[1.0, 0.5], [0.0, 1.0]]), method="zca"), ValueError, "symmetric"),
    (dict(cov=np.array([[1.0, np.nan], [np.nan, 1.0]]), method="zca"), ValueError, "finite"),
    (dict(cov=SPD.astype(np.int64), method="zca"), TypeError, "dtype float32 or float64"),
    (dict(cov=np.ones((2, 2)), method="zca", eps=0.0), ValueError, "positive definite"),
    (dict(cov=np.ones((2, 2)), method="pca", eps=0.0), ValueError, "positive definite"),
    (dict(cov=np.ones((2, 2)), method="cd", eps=0.0), ValueError, "positive definite"),
    (dict(cov=-np.eye(2), method="cd", eps=1e-5), ValueError, "positive definite"),
    (dict(cov=SPD, method="zca", eps=-0.1), ValueError, "eps must be in"),
]


@pytest.mark.parametrize("kwargs, err, msg", BAD_MATRIX)
def test_whitening_matrix_bad_inputs(kwargs, err, msg):
    with pytest.raises(err, match=f"^whitening_matrix: .*{msg}"):
        whitening_matrix(**kwargs)


def test_backward_rejects_wrong_dout_shape():
    _, cache = batch_whitening_forward(X, "zca")
    with pytest.raises(ValueError, match=r"dout must have shape \(8, 3\), got \(3, 8\)"):
        batch_whitening_backward(np.ones((3, 8)), cache)
    _, cache = group_whitening_forward(X6, 2, "cd")
    with pytest.raises(ValueError, match="^group_whitening_backward: dout must have shape"):
        group_whitening_backward(np.ones((10, 5)), cache)
