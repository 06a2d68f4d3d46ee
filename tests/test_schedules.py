"""Tests for normcore.schedules: parity with torch.optim.lr_scheduler, closed forms, bad input."""

import math

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler

from normcore import schedules
from normcore.schedules import (
    cosine_annealing_lr,
    cosine_annealing_warm_restarts_lr,
    exponential_lr,
    inverse_time_lr,
    linear_warmup_lr,
    schedule_values,
    step_lr,
    warmup_cosine_lr,
)

NUM_EPOCHS = 60


def torch_lrs(make_scheduler, lr, num_epochs=NUM_EPOCHS):
    """The lr of each epoch: param_groups[0]['lr'] before training, then after each step()."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(opt)
    values = [opt.param_groups[0]["lr"]]
    for _ in range(num_epochs - 1):
        opt.step()
        scheduler.step()
        values.append(opt.param_groups[0]["lr"])
    return np.array(values)


# (our function, its kwargs, the torch scheduler with the same settings)
PARITY = [
    (step_lr, {"step_size": 7}, lambda o: lr_scheduler.StepLR(o, step_size=7)),
    (
        step_lr,
        {"step_size": 10, "gamma": 0.5},
        lambda o: lr_scheduler.StepLR(o, step_size=10, gamma=0.5),
    ),
    (step_lr, {"step_size": 1, "gamma": 0.9}, lambda o: lr_scheduler.StepLR(o, 1, gamma=0.9)),
    (exponential_lr, {"gamma": 0.93}, lambda o: lr_scheduler.ExponentialLR(o, gamma=0.93)),
    (exponential_lr, {"gamma": 1.0}, lambda o: lr_scheduler.ExponentialLR(o, gamma=1.0)),
    (
        inverse_time_lr,
        {"decay_rate": 0.5},
        lambda o: lr_scheduler.LambdaLR(o, lambda t: 1 / (1 + 0.5 * t)),
    ),
    (
        inverse_time_lr,
        {"decay_rate": 0.3, "decay_steps": 4},
        lambda o: lr_scheduler.LambdaLR(o, lambda t: 1 / (1 + 0.3 * t / 4)),
    ),
    (
        cosine_annealing_lr,
        {"T_max": NUM_EPOCHS - 1},
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=NUM_EPOCHS - 1),
    ),
    # Beyond T_max: torch's recursion goes back up along the same cosine.
    (
        cosine_annealing_lr,
        {"T_max": 20, "eta_min": 0.01},
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=0.01),
    ),
    (cosine_annealing_lr, {"T_max": 7}, lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=7)),
    (
        cosine_annealing_warm_restarts_lr,
        {"T_0": 10},
        lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=10),
    ),
    (
        cosine_annealing_warm_restarts_lr,
        {"T_0": 5, "T_mult": 2, "eta_min": 0.001},
        lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.001),
    ),
    (
        cosine_annealing_warm_restarts_lr,
        {"T_0": 1, "T_mult": 3},
        lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=1, T_mult=3),
    ),
    (
        linear_warmup_lr,
        {"warmup_steps": 10, "start_factor": 0.1},
        lambda o: lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10),
    ),
    (linear_warmup_lr, {"warmup_steps": 5}, lambda o: lr_scheduler.LinearLR(o)),
    (
        linear_warmup_lr,
        {"warmup_steps": 1, "start_factor": 1.0},
        lambda o: lr_scheduler.LinearLR(o, start_factor=1.0, total_iters=1),
    ),
    (
        warmup_cosine_lr,
        {"warmup_steps": 10, "total_steps": NUM_EPOCHS - 1, "start_factor": 0.1, "eta_min": 0.002},
        lambda o: lr_scheduler.SequentialLR(
            o,
            [
                lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10),
                lr_scheduler.CosineAnnealingLR(o, T_max=NUM_EPOCHS - 11, eta_min=0.002),
            ],
            milestones=[10],
        ),
    ),
    (
        warmup_cosine_lr,
        {"warmup_steps": 3, "total_steps": 40},
        lambda o: lr_scheduler.SequentialLR(
            o,
            [
                lr_scheduler.LinearLR(o, total_iters=3),
                lr_scheduler.CosineAnnealingLR(o, T_max=37),
            ],
            milestones=[3],
        ),
    ),
]
PARITY_IDS = [f"{fn.__name__}-{i}" for i, (fn, _, _) in enumerate(PARITY)]


@pytest.mark.parametrize("lr", [0.1, 3.0])
@pytest.mark.parametrize(("fn", "kwargs", "make_scheduler"), PARITY, ids=PARITY_IDS)
def test_matches_torch_scheduler(fn, kwargs, make_scheduler, lr):
    ref = torch_lrs(make_scheduler, lr)
    ours = schedule_values(fn, NUM_EPOCHS, lr=lr, **kwargs)
    # torch updates the lr recursively, so the two differ by accumulated rounding only.
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12 * lr)


# ----------------------------------------------------------- the lecture's closed forms


def test_lecture_decays():
    t = np.arange(50)
    k, lr = 0.07, 0.4
    np.testing.assert_allclose(
        schedule_values(exponential_lr, 50, lr=lr, gamma=math.exp(-k)), lr * np.exp(-k * t)
    )
    np.testing.assert_allclose(
        schedule_values(inverse_time_lr, 50, lr=lr, decay_rate=k), lr / (1 + k * t)
    )
    # "Decay the learning rate by half every few epochs."
    halved = schedule_values(step_lr, 12, lr=lr, step_size=4, gamma=0.5)
    np.testing.assert_array_equal(halved, lr * np.repeat([1.0, 0.5, 0.25], 4))


def test_cosine_landmarks():
    lr, eta_min, T_max = 0.2, 0.02, 30
    assert cosine_annealing_lr(0, lr=lr, T_max=T_max, eta_min=eta_min) == lr
    assert cosine_annealing_lr(15, lr=lr, T_max=T_max, eta_min=eta_min) == pytest.approx(0.11)
    assert cosine_annealing_lr(30, lr=lr, T_max=T_max, eta_min=eta_min) == pytest.approx(eta_min)
    assert cosine_annealing_lr(60, lr=lr, T_max=T_max, eta_min=eta_min) == pytest.approx(lr)
    values = schedule_values(cosine_annealing_lr, T_max + 1, lr=lr, T_max=T_max)
    assert np.all(np.diff(values) < 0)


@pytest.mark.parametrize(
    ("T_0", "T_mult", "restarts"),
    [(10, 1, [0, 10, 20, 30, 40]), (5, 2, [0, 5, 15, 35, 75]), (2, 3, [0, 2, 8, 26, 80])],
)
def test_warm_restarts_jump_back_to_lr(T_0, T_mult, restarts):
    lr = 0.5
    values = schedule_values(
        cosine_annealing_warm_restarts_lr, restarts[-1] + 1, lr=lr, T_0=T_0, T_mult=T_mult
    )
    jumps = np.flatnonzero(np.diff(values) > 0) + 1
    np.testing.assert_array_equal(jumps, restarts[1:])
    np.testing.assert_allclose(values[restarts], lr)
    # Last step of each cycle, one step short of eta_min = 0: lr * (1 + cos(pi (T_i-1)/T_i)) / 2.
    for start, end in zip(restarts[:-1], restarts[1:], strict=True):
        length = end - start
        expected = lr * (1 + math.cos(math.pi * (length - 1) / length)) / 2
        assert values[end - 1] == pytest.approx(expected, rel=1e-12)


def test_linear_warmup_landmarks():
    lr = 0.3
    values = schedule_values(linear_warmup_lr, 12, lr=lr, warmup_steps=4, start_factor=0.25)
    np.testing.assert_allclose(values[:5], lr * np.array([0.25, 0.4375, 0.625, 0.8125, 1.0]))
    np.testing.assert_allclose(values[4:], lr)


def test_warmup_cosine_joins_both_parts():
    kwargs = {"lr": 1.0, "warmup_steps": 5, "total_steps": 25, "start_factor": 0.2}
    values = schedule_values(warmup_cosine_lr, 30, **kwargs)
    np.testing.assert_allclose(
        values[:5],
        [linear_warmup_lr(t, lr=1.0, warmup_steps=5, start_factor=0.2) for t in range(5)],
    )
    np.testing.assert_allclose(
        values[5:26], [cosine_annealing_lr(t, lr=1.0, T_max=20) for t in range(21)]
    )
    assert values.argmax() == 5 and values[25] == pytest.approx(0.0, abs=1e-15)


def test_schedule_values_shape_and_example():
    out = schedule_values(step_lr, 6, lr=1.0, step_size=2, gamma=0.5)
    assert out.dtype == np.float64 and out.shape == (6,)
    np.testing.assert_array_equal(out, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25])
    assert schedule_values(step_lr, 0, lr=1.0, step_size=2).shape == (0,)


def test_numpy_integer_step_index_is_accepted():
    assert step_lr(np.int64(7), lr=1.0, step_size=7) == pytest.approx(0.1)


def test_all_exports():
    assert set(schedules.__all__) == {
        "step_lr",
        "exponential_lr",
        "inverse_time_lr",
        "cosine_annealing_lr",
        "cosine_annealing_warm_restarts_lr",
        "linear_warmup_lr",
        "warmup_cosine_lr",
        "schedule_values",
    }


# ------------------------------------------------------------------------- bad input

BAD = [
    (step_lr, {"t": -1, "lr": 0.1, "step_size": 3}, ValueError, r"step_lr: t must be .*got -1"),
    (step_lr, {"t": 1.5, "lr": 0.1, "step_size": 3}, TypeError, r"t must be .*integer.*got 1\.5"),
    (step_lr, {"t": True, "lr": 0.1, "step_size": 3}, TypeError, r"got True"),
    (step_lr, {"t": 0, "lr": -0.1, "step_size": 3}, ValueError, r"step_lr: lr .* got -0\.1"),
    (step_lr, {"t": 0, "lr": 0.1, "step_size": 0}, ValueError, r"step_size must be in \[1, inf\]"),
    (step_lr, {"t": 0, "lr": 0.1, "step_size": 2.5}, TypeError, r"step_size must be an integer"),
    (step_lr, {"t": 0, "lr": 0.1, "step_size": 3, "gamma": -0.5}, ValueError, r"gamma .* -0\.5"),
    (exponential_lr, {"t": 0, "lr": 0.1, "gamma": -1.0}, ValueError, r"exponential_lr: gamma"),
    (exponential_lr, {"t": 0, "lr": float("inf"), "gamma": 0.9}, ValueError, r"lr must be finite"),
    (inverse_time_lr, {"t": 0, "lr": 0.1, "decay_rate": -0.1}, ValueError, r"decay_rate .*-0\.1"),
    (
        inverse_time_lr,
        {"t": 0, "lr": 0.1, "decay_rate": 0.1, "decay_steps": 0},
        ValueError,
        r"inverse_time_lr: decay_steps must be in \[1, inf\], got 0",
    ),
    (cosine_annealing_lr, {"t": 0, "lr": 0.1, "T_max": 0}, ValueError, r"T_max .* got 0"),
    (
        cosine_annealing_lr,
        {"t": 0, "lr": 0.1, "T_max": 5, "eta_min": -1e-3},
        ValueError,
        r"eta_min .* got -0\.001",
    ),
    (
        cosine_annealing_warm_restarts_lr,
        {"t": 0, "lr": 0.1, "T_0": 0},
        ValueError,
        r"cosine_annealing_warm_restarts_lr: T_0 must be in \[1, inf\], got 0",
    ),
    (
        cosine_annealing_warm_restarts_lr,
        {"t": 0, "lr": 0.1, "T_0": 5, "T_mult": 0},
        ValueError,
        r"T_mult must be in \[1, inf\], got 0",
    ),
    (
        cosine_annealing_warm_restarts_lr,
        {"t": 0, "lr": 0.1, "T_0": 5, "T_mult": 1.5},
        TypeError,
        r"T_mult must be an integer, got 1\.5",
    ),
    (
        linear_warmup_lr,
        {"t": 0, "lr": 0.1, "warmup_steps": 0},
        ValueError,
        r"linear_warmup_lr: warmup_steps must be in \[1, inf\], got 0",
    ),
    (
        linear_warmup_lr,
        {"t": 0, "lr": 0.1, "warmup_steps": 5, "start_factor": 0.0},
        ValueError,
        r"start_factor must be in \(0\.0, 1\.0\], got 0\.0",
    ),
    (
        linear_warmup_lr,
        {"t": 0, "lr": 0.1, "warmup_steps": 5, "start_factor": 1.5},
        ValueError,
        r"start_factor .* got 1\.5",
    ),
    (
        warmup_cosine_lr,
        {"t": 0, "lr": 0.1, "warmup_steps": 10, "total_steps": 10},
        ValueError,
        r"warmup_cosine_lr: total_steps must be greater than warmup_steps=10, got 10",
    ),
]


@pytest.mark.parametrize(("fn", "kwargs", "error", "match"), BAD)
def test_bad_input(fn, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(**kwargs)


def test_schedule_values_bad_input():
    with pytest.raises(TypeError, match=r"schedule_values: fn must be callable, got float"):
        schedule_values(0.1, 5, lr=0.1)
    with pytest.raises(ValueError, match=r"schedule_values: num_steps must be in \[0, inf\]"):
        schedule_values(step_lr, -1, lr=0.1, step_size=2)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'T_max'"):
        schedule_values(step_lr, 3, lr=0.1, step_size=2, T_max=4)
