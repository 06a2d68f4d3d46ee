"""Tests for normcore.weightnorm: weight normalization and centered weight normalization."""

import numpy as np
import pytest
import torch
from torch.nn.utils.parametrizations import weight_norm as torch_weight_norm

from normcore.gradcheck import numerical_gradient_array, rel_error
from normcore.weightnorm import (
    centered_weight_norm_backward,
    centered_weight_norm_forward,
    weight_norm_backward,
    weight_norm_forward,
)

FORWARD = {"wn": weight_norm_forward, "cwn": centered_weight_norm_forward}
BACKWARD = {"wn": weight_norm_backward, "cwn": centered_weight_norm_backward}
SHAPES = [(3, 5), (1, 4), (6, 2), (4, 3, 2, 2), (2, 1, 3)]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}


def torch_reference(kind, v, g, eps):
    """The defining formula, written independently in torch."""
    rows = v.reshape(v.shape[0], -1)
    if kind == "cwn":
        rows = rows - rows.mean(dim=1, keepdim=True)
    norm = torch.sqrt((rows * rows).sum(dim=1, keepdim=True) + eps)
    return (g[:, None] * rows / norm).reshape(v.shape)


def make(rng, shape, dtype=np.float64):
    v = rng.standard_normal(shape).astype(dtype)
    g = rng.uniform(0.5, 2.0, shape[0]).astype(dtype) * rng.choice([-1, 1], shape[0])
    return v, g.astype(dtype)


# --------------------------------------------------------------------------- parity with torch
@pytest.mark.parametrize("kind", ["wn", "cwn"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("eps", [0.0, 1e-3])
def test_matches_torch_autograd(rng, kind, shape, dtype, eps):
    v, g = make(rng, shape, dtype)
    dw = rng.standard_normal(shape).astype(dtype)
    w, cache = FORWARD[kind](v, g, eps=eps)
    dv, dg = BACKWARD[kind](dw, cache)

    vt = torch.tensor(v, requires_grad=True)
    gt = torch.tensor(g, requires_grad=True)
    wt = torch_reference(kind, vt, gt, eps)
    (wt * torch.tensor(dw)).sum().backward()

    assert w.dtype == dv.dtype == dg.dtype == dtype
    assert w.shape == dv.shape == shape and dg.shape == (shape[0],)
    np.testing.assert_allclose(w, wt.detach().numpy(), **TOL[dtype])
    # dv is (g / |v|) times a projection of dw: its rounding error scales with that factor
    # (for CWN with two inputs per row, dv is exactly zero and only rounding noise remains).
    rows = v.reshape(shape[0], -1).astype(np.float64)
    scale = np.max(np.abs(g) / np.linalg.norm(rows, axis=1)) * np.max(np.abs(dw))
    tol = TOL[dtype]
    np.testing.assert_allclose(dv, vt.grad.numpy(), rtol=tol["rtol"], atol=tol["atol"] * scale)
    np.testing.assert_allclose(dg, gt.grad.numpy(), **tol)


@pytest.mark.parametrize(
    "module",
    [
        lambda: torch.nn.Linear(5, 3, dtype=torch.float64),
        lambda: torch.nn.Conv2d(2, 4, 3, dtype=torch.float64),
        lambda: torch.nn.Conv1d(3, 2, 2, dtype=torch.float64),
    ],
)
def test_weight_norm_matches_torch_parametrization(rng, module):
    torch.manual_seed(0)
    layer = torch_weight_norm(module(), dim=0)
    params = layer.parametrizations.weight
    v_shape = tuple(params.original1.shape)
    v, g = make(rng, v_shape)
    with torch.no_grad():
        params.original1.copy_(torch.tensor(v))
        params.original0.copy_(torch.tensor(g).reshape(params.original0.shape))
    dw = rng.standard_normal(v_shape)
    (layer.weight * torch.tensor(dw)).sum().backward()

    w, cache = weight_norm_forward(v, g)
    dv, dg = weight_norm_backward(dw, cache)
    np.testing.assert_allclose(w, layer.weight.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dv, params.original1.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dg, params.original0.grad.numpy().reshape(-1), rtol=1e-10,
                               atol=1e-12)


def test_closed_form_examples():
    w, _ = weight_norm_forward(np.array([[3.0, 4.0], [0.0, -2.0]]), np.array([2.0, 3.0]))
    np.testing.assert_allclose(w, [[1.2, 1.6], [0.0, -3.0]], rtol=1e-15)
    w, _ = centered_weight_norm_forward(np.array([[1.0, 3.0], [2.0, 2.0 + 2.0]]),
                                        np.array([2.0, -1.0]))
    r = np.sqrt(2.0)
    np.testing.assert_allclose(w, [[-r, r], [1 / r, -1 / r]], rtol=1e-15)


# --------------------------------------------------------------------------- gradient checks
@pytest.mark.parametrize("kind", ["wn", "cwn"])
@pytest.mark.parametrize("shape", [(3, 4), (2, 2, 2, 2)])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_numerical_gradient(rng, kind, shape, eps):
    v, g = make(rng, shape)
    dw = rng.standard_normal(shape)
    _, cache = FORWARD[kind](v, g, eps=eps)
    dv, dg = BACKWARD[kind](dw, cache)
    dv_num = numerical_gradient_array(lambda z: FORWARD[kind](z, g, eps=eps)[0], v.copy(), dw)
    dg_num = numerical_gradient_array(lambda z: FORWARD[kind](v, z, eps=eps)[0], g.copy(), dw)
    assert rel_error(dv, dv_num) < 1e-7
    assert rel_error(dg, dg_num) < 1e-7


# --------------------------------------------------------------------------- properties
@pytest.mark.parametrize("kind", ["wn", "cwn"])
@pytest.mark.parametrize("shape", [(5, 7), (3, 2, 3, 3)])
def test_row_norm_is_abs_g(rng, kind, shape):
    v, g = make(rng, shape)
    w, _ = FORWARD[kind](v, g)
    norms = np.linalg.norm(w.reshape(shape[0], -1), axis=1)
    np.testing.assert_allclose(norms, np.abs(g), rtol=1e-13)


def test_cwn_rows_have_zero_mean(rng):
    v, g = make(rng, (6, 3, 2, 2))
    v += 5.0  # a large common offset that centering must remove
    w, cache = centered_weight_norm_forward(v, g)
    rows = w.reshape(6, -1)
    assert np.max(np.abs(rows.mean(axis=1))) < 1e-14
    dv, _ = centered_weight_norm_backward(rng.standard_normal(v.shape), cache)
    assert np.max(np.abs(dv.reshape(6, -1).mean(axis=1))) < 1e-13


@pytest.mark.parametrize("kind", ["wn", "cwn"])
def test_gradient_orthogonal_to_direction(rng, kind):
    v, g = make(rng, (4, 6))
    _, cache = FORWARD[kind](v, g)
    dv, _ = BACKWARD[kind](rng.standard_normal(v.shape), cache)
    direction = v if kind == "wn" else v - v.mean(axis=1, keepdims=True)
    dots = np.sum(dv * direction, axis=1)
    scale = np.linalg.norm(dv, axis=1) * np.linalg.norm(direction, axis=1)
    assert np.max(np.abs(dots) / scale) < 1e-13
    if kind == "cwn":  # CWN's gradient is orthogonal to v itself too (it has zero mean)
        assert np.max(np.abs(np.sum(dv * v, axis=1)) / scale) < 1e-12


@pytest.mark.parametrize("kind", ["wn", "cwn"])
@pytest.mark.parametrize("a", [1e-3, 0.5, 7.0, 1e4])
def test_scale_invariance(rng, kind, a):
    v, g = make(rng, (3, 5))
    dw = rng.standard_normal(v.shape)
    w1, c1 = FORWARD[kind](v, g)
    w2, c2 = FORWARD[kind](a * v, g)
    np.testing.assert_allclose(w2, w1, rtol=1e-12, atol=1e-14)
    dv1, dg1 = BACKWARD[kind](dw, c1)
    dv2, dg2 = BACKWARD[kind](dw, c2)
    np.testing.assert_allclose(dv2, dv1 / a, rtol=1e-10)  # the gradient shrinks as 1/a
    np.testing.assert_allclose(dg2, dg1, rtol=1e-12)


def test_eps_allows_degenerate_rows():
    v = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]])
    g = np.array([1.0, 3.0])
    w, _ = weight_norm_forward(v, g, eps=1e-8)
    np.testing.assert_array_equal(w[0], 0.0)
    np.testing.assert_allclose(w[1], 3 * v[1] / np.sqrt(9.0 + 1e-8), rtol=1e-15)
    w, _ = centered_weight_norm_forward(np.array([[0.1, 0.1, 0.1]]), np.array([1.0]), eps=1e-8)
    assert np.all(np.abs(w) < 1e-8)


@pytest.mark.parametrize("kind", ["wn", "cwn"])
def test_inputs_not_modified(rng, kind):
    v, g = make(rng, (3, 2, 2))
    dw = rng.standard_normal(v.shape)
    v0, g0, dw0 = v.copy(), g.copy(), dw.copy()
    _, cache = FORWARD[kind](v, g)
    BACKWARD[kind](dw, cache)
    np.testing.assert_array_equal(v, v0)
    np.testing.assert_array_equal(g, g0)
    np.testing.assert_array_equal(dw, dw0)


# --------------------------------------------------------------------------- bad inputs
V = np.ones((3, 4)) + np.arange(4.0)
G = np.ones(3)
ZERO_ROW = np.vstack([V[:2], np.zeros((1, 4))])
CONST_ROW = np.vstack([V[:2], np.full((1, 4), 0.1)])
BAD = [
    ("both", dict(v=V, g=np.ones((3, 1))), ValueError, r"g must have shape \(3,\), got \(3, 1\)"),
    ("both", dict(v=V, g=np.ones(4)), ValueError, r"g must have shape \(3,\), got \(4,\)"),
    ("both", dict(v=np.ones(4), g=G), ValueError, "v must have at least 2 dimensions"),
    ("both", dict(v=V.astype(int), g=G), TypeError, "v must have dtype float32 or float64"),
    ("both", dict(v=V.tolist(), g=G), TypeError, "numpy.ndarray"),
    ("both", dict(v=V, g=G.astype(np.float32)), TypeError, "share one dtype"),
    ("both", dict(v=np.where(V > 2, np.nan, V), g=G), ValueError, "v must be finite"),
    ("both", dict(v=V, g=np.array([1.0, np.inf, 1.0])), ValueError, "g must be finite"),
    ("both", dict(v=V, g=G, eps=-1e-3), ValueError, r"eps must be in \[0.0, inf\]"),
    ("wn", dict(v=ZERO_ROW, g=G), ValueError, r"nonzero norm .*got zero norm in rows \[2\]"),
    ("cwn", dict(v=ZERO_ROW, g=G), ValueError, r"after centering .*rows \[2\]"),
    ("cwn", dict(v=CONST_ROW, g=G), ValueError, r"after centering .*rows \[2\]"),
    ("cwn", dict(v=np.ones((2, 1)), g=np.ones(2)), ValueError, r"rows \[0, 1\]"),
]


def _bad_cases():
    for kinds, kwargs, err, msg in BAD:
        for kind in (["wn", "cwn"] if kinds == "both" else [kinds]):
            yield pytest.param(kind, kwargs, err, msg, id=f"{kind}-{msg[:30]}")


@pytest.mark.parametrize("kind, kwargs, err, msg", list(_bad_cases()))
def test_bad_inputs(kind, kwargs, err, msg):
    name = "weight_norm_forward" if kind == "wn" else "centered_weight_norm_forward"
    with pytest.raises(err, match=f"^{name}: .*{msg}"):
        FORWARD[kind](**kwargs)


@pytest.mark.parametrize("kind", ["wn", "cwn"])
def test_backward_rejects_wrong_dw_shape(kind):
    _, cache = FORWARD[kind](V, G)
    with pytest.raises(ValueError, match=r"dw must have shape \(3, 4\), got \(4, 3\)"):
        BACKWARD[kind](np.ones((4, 3)), cache)
