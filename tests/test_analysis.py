"""Tests for normcore.analysis: scale invariance, conditioning, linear regression, SND, constraints.

Expected values come from closed-form math, from torch, or from the CVPR 2021 tutorial
(orderings of the SND, the constraint-count table); none is copied from the code's output.
"""

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from normcore import analysis as A
from normcore.analysis import scale_invariance as SI
from normcore.analysis import stochasticity as ST
from normcore.gradcheck import numerical_gradient

# ============================================================================ helpers


def gaussian_data(n, d, *, seed, spread=10.0):
    """n samples of a Gaussian with a random rotation and scales from 1 to ``spread``."""
    gen = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(gen.standard_normal((d, d)))
    return (gen.standard_normal((n, d)) * np.logspace(0, np.log10(spread), d)) @ Q.T + 3.0


def regression_with_spectrum(eigenvalues, *, n=64, seed=0):
    """X with X^T X / n = diag(eigenvalues) exactly (up to rounding), and y = X w_true."""
    gen = np.random.default_rng(seed)
    d = len(eigenvalues)
    U, _ = np.linalg.qr(gen.standard_normal((n, d)))
    X = math.sqrt(n) * U * np.sqrt(np.asarray(eigenvalues, dtype=np.float64))
    w_true = gen.standard_normal(d)
    return X, X @ w_true, w_true


def quadratic_loss(H):
    """loss(theta) = 0.5 theta^T H theta + c^T theta as a torch function, and a point."""
    Ht = torch.tensor(H)
    c = torch.linspace(-1.0, 1.0, H.shape[0], dtype=torch.float64)
    return (lambda t: 0.5 * t @ Ht @ t + c @ t), torch.ones(H.shape[0], dtype=torch.float64)


@pytest.fixture(scope="module")
def mlp_problem():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)
    ).double()
    X = torch.randn(32, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    f, theta = A.flat_loss_function(model, X, y, F.mse_loss)
    H = A.hessian(f, theta)
    return f, theta, H


# =================================================================== scale invariance


@pytest.mark.parametrize("normalization", ["batch", "layer"])
@pytest.mark.parametrize("a", [0.25, 3.0, 17.0])
def test_scale_invariance_identities_hold(rng, normalization, a):
    x = rng.standard_normal((16, 5))
    W = rng.standard_normal((3, 5))
    r = A.scale_invariance_report(x, W, a, normalization=normalization)
    assert r["output_rel_diff"] < 1e-12
    assert r["loss_rel_diff"] < 1e-12
    assert r["grad_rel_diff"] < 1e-12
    assert r["max_abs_cosine"] < 1e-12
    assert r["norm_growth_rel_diff"] < 1e-12
    assert r["inner_products"].shape == ((3,) if normalization == "batch" else (1,))


def test_scale_invariance_fails_for_plain_linear_layer(rng):
    x = rng.standard_normal((16, 5))
    W = rng.standard_normal((3, 5))
    r = A.scale_invariance_report(x, W, 3.0, normalization="none")
    # the output simply scales by a: relative change exactly a - 1
    assert r["output_rel_diff"] == pytest.approx(2.0, rel=1e-12)
    assert r["grad_rel_diff"] > 0.1
    assert r["max_abs_cosine"] > 1e-3
    assert r["norm_growth_rel_diff"] > 1e-6


def test_batch_norm_with_eps_is_only_nearly_invariant(rng):
    x = rng.standard_normal((16, 5))
    W = rng.standard_normal((3, 5))
    r = A.scale_invariance_report(x, W, 10.0, eps=1e-5)
    assert 1e-9 < r["output_rel_diff"] < 1e-4
    assert 1e-12 < r["max_abs_cosine"] < 1e-3


def test_custom_loss_and_input_not_modified(rng):
    x = rng.standard_normal((8, 4))
    W = rng.standard_normal((2, 4))
    x0, W0 = x.copy(), W.copy()
    r = A.scale_invariance_report(x, W, 5.0, loss_fn=lambda out: (out**3).sum() + out[0, 0])
    assert r["grad_rel_diff"] < 1e-12 and r["max_abs_cosine"] < 1e-12
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(W, W0)


def test_normalized_layer_matches_torch(rng):
    x = torch.tensor(rng.standard_normal((10, 4)))
    W = torch.tensor(rng.standard_normal((3, 4)))
    h = x @ W.T
    got = SI._normalized_layer(x, W, "batch", 1e-5)
    torch.testing.assert_close(got, F.batch_norm(h, None, None, training=True, eps=1e-5))
    got = SI._normalized_layer(x, W, "layer", 1e-5)
    torch.testing.assert_close(got, F.layer_norm(h, (3,), eps=1e-5))


def test_bn_unit_gradient_matches_autograd(rng):
    xb = rng.standard_normal((12, 5))
    yb = rng.standard_normal(12)
    w = rng.standard_normal(5)
    wt = torch.tensor(w, requires_grad=True)
    h = torch.tensor(xb) @ wt
    hhat = (h - h.mean()) / torch.sqrt(((h - h.mean()) ** 2).mean())
    (0.5 * ((hhat - torch.tensor(yb)) ** 2).mean()).backward()
    g = SI._bn_unit_gradient(xb, yb, w)
    np.testing.assert_allclose(g, wt.grad.numpy(), rtol=1e-10, atol=1e-13)
    assert abs(g @ w) < 1e-12 * np.linalg.norm(g) * np.linalg.norm(w)


def test_equilibrium_formulas():
    lr, wd, G = 0.1, 1e-3, 2.0
    # the equilibrium is a fixed point of x -> (1 - lr wd)^2 x + lr^2 G^2 / x, x = ||w||^2
    x = A.equilibrium_norm(lr, wd, G) ** 2
    assert (1 - lr * wd) ** 2 * x + (lr * G) ** 2 / x == pytest.approx(x, rel=1e-13)
    # small lr * wd: ||w||^2 ~ G sqrt(lr / (2 wd)) and the angle ~ sqrt(2 lr wd)
    assert x == pytest.approx(G * math.sqrt(lr / (2 * wd)), rel=1e-4)
    assert A.equilibrium_angular_update(lr, wd) == pytest.approx(math.sqrt(2 * lr * wd), rel=1e-4)
    assert A.equilibrium_angular_update(lr, 0.0) == 0.0
    assert A.effective_learning_rate(0.5, 2.0) == 0.125
    np.testing.assert_allclose(A.effective_learning_rate(1.0, np.array([1.0, 2.0])), [1, 0.25])


def test_tangent_simulation_reaches_equilibrium():
    lr, wd, G = 0.1, 0.01, 2.0
    s = A.simulate_norm_growth(4000, lr, wd, unit_grad_norm=G, init_norm=0.5, rng=0)
    assert s["weight_norm"].shape == (4001,) and s["angular_update"].shape == (4000,)
    np.testing.assert_allclose(s["unit_grad_norm"], G, rtol=1e-12)
    assert s["weight_norm"][-1] == pytest.approx(A.equilibrium_norm(lr, wd, G), rel=1e-6)
    assert s["angular_update"][-1] == pytest.approx(math.acos(1 - lr * wd), rel=1e-6)
    assert s["effective_lr"][-1] == pytest.approx(
        math.sqrt(lr * wd * (2 - lr * wd)) / G, rel=1e-6
    )
    # continuous-time solution ||w||^4 = u* + (u0 - u*) exp(-4 lr wd t), u* = lr G^2 / (2 wd)
    u_star, t = lr * G**2 / (2 * wd), np.arange(0, 3001, 100)
    u = u_star + (0.5**4 - u_star) * np.exp(-4 * lr * wd * t)
    np.testing.assert_allclose(s["weight_norm"][t] ** 4, u, rtol=0.03)
    np.testing.assert_allclose(s["weight_norm"], s["predicted_norm"], rtol=1e-10)


def test_norm_grows_without_weight_decay():
    lr, G = 0.1, 1.0
    s = A.simulate_norm_growth(1000, lr, unit_grad_norm=G, rng=1)
    norms = s["weight_norm"]
    assert np.all(np.diff(norms) > 0)
    assert np.all(np.diff(s["effective_lr"]) < 0)
    # x_{t+1}^2 = x_t^2 + 2 lr^2 G^2 + lr^4 G^4 / x_t^2 with x = ||w||^2
    t = np.arange(1001)
    lower = 1.0 + 2 * t * (lr * G) ** 2
    assert np.all(norms**4 >= lower * (1 - 1e-12))
    assert np.all(norms**4 <= (lower + t * (lr * G) ** 4) * (1 + 1e-12))
    assert s["equilibrium_norm"] == math.inf and s["equilibrium_effective_lr"] == 0.0


def test_bn_simulation_reaches_equilibrium():
    lr, wd = 0.1, 0.01
    s = A.simulate_norm_growth(3000, lr, wd, model="bn", dim=16, rng=0)
    late = slice(1500, None)
    assert s["angular_update"][late].mean() == pytest.approx(math.sqrt(2 * lr * wd), rel=0.1)
    g_rms = math.sqrt(np.mean(s["unit_grad_norm"] ** 2))
    assert s["weight_norm"][late].mean() == pytest.approx(
        A.equilibrium_norm(lr, wd, g_rms), rel=0.1
    )


# ======================================================================= conditioning


def test_hessian_matches_numerical_jacobian_of_gradient(mlp_problem):
    f, theta, H = mlp_problem
    assert H.shape == (theta.numel(),) * 2 and H.dtype == np.float64
    np.testing.assert_allclose(H, H.T, atol=1e-12)

    def grad_component(i):
        def g(z):
            t = torch.from_numpy(z).requires_grad_(True)
            return torch.autograd.grad(f(t), t)[0][i].item()

        return g

    z = theta.numpy().copy()
    for i in (0, 17, 43):
        np.testing.assert_allclose(numerical_gradient(grad_component(i), z), H[i], atol=1e-8)


def test_hessian_vector_product_matches_hessian(mlp_problem, rng):
    f, theta, H = mlp_problem
    v = rng.standard_normal(theta.numel())
    v0 = v.copy()
    np.testing.assert_allclose(A.hessian_vector_product(f, theta, v), H @ v, atol=1e-12)
    np.testing.assert_array_equal(v, v0)


def test_lanczos_matches_exact_spectrum(mlp_problem):
    f, theta, H = mlp_problem
    exact = np.sort(np.linalg.eigvalsh(H))[::-1]
    top = A.top_hessian_eigenvalues(f, theta, 5)  # default: 40 < P = 44 steps
    np.testing.assert_allclose(top, exact[:5], rtol=1e-6)
    full = A.top_hessian_eigenvalues(f, theta, theta.numel(), iters=theta.numel())
    np.testing.assert_allclose(full, exact, atol=1e-9)  # negative eigenvalues included
    vals, vecs = A.top_hessian_eigenvalues(f, theta, 3, return_eigenvectors=True)
    np.testing.assert_allclose(vecs @ H, vals[:, None] * vecs, atol=1e-6)


def test_lanczos_restarts_on_repeated_eigenvalues():
    H = np.diag([5.0, 5.0, 5.0, 2.0, 1.0, 1.0])  # Krylov space of one start has dimension 3
    f, theta = quadratic_loss(H)
    np.testing.assert_allclose(
        A.top_hessian_eigenvalues(f, theta, 5, iters=6), [5, 5, 5, 2, 1], atol=1e-12
    )


def test_power_iteration():
    gen = np.random.default_rng(3)
    Q, _ = np.linalg.qr(gen.standard_normal((8, 8)))
    evals = np.array([16.0, 8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.1])
    f, theta = quadratic_loss(Q @ np.diag(evals) @ Q.T)
    got = A.top_hessian_eigenvalues(f, theta, 3, method="power", tol=1e-14)
    np.testing.assert_allclose(got, evals[:3], rtol=1e-8)


def test_power_iteration_on_mlp_finds_largest_magnitude(mlp_problem):
    f, theta, H = mlp_problem
    exact = np.linalg.eigvalsh(H)
    largest = exact[np.argmax(np.abs(exact))]
    got = A.top_hessian_eigenvalues(f, theta, 1, method="power", tol=1e-14, iters=5000)
    assert got[0] == pytest.approx(largest, rel=1e-6)


def test_linear_loss_has_zero_hessian():
    c = torch.arange(4.0, dtype=torch.float64)
    theta = torch.zeros(4, dtype=torch.float64)
    np.testing.assert_array_equal(A.hessian_vector_product(lambda t: c @ t, theta,
                                                           np.ones(4)), np.zeros(4))


@pytest.mark.parametrize(
    "spectrum, top_fraction, expected",
    [
        ([8.0, 4.0, 2.0, 1.0], None, 8.0),
        ([1.0, 2.0, 8.0, 4.0], 0.5, 2.0),  # lambda_1 / lambda_2 after sorting
        (np.arange(10.0, 0.0, -1.0), 0.5, 10.0 / 6.0),
        (np.arange(10.0, 0.0, -1.0), 0.8, 10.0 / 3.0),
        (np.arange(10.0, 0.0, -1.0), 0.7, 10.0 / 4.0),  # 0.7 * 10 rounds above 7.0
        (np.arange(10.0, 0.0, -1.0), 1.0, 10.0),
        ([3.0, 1.0, 0.0], None, math.inf),
        ([3.0, 1.0, 0.0], 0.5, 3.0),
        ([0.0, 0.0], None, math.nan),
    ],
)
def test_condition_number_table(spectrum, top_fraction, expected):
    got = A.condition_number(np.asarray(spectrum, dtype=np.float64), top_fraction=top_fraction)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-12)


def test_condition_number_of_matrix_matches_numpy(rng):
    M = rng.standard_normal((6, 6))
    S = M @ M.T + 0.1 * np.eye(6)
    assert A.condition_number(S) == pytest.approx(np.linalg.cond(S), rel=1e-8)


def test_layerwise_condition_numbers(rng):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()
    X_np = rng.standard_normal((64, 5)) * np.array([1.0, 2.0, 4.0, 8.0, 16.0]) + 1.0
    X, y = torch.tensor(X_np), torch.tensor(rng.standard_normal((64, 3)))

    def loss_fn(out, target):
        return 0.5 * ((out - target) ** 2).sum()

    state = {k: v.clone() for k, v in model.state_dict().items()}
    rows = A.layerwise_condition_numbers(model, X, y, loss_fn)
    rows_c = A.layerwise_condition_numbers(model, X, y, loss_fn, centered=True)
    # the model is left as it was: no .grad, same running statistics
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    assert [r["layer"] for r in rows] == ["0", "3"]
    assert (rows[0]["in_features"], rows[0]["out_features"]) == (5, 8)
    # first layer: the input second moment of the data itself
    ev = np.linalg.eigvalsh(X_np.T @ X_np / 64)
    assert rows[0]["input_cov_kappa"] == pytest.approx(ev[-1] / ev[0], rel=1e-10)
    assert rows[0]["input_cov_kappa_top50"] == pytest.approx(ev[-1] / ev[-3], rel=1e-10)
    assert rows[0]["input_cov_kappa_top80"] == pytest.approx(ev[-1] / ev[-4], rel=1e-10)
    # last layer: the output gradient of the summed squared error is out - y
    with torch.no_grad():
        G = (model(X) - y).numpy()
    eg = np.linalg.eigvalsh(G.T @ G / 64)
    assert rows[1]["grad_cov_kappa"] == pytest.approx(eg[-1] / eg[0], rel=1e-8)
    # centered covariance
    ec = np.linalg.eigvalsh(np.cov(X_np.T, bias=True))
    assert rows_c[0]["input_cov_kappa"] == pytest.approx(ec[-1] / ec[0], rel=1e-10)


# ================================================================== linear regression


def test_linear_regression_hessian_is_input_covariance(rng):
    X = rng.standard_normal((50, 4)) @ rng.standard_normal((4, 4))
    y = rng.standard_normal(50)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    H_torch = A.hessian(lambda w: 0.5 * ((Xt @ w - yt) ** 2).mean(), np.zeros(4))
    H = A.linear_regression_hessian(X)
    np.testing.assert_allclose(H_torch, H, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(H, X.T @ X / 50, rtol=1e-12)
    Xc = X - X.mean(axis=0)
    np.testing.assert_allclose(A.linear_regression_hessian(Xc), np.cov(X.T, bias=True),
                               rtol=1e-10)
    assert A.linear_regression_hessian(X.astype(np.float32)).dtype == np.float32


def test_learning_rate_rules():
    H = np.diag([4.0, 1.0])
    assert A.optimal_learning_rate(H) == pytest.approx(0.25)
    assert A.optimal_learning_rate(H, rule="minimax") == pytest.approx(0.4)
    assert A.divergent_learning_rate(H) == pytest.approx(0.5)
    # minimax: the worst contraction factor is (kappa - 1) / (kappa + 1)
    lr = A.optimal_learning_rate(H, rule="minimax")
    assert max(abs(1 - lr * 4), abs(1 - lr * 1)) == pytest.approx(3 / 5)


def test_gd_iterations_match_closed_form():
    evals = np.array([10.0, 3.0, 1.0, 0.1])
    X, y, w_true = regression_with_spectrum(evals)
    tol, lr = 1e-6, 1 / 10.0
    # error along eigenvector i after t steps: (1 - lr lambda_i)^t * w_true_i (from w0 = 0)
    t = np.arange(5000)[:, None]
    err = np.sqrt(np.sum(((1 - lr * evals) ** (2 * t)) * w_true**2, axis=1))
    expected = int(np.argmax(err <= tol * np.linalg.norm(w_true)))
    got = A.gd_iterations_to_tolerance(X, y, tol=tol)  # default lr = 1 / lambda_max
    assert got == expected
    errors = A.gradient_descent_errors(X, y, num_iters=50)
    np.testing.assert_allclose(errors, err[:51] / np.linalg.norm(w_true), rtol=1e-8)


@pytest.mark.parametrize(
    ("lr", "tol", "expected"),
    [
        # one eigenvalue 1: the error is |1 - lr|^t |w*|; the first t with
        # |1 - lr|^t <= tol is ceil(ln tol / ln |1 - lr|)
        (0.5, 1e-3, 10),  # 0.5^9 = 1.95e-3 > 1e-3 >= 0.5^10 = 9.8e-4
        (0.9, 1e-6, 6),  # 0.1^6 = tol exactly is enough ("<=")
        (1.5, 1e-3, 10),  # |1 - 1.5| = 0.5 again, oscillating in sign
        (0.25, 0.5, 3),  # 0.75^2 = 0.5625 > 0.5 >= 0.75^3 = 0.42
    ],
)
def test_gd_iterations_equal_the_closed_form_of_one_mode(lr, tol, expected):
    X, y, w_true = regression_with_spectrum([1.0], seed=3)
    assert expected == math.ceil(math.log(tol) / math.log(abs(1 - lr)) - 1e-9)
    assert A.gd_iterations_to_tolerance(X, y, lr=lr, tol=tol) == expected


def test_gd_iterations_from_the_optimum_is_zero():
    X, y, w_true = regression_with_spectrum([10.0, 3.0, 1.0, 0.1])
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    assert A.gd_iterations_to_tolerance(X, y, tol=1e-9, w0=w_star) == 0
    assert A.gd_iterations_to_tolerance(X, y, tol=1e-9, w0=w_true) == 0
    assert A.gd_iterations_to_tolerance(X, y, tol=1e-9, w0=w_true, max_iters=0) == 0
    assert A.gd_iterations_to_tolerance(X, y, tol=1e-9, max_iters=0) is None  # from zero


def test_gd_iterations_grow_with_condition_number():
    its = []
    for kappa in (10.0, 100.0, 1000.0):
        X, y, _ = regression_with_spectrum(np.geomspace(kappa, 1.0, 5), seed=1)
        its.append(A.gd_iterations_to_tolerance(X, y, tol=1e-6))
    assert its[0] < its[1] < its[2]
    assert 5 < its[1] / its[0] < 20 and 5 < its[2] / its[1] < 20  # about linear in kappa
    # the minimax step needs fewer iterations than the lecture's 1 / lambda_max
    X, y, _ = regression_with_spectrum(np.geomspace(100.0, 1.0, 5), seed=1)
    lr = A.optimal_learning_rate(A.linear_regression_hessian(X), rule="minimax")
    assert A.gd_iterations_to_tolerance(X, y, lr=lr, tol=1e-6) < its[1]


def test_divergence_threshold():
    X, y, _ = regression_with_spectrum([4.0, 2.0, 1.0], seed=2)
    threshold = A.divergent_learning_rate(A.linear_regression_hessian(X))
    assert threshold == pytest.approx(0.5, rel=1e-12)
    below = A.gradient_descent_errors(X, y, lr=0.99 * threshold, num_iters=1500)
    above = A.gradient_descent_errors(X, y, lr=1.01 * threshold, num_iters=1500)
    assert below[-1] < 1e-8
    assert above[-1] > 1e6 * above[0]
    assert isinstance(A.gd_iterations_to_tolerance(X, y, lr=0.99 * threshold), int)
    assert A.gd_iterations_to_tolerance(X, y, lr=1.01 * threshold, max_iters=5000) is None
    # fast divergence is cut off at 1e150 and reported as inf, without overflow warnings
    far = A.gradient_descent_errors(X, y, lr=3 * threshold, num_iters=400)
    assert far[-1] == np.inf and np.all(np.isfinite(far[:100]))


def test_gd_on_rank_deficient_input_reaches_min_norm_solution(rng):
    X = rng.standard_normal((30, 2)) @ rng.standard_normal((2, 4))  # rank 2, d = 4
    y = rng.standard_normal(30)
    X0, y0 = X.copy(), y.copy()
    assert isinstance(A.gd_iterations_to_tolerance(X, y, tol=1e-8), int)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


# ====================================================================== stochasticity


@pytest.fixture(scope="module")
def snd_table():
    """SND of every method for d = 8 and d = 16 at batch sizes 32 and 64 (seeded)."""
    table = {}
    for d in (8, 16):
        data = gaussian_data(1000, d, seed=d)
        for B in (32, 64):
            for m in ("bn", "pca", "zca", "cd"):
                table[d, B, m] = A.stochastic_normalization_disturbance(data, m, B, rng=B + d)
    return table


@pytest.mark.parametrize("d, B", [(8, 32), (8, 64), (16, 32), (16, 64)])
def test_snd_method_ordering(snd_table, d, B):
    s = {m: snd_table[d, B, m] for m in ("bn", "pca", "zca", "cd")}
    # the tutorial: PCA > CD > ZCA > BN (margins well inside the seed-to-seed spread)
    assert s["pca"] > 1.3 * s["cd"]
    assert s["cd"] > 1.05 * s["zca"]
    assert s["zca"] > 1.2 * s["bn"]


@pytest.mark.parametrize("method", ["bn", "zca", "cd", "pca"])
def test_snd_shrinks_with_batch_size_and_grows_with_dimension(snd_table, method):
    assert snd_table[8, 32, method] > snd_table[8, 64, method]
    assert snd_table[16, 32, method] > snd_table[16, 64, method]
    assert snd_table[16, 32, method] > snd_table[8, 32, method]
    assert snd_table[16, 64, method] > snd_table[8, 64, method]


def test_snd_of_bn_scales_like_inverse_sqrt_batch_size():
    data = gaussian_data(2000, 8, seed=5)
    small = A.stochastic_normalization_disturbance(data, "bn", 16, num_samples=64, rng=0)
    large = A.stochastic_normalization_disturbance(data, "bn", 128, num_samples=64, rng=0)
    assert small / large == pytest.approx(math.sqrt(128 / 16), rel=0.25)


def test_snd_pca_stays_large_across_batch_sizes():
    data = gaussian_data(1000, 8, seed=6)
    pca = [A.stochastic_normalization_disturbance(data, "pca", B, rng=1) for B in (16, 128)]
    bn = [A.stochastic_normalization_disturbance(data, "bn", B, rng=1) for B in (16, 128)]
    assert pca[0] / pca[1] < 1.5 < 2.0 < bn[0] / bn[1]


def test_snd_groups_reduce_whitening_disturbance():
    data = gaussian_data(1000, 16, seed=7)
    for method in ("zca", "cd"):
        one = A.stochastic_normalization_disturbance(data, method, 32, rng=2)
        four = A.stochastic_normalization_disturbance(data, method, 32, num_groups=4, rng=2)
        assert four < 0.9 * one
    # groups do not change batch standardization, which is per feature anyway
    bn1 = A.stochastic_normalization_disturbance(data, "bn", 32, rng=3)
    bn4 = A.stochastic_normalization_disturbance(data, "bn", 32, num_groups=4, rng=3)
    assert bn1 == pytest.approx(bn4, rel=1e-12)


def test_snd_whitening_of_single_feature_groups_is_standardization():
    data = gaussian_data(300, 6, seed=9)
    bn = A.stochastic_normalization_disturbance(data, "bn", 16, rng=5)
    for method in ("pca", "zca", "cd"):
        got = A.stochastic_normalization_disturbance(data, method, 16, num_groups=6, rng=5)
        assert got == pytest.approx(bn, rel=1e-10)


def test_snd_options_and_reproducibility(rng):
    data = gaussian_data(200, 4, seed=8).astype(np.float32)
    data0 = data.copy()
    per = A.stochastic_normalization_disturbance(
        data, "zca", 16, num_samples=5, return_per_sample=True, rng=4
    )
    assert per.shape == (5,) and np.all(per > 0)
    again = A.stochastic_normalization_disturbance(data, "zca", 16, num_samples=5, rng=4)
    assert again == pytest.approx(per.mean(), rel=1e-12)
    out = A.stochastic_normalization_disturbance(data, "cd", 199, include_sample=False, rng=4)
    assert np.isfinite(out) and out > 0
    np.testing.assert_array_equal(data, data0)


@pytest.mark.parametrize("method", ["bn", "pca", "zca", "cd"])
def test_whitening_formulas_match_direct_computation(rng, method):
    batches = rng.standard_normal((3, 20, 4)) @ rng.standard_normal((4, 4)) + 2.0
    queries = rng.standard_normal((3, 2, 4))
    eps = 1e-3
    got = ST._whiten_queries(batches[:, :, None], queries[:, :, None], method, eps)[:, :, 0]
    for r in range(3):
        mu = batches[r].mean(axis=0)
        cov = np.cov(batches[r].T, bias=True) + eps * np.eye(4)
        if method == "bn":
            ref = (queries[r] - mu) / np.sqrt(np.diag(cov))
        elif method == "zca":
            ref = (queries[r] - mu) @ scipy.linalg.fractional_matrix_power(cov, -0.5).T
        elif method == "cd":
            ref = (queries[r] - mu) @ np.linalg.inv(np.linalg.cholesky(cov)).T
        else:
            lam, D = np.linalg.eigh(cov)
            ref = ((queries[r] - mu) @ D / np.sqrt(lam))[:, ::-1]
            ref, got_r = np.abs(ref), np.abs(got[r])  # eigenvector signs are arbitrary
            np.testing.assert_allclose(got_r, ref, rtol=1e-8)
            continue
        np.testing.assert_allclose(got[r], np.real(ref), rtol=1e-8, atol=1e-10)


def test_bn_snd_formula_matches_torch_batch_norm(rng):
    batch = rng.standard_normal((1, 16, 1, 5))
    got = ST._whiten_queries(batch, batch, "bn", 1e-5)[0, :, 0]
    ref = F.batch_norm(torch.tensor(batch[0, :, 0]), None, None, training=True, eps=1e-5)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-12)


@pytest.mark.parametrize("method", ["pca", "zca", "cd"])
def test_whitened_batch_has_identity_covariance(rng, method):
    batch = (rng.standard_normal((40, 5)) @ rng.standard_normal((5, 5)))[None, :, None]
    out = ST._whiten_queries(batch, batch, method, 0.0)[0, :, 0]
    np.testing.assert_allclose(out.T @ out / 40, np.eye(5), atol=1e-10)


def test_snd_helper_agrees_with_whitening_module(rng):
    whitening = pytest.importorskip("normcore.whitening")
    batch = rng.standard_normal((32, 6)) @ rng.standard_normal((6, 6))
    for method in ("pca", "zca", "cd"):
        ref, _ = whitening.batch_whitening_forward(batch, method, eps=1e-5)
        got = ST._whiten_queries(batch[None, :, None], batch[None, :, None], method, 1e-5)
        got = got[0, :, 0]
        if method == "pca":  # the same up to the sign and order of the axes
            C = np.abs(got.T @ ref) / np.outer(np.linalg.norm(got, axis=0),
                                               np.linalg.norm(ref, axis=0))
            np.testing.assert_allclose(np.sort(C, axis=1)[:, -1], 1.0, atol=1e-6)
            np.testing.assert_allclose(np.sort(C, axis=1)[:, :-1], 0.0, atol=1e-6)
        else:
            np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-9)


# ======================================================================== constraints


def count_equations(method, m, d, g=None):
    """Enumerate the equations of the normalized output one by one (the tutorial's Upsilon)."""
    if method == "bn":  # per neuron: zero mean, unit variance
        return len([(i, kind) for i in range(d) for kind in ("mean", "var")])
    if method == "bw":  # per neuron a mean; per unordered pair (i <= j) a covariance entry
        return d + len([(i, j) for i in range(d) for j in range(i, d)])
    if method == "gn":  # per sample and group: mean and variance
        return len([(n, k, kind) for n in range(m) for k in range(g) for kind in ("m", "v")])
    # gw: per sample, g group means and the g x g covariance between groups
    return m * (g + len([(i, j) for i in range(g) for j in range(i, g)]))


@pytest.mark.parametrize(
    "method, m, d, g, expected",
    [
        ("bn", 8, 4, None, 8),  # 2d
        ("bw", 8, 4, None, 14),  # d(d+3)/2
        ("gn", 8, 4, 2, 32),  # 2gm
        ("gw", 8, 4, 2, 40),  # mg(g+3)/2
        ("bw", 2, 1, None, 2),  # a single neuron: whitening is standardization
        ("gw", 3, 12, 3, 27),
    ],
)
def test_constraint_count_table(method, m, d, g, expected):
    got = A.constraint_count(method, batch_size=m, num_channels=d, num_groups=g)
    assert got == expected == count_equations(method, m, d, g)


@pytest.mark.parametrize("method, g", [("bn", None), ("bw", None), ("gn", 2), ("gw", 2)])
def test_constraint_count_over_data_set(method, g):
    # zeta(phi; D): BN 2Nd/m, BW Nd(d+3)/(2m), GN 2gN, GW Ng(g+3)/2, with N=80, m=8, d=4
    expected = {"bn": 80, "bw": 140, "gn": 320, "gw": 400}[method]
    got = A.constraint_count(method, batch_size=8, num_channels=4, num_groups=g, dataset_size=80)
    assert got == expected
    assert A.constraint_count("bn", batch_size=8, num_channels=4, dataset_size=12) == 12.0


def test_constraint_ranges_match_tutorial():
    for d in range(1, 41):
        for m in range(1, 41):
            assert (A.constraint_ratio("bn", batch_size=m, num_channels=d) <= 1) == (m >= 2)
            assert (A.constraint_ratio("bw", batch_size=m, num_channels=d) <= 1) == (
                m >= (d + 3) / 2
            )
        for g in (g for g in range(1, d + 1) if d % g == 0):
            gn = A.constraint_ratio("gn", batch_size=4, num_channels=d, num_groups=g)
            gw = A.constraint_ratio("gw", batch_size=4, num_channels=d, num_groups=g)
            assert (gn <= 1) == (g <= d / 2)
            assert (gw <= 1) == (g <= (math.sqrt(8 * d + 9) - 3) / 2)


def test_constraint_aliases_and_feature_maps():
    kw = {"batch_size": 4, "num_channels": 6}
    assert A.constraint_count("ln", **kw) == A.constraint_count("gn", num_groups=1, **kw) == 8
    assert A.constraint_count("in", **kw) == A.constraint_count("gn", num_groups=6, **kw) == 48
    # spatial positions share the statistics: same equations, more entries
    assert A.constraint_count("bn", height=5, width=5, **kw) == 12
    assert A.constraint_ratio("bn", height=5, width=5, **kw) == pytest.approx(12 / 600)


# ========================================================================== bad input

X4 = np.ones((8, 4))
W2 = np.ones((2, 4))
H2 = np.diag([2.0, 1.0])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: A.scale_invariance_report(X4.tolist(), W2, 2.0), TypeError, "numpy.ndarray"),
        (lambda: A.scale_invariance_report(X4, W2.astype(np.float32), 2.0), TypeError,
         "share one dtype"),
        (lambda: A.scale_invariance_report(X4, np.ones((2, 3)), 2.0), ValueError,
         r"W must have shape \(d_out, 4\)"),
        (lambda: A.scale_invariance_report(X4[:1], W2, 2.0), ValueError, "at least 2 samples"),
        (lambda: A.scale_invariance_report(X4, W2, -1.0), ValueError, r"a must be in \(0"),
        (lambda: A.scale_invariance_report(X4, W2, 2.0, normalization="group"), ValueError,
         "normalization must be one of"),
        (lambda: A.scale_invariance_report(X4, W2, 2.0, loss_fn=3), TypeError, "callable"),
        (lambda: A.effective_learning_rate(0.1, 0.0), ValueError, "positive and finite"),
        (lambda: A.equilibrium_norm(0.1, 0.0), ValueError, r"weight_decay must be in \(0"),
        (lambda: A.equilibrium_angular_update(1.0, 2.0), ValueError, "must be < 1"),
        (lambda: A.simulate_norm_growth(0, 0.1), ValueError, r"steps must be in \[1"),
        (lambda: A.simulate_norm_growth(10, 0.1, model="adam"), ValueError, "model must be"),
        (lambda: A.simulate_norm_growth(10, 0.1, rng="x"), TypeError, "rng must be"),
        (lambda: A.hessian(lambda t: t, torch.zeros(3, dtype=torch.float64)), ValueError,
         "scalar tensor"),
        (lambda: A.hessian(lambda t: t.sum(), torch.zeros((2, 2))), ValueError, "1-d vector"),
        (lambda: A.hessian(lambda t: t.sum(), torch.zeros(3, dtype=torch.int64)), TypeError,
         "floating"),
        (lambda: A.hessian(3, torch.zeros(3)), TypeError, "loss_fn must be callable"),
        (lambda: A.hessian_vector_product(lambda t: (t**2).sum(), torch.zeros(3),
                                          np.ones(4)), ValueError, r"v must have shape \(3,\)"),
        (lambda: A.top_hessian_eigenvalues(lambda t: (t**2).sum(), torch.zeros(3), 4),
         ValueError, r"k must be in \[1, 3\]"),
        (lambda: A.top_hessian_eigenvalues(lambda t: (t**2).sum(), torch.zeros(3), 1,
                                           method="qr"), ValueError, "method must be one of"),
        (lambda: A.top_hessian_eigenvalues(lambda t: (t**2).sum(), torch.zeros(3), 2,
                                           iters=1), ValueError, "iters >= k"),
        (lambda: A.condition_number(np.ones((2, 3))), ValueError, "square matrix"),
        (lambda: A.condition_number(np.ones(3), top_fraction=0.0), ValueError, "top_fraction"),
        (lambda: A.condition_number(np.arange(3)), TypeError, "float32 or float64"),
        (lambda: A.layerwise_condition_numbers(torch.nn.Tanh(), torch.zeros(2, 2),
                                               torch.zeros(2), F.mse_loss), ValueError,
         "at least one torch.nn.Linear"),
        (lambda: A.layerwise_condition_numbers(torch.nn.Linear(2, 2), np.zeros((2, 2)),
                                               torch.zeros(2), F.mse_loss), TypeError,
         "torch tensors"),
        (lambda: A.flat_loss_function("model", None, None, F.mse_loss), TypeError,
         "torch.nn.Module"),
        (lambda: A.linear_regression_hessian(np.ones(3)), ValueError, "2 dimensions"),
        (lambda: A.optimal_learning_rate(H2, rule="best"), ValueError, "rule must be one of"),
        (lambda: A.optimal_learning_rate(np.diag([1.0, 0.0]), rule="minimax"), ValueError,
         "positive definite"),
        (lambda: A.divergent_learning_rate(np.array([[1.0, 2.0], [0.0, 1.0]])), ValueError,
         "symmetric"),
        (lambda: A.divergent_learning_rate(-H2), ValueError, "positive eigenvalue"),
        (lambda: A.gd_iterations_to_tolerance(X4, np.ones(5)), ValueError,
         r"y must have shape \(8,\)"),
        (lambda: A.gd_iterations_to_tolerance(X4, np.ones(8), tol=0.0), ValueError, "tol"),
        (lambda: A.gradient_descent_errors(X4, np.ones(8), w0=np.ones(3)), ValueError,
         r"w0 must have shape \(4,\)"),
        (lambda: A.gradient_descent_errors(X4, np.ones(8), lr=-1.0), ValueError, "lr must"),
        (lambda: A.stochastic_normalization_disturbance(X4, "bw", 4), ValueError,
         "method must be one of"),
        (lambda: A.stochastic_normalization_disturbance(X4, "bn", 9), ValueError,
         "batch_size must be <= 8"),
        (lambda: A.stochastic_normalization_disturbance(X4, "bn", 8, include_sample=False),
         ValueError, "batch_size must be <= 7"),
        (lambda: A.stochastic_normalization_disturbance(X4, "zca", 4, num_groups=3), ValueError,
         "num_groups=3 does not divide d=4"),
        (lambda: A.stochastic_normalization_disturbance(X4, "bn", 4, num_samples=9), ValueError,
         "num_samples must be <= n=8"),
        (lambda: A.stochastic_normalization_disturbance(X4, "bn", 4, num_batches=1), ValueError,
         r"num_batches must be in \[2"),
        (lambda: A.stochastic_normalization_disturbance(X4.astype(int), "bn", 4), TypeError,
         "dtype float32 or float64"),
        (lambda: A.constraint_count("wn", batch_size=4, num_channels=4), ValueError,
         "method must be one of"),
        (lambda: A.constraint_count("gn", batch_size=4, num_channels=4), ValueError,
         "needs num_groups"),
        (lambda: A.constraint_count("gw", batch_size=4, num_channels=6, num_groups=4),
         ValueError, "num_groups=4 does not divide num_channels=6"),
        (lambda: A.constraint_count("bn", batch_size=4, num_channels=4, num_groups=2),
         ValueError, "applies only to 'gn' and 'gw'"),
        (lambda: A.constraint_count("bn", batch_size=0, num_channels=4), ValueError,
         r"batch_size must be in \[1"),
        (lambda: A.constraint_ratio("bn", batch_size=2.5, num_channels=4), TypeError,
         "must be an integer"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_importing_the_numpy_tools_does_not_import_torch():
    # The graded analysis exercise imports normcore.analysis; torch's import would cost it ~1.5 s.
    code = "import sys, normcore.analysis, normcore.grading; print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


def test_every_submodule_imports_without_torch():
    code = ("import sys; import normcore.analysis.scale_invariance, normcore.analysis.curvature, "
            "normcore.analysis.conditioning, normcore.analysis.stochasticity, "
            "normcore.analysis.constraints; print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


def test_package_reexports_every_public_name_of_its_modules():
    import importlib

    topics = ("scale_invariance", "curvature", "conditioning", "stochasticity", "constraints")
    seen = []
    for topic in topics:
        module = importlib.import_module(f"normcore.analysis.{topic}")
        for name in module.__all__:
            assert getattr(A, name) is getattr(module, name), name
        seen += module.__all__
    assert sorted(seen) == sorted(A.__all__)
    assert len(set(seen)) == len(seen)  # no name defined in two topics
    # analysis.hessian is the function, not a submodule of the same name
    assert callable(A.hessian) and A.hessian.__module__ == "normcore.analysis.curvature"
    from normcore.analysis import hessian, stochastic_normalization_disturbance  # noqa: F401


def test_lazy_torch_is_replaced_by_the_module_on_first_use():
    code = ("import sys, numpy as np, torch.nn.functional as F; "
            "from normcore.analysis import curvature, scale_invariance_report; "
            "before = type(curvature.torch).__name__; "
            "scale_invariance_report(np.ones((4, 3)) + np.eye(4, 3), np.eye(2, 3), 2.0); "
            "from normcore.analysis import scale_invariance as si; "
            "print(before, si.torch is sys.modules['torch'])")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["LazyTorch", "True"]


@pytest.mark.parametrize("method", ["bn", "zca", "pca", "cd"])
def test_normalized_sample_outputs_match_a_direct_computation(rng, method):
    data = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 3))
    data0 = data.copy()
    out, idx = A.normalized_sample_outputs(data, method, 10, sample_index=5, num_batches=6,
                                           return_batches=True, rng=0)
    assert out.shape == (6, 3) and idx.shape == (6, 10)
    np.testing.assert_array_equal(data, data0)
    for row, batch in zip(out, idx, strict=True):
        assert batch[0] == 5 and len(set(batch)) == 10  # the sample, then 9 others
        X = data[batch]
        xc = X - X.mean(axis=0)
        if method == "bn":  # torch's training-mode batch norm of the batch, the sample's row
            expected = F.batch_norm(torch.from_numpy(X), None, None, training=True,
                                    eps=1e-5)[0].numpy()
        else:
            cov = xc.T @ xc / 10 + 1e-5 * np.eye(3)
            evals, evecs = np.linalg.eigh(cov)
            evals, evecs = evals[::-1], evecs[:, ::-1]
            if method == "zca":  # the symmetric inverse square root
                expected = scipy.linalg.inv(scipy.linalg.sqrtm(cov)).real @ xc[0]
            elif method == "pca":
                expected = (evecs.T @ xc[0]) / np.sqrt(evals)
                # eigenvectors have arbitrary signs: compare up to a sign per coordinate
                row, expected = np.abs(row), np.abs(expected)
            else:
                expected = scipy.linalg.solve_triangular(np.linalg.cholesky(cov), xc[0],
                                                         lower=True)
        np.testing.assert_allclose(row, expected, rtol=1e-8, atol=1e-10)


def test_normalized_sample_outputs_spread_is_the_snd_of_that_sample(rng):
    data = rng.standard_normal((30, 4))
    out = A.normalized_sample_outputs(data, "zca", 8, sample_index=3, num_batches=50, rng=1)
    # the definition: mean distance of the outputs from their mean over the batches
    snd = np.mean(np.linalg.norm(out - out.mean(axis=0), axis=1))
    assert snd > 0
    # the SND of the data set is the same quantity averaged over samples: of the same order
    assert 0.3 < snd / A.stochastic_normalization_disturbance(data, "zca", 8, rng=2) < 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sample_index": 30}, ValueError, "sample_index must be < n=30"),
        ({"sample_index": -1}, ValueError, "sample_index"),
        ({"method": "wn"}, ValueError, "method must be one of"),
        ({"batch_size": 31}, ValueError, "batch_size must be <= 30"),
        ({"return_batches": 1}, TypeError, "return_batches must be a bool"),
    ],
)
def test_normalized_sample_outputs_bad_input(kwargs, error, match):
    args = {"method": "bn", "batch_size": 8, **kwargs}
    with pytest.raises(error, match=match):
        A.normalized_sample_outputs(np.ones((30, 2)), **args)
