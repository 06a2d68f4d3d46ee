"""Tests for normcore.optim: trajectories against torch.optim, state handling, bad input."""

import contextlib

import numpy as np
import pytest
import torch

from normcore import optim

TORCH_OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adadelta": torch.optim.Adadelta,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "nadam": torch.optim.NAdam,
}

# Every optimizer with its switches turned on one group at a time.
SETTINGS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("sgd", {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1}),
    ("adagrad", {}),
    ("adagrad", {"lr": 0.5}),
    (
        "adagrad",
        {
            "lr": 0.5,
            "eps": 1e-3,
            "weight_decay": 0.1,
            "lr_decay": 0.01,
            "initial_accumulator_value": 0.1,
        },
    ),
    ("rmsprop", {}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.9}),
    ("rmsprop", {"centered": True}),
    (
        "rmsprop",
        {
            "lr": 0.02,
            "alpha": 0.9,
            "eps": 1e-4,
            "momentum": 0.5,
            "weight_decay": 0.1,
            "centered": True,
        },
    ),
    ("adadelta", {}),
    ("adadelta", {"lr": 0.5, "rho": 0.95, "eps": 1e-4, "weight_decay": 0.1}),
    ("adam", {"lr": 0.05}),
    ("adam", {"lr": 0.05, "betas": (0.5, 0.9)}),
    ("adam", {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True}),
    ("adam", {"lr": 0.02, "betas": (0.0, 0.99), "eps": 1e-3}),
    ("adamw", {"lr": 0.05}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.5, "amsgrad": True}),
    ("nadam", {"lr": 0.05}),
    ("nadam", {"lr": 0.05, "weight_decay": 0.1, "momentum_decay": 0.1}),
    ("nadam", {"lr": 0.05, "betas": (0.8, 0.99), "momentum_decay": 0.0}),
]
SETTING_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(SETTINGS)]
SHAPES = [(5,), (3, 4), (2, 3, 4)]

# Default hyperparameters where they exist, so every optimizer can be called alike.
DEFAULTS = {name: {"lr": 0.1} if name == "sgd" else {} for name in optim.OPTIMIZERS}

STATE_KEYS = {
    "sgd": {"optimizer", "step", "momentum_buffer"},
    "adagrad": {"optimizer", "step", "sum"},
    "rmsprop": {"optimizer", "step", "square_avg", "momentum_buffer", "grad_avg"},
    "adadelta": {"optimizer", "step", "square_avg", "acc_delta"},
    "adam": {"optimizer", "step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    "adamw": {"optimizer", "step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    "nadam": {"optimizer", "step", "mu_product", "exp_avg", "exp_avg_sq"},
}


def make_problem(shape, dtype, num_steps, seed=0):
    """An ill-conditioned quadratic plus a cubic term, with fixed minibatch-like noise.

    ``grad(w, t)`` depends on ``w``, so every trajectory feeds back on itself. The noise
    sequence is fixed in advance; it keeps the adaptive denominators away from zero: on
    the noise-free problem, once a coordinate has converged, Adam-type steps
    ``lr * g / sqrt(v)`` oscillate and amplify float64 rounding by about 10x per five
    steps (measured), which no implementation could reproduce to 1e-10.
    """
    n = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    hessian = (q * np.logspace(-1, 1, n)) @ q.T  # condition number 100
    b = rng.standard_normal(n)
    noise = 0.5 * rng.standard_normal((num_steps, *shape))
    w0 = rng.standard_normal(shape).astype(dtype)
    hessian, b, noise = hessian.astype(dtype), b.astype(dtype), noise.astype(dtype)

    def grad(w, t):
        x = w.reshape(-1)
        return (hessian @ x - b + 0.1 * x**3).reshape(shape) + noise[t]

    return w0, grad


@contextlib.contextmanager
def torch_default_dtype(dtype):
    # torch keeps scalar state (NAdam's mu_product) in the default dtype.
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == np.float64 else torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def torch_trajectory(name, kwargs, w0, grad, num_steps):
    with torch_default_dtype(w0.dtype):
        param = torch.nn.Parameter(torch.from_numpy(w0.copy()))
        opt = TORCH_OPTIMIZERS[name]([param], foreach=False, **kwargs)
        path = []
        for t in range(num_steps):
            param.grad = torch.from_numpy(grad(param.detach().numpy().copy(), t))
            opt.step()
            path.append(param.detach().numpy().copy())
    return np.array(path)


def numpy_trajectory(name, kwargs, w0, grad, num_steps):
    w, state, path = w0.copy(), {}, []
    for t in range(num_steps):
        w = optim.OPTIMIZERS[name](w, grad(w, t), state, **kwargs)
        assert w.dtype == w0.dtype
        path.append(w)
    return np.array(path)


def assert_same_path(ours, ref, rtol):
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * np.abs(ref).max())


# ------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("name", "kwargs"), SETTINGS, ids=SETTING_IDS)
def test_trajectory_matches_torch_float64(name, kwargs, shape):
    num_steps = 150
    w0, grad = make_problem(shape, np.float64, num_steps)
    ref = torch_trajectory(name, kwargs, w0, grad, num_steps)
    ours = numpy_trajectory(name, kwargs, w0, grad, num_steps)
    assert_same_path(ours, ref, rtol=1e-10)
    # The run must actually go somewhere for the comparison to mean anything.
    assert np.abs(ref[-1] - w0).max() > 0.1


@pytest.mark.parametrize(("name", "kwargs"), SETTINGS, ids=SETTING_IDS)
def test_trajectory_matches_torch_float32(name, kwargs):
    num_steps = 50
    w0, grad = make_problem((3, 4), np.float32, num_steps, seed=1)
    ref = torch_trajectory(name, kwargs, w0, grad, num_steps)
    ours = numpy_trajectory(name, kwargs, w0, grad, num_steps)
    assert ours.dtype == np.float32
    assert_same_path(ours, ref, rtol=1e-5)


def test_lecture_momentum_equals_torch_form_for_constant_lr():
    # Lecture: v = rho * v - lr * g, w = w + v.  torch: buf = mu * buf + g, w -= lr * buf.
    w0, grad = make_problem((4,), np.float64, 100)
    lr, rho = 0.05, 0.9
    w_lecture, v = w0.copy(), np.zeros_like(w0)
    w, state = w0.copy(), {}
    for t in range(100):
        v = rho * v - lr * grad(w_lecture, t)
        w_lecture = w_lecture + v
        w = optim.sgd(w, grad(w, t), state, lr=lr, momentum=rho)
    np.testing.assert_allclose(w, w_lecture, rtol=1e-10)
    np.testing.assert_allclose(lr * state["momentum_buffer"], -v, rtol=1e-10)


def test_first_adam_step_is_lr_times_sign(rng):
    # With eps = 0, m_1 / sqrt(v_1) after bias correction is g / |g| exactly.
    w = rng.standard_normal((3, 5))
    dw = rng.standard_normal((3, 5))
    new_w = optim.adam(w, dw, {}, lr=0.01, eps=0.0)
    np.testing.assert_allclose(new_w, w - 0.01 * np.sign(dw), rtol=1e-12)


def test_sgd_plain_step_closed_form(rng):
    w, dw = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    new_w = optim.sgd(w, dw, {}, lr=0.3, weight_decay=0.1)
    np.testing.assert_allclose(new_w, w - 0.3 * (dw + 0.1 * w), rtol=1e-14)


def test_adamw_differs_from_adam_with_weight_decay(rng):
    w, dw = rng.standard_normal(6), rng.standard_normal(6)
    coupled = optim.adam(w, dw, {}, lr=0.1, weight_decay=0.5)
    decoupled = optim.adamw(w, dw, {}, lr=0.1, weight_decay=0.5)
    # Decoupled: shrink by (1 - lr * wd), then the plain Adam step.
    np.testing.assert_allclose(decoupled, w * (1 - 0.05) - 0.1 * np.sign(dw), rtol=1e-7)
    assert not np.allclose(coupled, decoupled)


# ---------------------------------------------------------------------- state, arrays


@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_inputs_not_modified_and_no_aliasing(name, rng):
    state = {}
    w = rng.standard_normal((2, 3))
    for _ in range(3):
        dw = rng.standard_normal((2, 3))
        w_copy, dw_copy = w.copy(), dw.copy()
        new_w = optim.OPTIMIZERS[name](w, dw, state, **DEFAULTS[name], weight_decay=0.1)
        np.testing.assert_array_equal(w, w_copy)
        np.testing.assert_array_equal(dw, dw_copy)
        assert not np.shares_memory(new_w, w) and not np.shares_memory(new_w, dw)
        for value in state.values():
            if isinstance(value, np.ndarray):
                assert not np.shares_memory(value, dw) and not np.shares_memory(value, w)
        w = new_w


def test_sgd_momentum_buffer_does_not_alias_gradient(rng):
    w, dw = rng.standard_normal(4), rng.standard_normal(4)
    state = {}
    optim.sgd(w, dw, state, lr=0.1, momentum=0.9)
    dw_copy = dw.copy()
    dw[:] = 0.0
    np.testing.assert_array_equal(state["momentum_buffer"], dw_copy)


@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_keys_and_dtype(name, dtype, rng):
    state = {}
    w = rng.standard_normal((2, 3)).astype(dtype)
    dw = rng.standard_normal((2, 3)).astype(dtype)
    for _ in range(2):
        w = optim.OPTIMIZERS[name](w, dw, state, **DEFAULTS[name])
    assert w.dtype == dtype and w.shape == (2, 3)
    assert set(state) == STATE_KEYS[name]
    assert state["optimizer"] == name
    assert state["step"] == 2
    for value in state.values():
        if isinstance(value, np.ndarray):
            assert value.dtype == dtype and value.shape == (2, 3)


def test_optional_buffers_are_created_when_switched_on(rng):
    w, dw = rng.standard_normal(3), rng.standard_normal(3)
    state = {}
    optim.rmsprop(w, dw, state, momentum=0.9, centered=True)
    assert state["momentum_buffer"].shape == (3,) and state["grad_avg"].shape == (3,)
    state = {}
    optim.adam(w, dw, state, amsgrad=True)
    np.testing.assert_array_equal(state["max_exp_avg_sq"], state["exp_avg_sq"])
    state = {}
    optim.sgd(w, dw, state, lr=0.1)
    assert state["momentum_buffer"] is None


def test_optimizers_dict():
    assert set(optim.OPTIMIZERS) == set(TORCH_OPTIMIZERS)
    assert optim.OPTIMIZERS["nadam"] is optim.nadam
    assert set(optim.__all__) == set(optim.OPTIMIZERS) | {"OPTIMIZERS"}


# ------------------------------------------------------------------------- bad input

W = np.zeros((2, 3))
DW = np.ones((2, 3))

BAD_HYPERPARAMETERS = [
    (optim.sgd, {"lr": -0.1}, ValueError, r"sgd: lr must be in \[0\.0, inf\], got -0\.1"),
    (optim.sgd, {"lr": 0.1, "momentum": -0.5}, ValueError, r"momentum .* got -0\.5"),
    (optim.sgd, {"lr": 0.1, "weight_decay": -1e-4}, ValueError, r"weight_decay .* got -0\.0001"),
    (optim.sgd, {"lr": 0.1, "nesterov": True}, ValueError, r"nesterov=True requires momentum"),
    (
        optim.sgd,
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True},
        ValueError,
        r"dampening == 0, got momentum=0\.9, dampening=0\.1",
    ),
    (optim.sgd, {"lr": 0.1, "nesterov": 1}, TypeError, r"nesterov must be a bool, got 1"),
    (optim.sgd, {"lr": "0.1"}, TypeError, r"lr must be a real number"),
    (optim.sgd, {"lr": float("nan")}, ValueError, r"lr must be finite"),
    (optim.adagrad, {"eps": -1e-10}, ValueError, r"adagrad: eps .* got -1e-10"),
    (optim.adagrad, {"lr_decay": -1.0}, ValueError, r"lr_decay .* got -1\.0"),
    (optim.adagrad, {"initial_accumulator_value": -1.0}, ValueError, r"initial_accumulator"),
    (optim.rmsprop, {"alpha": 1.5}, ValueError, r"rmsprop: alpha must be in \[0\.0, 1\.0\], got"),
    (optim.rmsprop, {"alpha": -0.1}, ValueError, r"alpha .* got -0\.1"),
    (optim.rmsprop, {"momentum": -0.1}, ValueError, r"momentum .* got -0\.1"),
    (optim.rmsprop, {"centered": "yes"}, TypeError, r"centered must be a bool"),
    (optim.adadelta, {"rho": 1.1}, ValueError, r"adadelta: rho must be in \[0\.0, 1\.0\], got 1"),
    (optim.adadelta, {"lr": -1.0}, ValueError, r"lr .* got -1\.0"),
    (
        optim.adam,
        {"betas": (1.0, 0.999)},
        ValueError,
        r"adam: betas\[0\] must be in \[0\.0, 1\.0\)",
    ),
    (optim.adam, {"betas": (0.9, -0.1)}, ValueError, r"betas\[1\] .* got -0\.1"),
    (optim.adam, {"betas": 0.9}, TypeError, r"betas must be a pair"),
    (optim.adam, {"eps": -1e-8}, ValueError, r"eps .* got -1e-08"),
    (optim.adam, {"amsgrad": None}, TypeError, r"amsgrad must be a bool"),
    (optim.adamw, {"weight_decay": -0.01}, ValueError, r"adamw: weight_decay .* got -0\.01"),
    (optim.nadam, {"momentum_decay": -4e-3}, ValueError, r"nadam: momentum_decay .* got -0\.004"),
    (optim.nadam, {"betas": (0.9, 1.0)}, ValueError, r"betas\[1\] .* got 1\.0"),
]


@pytest.mark.parametrize(("fn", "kwargs", "error", "match"), BAD_HYPERPARAMETERS)
def test_bad_hyperparameters(fn, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(W, DW, {}, **kwargs)


BAD_ARRAYS = [
    (W.tolist(), DW, {}, TypeError, r"w must be a numpy\.ndarray"),
    (W, torch.ones(2, 3), {}, TypeError, r"dw must be a numpy\.ndarray.*got Tensor"),
    (W.astype(np.int64), DW, {}, TypeError, r"w must have dtype float32 or float64, got int64"),
    (
        W,
        DW.astype(np.float32),
        {},
        TypeError,
        r"all arrays must share one dtype, got w=float64, dw=float32",
    ),
    (W, np.ones((3, 2)), {}, ValueError, r"dw must have shape \(2, 3\), got \(3, 2\)"),
    (W, DW, None, TypeError, r"state must be a dict, got NoneType"),
]


@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
@pytest.mark.parametrize(
    ("w", "dw", "state", "error", "match"),
    BAD_ARRAYS,
    ids=["list", "tensor", "int64", "mixed-dtype", "shape", "state-none"],
)
def test_bad_arrays(name, w, dw, state, error, match):
    with pytest.raises(error, match=f"{name}: {match}"):
        optim.OPTIMIZERS[name](w, dw, state, **DEFAULTS[name])


def test_sgd_requires_lr():
    with pytest.raises(TypeError, match="lr"):
        optim.sgd(W, DW, {})


@pytest.mark.parametrize(("first", "second"), [("adam", "sgd"), ("sgd", "adam"), ("adam", "adamw")])
def test_state_from_other_optimizer_is_rejected(first, second):
    state = {}
    optim.OPTIMIZERS[first](W, DW, state, **DEFAULTS[first])
    with pytest.raises(ValueError, match=rf"{second}: state was created by optimizer '{first}'"):
        optim.OPTIMIZERS[second](W, DW, state, **DEFAULTS[second])


def test_state_without_owner_is_rejected():
    with pytest.raises(ValueError, match=r"adam: state was created by optimizer None"):
        optim.adam(W, DW, {"step": 3})


def test_incomplete_state_is_rejected():
    with pytest.raises(
        ValueError, match=r"nadam: state is missing the entries \['step', 'mu_product'"
    ):
        optim.nadam(W, DW, {"optimizer": "nadam"})


def test_state_for_another_parameter_is_rejected():
    state = {}
    optim.adam(W, DW, state)
    with pytest.raises(ValueError, match=r"adam: state\['exp_avg'\] must match w \(shape \(4,\)"):
        optim.adam(np.zeros(4), np.ones(4), state)
    with pytest.raises(ValueError, match=r"must match w .*dtype float32"):
        optim.adam(W.astype(np.float32), DW.astype(np.float32), state)
