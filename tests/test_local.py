"""normcore.local: LRN against torch, local contrast and divisive normalization by hand."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from normcore.gradcheck import numerical_gradient_array, rel_error
from normcore.local import (
    divisive_norm,
    gaussian_window,
    local_contrast_norm,
    local_mean,
    local_response_norm_backward,
    local_response_norm_forward,
    local_std,
)

# ----------------------------------------------------------------------------- LRN

SHAPES = [(4, 7, 1), (2, 6, 5), (2, 8, 4, 3), (1, 3, 2, 2, 2)]
HYPER = [dict(size=1), dict(size=2, alpha=0.3), dict(size=5, alpha=5e-4 * 1e3, beta=0.75, k=2.0),
         dict(size=4, alpha=1.0, beta=0.5, k=0.5), dict(size=9, alpha=2.0, beta=1.5)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("hyper", HYPER)
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_lrn_forward_and_backward_match_torch(shape, hyper, dtype, tol, rng):
    x = (2 * rng.standard_normal(shape)).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    out, cache = local_response_norm_forward(x, **hyper)
    xt = torch.from_numpy(x).requires_grad_(True)
    ref = F.local_response_norm(xt, **hyper)
    ref.backward(torch.from_numpy(dout))
    assert out.dtype == dtype
    assert rel_error(out, ref.detach().numpy()) < tol
    dx = local_response_norm_backward(dout, cache)
    assert dx.dtype == dtype
    assert rel_error(dx, xt.grad.numpy()) < tol * 10


@pytest.mark.parametrize("hyper", HYPER)
def test_lrn_backward_numerical_gradient(hyper, rng):
    x = rng.standard_normal((2, 7, 3))
    dout = rng.standard_normal(x.shape)
    _, cache = local_response_norm_forward(x, **hyper)
    dx = local_response_norm_backward(dout, cache)
    num = numerical_gradient_array(lambda a: local_response_norm_forward(a, **hyper)[0], x, dout)
    assert rel_error(dx, num) < 1e-7


def test_lrn_single_channel_response_peaks_where_the_derivative_vanishes():
    # y = x (k + alpha x^2 / n)^(-beta); dy/dx = 0 at x* = sqrt(k n / (alpha (2 beta - 1)))
    k, alpha, beta, n = 2.0, 5e-4, 0.75, 5
    x_star = math.sqrt(k * n / (alpha * (2 * beta - 1)))
    assert x_star == pytest.approx(200.0)
    x = np.zeros((3, 5, 1))
    x[:, 2, 0] = [x_star * 0.9, x_star, x_star * 1.1]     # one active channel
    y = local_response_norm_forward(x, size=n, alpha=alpha, beta=beta, k=k)[0][:, 2, 0]
    assert y[1] > y[0] and y[1] > y[2]
    assert y[1] == pytest.approx(x_star * (k + alpha * x_star**2 / n) ** -beta, rel=1e-12)


def test_lrn_is_the_identity_scaled_by_k_when_alpha_is_zero(rng):
    x = rng.standard_normal((2, 4, 3))
    out, _ = local_response_norm_forward(x, size=3, alpha=0.0, beta=0.75, k=2.0)
    np.testing.assert_allclose(out, x * 2.0**-0.75, rtol=1e-14)


@pytest.mark.parametrize(
    "x, kw, err, msg",
    [
        ([[[1.0, 2.0]]], dict(size=2), TypeError, "numpy.ndarray"),
        (np.zeros((2, 3)), dict(size=2), ValueError, "x"),
        (np.zeros((2, 3, 1), dtype=np.int32), dict(size=2), TypeError, "float32 or float64"),
        (np.zeros((2, 3, 1)), dict(size=0), ValueError, "size must be a positive int"),
        (np.zeros((2, 3, 1)), dict(size=2.0), ValueError, "size must be a positive int"),
        (np.zeros((2, 3, 1)), dict(size=2, k=0.0), ValueError, "k must be in"),
        (np.zeros((2, 3, 1)), dict(size=2, alpha=-1.0), ValueError, "alpha must be in"),
        (np.full((2, 3, 1), np.inf), dict(size=2), ValueError, "finite|inf"),
    ],
)
def test_lrn_bad_input(x, kw, err, msg):
    with pytest.raises(err, match=msg):
        local_response_norm_forward(x, **kw)


def test_lrn_backward_checks_shape(rng):
    _, cache = local_response_norm_forward(rng.standard_normal((2, 3, 1)), size=2)
    with pytest.raises(ValueError, match="dout must have shape"):
        local_response_norm_backward(np.zeros((3, 2, 1)), cache)


# ----------------------------------------------------------------------------- windows


def test_gaussian_window_sums_to_one_and_has_the_gaussian_ratio():
    w = gaussian_window(5, 1.5)
    assert w.shape == (5, 5) and w.sum() == pytest.approx(1.0, rel=1e-14)
    np.testing.assert_allclose(w, w.T)
    assert w[2, 2] / w[2, 3] == pytest.approx(math.exp(1 / (2 * 1.5**2)), rel=1e-12)
    assert w[2, 2] / w[3, 3] == pytest.approx(math.exp(2 / (2 * 1.5**2)), rel=1e-12)


def test_local_mean_of_a_constant_is_the_constant_also_at_the_border():
    x = np.full((2, 3, 6, 7), 0.37)
    np.testing.assert_allclose(local_mean(x, 5, 1.0), 0.37, rtol=1e-14)
    np.testing.assert_allclose(local_std(x, 5, 1.0), 0.0, atol=1e-14)


def _checkerboard(H=8, W=9, C=2):
    i, j = np.indices((H, W))
    return np.broadcast_to((-1.0) ** (i + j), (1, C, H, W)).copy()


def test_local_mean_of_a_checkerboard_by_hand():
    # x_{h+p, w+q} = x_hw (-1)^(p+q) and the window is separable with 1-D weights g, so the
    # local mean is x_hw * s^2 with s = sum_p g_p (-1)^p = (1 - 2 e^-1/2) / (1 + 2 e^-1/2)
    # for kernel_size 3 and sigma 1. Reflected borders keep the pattern.
    x = _checkerboard()
    e = math.exp(-0.5)
    s = (1 - 2 * e) / (1 + 2 * e)
    np.testing.assert_allclose(local_mean(x, 3, 1.0), x * s**2, rtol=1e-12)
    v = local_contrast_norm(x, 3, 1.0, divisive=False)
    np.testing.assert_allclose(v, x * (1 - s**2), rtol=1e-12)


def test_local_mean_per_channel_versus_across_channels():
    x = np.zeros((1, 2, 5, 5))
    x[0, 0] = 1.0
    np.testing.assert_allclose(local_mean(x, 3, 1.0, across_channels=True), 0.5)
    per = local_mean(x, 3, 1.0, across_channels=False)
    np.testing.assert_allclose(per[0, 0], 1.0)
    np.testing.assert_allclose(per[0, 1], 0.0)


# ----------------------------------------------------------------------------- LCN


def test_lcn_removes_brightness_and_contrast(rng):
    x = rng.random((2, 3, 16, 12))
    y = local_contrast_norm(x, 7, 1.5)
    y2 = local_contrast_norm(3.0 * x + 0.5, 7, 1.5)
    np.testing.assert_allclose(y, y2, atol=1e-12)


def test_lcn_of_a_constant_image_is_zero():
    out = local_contrast_norm(np.full((1, 1, 5, 6), 4.0), 3, 1.0)
    np.testing.assert_allclose(out, 0.0, atol=1e-12)


def test_lcn_divides_by_the_larger_of_local_std_and_its_mean():
    # Two flat halves: the subtractive step leaves a band around the step edge; away from
    # the edge sigma is 0 and the divisor is c, the mean of sigma over the image.
    x = np.zeros((1, 1, 12, 12))
    x[..., 6:] = 1.0
    v = local_contrast_norm(x, 5, 1.0, divisive=False)
    sigma_map = local_std(x, 5, 1.0)
    c = sigma_map.mean()
    expected = v / np.maximum(sigma_map, c)
    np.testing.assert_allclose(local_contrast_norm(x, 5, 1.0), expected, rtol=1e-12)
    # at the edge sigma > c, so there the output has unit local scale: |v| / sigma
    assert sigma_map.max() > c


def test_lcn_linear_ramp_has_zero_subtractive_output_in_the_interior():
    ramp = np.broadcast_to(np.arange(20.0), (1, 1, 15, 20)).copy()
    v = local_contrast_norm(ramp, 5, 1.0, divisive=False)
    np.testing.assert_allclose(v[..., 2:-2], 0.0, atol=1e-12)


# ----------------------------------------------------------------------------- divisive


def test_divisive_norm_of_a_constant_by_hand():
    a, b = 3.0, 4.0
    out = divisive_norm(np.full((1, 2, 4, 4), a), 3, 1.0, bias=b)
    np.testing.assert_allclose(out, a / math.sqrt(b**2 + a**2), rtol=1e-14)     # = 0.6


def test_divisive_norm_saturates_large_responses(rng):
    x = rng.standard_normal((1, 4, 10, 10))
    small = divisive_norm(1e-3 * x, 5, 1.0, bias=1.0)
    large = divisive_norm(1e3 * x, 5, 1.0, bias=1.0)
    np.testing.assert_allclose(small, 1e-3 * x, rtol=1e-5)          # quiet: y = x / b
    np.testing.assert_allclose(large, divisive_norm(x, 5, 1.0, bias=1e-3), rtol=1e-12)
    assert np.abs(large).max() < np.sqrt(4 / gaussian_window(5, 1.0).max()) + 1e-9


# ----------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("fn", [local_contrast_norm, divisive_norm, local_mean, local_std])
def test_dtype_preserved_and_input_untouched(fn, rng):
    x = rng.random((1, 2, 6, 6)).astype(np.float32)
    copy = x.copy()
    out = fn(x, 3, 1.0)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_array_equal(x, copy)


@pytest.mark.parametrize("fn", [local_contrast_norm, divisive_norm, local_mean, local_std])
@pytest.mark.parametrize(
    "x, args, err, msg",
    [
        (np.zeros((2, 3, 4)), (3, 1.0), ValueError, "x"),
        (np.zeros((1, 1, 4, 4), dtype=np.int64), (3, 1.0), TypeError, "float32 or float64"),
        (np.zeros((1, 1, 4, 4)), (4, 1.0), ValueError, "positive odd int"),
        (np.zeros((1, 1, 4, 4)), (3.0, 1.0), TypeError, "kernel_size must be an int"),
        (np.zeros((1, 1, 4, 4)), (3, 0.0), ValueError, "sigma must be in"),
        (np.full((1, 1, 4, 4), np.nan), (3, 1.0), ValueError, "finite|NaN"),
    ],
)
def test_local_bad_input(fn, x, args, err, msg):
    with pytest.raises(err, match=msg):
        fn(x, *args)
