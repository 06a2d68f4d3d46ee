"""Tests for normcore.preprocessing: centering, standardization, PCA/ZCA whitening,
condition numbers and image means."""

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from normcore.gradcheck import rel_error
from normcore.preprocessing import (
    condition_number,
    condition_numbers_from_moments,
    fit_center,
    fit_pca_whitening,
    fit_standardize,
    fit_zca_whitening,
    per_channel_mean,
    per_pixel_mean,
    subtract_mean,
)


def _correlated(n, d, seed=0, offset=3.0):
    """Correlated Gaussian data with unequal scales and a nonzero mean."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d)) * np.linspace(0.2, 5.0, d)
    mu = offset + rng.standard_normal(d)
    return rng.standard_normal((n, d)) @ A + mu


def _cov(Z):
    Zc = Z - Z.mean(axis=0)
    return Zc.T @ Zc / Z.shape[0]


SIZES = [(200, 5), (50, 3), (10, 1), (300, 12)]


@pytest.fixture
def split():
    return _correlated(300, 6, seed=0), _correlated(40, 6, seed=1, offset=-2.0)


# ----------------------------------------------------------------------------- centering


@pytest.mark.parametrize("n,d", SIZES)
def test_center(n, d):
    X = _correlated(n, d)
    c = fit_center(X)
    np.testing.assert_allclose(c.mean, X.mean(axis=0), rtol=1e-13)
    Z = c.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(c.inverse_transform(Z), X, rtol=1e-13)


# ----------------------------------------------------------------------------- standardization


@pytest.mark.parametrize("n,d", SIZES)
def test_standardize_equals_sklearn_standard_scaler(n, d):
    X = _correlated(n, d)
    X_test = _correlated(7, d, seed=5)
    s = fit_standardize(X, eps=0.0)
    ref = StandardScaler().fit(X)
    assert rel_error(s.transform(X), ref.transform(X)) < 1e-12
    assert rel_error(s.transform(X_test), ref.transform(X_test)) < 1e-12
    np.testing.assert_allclose(s.var, ref.var_, rtol=1e-12)
    np.testing.assert_allclose(s.inverse_transform(s.transform(X_test)), X_test, rtol=1e-12)


def test_standardize_eps_formula():
    X = _correlated(100, 4) * 0.01  # small variances, so eps matters
    eps = 1e-5
    s = fit_standardize(X, eps=eps)
    expected = (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0) + eps)
    assert rel_error(s.transform(X), expected) < 1e-12
    np.testing.assert_allclose(s.scale, np.sqrt(X.var(axis=0) + eps), rtol=1e-13)
    # Unit variance up to the effect of eps: var / (var + eps).
    np.testing.assert_allclose(
        s.transform(X).var(axis=0), X.var(axis=0) / (X.var(axis=0) + eps), rtol=1e-10
    )


def test_constant_feature_handled_by_eps():
    X = _correlated(50, 3)
    X[:, 1] = 0.1  # constant (0.1 is not exact in binary, so its float mean may not be)
    s = fit_standardize(X, eps=1e-5)
    Z = s.transform(X)
    assert np.all(np.isfinite(Z))
    np.testing.assert_array_equal(Z[:, 1], 0.0)
    X_test = _correlated(5, 3, seed=2)
    assert np.all(np.isfinite(s.transform(X_test)))
    for fit in (fit_pca_whitening, fit_zca_whitening):
        w = fit(X, eps=1e-5)
        assert np.all(np.isfinite(w.transform(X))) and np.all(np.isfinite(w.transform(X_test)))
    with pytest.raises(ValueError, match=r"fit_standardize: feature 1 is constant"):
        fit_standardize(X, eps=0.0)
    with pytest.raises(ValueError, match=r"fit_zca_whitening: the covariance is singular"):
        fit_zca_whitening(X, eps=0.0)


# ----------------------------------------------------------------------------- whitening


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("eps", [0.0, 1e-5, 1e-1])
def test_whitened_train_covariance_is_identity_up_to_eps(n, d, eps):
    X = _correlated(n, d)
    lam = np.linalg.eigvalsh(_cov(X))[::-1]
    for fit in (fit_pca_whitening, fit_zca_whitening):
        w = fit(X, eps=eps)
        C = _cov(w.transform(X))
        # Exactly diag(lam / (lam + eps)) in the eigenbasis; within eps / lam_min of I.
        np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(C)), np.sort(lam / (lam + eps)),
                                   atol=1e-10)
        np.testing.assert_allclose(C, np.eye(d), atol=eps / lam.min() + 1e-10)
    np.testing.assert_allclose(fit_pca_whitening(X, eps=eps).eigenvalues, lam, rtol=1e-10)


@pytest.mark.parametrize("n,d", SIZES)
def test_zca_matrix_is_symmetric_inverse_square_root(n, d):
    X = _correlated(n, d)
    eps = 1e-3
    w = fit_zca_whitening(X, eps=eps)
    W = w.matrix
    np.testing.assert_allclose(W, W.T, atol=1e-12)
    C = _cov(X)  # 1/N normalization
    # W = U diag(1/sqrt(lam + eps)) U^T  <=>  W symmetric positive definite with
    # W^2 = (C + eps I)^-1, a basis-free characterization.
    np.testing.assert_allclose(W @ W, np.linalg.inv(C + eps * np.eye(d)), rtol=1e-9, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(W) > 0)
    lam, U = np.linalg.eigh(C)
    np.testing.assert_allclose(W, (U / np.sqrt(lam + eps)) @ U.T, rtol=1e-9, atol=1e-12)
    # PCA's matrix also whitens: W_pca^T W_pca = (C + eps I)^-1.
    Wp = fit_pca_whitening(X, eps=eps).matrix
    np.testing.assert_allclose(Wp.T @ Wp, np.linalg.inv(C + eps * np.eye(d)), rtol=1e-9,
                               atol=1e-12)


def test_pca_and_zca_differ_by_a_rotation(split):
    X, X_test = split
    pca, zca = fit_pca_whitening(X), fit_zca_whitening(X)
    Zp, Zz = pca.transform(X), zca.transform(X)
    R, *_ = np.linalg.lstsq(Zp, Zz, rcond=None)
    np.testing.assert_allclose(R @ R.T, np.eye(X.shape[1]), atol=1e-10)
    np.testing.assert_allclose(Zp @ R, Zz, atol=1e-10)
    np.testing.assert_allclose(pca.transform(X_test) @ R, zca.transform(X_test), atol=1e-9)


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("k", [None, 1])
def test_pca_whitening_equals_sklearn_up_to_sign_and_ddof(n, d, k):
    X = _correlated(n, d)
    X_test = _correlated(9, d, seed=3)
    ours = fit_pca_whitening(X, eps=0.0, n_components=k)
    ref = PCA(n_components=k, whiten=True, svd_solver="full").fit(X)
    # sklearn divides by eigenvalues of the 1/(N-1) covariance.
    factor = np.sqrt((n - 1) / n)
    for data in (X, X_test):
        a, b = ours.transform(data) * factor, ref.transform(data)
        signs = np.sign(np.sum(a * b, axis=0))
        assert rel_error(a * signs, b) < 1e-8
    assert ours.transform(X).shape == (n, k or d)


def test_inverse_transform(split):
    X, X_test = split
    for w in (fit_pca_whitening(X), fit_zca_whitening(X)):
        np.testing.assert_allclose(w.inverse_transform(w.transform(X_test)), X_test, rtol=1e-10)
    # With fewer components: the projection onto the leading principal subspace.
    w = fit_pca_whitening(X, n_components=2)
    back = w.inverse_transform(w.transform(X_test))
    U = w.eigenvectors[:, :2]
    np.testing.assert_allclose(back, (X_test - w.mean) @ U @ U.T + w.mean, rtol=1e-10)


# ----------------------------------------------------------------------------- train vs test


def test_statistics_are_not_refitted_on_test_data(split):
    X, X_test = split
    mu, var = X.mean(axis=0), X.var(axis=0)
    eps = 1e-5
    np.testing.assert_allclose(fit_center(X).transform(X_test), X_test - mu, rtol=1e-13)
    np.testing.assert_allclose(
        fit_standardize(X, eps=eps).transform(X_test), (X_test - mu) / np.sqrt(var + eps),
        rtol=1e-12,
    )
    C = _cov(X)
    lam, U = np.linalg.eigh(C)
    W = (U / np.sqrt(lam + eps)) @ U.T
    np.testing.assert_allclose(
        fit_zca_whitening(X, eps=eps).transform(X_test), (X_test - mu) @ W, atol=1e-10
    )
    # The test set's own statistics would give something else.
    Zt = fit_standardize(X).transform(X_test)
    assert np.max(np.abs(Zt.mean(axis=0))) > 0.5
    # Transforming one example gives the same as transforming it within a batch.
    for fitted in (fit_center(X), fit_standardize(X), fit_pca_whitening(X), fit_zca_whitening(X)):
        np.testing.assert_allclose(fitted.transform(X_test[3:4]), fitted.transform(X_test)[3:4],
                                   rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- condition number


def test_condition_number_raw_centered_standardized_whitened():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 4)) * np.array([1.0, 3.0, 10.0, 30.0]) + 50.0
    raw = condition_number(X)
    C = X.T @ X / X.shape[0]
    assert raw == pytest.approx(np.linalg.cond(C), rel=1e-8)
    centered = condition_number(fit_center(X).transform(X))
    assert centered == pytest.approx(condition_number(X, centered=True), rel=1e-10)
    standardized = condition_number(fit_standardize(X).transform(X))
    whitened = condition_number(fit_zca_whitening(X, eps=1e-12).transform(X))
    assert raw > centered > standardized > whitened
    assert centered == pytest.approx(900.0, rel=0.1)  # ratio of variances 30^2 / 1^2
    assert standardized < 1.2  # independent features: nearly isotropic after scaling
    assert whitened == pytest.approx(1.0, abs=1e-8)
    assert condition_number(np.ones((5, 2))) == float("inf")


# ----------------------------------------------------------------------------- images


@pytest.mark.parametrize("shape", [(8, 3, 4, 5), (2, 1, 3, 3), (4, 2, 6), (3, 3, 2, 2, 2)])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_image_means_equal_torch(shape, dtype, tol):
    images = (np.random.default_rng(0).random(shape) * 255).astype(dtype)
    t = torch.from_numpy(images)
    spatial = tuple(range(2, len(shape)))
    ch = per_channel_mean(images)
    px = per_pixel_mean(images)
    assert ch.shape == (shape[1],) and ch.dtype == dtype
    assert px.shape == shape[1:] and px.dtype == dtype
    assert rel_error(ch, t.double().mean(dim=(0,) + spatial).numpy()) < tol
    assert rel_error(px, t.double().mean(dim=0).numpy()) < tol
    out_ch = subtract_mean(images, ch)
    expected = t - torch.from_numpy(ch).reshape((1, shape[1]) + (1,) * len(spatial))
    assert out_ch.dtype == dtype and rel_error(out_ch, expected.numpy()) < tol
    out_px = subtract_mean(images, px)
    assert rel_error(out_px, (t - torch.from_numpy(px)).numpy()) < tol
    # Per-pixel centering zeroes the mean image; per-channel only the channel means.
    np.testing.assert_allclose(per_pixel_mean(out_px), 0.0, atol=1e-4)
    np.testing.assert_allclose(per_channel_mean(out_ch), 0.0, atol=1e-3)


def test_image_test_split_uses_train_mean():
    rng = np.random.default_rng(1)
    train = rng.random((10, 3, 4, 4))
    test = rng.random((4, 3, 4, 4)) + 1.0
    mean = per_channel_mean(train)
    out = subtract_mean(test, mean)
    np.testing.assert_allclose(out, test - train.mean(axis=(0, 2, 3))[None, :, None, None])
    assert np.all(per_channel_mean(out) > 0.5)  # not re-centered on the test images


# ----------------------------------------------------------------------------- dtypes, immutability


@pytest.mark.parametrize(
    "fit", [fit_center, fit_standardize, fit_pca_whitening, fit_zca_whitening]
)
def test_float32_in_float32_out(fit, split):
    X, X_test = split
    f64 = fit(X)
    f32 = fit(X.astype(np.float32))
    out = f32.transform(X_test.astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, f64.transform(X_test), rtol=1e-4, atol=1e-4)


def test_inputs_not_modified_and_statistics_frozen(split):
    X, X_test = split
    X0, T0 = X.copy(), X_test.copy()
    fitted = [fit_center(X), fit_standardize(X), fit_pca_whitening(X), fit_zca_whitening(X)]
    for f in fitted:
        Z = f.transform(X_test)
        f.inverse_transform(Z)
        assert not np.shares_memory(Z, X_test)
    condition_number(X)
    images = np.random.default_rng(0).random((3, 2, 4, 4))
    images0 = images.copy()
    mean = per_channel_mean(images)
    subtract_mean(images, mean)
    subtract_mean(images, per_pixel_mean(images))
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(X_test, T0)
    np.testing.assert_array_equal(images, images0)
    s = fitted[1]
    with pytest.raises(ValueError, match="read-only"):
        s.mean[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.eps = 1.0
    X[0, 0] = 1e6  # changing the training data later does not change fitted statistics
    np.testing.assert_array_equal(fitted[0].mean, X0.mean(axis=0))


GOOD = _correlated(20, 4)
FITTERS = [
    ("fit_center", fit_center),
    ("fit_standardize", fit_standardize),
    ("fit_pca_whitening", fit_pca_whitening),
    ("fit_zca_whitening", fit_zca_whitening),
    ("condition_number", condition_number),
]


@pytest.mark.parametrize("name,fit", FITTERS)
@pytest.mark.parametrize(
    "X,err,msg",
    [
        (np.ones(5), ValueError, r"X must have 2 dimensions, got shape \(5,\)"),
        (np.ones((4, 3, 2)), ValueError, r"X must have 2 dimensions"),
        (np.ones((1, 3)), ValueError, r"at least 2 rows \(examples\), got shape \(1, 3\)"),
        (np.ones((3, 0)), ValueError, r"at least 1 column"),
        (np.ones((4, 3), dtype=np.int64), TypeError, r"dtype float32 or float64, got int64"),
        ([[1.0, 2.0], [3.0, 4.0]], TypeError, r"X must be a numpy.ndarray"),
        (torch.ones(4, 3, dtype=torch.float64), TypeError, r"got Tensor"),
        (np.array([[1.0, np.nan], [2.0, 3.0]]), ValueError, r"X must be finite"),
    ],
)
def test_bad_fit_inputs(name, fit, X, err, msg):
    with pytest.raises(err, match=f"^{name}: .*{msg}"):
        fit(X)


@pytest.mark.parametrize(
    "fitted,name",
    [
        (fit_center(GOOD), "Centering.transform"),
        (fit_standardize(GOOD), "Standardization.transform"),
        (fit_pca_whitening(GOOD), "Whitening.transform"),
        (fit_zca_whitening(GOOD), "Whitening.transform"),
    ],
)
def test_bad_transform_inputs(fitted, name):
    with pytest.raises(ValueError, match=rf"{name}: X must have D=4 columns .*got shape \(3, 5\)"):
        fitted.transform(np.ones((3, 5)))
    with pytest.raises(ValueError, match=rf"{name}: X must have 2 dimensions"):
        fitted.transform(np.ones(4))
    with pytest.raises(TypeError, match=rf"{name}: X must have dtype"):
        fitted.transform(np.ones((3, 4), dtype=np.int32))


BAD_OTHER = [
    (lambda: fit_standardize(GOOD, eps=-1.0), ValueError, r"fit_standardize: eps must be in"),
    (lambda: fit_zca_whitening(GOOD, eps="1"), TypeError, r"eps must be a real number"),
    (lambda: fit_pca_whitening(GOOD, n_components=5), ValueError, r"n_components must be in"),
    (lambda: fit_pca_whitening(GOOD, n_components=0), ValueError, r"n_components must be in"),
    (lambda: fit_pca_whitening(GOOD, n_components=1.5), TypeError, r"must be an integer"),
    (
        lambda: fit_pca_whitening(GOOD, n_components=2).inverse_transform(np.ones((3, 4))),
        ValueError,
        r"Whitening.inverse_transform: Z must have K=2 columns",
    ),
    (lambda: per_channel_mean(np.ones((4, 3))), ValueError, r"per_channel_mean: images must"),
    (lambda: per_pixel_mean(np.ones((4, 3), dtype=np.uint8)), TypeError, r"per_pixel_mean"),
    (
        lambda: subtract_mean(np.ones((2, 3, 4, 4)), np.ones(4)),
        ValueError,
        r"subtract_mean: mean must have shape \(3,\) \(per channel\) or \(3, 4, 4\)",
    ),
    (
        lambda: subtract_mean(np.ones((2, 3, 4, 4)), np.ones(3, dtype=np.float32)),
        TypeError,
        r"subtract_mean: mean must have the dtype of images",
    ),
]


@pytest.mark.parametrize("call,err,msg", BAD_OTHER)
def test_bad_other_inputs(call, err, msg):
    with pytest.raises(err, match=msg):
        call()


# ----------------------------------------------------------------------------- kappa from moments


def test_centering_can_raise_the_condition_number():
    """Sigma = diag(1, 0.01), mu = (0, 1): H = diag(1, 1.01) before, diag(1, 0.01) after."""
    k = condition_numbers_from_moments(np.array([0.0, 1.0]), np.diag([1.0, 0.01]))
    assert k["raw"] == pytest.approx(1.01 / 1.0, rel=1e-12)
    assert k["centered"] == pytest.approx(1.0 / 0.01, rel=1e-12)
    # scaled without centering: diag(1 / 1, 1.01 / 0.01)
    assert k["scaled"] == pytest.approx(101.0, rel=1e-12)
    assert k["standardized"] == pytest.approx(1.0, rel=1e-12)
    assert k["whitened"] == 1.0


def test_centering_helps_when_the_mean_dominates():
    # Sigma = I, mu = (3, 0): H = diag(10, 1)
    k = condition_numbers_from_moments(np.array([3.0, 0.0]), np.eye(2))
    assert k["raw"] == pytest.approx(10.0, rel=1e-12)
    assert k["centered"] == pytest.approx(1.0, rel=1e-12)


def test_diagonal_scaling_can_raise_the_condition_number_in_three_dimensions():
    cov = np.array([[3.0, -6.0, 7.0], [-6.0, 14.0, -16.0], [7.0, -16.0, 19.0]])
    k = condition_numbers_from_moments(np.zeros(3), cov)
    d = 1 / np.sqrt(np.diag(cov))
    assert k["centered"] == pytest.approx(np.linalg.cond(cov), rel=1e-8)
    assert k["standardized"] == pytest.approx(np.linalg.cond(cov * np.outer(d, d)), rel=1e-8)
    assert k["standardized"] > 1.3 * k["centered"]
    # van der Sluis: the unit-diagonal scaling is within a factor D of the best one
    assert k["standardized"] <= 3 * k["centered"]


def test_moments_agree_with_the_data_matrix_condition_number(rng):
    X = rng.standard_normal((500, 4)) * [1.0, 2.0, 0.5, 3.0] + [1.0, -2.0, 0.0, 4.0]
    mean, cov = X.mean(axis=0), np.cov(X, rowvar=False, bias=True)
    k = condition_numbers_from_moments(mean, cov)
    assert k["raw"] == pytest.approx(condition_number(X), rel=1e-8)
    assert k["centered"] == pytest.approx(condition_number(X, centered=True), rel=1e-8)
    Z = fit_standardize(X, eps=0.0).transform(X)
    assert k["standardized"] == pytest.approx(condition_number(Z), rel=1e-6)


@pytest.mark.parametrize(
    "mean, cov, err, msg",
    [
        ([0.0, 1.0], np.eye(2), TypeError, "mean must be a numpy.ndarray"),
        (np.zeros(2, dtype=np.int64), np.eye(2), TypeError, "dtype float32 or float64"),
        (np.zeros(2), np.eye(3), ValueError, r"shape \(D, D\) = \(2, 2\)"),
        (np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), ValueError, "symmetric"),
        (np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]), ValueError, "semi-definite"),
        (np.zeros(2), np.diag([1.0, 0.0]), ValueError, "positive diagonal"),
        (np.array([np.nan, 0.0]), np.eye(2), ValueError, "finite|NaN"),
    ],
)
def test_condition_numbers_from_moments_bad_input(mean, cov, err, msg):
    with pytest.raises(err, match=msg):
        condition_numbers_from_moments(mean, cov)


def test_condition_numbers_from_moments_leaves_inputs_alone():
    mean, cov = np.array([0.0, 1.0]), np.diag([1.0, 0.01])
    mean_copy, cov_copy = mean.copy(), cov.copy()
    condition_numbers_from_moments(mean, cov)
    np.testing.assert_array_equal(mean, mean_copy)
    np.testing.assert_array_equal(cov, cov_copy)
