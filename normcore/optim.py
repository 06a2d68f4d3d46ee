r"""First-order optimizers as pure update rules that match ``torch.optim``.

Every optimizer is one function with the same shape::

    new_w = adam(w, dw, state, lr=1e-3)

``w`` is the parameter, ``dw`` the gradient of the loss at ``w`` (same shape and float
dtype); neither is modified and a new array is returned. ``state`` is a dict owned by
the caller, one per parameter: it starts empty and the function keeps its buffers in it
under PyTorch's names (``"step"``, ``"momentum_buffer"``, ``"exp_avg"``, ...), together
with ``state["optimizer"]``, the name of the function that created it. Hyperparameter
names and defaults are PyTorch's, and a sequence of calls reproduces the trajectory of
the corresponding ``torch.optim`` class (single-tensor code path).

The lecture writes every method in one framework. With :math:`g_t = \nabla J(\theta_t)`,
a first moment :math:`m_t = \phi(g_1, \dots, g_t)` and a second moment
:math:`V_t = \psi(g_1, \dots, g_t)` (a diagonal matrix, stored as an array shaped like
the parameter),

.. math::

    \theta_{t+1} = \theta_t - \eta \, \frac{m_t}{\sqrt{V_t}} .

SGD and momentum methods keep :math:`V_t = I`; AdaGrad, RMSProp and AdaDelta keep
:math:`m_t = g_t`; Adam and NAdam use both. Each docstring below writes its update in
these symbols and lists, under Notes, where the lecture's formula differs from PyTorch's.

Weight decay: with ``weight_decay`` :math:`= \lambda`, every function except
:func:`adamw` adds :math:`\lambda \theta_t` to the gradient before anything else
(L2 regularization, "coupled"); :func:`adamw` shrinks the weights directly (decoupled).
"""

from __future__ import annotations

import math

import numpy as np

from normcore._checks import check_float_array, check_same_dtype, check_scalar, check_shape

__all__ = ["sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "nadam", "OPTIMIZERS"]


# ----------------------------------------------------------------------------- checks


def _check_arrays(func, w, dw, state):
    check_float_array(func, "w", w)
    check_float_array(func, "dw", dw)
    check_same_dtype(func, w=w, dw=dw)
    check_shape(func, "dw", dw, w.shape)
    if not isinstance(state, dict):
        raise TypeError(f"{func}: state must be a dict, got {type(state).__name__}")


def _real(func, name, value, *, low=None, high=None, high_inclusive=True):
    """Validate a real hyperparameter and return it as a Python float.

    Converting to ``float`` keeps float32 arithmetic in float32 (a NumPy float64
    scalar would promote the arrays).
    """
    check_scalar(func, name, value, low=low, high=high, high_inclusive=high_inclusive)
    return float(value)


def _flag(func, name, value):
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{func}: {name} must be a bool, got {value!r}")
    return bool(value)


def _betas(func, betas):
    if not isinstance(betas, tuple | list) or len(betas) != 2:
        raise TypeError(f"{func}: betas must be a pair (beta1, beta2), got {betas!r}")
    return tuple(
        _real(func, f"betas[{i}]", b, low=0.0, high=1.0, high_inclusive=False)
        for i, b in enumerate(betas)
    )


def _load_state(func, state, w, buffers, extra=()):
    """Create the state on the first call, or check that it belongs to ``func`` and ``w``.

    ``buffers`` are array entries (zeros at creation, or ``None`` for a buffer created
    lazily); ``extra`` are ``(key, initial_value)`` scalar entries.
    """
    if not state:
        state["optimizer"] = func
        state["step"] = 0
        for key, value in extra:
            state[key] = value
        for key, zero in buffers:
            state[key] = np.zeros_like(w) if zero else None
        return
    owner = state.get("optimizer")
    if owner != func:
        raise ValueError(
            f"{func}: state was created by optimizer {owner!r}, expected {func!r} "
            f"(use a fresh dict for each optimizer and each parameter)"
        )
    required = ["step", *(key for key, _ in extra), *(key for key, zero in buffers if zero)]
    missing = [key for key in required if key not in state]
    if missing:
        raise ValueError(f"{func}: state is missing the entries {missing}, got keys {list(state)}")
    for key, _ in buffers:
        buf = state.get(key)
        if buf is None:
            continue
        if not isinstance(buf, np.ndarray) or buf.shape != w.shape or buf.dtype != w.dtype:
            got = (
                f"shape {buf.shape}, dtype {buf.dtype}"
                if isinstance(buf, np.ndarray)
                else type(buf).__name__
            )
            raise ValueError(
                f"{func}: state[{key!r}] must match w (shape {w.shape}, dtype {w.dtype}), "
                f"got {got} (was this state created for another parameter?)"
            )


def _coupled_decay(dw, w, weight_decay):
    """Return :math:`g + \\lambda w` as a new array (or ``dw`` itself when no decay)."""
    return dw + weight_decay * w if weight_decay != 0 else dw


# ------------------------------------------------------------------------- optimizers


def sgd(w, dw, state, *, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    r"""One step of stochastic gradient descent, optionally with (Nesterov) momentum.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter :math:`\theta_t`, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient :math:`\nabla J(\theta_t)`, same shape and dtype as ``w``. Not modified.
    state : dict
        Optimizer state for this parameter, empty on the first call. Keys:
        ``"optimizer"`` (``"sgd"``), ``"step"`` (number of updates done) and
        ``"momentum_buffer"`` (:math:`m_t`, ``None`` while ``momentum == 0``).
    lr : float
        Learning rate :math:`\eta \ge 0`. Required, as it has no meaningful default.
    momentum : float, default 0.0
        Momentum factor :math:`\mu \ge 0`.
    dampening : float, default 0.0
        Dampening :math:`\tau` of the gradient added to the buffer.
    nesterov : bool, default False
        Use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda \ge 0` added to the gradient.

    Returns
    -------
    new_w : ndarray, shape (*)
        :math:`\theta_{t+1}`, same dtype as ``w``.

    Notes
    -----
    PyTorch's update, in the lecture's framework (:math:`V_t = I`):

    .. math::

        g_t &= \nabla J(\theta_t) + \lambda \theta_t \\
        m_t &= \mu\, m_{t-1} + (1 - \tau)\, g_t, \qquad m_1 = g_1 \\
        \theta_{t+1} &= \theta_t - \eta\, m_t
            \qquad \text{or, with Nesterov,} \qquad
        \theta_{t+1} = \theta_t - \eta\, (g_t + \mu\, m_t) .

    With ``momentum == 0`` this is plain SGD, :math:`\theta_{t+1} = \theta_t - \eta g_t`.
    The first buffer is the gradient itself: dampening starts at the second step.

    The lecture writes momentum as a velocity that already contains the learning rate,
    :math:`\eta m_t := \beta m_{t-1} + \eta g_t`, :math:`\theta_{t+1} = \theta_t - \eta m_t`
    (often seen as :math:`v = \rho v - \eta g`, :math:`\theta \mathrel{+}= v`). PyTorch keeps
    the learning rate out of the buffer. With :math:`\beta = \mu`, :math:`\tau = 0` and a
    constant :math:`\eta` the two give the same iterates (the lecture's velocity is
    :math:`\eta` times PyTorch's buffer); they differ once :math:`\eta` changes, because
    the lecture's velocity keeps the old learning rates of past steps.

    The lecture's Nesterov momentum evaluates the gradient at the look-ahead point,
    :math:`\theta_{t+1} = \theta_t - (\beta m_{t-1} + \eta \nabla J(\theta_t - \beta m_{t-1}))`.
    PyTorch uses the equivalent reformulation in which the stored parameter is the
    look-ahead point itself, so the gradient is taken where the parameter is and the step
    is :math:`g_t + \mu m_t`.
    """
    func = "sgd"
    _check_arrays(func, w, dw, state)
    lr = _real(func, "lr", lr, low=0.0)
    momentum = _real(func, "momentum", momentum, low=0.0)
    dampening = _real(func, "dampening", dampening)
    nesterov = _flag(func, "nesterov", nesterov)
    weight_decay = _real(func, "weight_decay", weight_decay, low=0.0)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(
            f"{func}: nesterov=True requires momentum > 0 and dampening == 0, "
            f"got momentum={momentum!r}, dampening={dampening!r}"
        )
    _load_state(func, state, w, [("momentum_buffer", False)])

    g = _coupled_decay(dw, w, weight_decay)
    if momentum != 0:
        buf = state["momentum_buffer"]
        buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
        state["momentum_buffer"] = buf
        direction = g + momentum * buf if nesterov else buf
    else:
        direction = g
    state["step"] += 1
    return w - lr * direction


def adagrad(
    w,
    dw,
    state,
    *,
    lr=1e-2,
    eps=1e-10,
    weight_decay=0.0,
    lr_decay=0.0,
    initial_accumulator_value=0.0,
):
    r"""One step of AdaGrad.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter :math:`\theta_t`, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient :math:`\nabla J(\theta_t)`, same shape and dtype as ``w``. Not modified.
    state : dict
        Optimizer state, empty on the first call. Keys: ``"optimizer"`` (``"adagrad"``),
        ``"step"`` and ``"sum"`` (the accumulated squared gradients :math:`v_t`).
    lr : float, default 1e-2
        Learning rate :math:`\eta \ge 0`.
    eps : float, default 1e-10
        :math:`\epsilon \ge 0` added to the denominator.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda \ge 0` added to the gradient.
    lr_decay : float, default 0.0
        Learning-rate decay :math:`k \ge 0`: step :math:`t` uses
        :math:`\eta_t = \eta / (1 + (t - 1) k)`.
    initial_accumulator_value : float, default 0.0
        Starting value :math:`v_0 \ge 0` of the accumulator, used on the first call.

    Returns
    -------
    new_w : ndarray, shape (*)
        :math:`\theta_{t+1}`, same dtype as ``w``.

    Notes
    -----
    PyTorch's update (:math:`m_t = g_t`, all operations elementwise):

    .. math::

        g_t &= \nabla J(\theta_t) + \lambda \theta_t \\
        v_t &= v_{t-1} + g_t^2, \qquad V_t = \operatorname{diag}(v_t) \\
        \theta_{t+1} &= \theta_t - \frac{\eta_t}{\sqrt{v_t} + \epsilon}\, g_t .

    The lecture puts :math:`\epsilon` under the square root,
    :math:`\eta\, g_t / \sqrt{v_t + \epsilon}`; PyTorch adds it after the square root,
    which is why its default is as small as :math:`10^{-10}`. The two agree whenever
    :math:`v_t \gg \epsilon` (and :math:`\sqrt{v_t} \gg \epsilon`).
    """
    func = "adagrad"
    _check_arrays(func, w, dw, state)
    lr = _real(func, "lr", lr, low=0.0)
    eps = _real(func, "eps", eps, low=0.0)
    weight_decay = _real(func, "weight_decay", weight_decay, low=0.0)
    lr_decay = _real(func, "lr_decay", lr_decay, low=0.0)
    initial = _real(func, "initial_accumulator_value", initial_accumulator_value, low=0.0)
    fresh = not state
    _load_state(func, state, w, [("sum", True)])
    if fresh:
        state["sum"] = np.full_like(w, initial)

    state["step"] += 1
    step = state["step"]
    g = _coupled_decay(dw, w, weight_decay)
    clr = lr / (1 + (step - 1) * lr_decay)
    state["sum"] = state["sum"] + g * g
    return w - clr * (g / (np.sqrt(state["sum"]) + eps))


def rmsprop(
    w,
    dw,
    state,
    *,
    lr=1e-2,
    alpha=0.99,
    eps=1e-8,
    momentum=0.0,
    weight_decay=0.0,
    centered=False,
):
    r"""One step of RMSProp.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter :math:`\theta_t`, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient :math:`\nabla J(\theta_t)`, same shape and dtype as ``w``. Not modified.
    state : dict
        Optimizer state, empty on the first call. Keys: ``"optimizer"`` (``"rmsprop"``),
        ``"step"``, ``"square_avg"`` (:math:`v_t`), ``"momentum_buffer"`` (:math:`b_t`,
        ``None`` while ``momentum == 0``) and ``"grad_avg"`` (:math:`\bar g_t`, ``None``
        unless ``centered``).
    lr : float, default 1e-2
        Learning rate :math:`\eta \ge 0`.
    alpha : float, default 0.99
        Smoothing constant :math:`\alpha \in [0, 1]` of the moving average of squares.
    eps : float, default 1e-8
        :math:`\epsilon \ge 0` added to the denominator.
    momentum : float, default 0.0
        Momentum factor :math:`\mu \ge 0` applied to the normalized step.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda \ge 0` added to the gradient.
    centered : bool, default False
        Normalize by an estimate of the variance, :math:`v_t - \bar g_t^2`, instead of the
        uncentered second moment.

    Returns
    -------
    new_w : ndarray, shape (*)
        :math:`\theta_{t+1}`, same dtype as ``w``.

    Notes
    -----
    PyTorch's update (:math:`m_t = g_t`, all operations elementwise):

    .. math::

        g_t &= \nabla J(\theta_t) + \lambda \theta_t \\
        v_t &= \alpha\, v_{t-1} + (1 - \alpha)\, g_t^2, \qquad V_t = \operatorname{diag}(v_t)\\
        \theta_{t+1} &= \theta_t - \frac{\eta}{\sqrt{v_t} + \epsilon}\, g_t .

    With ``centered=True`` the denominator is :math:`\sqrt{v_t - \bar g_t^2} + \epsilon`
    with :math:`\bar g_t = \alpha \bar g_{t-1} + (1 - \alpha) g_t` (the difference is
    clipped at zero, where rounding could make it slightly negative). With momentum the
    normalized step is accumulated, :math:`b_t = \mu b_{t-1} + g_t / (\sqrt{v_t} + \epsilon)`,
    and :math:`\theta_{t+1} = \theta_t - \eta\, b_t`.

    The lecture calls the smoothing constant :math:`\beta` (PyTorch's ``alpha``) and puts
    :math:`\epsilon` under the square root, :math:`\eta g_t / \sqrt{v_t + \epsilon}`;
    PyTorch adds it after the square root. There is no bias correction: :math:`v_t` starts
    at zero, so the first steps are larger than :math:`\eta`.
    """
    func = "rmsprop"
    _check_arrays(func, w, dw, state)
    lr = _real(func, "lr", lr, low=0.0)
    alpha = _real(func, "alpha", alpha, low=0.0, high=1.0)
    eps = _real(func, "eps", eps, low=0.0)
    momentum = _real(func, "momentum", momentum, low=0.0)
    weight_decay = _real(func, "weight_decay", weight_decay, low=0.0)
    centered = _flag(func, "centered", centered)
    _load_state(
        func, state, w, [("square_avg", True), ("momentum_buffer", False), ("grad_avg", False)]
    )

    state["step"] += 1
    g = _coupled_decay(dw, w, weight_decay)
    square_avg = alpha * state["square_avg"] + (1 - alpha) * (g * g)
    state["square_avg"] = square_avg
    if centered:
        grad_avg = state["grad_avg"]
        grad_avg = (1 - alpha) * g if grad_avg is None else alpha * grad_avg + (1 - alpha) * g
        state["grad_avg"] = grad_avg
        avg = np.sqrt(np.maximum(square_avg - grad_avg * grad_avg, 0)) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        buf = state["momentum_buffer"]
        buf = g / avg if buf is None else momentum * buf + g / avg
        state["momentum_buffer"] = buf
        return w - lr * buf
    return w - lr * (g / avg)


def adadelta(w, dw, state, *, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    r"""One step of AdaDelta.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter :math:`\theta_t`, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient :math:`\nabla J(\theta_t)`, same shape and dtype as ``w``. Not modified.
    state : dict
        Optimizer state, empty on the first call. Keys: ``"optimizer"``
        (``"adadelta"``), ``"step"``, ``"square_avg"`` (:math:`v_t`) and ``"acc_delta"``
        (:math:`u_t`, the moving average of squared updates).
    lr : float, default 1.0
        Learning rate :math:`\eta \ge 0` scaling the update.
    rho : float, default 0.9
        Smoothing constant :math:`\rho \in [0, 1]` of both moving averages.
    eps : float, default 1e-6
        :math:`\epsilon \ge 0` added inside both square roots.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda \ge 0` added to the gradient.

    Returns
    -------
    new_w : ndarray, shape (*)
        :math:`\theta_{t+1}`, same dtype as ``w``.

    Notes
    -----
    PyTorch's update (all operations elementwise):

    .. math::

        g_t &= \nabla J(\theta_t) + \lambda \theta_t \\
        v_t &= \rho\, v_{t-1} + (1 - \rho)\, g_t^2 \\
        \Delta_t &= \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t \\
        u_t &= \rho\, u_{t-1} + (1 - \rho)\, \Delta_t^2 \\
        \theta_{t+1} &= \theta_t - \eta\, \Delta_t .

    In the lecture's framework :math:`m_t = g_t` and
    :math:`V_t = \operatorname{diag}\big((v_t + \epsilon) / (u_{t-1} + \epsilon)\big)`: the
    learning rate is replaced by a running RMS of past updates, which gives the step the
    units of the parameter. The lecture names AdaDelta as RMSProp's sibling without
    writing this formula; Zeiler's original method has no learning rate, which is
    ``lr=1.0`` (PyTorch's default).
    """
    func = "adadelta"
    _check_arrays(func, w, dw, state)
    lr = _real(func, "lr", lr, low=0.0)
    rho = _real(func, "rho", rho, low=0.0, high=1.0)
    eps = _real(func, "eps", eps, low=0.0)
    weight_decay = _real(func, "weight_decay", weight_decay, low=0.0)
    _load_state(func, state, w, [("square_avg", True), ("acc_delta", True)])

    state["step"] += 1
    g = _coupled_decay(dw, w, weight_decay)
    square_avg = rho * state["square_avg"] + (1 - rho) * (g * g)
    delta = np.sqrt(state["acc_delta"] + eps) / np.sqrt(square_avg + eps) * g
    state["square_avg"] = square_avg
    state["acc_delta"] = rho * state["acc_delta"] + (1 - rho) * (delta * delta)
    return w - lr * delta


def _adam_update(func, w, dw, state, lr, betas, eps, weight_decay, amsgrad, decoupled):
    _check_arrays(func, w, dw, state)
    lr = _real(func, "lr", lr, low=0.0)
    beta1, beta2 = _betas(func, betas)
    eps = _real(func, "eps", eps, low=0.0)
    weight_decay = _real(func, "weight_decay", weight_decay, low=0.0)
    amsgrad = _flag(func, "amsgrad", amsgrad)
    _load_state(
        func, state, w, [("exp_avg", True), ("exp_avg_sq", True), ("max_exp_avg_sq", amsgrad)]
    )

    state["step"] += 1
    step = state["step"]
    if decoupled:
        w = w * (1 - lr * weight_decay) if weight_decay != 0 else w
        g = dw
    else:
        g = _coupled_decay(dw, w, weight_decay)
    exp_avg = beta1 * state["exp_avg"] + (1 - beta1) * g
    exp_avg_sq = beta2 * state["exp_avg_sq"] + (1 - beta2) * (g * g)
    state["exp_avg"] = exp_avg
    state["exp_avg_sq"] = exp_avg_sq
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    if amsgrad:
        previous = state["max_exp_avg_sq"]
        second = exp_avg_sq if previous is None else np.maximum(previous, exp_avg_sq)
        state["max_exp_avg_sq"] = second
    else:
        second = exp_avg_sq
    denom = np.sqrt(second) / math.sqrt(bias_correction2) + eps
    return w - (lr / bias_correction1) * (exp_avg / denom)


def adam(w, dw, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
    r"""One step of Adam (with L2 weight decay added to the gradient).

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter :math:`\theta_t`, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient :math:`\nabla J(\theta_t)`, same shape and dtype as ``w``. Not modified.
    state : dict
        Optimizer state, empty on the first call. Keys: ``"optimizer"`` (``"adam"``),
        ``"step"`` (:math:`t`), ``"exp_avg"`` (:math:`m_t`), ``"exp_avg_sq"``
        (:math:`v_t`) and ``"max_exp_avg_sq"`` (:math:`\max_{s \le t} v_s`, ``None``
        unless ``amsgrad``).
    lr : float, default 1e-3
        Learning rate :math:`\eta \ge 0`.
    betas : tuple of float, default (0.9, 0.999)
        Decay rates :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)`.
    eps : float, default 1e-8
        :math:`\epsilon \ge 0` added to the denominator.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda \ge 0` added to the gradient (see :func:`adamw` for the
        decoupled form).
    amsgrad : bool, default False
        Normalize by the running maximum of :math:`v_t` (AMSGrad).

    Returns
    -------
    new_w : ndarray, shape (*)
        :math:`\theta_{t+1}`, same dtype as ``w``.

    Notes
    -----
    PyTorch's update (all operations elementwise):

    .. math::

        g_t &= \nabla J(\theta_t) + \lambda \theta_t \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
            \hat m_t = \frac{m_t}{1 - \beta_1^t} \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2, \qquad
            \hat v_t = \frac{v_t}{1 - \beta_2^t}, \qquad V_t = \operatorname{diag}(\hat v_t) \\
        \theta_{t+1} &= \theta_t - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} .

    (PyTorch computes this as :math:`\frac{\eta}{1 - \beta_1^t}\, m_t /
    (\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon)`, which is the same number.) With
    AMSGrad, :math:`v_t` in the denominator is replaced by :math:`\max_{s \le t} v_s`,
    still divided by the current :math:`1 - \beta_2^t`.

    The lecture puts :math:`\epsilon` under the square root,
    :math:`\eta\, \hat m_t / \sqrt{\hat v_t + \epsilon}`; PyTorch adds it after.
    """
    return _adam_update("adam", w, dw, state, lr, betas, eps, weight_decay, amsgrad, False)


def adamw(w, dw, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
    r"""One step of AdamW: Adam with decoupled weight decay.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter :math:`\theta_t`, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient :math:`\nabla J(\theta_t)` of the loss without the penalty, same shape and
        dtype as ``w``. Not modified.
    state : dict
        Optimizer state, empty on the first call; same keys as :func:`adam`, with
        ``state["optimizer"] == "adamw"``.
    lr : float, default 1e-3
        Learning rate :math:`\eta \ge 0`.
    betas : tuple of float, default (0.9, 0.999)
        Decay rates :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)`.
    eps : float, default 1e-8
        :math:`\epsilon \ge 0` added to the denominator.
    weight_decay : float, default 1e-2
        Decoupled decay rate :math:`\lambda \ge 0`.
    amsgrad : bool, default False
        Normalize by the running maximum of :math:`v_t` (AMSGrad).

    Returns
    -------
    new_w : ndarray, shape (*)
        :math:`\theta_{t+1}`, same dtype as ``w``.

    Notes
    -----
    The weights shrink first, then Adam steps with the plain gradient :math:`g_t`:

    .. math::

        \theta_{t+1} = (1 - \eta \lambda)\, \theta_t
            - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},

    with :math:`\hat m_t, \hat v_t` as in :func:`adam`. This is the lecture's weight-decay
    rule :math:`W \leftarrow W - \eta\, \partial L_0 / \partial W - \eta \lambda W`
    applied to Adam. For SGD the decoupled and the L2 forms coincide; for Adam they do
    not, because :func:`adam` passes :math:`\lambda \theta_t` through the normalization
    by :math:`\sqrt{\hat v_t}`, so that weights with large gradients are decayed less.
    """
    return _adam_update("adamw", w, dw, state, lr, betas, eps, weight_decay, amsgrad, True)


def nadam(
    w,
    dw,
    state,
    *,
    lr=2e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    momentum_decay=4e-3,
):
    r"""One step of NAdam (Adam with Nesterov momentum), as in ``torch.optim.NAdam``.

    Parameters
    ----------
    w : ndarray, shape (*)
        Current parameter :math:`\theta_t`, float32 or float64. Not modified.
    dw : ndarray, shape (*)
        Gradient :math:`\nabla J(\theta_t)`, same shape and dtype as ``w``. Not modified.
    state : dict
        Optimizer state, empty on the first call. Keys: ``"optimizer"`` (``"nadam"``),
        ``"step"`` (:math:`t`), ``"mu_product"`` (:math:`\prod_{i \le t} \mu_i`, a Python
        float), ``"exp_avg"`` (:math:`m_t`) and ``"exp_avg_sq"`` (:math:`v_t`).
    lr : float, default 2e-3
        Learning rate :math:`\eta \ge 0`.
    betas : tuple of float, default (0.9, 0.999)
        Decay rates :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)`.
    eps : float, default 1e-8
        :math:`\epsilon \ge 0` added to the denominator.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda \ge 0` added to the gradient.
    momentum_decay : float, default 4e-3
        :math:`\psi \ge 0` in the momentum schedule :math:`\mu_t`.

    Returns
    -------
    new_w : ndarray, shape (*)
        :math:`\theta_{t+1}`, same dtype as ``w``.

    Notes
    -----
    PyTorch's update, after Dozat (2016), with a warming-up momentum schedule
    (all operations elementwise):

    .. math::

        g_t &= \nabla J(\theta_t) + \lambda \theta_t \\
        \mu_t &= \beta_1 \big(1 - \tfrac12\, 0.96^{\,t \psi}\big) \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2, \qquad
        \hat v_t = \frac{v_t}{1 - \beta_2^t} \\
        \theta_{t+1} &= \theta_t - \frac{\eta}{\sqrt{\hat v_t} + \epsilon} \left(
            \frac{1 - \mu_t}{1 - \prod_{i=1}^{t} \mu_i}\, g_t
            + \frac{\mu_{t+1}}{1 - \prod_{i=1}^{t+1} \mu_i}\, m_t \right) .

    The lecture derives a simplified NAdam from Adam by replacing :math:`m_{t-1}` with
    :math:`m_t` in the expansion of :math:`\hat m_t`:

    .. math::

        \theta_{t+1} = \theta_t - \frac{\eta}{\sqrt{\hat v_t + \epsilon}} \left(
            \frac{\beta_1 m_t}{1 - \beta_1^t} + \frac{(1 - \beta_1)\, g_t}{1 - \beta_1^t}
            \right) .

    PyTorch differs in three ways: the momentum coefficients are the scheduled
    :math:`\mu_t` (which rise from :math:`\beta_1/2` towards :math:`\beta_1`, slowly for
    the default :math:`\psi`) instead of a constant :math:`\beta_1`; the bias corrections
    are products of the :math:`\mu_i` taken at :math:`t` for the gradient and at
    :math:`t + 1` for the momentum (the momentum term is used one step ahead); and
    :math:`\epsilon` sits outside the square root. ``momentum_decay=0`` does not recover
    the lecture's form: it fixes :math:`\mu_t = \beta_1 / 2`.

    ``state["mu_product"]`` is kept in double precision. PyTorch keeps it in a tensor of
    the default dtype, float32 unless ``torch.set_default_dtype(torch.float64)``, which
    perturbs its float64 trajectories at the level of float32 rounding.
    """
    func = "nadam"
    _check_arrays(func, w, dw, state)
    lr = _real(func, "lr", lr, low=0.0)
    beta1, beta2 = _betas(func, betas)
    eps = _real(func, "eps", eps, low=0.0)
    weight_decay = _real(func, "weight_decay", weight_decay, low=0.0)
    momentum_decay = _real(func, "momentum_decay", momentum_decay, low=0.0)
    _load_state(
        func, state, w, [("exp_avg", True), ("exp_avg_sq", True)], extra=[("mu_product", 1.0)]
    )

    state["step"] += 1
    step = state["step"]
    g = _coupled_decay(dw, w, weight_decay)
    bias_correction2 = 1 - beta2**step
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    mu_product = state["mu_product"] * mu
    mu_product_next = mu_product * mu_next
    state["mu_product"] = mu_product
    exp_avg = beta1 * state["exp_avg"] + (1 - beta1) * g
    exp_avg_sq = beta2 * state["exp_avg_sq"] + (1 - beta2) * (g * g)
    state["exp_avg"] = exp_avg
    state["exp_avg_sq"] = exp_avg_sq
    denom = np.sqrt(exp_avg_sq / bias_correction2) + eps
    grad_coef = lr * (1.0 - mu) / (1.0 - mu_product)
    momentum_coef = lr * mu_next / (1.0 - mu_product_next)
    return w - grad_coef * (g / denom) - momentum_coef * (exp_avg / denom)


#: Every optimizer of this module by name, e.g. ``OPTIMIZERS["adam"](w, dw, state)``.
OPTIMIZERS = {
    "sgd": sgd,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adadelta": adadelta,
    "adam": adam,
    "adamw": adamw,
    "nadam": nadam,
}
