# %% [markdown]
# # Assignment 5: Optimizers and learning-rate schedules
#
# You will implement the update rules of the lecture with NumPy, each as one step function:
# SGD with momentum and Nesterov momentum, AdaGrad, RMSProp, AdaDelta, Adam (with AMSGrad),
# AdamW and NAdam, and two learning-rate schedules, step decay and cosine annealing with warm
# restarts. Finally you run your optimizers on an ill-conditioned quadratic and explain what
# you see.
#
# **Total: 39 points** (35 graded automatically, 4 for the written question at the end).
#
# How this notebook is graded:
#
# * Write your code in the cells that say `YOUR CODE HERE`, replacing
#   `raise NotImplementedError()`. Keep the function names and signatures: they are those of
#   the course library `normcore`, and your functions are compared with it.
# * Each test cell is worth the points written in its first line, all or nothing. The tests
#   you see check a small example worked out by hand, one step at a time. When the assignment
#   is graded, more tests run in the same cells: whole trajectories of several steps from an
#   empty state (so your state handling is tested), random shapes, float32 inputs, other
#   hyperparameters, comparison with a reference implementation. A failing test says what is
#   wrong.
# * Use NumPy only. A function that calls `normcore`'s implementation of the same optimizer or
#   schedule, or `torch.optim`, scores zero on that test.
# * Arrays are `float32` or `float64`; return arrays of the input's dtype, and never modify
#   the arrays you are given.
# * Before submitting, restart the kernel and run all cells (*Kernel → Restart & Run All*).
#   Test cells you edit or delete are restored from the original when grading.

# %% nbgrader="readonly" grade_id="setup"
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("normcore") is None:  # outside the course environment (Colab)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet",
                           "normcore @ git+https://github.com/normcore-course/normalization-course"])

import numpy as np

from normcore import grading

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## How an optimizer step works here
#
# Every optimizer is one function with the same shape,
#
# ```python
# new_w = adam(w, dw, state, lr=0.1)
# ```
#
# `w` is the parameter $\theta_t$ (any shape), `dw` the gradient $\nabla J(\theta_t)$ (same
# shape and dtype), and the hyperparameters are keyword arguments with PyTorch's names and
# defaults. The function returns the new parameter $\theta_{t+1}$ as a **new array**; it must
# not modify `w` or `dw`.
#
# `state` is a dict that belongs to one parameter. It is **empty on the first call**; your
# function creates its buffers there (`if not state: ...`) and updates them at every call, so
# that the next call continues where this one stopped. The keys are yours to choose (the
# docstrings suggest PyTorch's names: `"step"`, `"momentum_buffer"`, `"exp_avg"`, ...). A
# training loop looks like this:
#
# ```python
# state = {}
# for t in range(num_steps):
#     w = adam(w, gradient(w), state, lr=0.1)
# ```
#
# The tests run your function like that for several steps, starting from `state = {}`, and
# compare every iterate. In the lecture's framework every method is
# $\theta_{t+1} = \theta_t - \eta\, m_t / \sqrt{V_t}$ with a first moment $m_t$ (the direction)
# and a diagonal second moment $V_t$ (the scale of each coordinate); all operations below are
# elementwise. When a hyperparameter `weight_decay` $= \lambda$ is given, every optimizer except
# AdamW first adds the L2 penalty's gradient, $g_t = \nabla J(\theta_t) + \lambda \theta_t$, and
# then works with $g_t$.
#
# ## 1. SGD, momentum and Nesterov momentum (7 points)
#
# With `momentum` $\mu = 0$ this is plain gradient descent, $\theta_{t+1} = \theta_t - \eta\,
# g_t$. With $\mu > 0$ a buffer $b_t$ accumulates the gradients (PyTorch's form, without the
# learning rate), with `dampening` $\tau$:
#
# $$
# b_1 = g_1, \qquad b_t = \mu\, b_{t-1} + (1 - \tau)\, g_t \quad (t \ge 2), \qquad
# \theta_{t+1} = \theta_t - \eta\, b_t .
# $$
#
# Note that the first buffer is the gradient itself: dampening starts at the second step.
# With `nesterov=True` the step looks ahead by one momentum step,
# $\theta_{t+1} = \theta_t - \eta\, (g_t + \mu\, b_t)$, with the buffer $b_t$ just updated.
#
# The lecture writes momentum as a velocity that contains the learning rate,
# $v_t = \beta v_{t-1} + \eta g_t$, $\theta_{t+1} = \theta_t - v_t$: with a constant $\eta$ it is
# $\eta$ times PyTorch's buffer and gives the same iterates. Its Nesterov momentum evaluates
# the gradient at the look-ahead point $\theta_t - \beta v_{t-1}$; PyTorch's form stores that
# look-ahead point as the parameter, so the gradient is taken where the parameter is.

# %% nbgrader="answer" grade_id="sgd"
def sgd(w, dw, state, *, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    """One step of SGD, optionally with (Nesterov) momentum.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient at w, same shape and dtype. Not modified.
    state : dict
        This parameter's optimizer state, empty on the first call; keep the momentum
        buffer b_t in it (e.g. under "momentum_buffer").
    lr : float
        Learning rate eta.
    momentum : float
        Momentum factor mu (0: plain SGD).
    dampening : float
        Dampening tau of the gradient added to the buffer, from the second step on.
    nesterov : bool
        Step along g + mu * b instead of b.
    weight_decay : float
        L2 penalty lambda, added to the gradient as lambda * w.

    Returns
    -------
    new_w : ndarray, shape (*)
        The parameter after the step, same dtype as w.
    """
    ### BEGIN SOLUTION
    g = dw + weight_decay * w
    if momentum != 0:
        buf = state.get("momentum_buffer")
        buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
        state["momentum_buffer"] = buf
        g = g + momentum * buf if nesterov else buf
    return w - lr * g
    ### END SOLUTION


# %% [markdown]
# By hand: from `w = [1, -2]` with the gradient `[0.5, 1]` and `lr = 0.1`, one step gives
# `[0.95, -2.1]`. With `weight_decay = 0.5` the gradient becomes
# `[0.5, 1] + 0.5 * [1, -2] = [1, 0]` and the step gives `[0.9, -2]`.

# %% nbgrader="tests" grade_id="test_sgd" points=2
# 2 points: plain SGD, with and without weight decay.
w, dw = np.array([1.0, -2.0]), np.array([0.5, 1.0])
grading.check_example(sgd, (w, dw, {}), {"lr": 0.1}, name="sgd", returns="new_w",
                      expected={"new_w": [0.95, -2.1]})
grading.check_example(sgd, (w, dw, {}), {"lr": 0.1, "weight_decay": 0.5}, name="sgd",
                      returns="new_w", expected={"new_w": [0.9, -2.0]})
# Works for any shape and keeps the dtype:
w32, dw32 = np.ones((2, 3), dtype=np.float32), np.ones((2, 3), dtype=np.float32)
grading.check_example(sgd, (w32, dw32, {}), {"lr": 0.5}, name="sgd", returns="new_w",
                      expected={"new_w": np.full((2, 3), 0.5, dtype=np.float32)})
### BEGIN HIDDEN TESTS
from normcore import optim as _ref

_rng = np.random.default_rng(5011)
for _shape, _dtype, _hyper in [((5,), np.float64, {"lr": 0.1}),
                               ((3, 4), np.float64, {"lr": 0.05, "weight_decay": 0.2}),
                               ((2, 3, 2), np.float32, {"lr": 0.2, "weight_decay": 0.1}),
                               ((4,), np.float64, {"lr": 0.0})]:
    _w0 = _rng.standard_normal(_shape).astype(_dtype)
    _grads = _rng.standard_normal((4, *_shape)).astype(_dtype)
    grading.check_optimizer(sgd, _ref.sgd, _w0, _grads, _hyper, name="sgd")
### END HIDDEN TESTS

# %% [markdown]
# Momentum, by hand: from `w = [1, 2]` with the same gradient `g = [1, -2]` at every step,
# `lr = 0.1` and `momentum = 0.5`, the buffers are $b_1 = g$, $b_2 = 1.5\, g$,
# $b_3 = 1.75\, g$, and the iterates `[0.9, 2.2]`, `[0.75, 2.5]`, `[0.575, 2.85]`: the steps
# grow towards $g / (1 - \mu) = 2g$. With `dampening = 0.5` as well, $b_1 = g$ (no dampening
# at the first step) and then $b_t = 0.5\, b_{t-1} + 0.5\, g = g$: the iterates are
# `[0.9, 2.2]`, `[0.8, 2.4]`, `[0.7, 2.6]`.
#
# Weight decay goes into the gradient, and so through the buffer: from `w = [0, 0]` with
# `weight_decay = 1` (and `momentum = 0.5`, `lr = 0.1`, the same `g`), the gradients are
# $g_1 = g$, $g_2 = g + w_1 = 0.9\, g$, $g_3 = g + w_2 = 0.76\, g$, the buffers $g$,
# $1.4\, g$, $1.46\, g$, and the iterates $-0.1\, g$, $-0.24\, g$, $-0.386\, g$.

# %% nbgrader="tests" grade_id="test_sgd_momentum" points=3
# 3 points: SGD with momentum and dampening, over several steps.
# check_steps calls sgd(w, g_t, state, **hyper) for t = 1, 2, 3 with one state dict, from an
# empty one, and compares every iterate.
g = np.array([1.0, -2.0])
grads = np.stack([g, g, g])
grading.check_steps(sgd, np.array([1.0, 2.0]), grads, {"lr": 0.1, "momentum": 0.5}, name="sgd",
                    expected=[[0.9, 2.2], [0.75, 2.5], [0.575, 2.85]])
grading.check_steps(sgd, np.array([1.0, 2.0]), grads,
                    {"lr": 0.1, "momentum": 0.5, "dampening": 0.5}, name="sgd",
                    expected=[[0.9, 2.2], [0.8, 2.4], [0.7, 2.6]])
grading.check_steps(sgd, np.zeros(2), grads, {"lr": 0.1, "momentum": 0.5, "weight_decay": 1.0},
                    name="sgd", expected=[-0.1 * g, -0.24 * g, -0.386 * g])
### BEGIN HIDDEN TESTS
from normcore import optim as _ref

_rng = np.random.default_rng(5012)
for _shape, _dtype, _hyper in [
        ((5,), np.float64, {"lr": 0.1, "momentum": 0.9}),
        ((3, 4), np.float64, {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.3}),
        ((2, 3), np.float64, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
        ((2, 3, 2), np.float32, {"lr": 0.1, "momentum": 0.7, "dampening": 0.1,
                                 "weight_decay": 0.1})]:
    _w0 = _rng.standard_normal(_shape).astype(_dtype)
    _grads = _rng.standard_normal((6, *_shape)).astype(_dtype)
    grading.check_optimizer(sgd, _ref.sgd, _w0, _grads, _hyper, name="sgd")
### END HIDDEN TESTS

# %% [markdown]
# Nesterov, by hand, on the same example (`momentum = 0.5`, no dampening): the steps are
# $g + 0.5\, b_t$ $= 1.5\, g$, $1.75\, g$, $1.875\, g$, and the iterates `[0.85, 2.3]`,
# `[0.675, 2.65]`, `[0.4875, 3.025]`.

# %% nbgrader="tests" grade_id="test_sgd_nesterov" points=2
# 2 points: SGD with Nesterov momentum.
hyper = {"lr": 0.1, "momentum": 0.5, "nesterov": True}
g = np.array([1.0, -2.0])
grading.check_steps(sgd, np.array([1.0, 2.0]), np.stack([g, g, g]), hyper, name="sgd",
                    expected=[[0.85, 2.3], [0.675, 2.65], [0.4875, 3.025]])
### BEGIN HIDDEN TESTS
from normcore import optim as _ref

_rng = np.random.default_rng(5013)
for _shape, _dtype, _hyper in [
        ((5,), np.float64, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
        ((3, 4), np.float64, {"lr": 0.05, "momentum": 0.8, "nesterov": True,
                              "weight_decay": 0.2}),
        ((2, 3, 2), np.float32, {"lr": 0.1, "momentum": 0.9, "nesterov": True})]:
    _w0 = _rng.standard_normal(_shape).astype(_dtype)
    _grads = _rng.standard_normal((6, *_shape)).astype(_dtype)
    grading.check_optimizer(sgd, _ref.sgd, _w0, _grads, _hyper, name="sgd")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. AdaGrad (3 points)
#
# AdaGrad divides each coordinate by the root of the **sum** of its squared gradients so far:
#
# $$
# v_t = v_{t-1} + g_t^2, \qquad
# \theta_{t+1} = \theta_t - \frac{\eta_t}{\sqrt{v_t} + \epsilon}\, g_t, \qquad
# \eta_t = \frac{\eta}{1 + (t - 1)\, k},
# $$
#
# with $v_0$ = `initial_accumulator_value` (in every coordinate) and $k$ = `lr_decay`, where
# $t = 1, 2, \dots$ counts the calls (the first step uses $\eta$ itself). As in PyTorch,
# $\epsilon$ is added **after** the square root (the lecture writes
# $\eta\, g_t / \sqrt{v_t + \epsilon}$, which agrees when $v_t \gg \epsilon$).

# %% nbgrader="answer" grade_id="adagrad"
def adagrad(w, dw, state, *, lr=1e-2, eps=1e-10, weight_decay=0.0, lr_decay=0.0,
            initial_accumulator_value=0.0):
    """One step of AdaGrad.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient at w, same shape and dtype. Not modified.
    state : dict
        Optimizer state, empty on the first call: the step count t and the sum v_t of
        squared gradients (e.g. "step" and "sum").
    lr : float
        Learning rate eta.
    eps : float
        Added to the denominator, after the square root.
    weight_decay : float
        L2 penalty lambda, added to the gradient as lambda * w.
    lr_decay : float
        k: the t-th step uses lr / (1 + (t - 1) * k).
    initial_accumulator_value : float
        v_0, the starting value of the sum.

    Returns
    -------
    new_w : ndarray, shape (*)
        The parameter after the step, same dtype as w.
    """
    ### BEGIN SOLUTION
    if not state:
        state["step"] = 0
        state["sum"] = np.full_like(w, initial_accumulator_value)
    state["step"] += 1
    g = dw + weight_decay * w
    clr = lr / (1 + (state["step"] - 1) * lr_decay)
    state["sum"] = state["sum"] + g * g
    return w - clr * g / (np.sqrt(state["sum"]) + eps)
    ### END SOLUTION


# %% [markdown]
# By hand, with `lr = 0.1` and `eps = 0`, from `w = [1, 1]`: the gradient `[3, 4]` gives
# $v_1 = [9, 16]$ and a step of $0.1 \cdot [3/3, 4/4]$, so `w = [0.9, 0.9]`; then the
# gradient `[4, 3]` gives $v_2 = [25, 25]$ and a step of $0.1 \cdot [4/5, 3/5]$, so
# `w = [0.82, 0.84]`. With `lr_decay = 1` the second step uses $\eta_2 = 0.1 / 2$:
# `w = [0.86, 0.87]`. With `eps = 0.5`, added after the square root, the same steps divide by
# $\sqrt{v_t} + 0.5$: $[3/3.5, 4/4.5]$, then $[4/5.5, 3/5.5]$.

# %% nbgrader="tests" grade_id="test_adagrad" points=3
# 3 points: AdaGrad over several steps.
grads = np.array([[3.0, 4.0], [4.0, 3.0]])
grading.check_steps(adagrad, np.ones(2), grads, {"lr": 0.1, "eps": 0.0}, name="adagrad",
                    expected=[[0.9, 0.9], [0.82, 0.84]])
grading.check_steps(adagrad, np.ones(2), grads, {"lr": 0.1, "eps": 0.0, "lr_decay": 1.0},
                    name="adagrad", expected=[[0.9, 0.9], [0.86, 0.87]])
w1 = 1 - 0.1 * np.array([3 / 3.5, 4 / 4.5])
grading.check_steps(adagrad, np.ones(2), grads, {"lr": 0.1, "eps": 0.5}, name="adagrad",
                    expected=[w1, w1 - 0.1 * np.array([4 / 5.5, 3 / 5.5])])
# float32 in, float32 out:
grading.check_steps(adagrad, np.ones(2, np.float32), grads.astype(np.float32),
                    {"lr": 0.1, "eps": 0.0}, name="adagrad", expected=[[0.9, 0.9], [0.82, 0.84]])
### BEGIN HIDDEN TESTS
from normcore import optim as _ref

_rng = np.random.default_rng(5021)
for _shape, _dtype, _hyper in [
        ((5,), np.float64, {"lr": 0.5}),
        ((3, 4), np.float64, {"lr": 0.5, "eps": 0.1, "weight_decay": 0.1}),
        ((2, 3), np.float64, {"lr": 0.3, "lr_decay": 0.5, "initial_accumulator_value": 0.2}),
        ((2, 3, 2), np.float32, {"lr": 0.2, "eps": 0.05, "lr_decay": 0.1,
                                 "initial_accumulator_value": 0.1, "weight_decay": 0.1})]:
    _w0 = _rng.standard_normal(_shape).astype(_dtype)
    _grads = _rng.standard_normal((6, *_shape)).astype(_dtype)
    grading.check_optimizer(adagrad, _ref.adagrad, _w0, _grads, _hyper, name="adagrad")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. RMSProp (5 points)
#
# AdaGrad's sum only grows, so its steps shrink for ever. RMSProp replaces the sum by an
# exponential moving average with smoothing constant $\alpha$ (`alpha`, the lecture's
# $\beta$), the weight of the **old** average:
#
# $$
# v_t = \alpha\, v_{t-1} + (1 - \alpha)\, g_t^2, \qquad v_0 = 0, \qquad
# \theta_{t+1} = \theta_t - \eta\, \frac{g_t}{\sqrt{v_t} + \epsilon} .
# $$
#
# Two options:
#
# * `centered=True` divides by an estimate of the standard deviation instead of the root
#   mean square: with $\bar g_t = \alpha\, \bar g_{t-1} + (1 - \alpha)\, g_t$ ($\bar g_0 = 0$),
#   the denominator is $\sqrt{\max(v_t - \bar g_t^2,\, 0)} + \epsilon$.
# * `momentum` $\mu > 0$ accumulates the normalized step,
#   $b_t = \mu\, b_{t-1} + g_t / (\text{denominator})$ with $b_0 = 0$, and
#   $\theta_{t+1} = \theta_t - \eta\, b_t$.
#
# There is no bias correction: $v_t$ starts at zero.

# %% nbgrader="answer" grade_id="rmsprop"
def rmsprop(w, dw, state, *, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0,
            centered=False):
    """One step of RMSProp.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient at w, same shape and dtype. Not modified.
    state : dict
        Optimizer state, empty on the first call: the moving average v_t of squared
        gradients, and when needed the average gradient and the momentum buffer (e.g.
        "square_avg", "grad_avg", "momentum_buffer").
    lr : float
        Learning rate eta.
    alpha : float
        Smoothing constant: the weight of the old average.
    eps : float
        Added to the denominator, after the square root.
    momentum : float
        Momentum factor mu applied to the normalized step (0: none).
    weight_decay : float
        L2 penalty lambda, added to the gradient as lambda * w.
    centered : bool
        Divide by sqrt(v_t - gbar_t**2) instead of sqrt(v_t).

    Returns
    -------
    new_w : ndarray, shape (*)
        The parameter after the step, same dtype as w.
    """
    ### BEGIN SOLUTION
    if not state:
        state["square_avg"] = np.zeros_like(w)
        state["grad_avg"] = np.zeros_like(w)
        state["momentum_buffer"] = np.zeros_like(w)
    g = dw + weight_decay * w
    state["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * g * g
    second = state["square_avg"]
    if centered:
        state["grad_avg"] = alpha * state["grad_avg"] + (1 - alpha) * g
        second = np.maximum(second - state["grad_avg"] ** 2, 0)
    step = g / (np.sqrt(second) + eps)
    if momentum > 0:
        state["momentum_buffer"] = momentum * state["momentum_buffer"] + step
        step = state["momentum_buffer"]
    return w - lr * step
    ### END SOLUTION


# %% [markdown]
# By hand, with `lr = 0.1`, `alpha = 0.75` and `eps = 0`, from `w = [0, 0]`: the gradient
# `[2, -4]` gives $v_1 = 0.25 \cdot [4, 16] = [1, 4]$ and a step of $0.1 \cdot [2/1, -4/2]$,
# so `w = [-0.2, 0.2]`; then the gradient `[1, -2]` gives
# $v_2 = 0.75 \cdot [1, 4] + 0.25 \cdot [1, 4] = [1, 4]$ and `w = [-0.3, 0.3]`. With
# `eps = 0.5`, added after the square root, the steps are $0.1\, g_t / (\sqrt{v_t} + 0.5)$.

# %% nbgrader="tests" grade_id="test_rmsprop" points=3
# 3 points: RMSProp over several steps.
hyper = {"lr": 0.1, "alpha": 0.75, "eps": 0.0}
grads = np.array([[2.0, -4.0], [1.0, -2.0]])
grading.check_steps(rmsprop, np.zeros(2), grads, hyper, name="rmsprop",
                    expected=[[-0.2, 0.2], [-0.3, 0.3]])
v = np.array([1.0, 4.0])  # v_1 = v_2
w1 = -0.1 * grads[0] / (np.sqrt(v) + 0.5)
grading.check_steps(rmsprop, np.zeros(2), grads, {**hyper, "eps": 0.5}, name="rmsprop",
                    expected=[w1, w1 - 0.1 * grads[1] / (np.sqrt(v) + 0.5)])
grading.check_steps(rmsprop, np.zeros(2, np.float32), grads.astype(np.float32), hyper,
                    name="rmsprop", expected=[[-0.2, 0.2], [-0.3, 0.3]])
### BEGIN HIDDEN TESTS
from normcore import optim as _ref

_rng = np.random.default_rng(5031)
for _shape, _dtype, _hyper in [
        ((5,), np.float64, {"lr": 0.1}),
        ((3, 4), np.float64, {"lr": 0.1, "alpha": 0.8, "eps": 0.1, "weight_decay": 0.1}),
        ((2, 3), np.float64, {"lr": 0.05, "alpha": 0.5, "eps": 1e-3}),
        ((2, 3, 2), np.float32, {"lr": 0.1, "alpha": 0.9, "eps": 0.01, "weight_decay": 0.1})]:
    _w0 = _rng.standard_normal(_shape).astype(_dtype)
    _grads = _rng.standard_normal((6, *_shape)).astype(_dtype)
    grading.check_optimizer(rmsprop, _ref.rmsprop, _w0, _grads, _hyper, name="rmsprop")
### END HIDDEN TESTS

# %% [markdown]
# With `momentum = 0.5` on the same example, $b_1 = [2, -2]$ and
# $b_2 = 0.5\, b_1 + [1, -1] = [2, -2]$: `w = [-0.2, 0.2]`, then `[-0.4, 0.4]`. The buffer
# accumulates the normalized steps $g_t / \sqrt{v_t}$, not the raw gradients: with the second
# gradient `[4, 0]` instead, $v_2 = 0.75 \cdot [1, 4] + 0.25 \cdot [16, 0] = [4.75, 3]$ and
# $b_2 = 0.5\, b_1 + g_2 / \sqrt{v_2}$. Centered,
# the first step has $\bar g_1 = 0.25 \cdot [2, -4]$ and
# $v_1 - \bar g_1^2 = (0.25 - 0.0625)\, g_1^2 = \tfrac{3}{16}\, g_1^2$, so the step is
# $0.1 \cdot (4/\sqrt{3})\, \operatorname{sign}(g_1)$: `w = [-0.2309, 0.2309]`.

# %% nbgrader="tests" grade_id="test_rmsprop_options" points=2
# 2 points: RMSProp with momentum, and centered.
hyper = {"lr": 0.1, "alpha": 0.75, "eps": 0.0, "momentum": 0.5}
grading.check_steps(rmsprop, np.zeros(2), [[2.0, -4.0], [1.0, -2.0]], hyper, name="rmsprop",
                    expected=[[-0.2, 0.2], [-0.4, 0.4]])
g2 = np.array([4.0, 0.0])
b2 = 0.5 * np.array([2.0, -2.0]) + g2 / np.sqrt([4.75, 3.0])
grading.check_steps(rmsprop, np.zeros(2), [[2.0, -4.0], g2], hyper, name="rmsprop",
                    expected=[[-0.2, 0.2], np.array([-0.2, 0.2]) - 0.1 * b2])
grading.check_example(rmsprop, (np.zeros(2), np.array([2.0, -4.0]), {}),
                      {"lr": 0.1, "alpha": 0.75, "eps": 0.0, "centered": True},
                      name="rmsprop", returns="new_w",
                      expected={"new_w": [-0.4 / np.sqrt(3), 0.4 / np.sqrt(3)]})
### BEGIN HIDDEN TESTS
from normcore import optim as _ref

_rng = np.random.default_rng(5032)
for _shape, _dtype, _hyper in [
        ((5,), np.float64, {"lr": 0.1, "alpha": 0.8, "momentum": 0.9}),
        ((3, 4), np.float64, {"lr": 0.05, "alpha": 0.8, "centered": True, "eps": 0.01}),
        ((2, 3), np.float64, {"lr": 0.05, "alpha": 0.9, "momentum": 0.8, "centered": True,
                              "weight_decay": 0.1}),
        ((2, 3, 2), np.float32, {"lr": 0.1, "alpha": 0.8, "momentum": 0.5, "centered": True,
                                 "eps": 0.01})]:
    _w0 = _rng.standard_normal(_shape).astype(_dtype)
    _grads = _rng.standard_normal((6, *_shape)).astype(_dtype)
    grading.check_optimizer(rmsprop, _ref.rmsprop, _w0, _grads, _hyper, name="rmsprop")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. AdaDelta (3 points)
#
# AdaDelta keeps RMSProp's average of squared gradients and a second average, of the squared
# **steps**, whose root replaces the learning rate, so that a step has the units of the
# parameter:
#
# $$
# v_t = \rho\, v_{t-1} + (1 - \rho)\, g_t^2, \qquad
# \Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t, \qquad
# u_t = \rho\, u_{t-1} + (1 - \rho)\, \Delta_t^2, \qquad
# \theta_{t+1} = \theta_t - \eta\, \Delta_t,
# $$
#
# with $v_0 = u_0 = 0$. Mind the order: the step uses the **new** $v_t$ and the **old**
# $u_{t-1}$, and $u$ is updated after the step is known. Here $\epsilon$ goes **inside** both
# square roots. Zeiler's method has no learning rate; PyTorch's `lr` (default 1) multiplies the
# step.

# %% nbgrader="answer" grade_id="adadelta"
def adadelta(w, dw, state, *, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    """One step of AdaDelta.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient at w, same shape and dtype. Not modified.
    state : dict
        Optimizer state, empty on the first call: the averages v_t of squared gradients
        and u_t of squared steps (e.g. "square_avg" and "acc_delta").
    lr : float
        Multiplies the step.
    rho : float
        Smoothing constant of both averages (the weight of the old value).
    eps : float
        Added inside both square roots.
    weight_decay : float
        L2 penalty lambda, added to the gradient as lambda * w.

    Returns
    -------
    new_w : ndarray, shape (*)
        The parameter after the step, same dtype as w.
    """
    ### BEGIN SOLUTION
    if not state:
        state["square_avg"] = np.zeros_like(w)
        state["acc_delta"] = np.zeros_like(w)
    g = dw + weight_decay * w
    state["square_avg"] = rho * state["square_avg"] + (1 - rho) * g * g
    delta = np.sqrt(state["acc_delta"] + eps) / np.sqrt(state["square_avg"] + eps) * g
    state["acc_delta"] = rho * state["acc_delta"] + (1 - rho) * delta * delta
    return w - lr * delta
    ### END SOLUTION


# %% [markdown]
# By hand, with `rho = 1/3`, `eps = 0.25` and `lr = 0.5`, from `w = [1, 1]`. The gradient
# `[3, -3]` gives $v_1 = \tfrac23 \cdot 9 = 6$, $\sqrt{v_1 + \epsilon} = 2.5$, so
# $\Delta_1 = (\sqrt{0.25} / 2.5) \cdot [3, -3] = [0.6, -0.6]$ and `w = [0.7, 1.3]`; then
# $u_1 = \tfrac23 \cdot 0.36 = 0.24$ and $\sqrt{u_1 + \epsilon} = 0.7$. The gradient
# `[9, -1.8]` gives $v_2 = 2 + \tfrac23 \cdot [81, 3.24] = [56, 4.16]$, square roots (with
# $\epsilon$) $[7.5, 2.1]$, so $\Delta_2 = 0.7 \cdot [9 / 7.5, -1.8 / 2.1] = [0.84, -0.6]$ and
# `w = [0.28, 1.6]`.

# %% nbgrader="tests" grade_id="test_adadelta" points=3
# 3 points: AdaDelta over several steps.
hyper = {"lr": 0.5, "rho": 1 / 3, "eps": 0.25}
grads = np.array([[3.0, -3.0], [9.0, -1.8]])
grading.check_steps(adadelta, np.ones(2), grads, hyper, name="adadelta",
                    expected=[[0.7, 1.3], [0.28, 1.6]])
grading.check_steps(adadelta, np.ones(2, np.float32), grads.astype(np.float32), hyper,
                    name="adadelta", expected=[[0.7, 1.3], [0.28, 1.6]])
### BEGIN HIDDEN TESTS
from normcore import optim as _ref

_rng = np.random.default_rng(5041)
for _shape, _dtype, _hyper in [
        ((5,), np.float64, {}),
        ((3, 4), np.float64, {"lr": 0.5, "rho": 0.8, "eps": 0.01, "weight_decay": 0.1}),
        ((2, 3), np.float64, {"lr": 2.0, "rho": 0.5, "eps": 1e-3}),
        ((2, 3, 2), np.float32, {"lr": 0.5, "rho": 0.9, "eps": 0.01})]:
    _w0 = _rng.standard_normal(_shape).astype(_dtype)
    _grads = _rng.standard_normal((6, *_shape)).astype(_dtype)
    grading.check_optimizer(adadelta, _ref.adadelta, _w0, _grads, _hyper, name="adadelta")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Adam, AMSGrad and AdamW (8 points)
#
# Adam combines a momentum-like first moment with RMSProp's second moment, both moving
# averages starting at zero, and removes their bias towards zero by dividing by
# $1 - \beta^t$ ($t = 1, 2, \dots$ counts the calls):
#
# $$
# m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
# v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2, \qquad
# \hat m_t = \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t},
# $$
# $$
# \theta_{t+1} = \theta_t - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} .
# $$
#
# As in PyTorch, $\epsilon$ is added after the square root (the lecture puts it inside).
# `weight_decay` $\lambda$ is the L2 penalty, added to the gradient first.
#
# **AMSGrad** (`amsgrad=True`) keeps the running maximum of the raw second moment,
# $v^{\max}_t = \max(v^{\max}_{t-1}, v_t)$, and uses $v^{\max}_t / (1 - \beta_2^t)$ in place of
# $\hat v_t$ (still divided by the current $1 - \beta_2^t$).
#
# **AdamW** decouples the weight decay from the gradient: it shrinks the weights first, then
# takes an Adam step with the plain gradient $g_t = \nabla J(\theta_t)$,
#
# $$
# \theta_{t+1} = (1 - \eta\lambda)\, \theta_t - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} .
# $$
#
# With Adam's L2 penalty, $\lambda \theta_t$ goes through the division by $\sqrt{\hat v_t}$, so
# weights with large gradients are decayed less; AdamW decays every weight at the same rate.
# Write a helper if you like: both functions may call it.

# %% nbgrader="answer" grade_id="adam"
def adam(w, dw, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
    """One step of Adam (L2 weight decay added to the gradient), optionally AMSGrad.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient at w, same shape and dtype. Not modified.
    state : dict
        Optimizer state, empty on the first call: the step count t, m_t, v_t and, with
        amsgrad, the running maximum of v_t (e.g. "step", "exp_avg", "exp_avg_sq",
        "max_exp_avg_sq").
    lr : float
        Learning rate eta.
    betas : tuple of float
        (beta1, beta2), the decay rates of the two moments.
    eps : float
        Added to the denominator, after the square root.
    weight_decay : float
        L2 penalty lambda, added to the gradient as lambda * w.
    amsgrad : bool
        Use the running maximum of v_t (AMSGrad).

    Returns
    -------
    new_w : ndarray, shape (*)
        The parameter after the step, same dtype as w.
    """
    ### BEGIN SOLUTION
    return _adam_step(w, dw + weight_decay * w, state, lr, betas, eps, amsgrad)


def _adam_step(w, g, state, lr, betas, eps, amsgrad):
    """Adam's step with the gradient g (the penalty, if any, already added)."""
    beta1, beta2 = betas
    if not state:
        state["step"] = 0
        state["exp_avg"] = np.zeros_like(w)
        state["exp_avg_sq"] = np.zeros_like(w)
        state["max_exp_avg_sq"] = np.zeros_like(w)
    state["step"] += 1
    t = state["step"]
    state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * g
    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
    second = state["exp_avg_sq"]
    if amsgrad:
        state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], second)
        second = state["max_exp_avg_sq"]
    m_hat = state["exp_avg"] / (1 - beta1**t)
    v_hat = second / (1 - beta2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps)
    ### END SOLUTION


# %% [markdown]
# By hand, with `betas = (0.5, 0.5)`, `eps = 0` and `lr = 0.1`, from `w = [1, 1]`. At the
# first step the bias correction gives $\hat m_1 = g_1$ and $\hat v_1 = g_1^2$, so the step is
# $\eta\, g_1 / |g_1|$: the gradient `[1, 2]` moves both coordinates by 0.1,
# `w = [0.9, 0.9]`. At the second step,
# $\hat m_2 = (0.25\, g_1 + 0.5\, g_2) / 0.75 = (g_1 + 2 g_2)/3$ and likewise
# $\hat v_2 = (g_1^2 + 2 g_2^2) / 3$; with $g_2$ = `[1, -1]`, $\hat m_2 = [1, 0]$ and
# $\hat v_2 = [1, 2]$, so `w = [0.8, 0.9]`: the second coordinate, whose gradients cancel, does
# not move.
#
# The same formulas with `eps = 0.5` (after the square root) and `weight_decay = 0.5` (L2: the
# gradient is $g_t = \nabla J(\theta_t) + 0.5\, \theta_t$, which then goes into both moments):
# $\theta_1 = \theta_0 - 0.1\, g_1 / (|g_1| + 0.5)$ and
# $\theta_2 = \theta_1 - 0.1\, \hat m_2 / (\sqrt{\hat v_2} + 0.5)$, with $\hat m_2$ and
# $\hat v_2$ as above.

# %% nbgrader="tests" grade_id="test_adam" points=3
# 3 points: Adam over several steps.
hyper = {"lr": 0.1, "betas": (0.5, 0.5), "eps": 0.0}
grads = np.array([[1.0, 2.0], [1.0, -1.0]])
grading.check_steps(adam, np.ones(2), grads, hyper, name="adam",
                    expected=[[0.9, 0.9], [0.8, 0.9]])
grading.check_steps(adam, np.ones(2, np.float32), grads.astype(np.float32), hyper, name="adam",
                    expected=[[0.9, 0.9], [0.8, 0.9]])
# eps = 0.5 and weight_decay = 0.5, from the formulas above:
w0 = np.ones(2)
g1 = grads[0] + 0.5 * w0
w1 = w0 - 0.1 * g1 / (np.abs(g1) + 0.5)
g2 = grads[1] + 0.5 * w1
m_hat2, v_hat2 = (g1 + 2 * g2) / 3, (g1**2 + 2 * g2**2) / 3
w2 = w1 - 0.1 * m_hat2 / (np.sqrt(v_hat2) + 0.5)
grading.check_steps(adam, w0, grads, {**hyper, "eps": 0.5, "weight_decay": 0.5}, name="adam",
                    expected=[w1, w2])
### BEGIN HIDDEN TESTS
from normcore import optim as _ref

_rng = np.random.default_rng(5051)
for _shape, _dtype, _hyper in [
        ((5,), np.float64, {"lr": 0.1}),
        ((3, 4), np.float64, {"lr": 0.1, "betas": (0.8, 0.9), "eps": 0.01,
                              "weight_decay": 0.1}),
        ((2, 3), np.float64, {"lr": 0.05, "betas": (0.5, 0.99), "eps": 0.1}),
        ((2, 3, 2), np.float32, {"lr": 0.1, "betas": (0.9, 0.99), "eps": 0.01,
                                 "weight_decay": 0.2})]:
    _w0 = _rng.standard_normal(_shape).astype(_dtype)
    _grads = _rng.standard_normal((6, *_shape)).astype(_dtype)
    grading.check_optimizer(adam, _ref.adam, _w0, _grads, _hyper, name="adam")
### END HIDDEN TESTS

# %% [markdown]
# AMSGrad, by hand, with the same hyperparameters from `w = [0, 0]`: the gradient `[4, 1]`
# moves both coordinates by 0.1 (`w = [-0.1, -0.1]`). Then the gradient `[0, 1]`: in the first
# coordinate $m_2 = 1$ and $v_2 = 0.5 \cdot 8 + 0 = 4 < v_1 = 8$, so AMSGrad keeps
# $v^{\max}_2 = 8$; with $\hat m_2 = 1/0.75$ and $v^{\max}_2 / 0.75$ the step is
# $0.1 \cdot \sqrt{0.75 / 8} \,/\, 0.75 = 0.1/\sqrt{6}$ (plain Adam would step
# $0.1/\sqrt{3}$). The second coordinate, with a constant gradient, moves by 0.1 again.

# %% nbgrader="tests" grade_id="test_adam_amsgrad" points=2
# 2 points: AMSGrad.
hyper = {"lr": 0.1, "betas": (0.5, 0.5), "eps": 0.0, "amsgrad": True}
grading.check_steps(adam, np.zeros(2), [[4.0, 1.0], [0.0, 1.0]], hyper, name="adam",
                    expected=[[-0.1, -0.1], [-0.1 - 0.1 / np.sqrt(6), -0.2]])
### BEGIN HIDDEN TESTS
from normcore import optim as _ref

_rng = np.random.default_rng(5052)
for _shape, _dtype, _hyper in [
        ((5,), np.float64, {"lr": 0.1, "amsgrad": True}),
        ((3, 4), np.float64, {"lr": 0.1, "betas": (0.8, 0.9), "eps": 0.01, "amsgrad": True,
                              "weight_decay": 0.1}),
        ((2, 3, 2), np.float32, {"lr": 0.1, "betas": (0.5, 0.8), "eps": 0.01,
                                 "amsgrad": True})]:
    _w0 = _rng.standard_normal(_shape).astype(_dtype)
    # gradients that shrink, so that the maximum of v_t differs from v_t
    _grads = (_rng.standard_normal((6, *_shape)) * np.linspace(2, 0.2, 6).reshape(
        (6,) + (1,) * len(_shape))).astype(_dtype)
    grading.check_optimizer(adam, _ref.adam, _w0, _grads, _hyper, name="adam")
### END HIDDEN TESTS

# %% [markdown]
# **AdamW.** Shrink the weights by $1 - \eta\lambda$, then take Adam's step (bias correction,
# and AMSGrad when asked) with the plain gradient `dw`: the decay never enters the moments.

# %% nbgrader="answer" grade_id="adamw"
def adamw(w, dw, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
          amsgrad=False):
    """One step of AdamW: Adam with decoupled weight decay.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient of the loss (without any penalty) at w, same shape and dtype. Not modified.
    state : dict
        Optimizer state, empty on the first call; as for adam.
    lr : float
        Learning rate eta.
    betas : tuple of float
        (beta1, beta2), the decay rates of the two moments.
    eps : float
        Added to the denominator, after the square root.
    weight_decay : float
        Decoupled decay rate lambda: the weights shrink by the factor 1 - lr * lambda.
    amsgrad : bool
        Use the running maximum of v_t (AMSGrad).

    Returns
    -------
    new_w : ndarray, shape (*)
        The parameter after the step, same dtype as w.
    """
    ### BEGIN SOLUTION
    return _adam_step(w * (1 - lr * weight_decay), dw, state, lr, betas, eps, amsgrad)
    ### END SOLUTION


# %% [markdown]
# By hand, AdamW on Adam's example with `weight_decay = 0.5` (so the weights shrink by
# $1 - 0.1 \cdot 0.5 = 0.95$) from `w = [1, 2]`: first `[0.95, 1.9] - [0.1, 0.1] = [0.85, 1.8]`,
# then `[0.8075, 1.71] - [0.1, 0] = [0.7075, 1.71]`. With `amsgrad=True` on AMSGrad's example
# (from `w = [0, 0]`, so the first shrink does nothing), the steps are those of AMSGrad, since
# the decay never enters the moments: `w = [-0.1, -0.1]`, then
# `0.95 * [-0.1, -0.1] - [0.1 / sqrt(6), 0.1]`.

# %% nbgrader="tests" grade_id="test_adamw" points=3
# 3 points: AdamW over several steps.
hyper = {"lr": 0.1, "betas": (0.5, 0.5), "eps": 0.0, "weight_decay": 0.5}
grads = np.array([[1.0, 2.0], [1.0, -1.0]])
grading.check_steps(adamw, np.array([1.0, 2.0]), grads, hyper, name="adamw",
                    expected=[[0.85, 1.8], [0.7075, 1.71]])
grading.check_steps(adamw, np.array([1.0, 2.0], np.float32), grads.astype(np.float32), hyper,
                    name="adamw", expected=[[0.85, 1.8], [0.7075, 1.71]])
grading.check_steps(adamw, np.zeros(2), [[4.0, 1.0], [0.0, 1.0]], {**hyper, "amsgrad": True},
                    name="adamw",
                    expected=[[-0.1, -0.1], 0.95 * np.array([-0.1, -0.1])
                              - [0.1 / np.sqrt(6), 0.1]])
### BEGIN HIDDEN TESTS
from normcore import optim as _ref

_rng = np.random.default_rng(5053)
for _shape, _dtype, _hyper in [
        ((5,), np.float64, {"lr": 0.1}),
        ((3, 4), np.float64, {"lr": 0.1, "betas": (0.8, 0.9), "eps": 0.01,
                              "weight_decay": 0.5}),
        ((2, 3), np.float64, {"lr": 0.05, "weight_decay": 0.3, "amsgrad": True}),
        ((2, 3, 2), np.float32, {"lr": 0.1, "betas": (0.9, 0.99), "eps": 0.01,
                                 "weight_decay": 0.2})]:
    _w0 = _rng.standard_normal(_shape).astype(_dtype)
    _grads = _rng.standard_normal((6, *_shape)).astype(_dtype)
    grading.check_optimizer(adamw, _ref.adamw, _w0, _grads, _hyper, name="adamw")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. NAdam (4 points)
#
# NAdam is Adam with Nesterov momentum: the momentum term is taken one step ahead. PyTorch's
# version (after Dozat, 2016) also warms the momentum coefficient up with a schedule,
# $\psi$ = `momentum_decay`:
#
# $$
# \mu_t = \beta_1 \left(1 - \tfrac12\, 0.96^{\,t \psi}\right), \qquad
# m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
# v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2, \qquad
# \hat v_t = \frac{v_t}{1 - \beta_2^t},
# $$
# $$
# \theta_{t+1} = \theta_t - \frac{\eta}{\sqrt{\hat v_t} + \epsilon} \left(
#     \frac{1 - \mu_t}{1 - \prod_{i=1}^{t} \mu_i}\, g_t
#     + \frac{\mu_{t+1}}{1 - \prod_{i=1}^{t+1} \mu_i}\, m_t \right) .
# $$
#
# The products of the $\mu_i$ play the role of Adam's $\beta_1^t$ in the bias corrections; keep
# the running product $\prod_{i \le t} \mu_i$ in the state (a Python float is fine). The
# lecture's simplified NAdam uses a constant $\beta_1$ instead of the schedule.

# %% nbgrader="answer" grade_id="nadam"
def nadam(w, dw, state, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
          momentum_decay=4e-3):
    """One step of NAdam (Adam with Nesterov momentum), as in torch.optim.NAdam.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient at w, same shape and dtype. Not modified.
    state : dict
        Optimizer state, empty on the first call: the step count t, the product of the
        mu_i so far, m_t and v_t (e.g. "step", "mu_product", "exp_avg", "exp_avg_sq").
    lr : float
        Learning rate eta.
    betas : tuple of float
        (beta1, beta2), the decay rates of the two moments.
    eps : float
        Added to the denominator, after the square root.
    weight_decay : float
        L2 penalty lambda, added to the gradient as lambda * w.
    momentum_decay : float
        psi in the momentum schedule mu_t = beta1 * (1 - 0.5 * 0.96**(t * psi)).

    Returns
    -------
    new_w : ndarray, shape (*)
        The parameter after the step, same dtype as w.
    """
    ### BEGIN SOLUTION
    beta1, beta2 = betas
    if not state:
        state["step"] = 0
        state["mu_product"] = 1.0
        state["exp_avg"] = np.zeros_like(w)
        state["exp_avg_sq"] = np.zeros_like(w)
    state["step"] += 1
    t = state["step"]
    g = dw + weight_decay * w
    mu = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    state["mu_product"] *= mu
    state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * g
    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
    denom = np.sqrt(state["exp_avg_sq"] / (1 - beta2**t)) + eps
    grad_coef = lr * (1 - mu) / (1 - state["mu_product"])
    momentum_coef = lr * mu_next / (1 - state["mu_product"] * mu_next)
    return w - grad_coef * g / denom - momentum_coef * state["exp_avg"] / denom
    ### END SOLUTION


# %% [markdown]
# By hand, with `momentum_decay = 0` the schedule is constant, $\mu_t = \beta_1 / 2$. Take
# `betas = (0.8, 0.5)` (so $\mu_t = 0.4$), `eps = 0` and `lr = 0.21`, from `w = [1, 1]`.
# First step, gradient $g_1$ = `[1, -2]`: $m_1 = 0.2\, g_1$, $\sqrt{\hat v_1} = |g_1|$, and
# the coefficients are $0.21 \cdot 0.6 / (1 - 0.4) = 0.21$ and
# $0.21 \cdot 0.4 / (1 - 0.16) = 0.1$, so the step is
# $(0.21 + 0.1 \cdot 0.2)\, g_1 / |g_1| = 0.23\, \operatorname{sign}(g_1)$ and
# `w = [0.77, 1.23]`. Second step, $g_2$ = `[1, 1]`: $m_2 = 0.16\, g_1 + 0.2\, g_2$,
# $\hat v_2 = (g_1^2 + 2 g_2^2) / 3$ (as for Adam with $\beta_2 = 0.5$), and the coefficients
# are $0.21 \cdot 0.6 / (1 - 0.16) = 0.15$ and $0.21 \cdot 0.4 / (1 - 0.064) = 0.084 / 0.936$.
#
# With `momentum_decay = 10` the schedule moves, $\mu_t = 0.8\, (1 - 0.5 \cdot 0.96^{10 t})$, and
# each coefficient uses its own $\mu$'s: the test below evaluates the update formula above for
# $t = 1, 2$ with these $\mu_1, \mu_2, \mu_3$ (and `eps = 0.1`).

# %% nbgrader="tests" grade_id="test_nadam" points=4
# 4 points: NAdam over several steps.
hyper = {"lr": 0.21, "betas": (0.8, 0.5), "eps": 0.0, "momentum_decay": 0.0}
g1, g2 = np.array([1.0, -2.0]), np.array([1.0, 1.0])
w1 = np.array([0.77, 1.23])
m2, v_hat2 = 0.16 * g1 + 0.2 * g2, (g1**2 + 2 * g2**2) / 3
w2 = w1 - (0.15 * g2 + 0.084 / 0.936 * m2) / np.sqrt(v_hat2)
grading.check_steps(nadam, np.ones(2), np.stack([g1, g2]), hyper, name="nadam",
                    expected=[w1, w2])
grading.check_steps(nadam, np.ones(2, np.float32), np.stack([g1, g2]).astype(np.float32), hyper,
                    name="nadam", expected=[w1, w2])
# momentum_decay = 10 and eps = 0.1: the update formula above at t = 1 and t = 2.
mu1, mu2, mu3 = (0.8 * (1 - 0.5 * 0.96 ** (10 * t)) for t in (1, 2, 3))
m1, m2 = 0.2 * g1, 0.16 * g1 + 0.2 * g2
d1, d2 = np.abs(g1) + 0.1, np.sqrt((g1**2 + 2 * g2**2) / 3) + 0.1
w1 = 1 - 0.21 * ((1 - mu1) / (1 - mu1) * g1 + mu2 / (1 - mu1 * mu2) * m1) / d1
w2 = w1 - 0.21 * ((1 - mu2) / (1 - mu1 * mu2) * g2 + mu3 / (1 - mu1 * mu2 * mu3) * m2) / d2
grading.check_steps(nadam, np.ones(2), np.stack([g1, g2]),
                    {**hyper, "eps": 0.1, "momentum_decay": 10.0}, name="nadam",
                    expected=[w1, w2])
### BEGIN HIDDEN TESTS
from normcore import optim as _ref

_rng = np.random.default_rng(5061)
for _shape, _dtype, _hyper in [
        ((5,), np.float64, {"lr": 0.1}),
        ((3, 4), np.float64, {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-3,
                              "momentum_decay": 1.0, "weight_decay": 0.1}),
        ((2, 3), np.float64, {"lr": 0.05, "betas": (0.9, 0.99), "eps": 0.01,
                              "momentum_decay": 0.3}),
        ((2, 3, 2), np.float32, {"lr": 0.1, "betas": (0.8, 0.9), "eps": 0.01,
                                 "momentum_decay": 1.0})]:
    _w0 = _rng.standard_normal(_shape).astype(_dtype)
    _grads = _rng.standard_normal((6, *_shape)).astype(_dtype)
    grading.check_optimizer(nadam, _ref.nadam, _w0, _grads, _hyper, name="nadam")
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Learning-rate schedules (5 points)
#
# A schedule gives the learning rate $\eta_t$ used at epoch $t = 0, 1, 2, \dots$ from the base
# rate $\eta_0$ = `lr` (the value PyTorch's scheduler holds after $t$ calls of
# `scheduler.step()`). Return a Python float.
#
# **Step decay** multiplies the rate by $\gamma$ every $s$ = `step_size` epochs (the lecture's
# example halves it, $\gamma = 0.5$):
#
# $$
# \eta_t = \eta_0\, \gamma^{\lfloor t / s \rfloor} .
# $$
#
# **Cosine annealing with warm restarts** (SGDR) lets the rate follow half a cosine from
# $\eta_0$ down towards $\eta_{\min}$ = `eta_min` over a cycle of $T_i$ epochs, then jumps back
# to $\eta_0$; each cycle is $T_{\text{mult}}$ times longer than the previous one,
# $T_i = T_0\, T_{\text{mult}}^{\,i}$:
#
# $$
# \eta_t = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})
#     \left(1 + \cos \frac{\pi\, T_{\text{cur}}}{T_i}\right),
# $$
#
# where $i$ is the cycle that contains $t$ and $T_{\text{cur}}$ the number of epochs since it
# started. The restarts happen at $t = T_0$, $T_0 + T_0 T_{\text{mult}}$, ... (at a restart
# $T_{\text{cur}} = 0$ and the rate is $\eta_0$ again). Snapshot ensembles save a model at
# the end of each cycle.

# %% nbgrader="answer" grade_id="step_lr"
def step_lr(t, *, lr, step_size, gamma=0.1):
    """Step decay: the learning rate at epoch t.

    Parameters
    ----------
    t : int
        Epoch index, t >= 0.
    lr : float
        Base learning rate eta_0.
    step_size : int
        Period s >= 1 of the decay, in epochs.
    gamma : float
        Multiplicative factor applied every step_size epochs.

    Returns
    -------
    float
        The learning rate at epoch t.
    """
    ### BEGIN SOLUTION
    return lr * gamma ** (t // step_size)
    ### END SOLUTION


# %% [markdown]
# By hand: with `lr = 1`, `step_size = 3` and `gamma = 0.5`, the rates at
# $t = 0, 1, \dots, 7$ are 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25.

# %% nbgrader="tests" grade_id="test_step_lr" points=2
# 2 points: step decay.
for t, expected in enumerate([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]):
    grading.check_example(step_lr, (t,), {"lr": 1.0, "step_size": 3, "gamma": 0.5},
                          name="step_lr", returns="learning rate",
                          expected={"learning rate": expected})
### BEGIN HIDDEN TESTS
from normcore import schedules as _ref_schedules

for _kwargs in [{"lr": 0.1, "step_size": 30}, {"lr": 0.3, "step_size": 1, "gamma": 0.9},
                {"lr": 2.0, "step_size": 4, "gamma": 0.25}, {"lr": 0.05, "step_size": 7}]:
    for _t in list(range(13)) + [29, 30, 31, 59, 60, 89, 90, 100]:
        grading.check_against_reference(step_lr, _ref_schedules.step_lr, (_t,), _kwargs,
                                         name="step_lr", returns="learning rate")
### END HIDDEN TESTS

# %% nbgrader="answer" grade_id="cosine_annealing_warm_restarts_lr"
def cosine_annealing_warm_restarts_lr(t, *, lr, T_0, T_mult=1, eta_min=0.0):
    """Cosine annealing with warm restarts (SGDR): the learning rate at epoch t.

    Parameters
    ----------
    t : int
        Epoch index, t >= 0.
    lr : float
        Base (maximum) learning rate eta_0.
    T_0 : int
        Length of the first cycle, >= 1.
    T_mult : int
        Growth factor of the cycle length after each restart, >= 1.
    eta_min : float
        Minimum learning rate.

    Returns
    -------
    float
        The learning rate at epoch t.
    """
    ### BEGIN SOLUTION
    t_cur, t_i = t, T_0
    while t_cur >= t_i:  # skip the completed cycles
        t_cur -= t_i
        t_i *= T_mult
    return eta_min + (lr - eta_min) * (1 + np.cos(np.pi * t_cur / t_i)) / 2
    ### END SOLUTION


# %% [markdown]
# By hand: with `lr = 1`, `T_0 = 2`, `T_mult = 2` and `eta_min = 0`, the cycles are
# $t \in \{0, 1\}$, $\{2, \dots, 5\}$, $\{6, \dots, 13\}$, ... The rates at
# $t = 0, \dots, 7$ are 1, 0.5 (half-way through a cycle of 2), 1 (restart),
# $\tfrac12 (1 + \cos \tfrac{\pi}{4}) \approx 0.8536$, 0.5, $\approx 0.1464$, 1 (restart),
# $\tfrac12 (1 + \cos \tfrac{\pi}{8}) \approx 0.9619$. With `eta_min = 0.2` every value $x$
# becomes $0.2 + 0.8\, x$.

# %% nbgrader="tests" grade_id="test_cosine_annealing_warm_restarts_lr" points=3
# 3 points: cosine annealing with warm restarts.
c4, c8 = np.cos(np.pi / 4), np.cos(np.pi / 8)
rates = [1.0, 0.5, 1.0, (1 + c4) / 2, 0.5, (1 - c4) / 2, 1.0, (1 + c8) / 2]
for eta_min in (0.0, 0.2):
    for t, x in enumerate(rates):
        grading.check_example(cosine_annealing_warm_restarts_lr, (t,),
                              {"lr": 1.0, "T_0": 2, "T_mult": 2, "eta_min": eta_min},
                              name="cosine_annealing_warm_restarts_lr", returns="learning rate",
                              expected={"learning rate": eta_min + (1 - eta_min) * x})
### BEGIN HIDDEN TESTS
from normcore import schedules as _ref_schedules

for _kwargs in [{"lr": 0.1, "T_0": 10}, {"lr": 0.1, "T_0": 3, "T_mult": 2, "eta_min": 0.01},
                {"lr": 0.5, "T_0": 1, "T_mult": 3, "eta_min": 0.05},
                {"lr": 1.0, "T_0": 4, "T_mult": 1, "eta_min": 0.2}]:
    for _t in list(range(25)) + [39, 40, 93, 94, 100]:
        grading.check_against_reference(
            cosine_annealing_warm_restarts_lr, _ref_schedules.cosine_annealing_warm_restarts_lr,
            (_t,), _kwargs, name="cosine_annealing_warm_restarts_lr", returns="learning rate")
### END HIDDEN TESTS

# %% [markdown]
# ## 8. Written question: SGD and Adam on an ill-conditioned quadratic (4 points)
#
# The cell below runs your optimizers on the lecture's ill-conditioned quadratic
# $J(\theta) = \tfrac12 (\theta_1^2 + \kappa\, \theta_2^2)$ with $\kappa = 50$, whose gradient
# is $(\theta_1, \kappa\, \theta_2)$: SGD with the largest learning rate that is still
# stable along $\theta_2$ (just below $2/\kappa = 0.04$), SGD with momentum, and Adam. It
# prints the first step and the loss after 60 steps of each, and plots the paths. Run it.
#
# (a) Compare the first steps of SGD and Adam. Why does Adam's first step have the same size,
# $\eta$, in both coordinates, whatever the gradient? How large would it be without the bias
# correction, with the default `betas = (0.9, 0.999)`?
#
# (b) Why must SGD's learning rate stay below $2/\kappa$ here, and what does that cost along
# $\theta_1$? Why is Adam not limited in the same way on this problem?
#
# Answer in a few sentences in the cell below.

# %%
import matplotlib.pyplot as plt

KAPPA = 50.0


def descend(step, hyper, num_steps=60, w_start=(-4.0, 1.0)):
    """Iterates of an optimizer step function on J(w) = (w1**2 + KAPPA * w2**2) / 2."""
    w, state, path = np.array(w_start), {}, [np.array(w_start)]
    for _ in range(num_steps):
        w = step(w, np.array([w[0], KAPPA * w[1]]), state, **hyper)
        path.append(w)
    return np.array(path)


runs = {"SGD, lr = 0.038": descend(sgd, {"lr": 0.038}),
        "momentum 0.9, lr = 0.01": descend(sgd, {"lr": 0.01, "momentum": 0.9}),
        "Adam, lr = 0.3": descend(adam, {"lr": 0.3})}
fig, ax = plt.subplots(figsize=(8, 3.2))
x, y = np.meshgrid(np.linspace(-4.5, 1, 200), np.linspace(-1.2, 1.2, 200))
ax.contour(x, y, 0.5 * (x**2 + KAPPA * y**2), levels=np.geomspace(0.05, 60, 10), colors="0.8")
for label, path in runs.items():
    loss = 0.5 * (path[-1, 0] ** 2 + KAPPA * path[-1, 1] ** 2)
    print(f"{label:<24} first step {path[1] - path[0]}   loss after 60 steps {loss:.2e}")
    ax.plot(path[:, 0], path[:, 1], ".-", ms=3, lw=1, label=label)
ax.set_xlabel(r"$\theta_1$")
ax.set_ylabel(r"$\theta_2$")
ax.legend(fontsize=8)
plt.show()
print("Adam's first step for gradients of sizes 1e-3, 1 and 1e3:",
      adam(np.zeros(3), np.array([1e-3, 1.0, 1e3]), {}, lr=0.1))

# %% [markdown] nbgrader="manual" grade_id="written_answer" points=4
# (a) SGD's first step is $-\eta\, g_1 = 0.038 \cdot (4, -50) = (0.152, -1.9)$: 12.5 times
# larger along the steep axis, and it overshoots the valley floor. Adam's is $(0.3, -0.3)$. At
# $t = 1$, $m_1 = (1 - \beta_1) g_1$ and $v_1 = (1 - \beta_2) g_1^2$; dividing by
# $1 - \beta_1$ and $1 - \beta_2$ gives $\hat m_1 = g_1$, $\hat v_1 = g_1^2$, so the step is
# $\eta\, g_1 / (|g_1| + \epsilon) \approx \eta \operatorname{sign}(g_1)$ in every coordinate:
# only the sign of the gradient counts (sizes $10^{-3}$, 1 and $10^3$ all give 0.1). Without
# the correction the step would be $\eta (1 - \beta_1) / \sqrt{1 - \beta_2} = \eta \cdot 0.1 /
# 0.0316 \approx 3.16\, \eta$: about three times too large at the start (the two biases do
# not cancel), shrinking to $\eta$ over the first few thousand steps as $v_t$ warms up.
#
# (b) Along $\theta_2$ one SGD step multiplies the error by $1 - \eta\kappa$, which has modulus
# below 1 only if $\eta < 2/\kappa = 0.04$; with $\eta = 0.038$ the factor is $-0.9$, hence the
# zig-zag across the valley. Along the flat axis the factor is $1 - \eta \approx 0.96$, so
# $\theta_1$ shrinks only by a few percent per step (the loss is still about 0.08 after 60
# steps): the steep direction sets the learning rate and the flat one pays for it; the number
# of steps grows with $\kappa$. Adam divides each coordinate by the root of its own second
# moment, so the steps along $\theta_1$ and $\theta_2$ have comparable size $\sim\eta$ whatever
# the curvature: the factor $\kappa$ disappears because the axes of this quadratic are the
# coordinate axes (a rotated valley would not be fixed by a diagonal $V_t$). With a constant
# $\eta$ Adam does not settle exactly but keeps steps of order $\eta$ near the minimum, which
# is why a schedule is used in practice.
