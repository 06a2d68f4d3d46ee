"""Common mistakes in optimizer steps: momentum, adaptive scaling, Adam's bias correction.

Every mutant is a step function with the graded signature ``step(w, dw, state, **hyper)
-> new_w``; it keeps its buffers in ``state`` (PyTorch's names) and never modifies ``w``
or ``dw``. Scalars stay Python floats, so float32 inputs give float32 iterates.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from normcore import optim as _ref
from normcore.grading import _graded, _register

# ------------------------------------------------------------------------------- SGD


def _sgd_mutant(flaw: str) -> Callable:
    def sgd(w, dw, state, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
            weight_decay=0.0):
        g = dw if flaw == "decay_on_update" else dw + weight_decay * w
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if flaw == "momentum_sign":  # a velocity of -g, then subtracted as a buffer
                buf = -g if buf is None else momentum * buf - g
            elif buf is None:
                buf = (1 - dampening) * g if flaw == "dampening_first_step" else g.copy()
            else:
                buf = momentum * buf + (1 - dampening) * g
            if nesterov and flaw == "nesterov_old_buffer":
                previous = state.get("momentum_buffer")
                direction = g if previous is None else g + momentum * previous
            elif nesterov:
                direction = g + momentum * buf
            else:
                direction = buf
            state["momentum_buffer"] = buf
        else:
            direction = g
        new_w = w - lr * direction
        if flaw == "decay_on_update":
            new_w = new_w - lr * weight_decay * w
        return new_w

    return sgd


_DECAY_MSG = ("Weight decay is applied to the update instead of the gradient. With "
              "weight_decay (L2, 'coupled') it is added to the gradient before anything else, "
              "g = dw + weight_decay * w, so it goes through the momentum buffer (Adam: the "
              "moment estimates) too; only AdamW shrinks the weights directly.")

_register("sgd_momentum_sign", "sgd",
          "Your momentum mixes two sign conventions. PyTorch's buffer accumulates the "
          "gradient, buf = momentum * buf + g, and the step subtracts it, w - lr * buf; the "
          "lecture's velocity v = rho * v - lr * g already points downhill and is added, "
          "w + v. Subtracting a downhill velocity climbs the loss.",
          _sgd_mutant("momentum_sign"))
_register("sgd_decay_on_update", "sgd", _DECAY_MSG, _sgd_mutant("decay_on_update"))
_register("sgd_dampening_first_step", "sgd",
          "Your first momentum step is damped. PyTorch starts the buffer with the gradient "
          "itself, buf = g at the first step, and applies dampening only from the second "
          "step on: buf = momentum * buf + (1 - dampening) * g.",
          _sgd_mutant("dampening_first_step"))
_register("sgd_nesterov_old_buffer", "sgd",
          "Your Nesterov step uses the momentum buffer of the previous step. Update the "
          "buffer first, buf = momentum * buf + g, then step along g + momentum * buf with "
          "the new buffer (the look-ahead: the gradient plus the momentum of the next step).",
          _sgd_mutant("nesterov_old_buffer"))

# --------------------------------------------------------------------------- AdaGrad


def _adagrad_mutant(flaw: str) -> Callable:
    def adagrad(w, dw, state, *, lr=1e-2, eps=1e-10, weight_decay=0.0, lr_decay=0.0,
                initial_accumulator_value=0.0):
        if not state:
            state.update(step=0, sum=np.full_like(w, initial_accumulator_value))
        state["step"] += 1
        t = state["step"]
        g = dw + weight_decay * w
        clr = lr / (1 + (t if flaw == "lr_decay_off_by_one" else t - 1) * lr_decay)
        state["sum"] = state["sum"] + (np.abs(g) if flaw == "abs_accumulator" else g * g)
        if flaw == "eps_inside_sqrt":
            denom = np.sqrt(state["sum"] + eps)
        else:
            denom = np.sqrt(state["sum"]) + eps
        return w - clr * (g / denom)

    return adagrad


_register("adagrad_eps_inside_sqrt", "adagrad",
          "eps is inside the square root, g / sqrt(sum + eps) (the lecture's form); "
          "PyTorch's AdaGrad adds it after: g / (sqrt(sum) + eps).",
          _adagrad_mutant("eps_inside_sqrt"))
_register("adagrad_abs_accumulator", "adagrad",
          "Your accumulator sums |g|; AdaGrad sums the squared gradients, sum += g * g, and "
          "divides by the square root of that sum (the root of a sum of squares, not a sum of "
          "absolute values).", _adagrad_mutant("abs_accumulator"))
_register("adagrad_lr_decay_off_by_one", "adagrad",
          "Your lr_decay starts one step early: the t-th step (t = 1, 2, ...) uses "
          "lr / (1 + (t - 1) * lr_decay), so the first step uses lr itself.",
          _adagrad_mutant("lr_decay_off_by_one"))

# --------------------------------------------------------------------------- RMSProp


def _rmsprop_mutant(flaw: str) -> Callable:
    def rmsprop(w, dw, state, *, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0,
                weight_decay=0.0, centered=False):
        if not state:
            state.update(step=0, square_avg=np.zeros_like(w), grad_avg=np.zeros_like(w),
                          momentum_buffer=np.zeros_like(w))
        state["step"] += 1
        g = dw + weight_decay * w
        keep, new = (1 - alpha, alpha) if flaw == "alpha_inverted" else (alpha, 1 - alpha)
        square_avg = keep * state["square_avg"] + new * (g * g)
        state["square_avg"] = square_avg
        if centered:
            grad_avg = keep * state["grad_avg"] + new * g
            state["grad_avg"] = grad_avg
            second = np.maximum(square_avg - grad_avg * grad_avg, 0)
        else:
            second = square_avg
        if flaw == "eps_inside_sqrt":
            avg = np.sqrt(second + eps)
        else:
            avg = np.sqrt(second) + eps
        if momentum > 0:
            if flaw == "momentum_on_gradient":
                buf = momentum * state["momentum_buffer"] + g
                state["momentum_buffer"] = buf
                return w - lr * (buf / avg)
            buf = momentum * state["momentum_buffer"] + g / avg
            state["momentum_buffer"] = buf
            return w - lr * buf
        return w - lr * (g / avg)

    return rmsprop


_register("rmsprop_alpha_inverted", "rmsprop",
          "Your moving average weighs the new squared gradient by alpha. alpha is the weight "
          "of the old average: square_avg = alpha * square_avg + (1 - alpha) * g**2 (with "
          "alpha = 0.99 the average forgets slowly).", _rmsprop_mutant("alpha_inverted"))
_register("rmsprop_eps_inside_sqrt", "rmsprop",
          "eps is inside the square root, g / sqrt(square_avg + eps) (the lecture's form); "
          "PyTorch's RMSprop adds it after: g / (sqrt(square_avg) + eps).",
          _rmsprop_mutant("eps_inside_sqrt"))
_register("rmsprop_momentum_on_gradient", "rmsprop",
          "Your momentum buffer accumulates the raw gradient and divides the buffer by the "
          "current root mean square. With momentum, RMSProp accumulates the normalized step: "
          "buf = momentum * buf + g / (sqrt(square_avg) + eps), then w - lr * buf.",
          _rmsprop_mutant("momentum_on_gradient"))

# -------------------------------------------------------------------------- AdaDelta


def _adadelta_mutant(flaw: str) -> Callable:
    def adadelta(w, dw, state, *, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        if not state:
            state.update(step=0, square_avg=np.zeros_like(w), acc_delta=np.zeros_like(w))
        state["step"] += 1
        g = dw + weight_decay * w
        old_square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg = rho * old_square_avg + (1 - rho) * (g * g)
        v = old_square_avg if flaw == "old_square_avg" else square_avg
        if flaw == "eps_outside_sqrt":
            delta = (np.sqrt(acc_delta) + eps) / (np.sqrt(v) + eps) * g
        else:
            delta = np.sqrt(acc_delta + eps) / np.sqrt(v + eps) * g
        state["square_avg"] = square_avg
        if flaw != "no_delta_accumulator":
            state["acc_delta"] = rho * acc_delta + (1 - rho) * (delta * delta)
        return w - (1.0 if flaw == "lr_ignored" else lr) * delta

    return adadelta


_register("adadelta_no_delta_accumulator", "adadelta",
          "Your accumulator of squared updates never changes (it stays at zero, so every "
          "step is sqrt(eps) / sqrt(square_avg + eps) * g). After computing the step delta, "
          "update acc_delta = rho * acc_delta + (1 - rho) * delta**2 for the next step.",
          _adadelta_mutant("no_delta_accumulator"))
_register("adadelta_eps_outside_sqrt", "adadelta",
          "eps is outside the square roots. AdaDelta (in the paper and in PyTorch) adds it "
          "inside both: delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g; with "
          "acc_delta = 0 at the start, eps inside the root is what sets the first steps' size.",
          _adadelta_mutant("eps_outside_sqrt"))
_register("adadelta_old_square_avg", "adadelta",
          "Your step divides by the average of squared gradients of the previous step. Update "
          "square_avg with the current gradient first, then compute the step with the new "
          "square_avg (and the old acc_delta), then update acc_delta.",
          _adadelta_mutant("old_square_avg"))
_register("adadelta_lr_ignored", "adadelta",
          "Your step ignores lr. Zeiler's AdaDelta has no learning rate, but PyTorch's (and "
          "this notebook's) multiplies the step by lr: w - lr * delta (lr = 1.0 by default).",
          _adadelta_mutant("lr_ignored"))

# ---------------------------------------------------------------------- Adam, AdamW


def _adam_step(flaw, decoupled, w, dw, state, lr, betas, eps, weight_decay, amsgrad):
    if not state:
        state.update(step=0, exp_avg=np.zeros_like(w), exp_avg_sq=np.zeros_like(w),
                     max_exp_avg_sq=None)
    beta1, beta2 = betas
    state["step"] += 1
    t = state["step"] + (1 if flaw == "step_off_by_one" else 0)
    coupled = (not decoupled and flaw != "decay_on_update") or flaw == "l2_decay"
    g = dw + weight_decay * w if coupled else dw
    w_start = w
    if decoupled and flaw not in ("l2_decay", "decay_after_step"):
        w = w * (1 - (1.0 if flaw == "decay_without_lr" else lr) * weight_decay)
    m = beta1 * state["exp_avg"] + (1 - beta1) * g
    v = beta2 * state["exp_avg_sq"] + (1 - beta2) * (g * g)
    state["exp_avg"], state["exp_avg_sq"] = m, v
    if flaw == "no_bias_correction":
        m_hat, v_hat = m, v
    else:
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    if amsgrad and flaw != "ignores_amsgrad":
        previous = state["max_exp_avg_sq"]
        if flaw == "amsgrad_max_of_corrected":  # running max of v_hat instead of v
            v_hat = v_hat if previous is None else np.maximum(previous, v_hat)
            state["max_exp_avg_sq"] = v_hat
        else:
            v_max = v if previous is None else np.maximum(previous, v)
            state["max_exp_avg_sq"] = v_max
            v_hat = v_max if flaw == "no_bias_correction" else v_max / (1 - beta2**t)
    if flaw == "eps_inside_sqrt":
        new_w = w - lr * m_hat / np.sqrt(v_hat + eps)
    else:
        new_w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    if flaw == "decay_on_update":
        new_w = new_w - lr * weight_decay * w_start
    if flaw == "decay_after_step":
        new_w = new_w * (1 - lr * weight_decay)
    return new_w


def _adam_mutant(flaw: str) -> Callable:
    def adam(w, dw, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
             amsgrad=False):
        return _adam_step(flaw, False, w, dw, state, lr, betas, eps, weight_decay, amsgrad)

    return adam


def _adamw_mutant(flaw: str) -> Callable:
    def adamw(w, dw, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
              amsgrad=False):
        return _adam_step(flaw, True, w, dw, state, lr, betas, eps, weight_decay, amsgrad)

    return adamw


_register("adam_no_bias_correction", "adam",
          "Your Adam has no bias correction: divide the moment estimates by 1 - beta1**t and "
          "1 - beta2**t (t = number of steps taken, 1 at the first step). Without it the first "
          "steps are mis-scaled, as m and v start at zero (with the default betas the first "
          "step is about 3 times too large).",
          _adam_mutant("no_bias_correction"))
_register("adam_step_off_by_one", "adam",
          "The step counter of your bias correction is off by one: at the t-th call "
          "(t = 1, 2, ...) divide by 1 - beta**t. Increment state['step'] once per call, "
          "before computing the correction.", _adam_mutant("step_off_by_one"))
_register("adam_eps_inside_sqrt", "adam",
          "eps is inside the square root (the lecture's form, sqrt(v_hat + eps)); PyTorch's "
          "Adam adds it after: m_hat / (sqrt(v_hat) + eps).", _adam_mutant("eps_inside_sqrt"))
_register("adam_decay_on_update", "adam", _DECAY_MSG, _adam_mutant("decay_on_update"))
_register("adam_amsgrad_max_of_corrected", "adam",
          "Your AMSGrad keeps the running maximum of the bias-corrected v_hat. PyTorch keeps "
          "the maximum of the raw second moment, max_exp_avg_sq = max(max_exp_avg_sq, v), "
          "and divides that maximum by the current 1 - beta2**t.",
          _adam_mutant("amsgrad_max_of_corrected"))

_AMSGRAD_IGNORED = ("Your step ignores amsgrad=True: AMSGrad divides by the running maximum of "
                    "the raw second moment, max_exp_avg_sq = max(max_exp_avg_sq, v), over "
                    "1 - beta2**t (keep that maximum in the state).")
_register("adam_ignores_amsgrad", "adam", _AMSGRAD_IGNORED, _adam_mutant("ignores_amsgrad"))
_register("adamw_ignores_amsgrad", "adamw", _AMSGRAD_IGNORED, _adamw_mutant("ignores_amsgrad"))
_register("adamw_l2_decay", "adamw",
          "Your AdamW adds weight_decay * w to the gradient: that is Adam's L2 penalty, which "
          "the division by sqrt(v_hat) rescales. AdamW decouples the decay: shrink the "
          "weights, w = w * (1 - lr * weight_decay), then take an Adam step with the plain "
          "gradient dw.", _adamw_mutant("l2_decay"))
_register("adamw_decay_without_lr", "adamw",
          "Your weight decay is not multiplied by the learning rate. AdamW shrinks the weights "
          "by the factor 1 - lr * weight_decay (PyTorch's form), not 1 - weight_decay.",
          _adamw_mutant("decay_without_lr"))
_register("adamw_decay_after_step", "adamw",
          "Your AdamW decays the weights after the Adam step. The decay uses the current "
          "weights: new_w = w * (1 - lr * weight_decay) - lr * m_hat / (sqrt(v_hat) + eps), "
          "with w the parameter the function received.", _adamw_mutant("decay_after_step"))

# ----------------------------------------------------------------------------- NAdam


def _nadam_mutant(flaw: str) -> Callable:
    def nadam(w, dw, state, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              momentum_decay=4e-3):
        if not state:
            state.update(step=0, mu_product=1.0, exp_avg=np.zeros_like(w),
                         exp_avg_sq=np.zeros_like(w))
        beta1, beta2 = betas
        state["step"] += 1
        t = state["step"]
        g = dw + weight_decay * w

        def mu_at(i):
            if flaw == "constant_momentum":
                return beta1
            return beta1 * (1.0 - 0.5 * 0.96 ** (i * momentum_decay))

        mu = mu_at(t)
        mu_next = mu if flaw == "mu_not_ahead" else mu_at(t + 1)
        if flaw == "power_not_product":
            mu_product, mu_product_next = mu**t, mu_next ** (t + 1)
        else:
            mu_product = state["mu_product"] * mu
            mu_product_next = mu_product * mu_next
        state["mu_product"] = mu_product
        m = beta1 * state["exp_avg"] + (1 - beta1) * g
        v = beta2 * state["exp_avg_sq"] + (1 - beta2) * (g * g)
        state["exp_avg"], state["exp_avg_sq"] = m, v
        denom = np.sqrt(v / (1 - beta2**t)) + eps
        grad_coef = lr * (1.0 - mu) / (1.0 - mu_product)
        momentum_coef = lr * mu_next / (1.0 - mu_product_next)
        return w - grad_coef * (g / denom) - momentum_coef * (m / denom)

    return nadam


_register("nadam_constant_momentum", "nadam",
          "Your NAdam uses beta1 as its momentum coefficient at every step. PyTorch's NAdam "
          "warms it up: mu_t = beta1 * (1 - 0.5 * 0.96**(t * momentum_decay)), and the bias "
          "corrections use the products of these mu's.", _nadam_mutant("constant_momentum"))
_register("nadam_power_not_product", "nadam",
          "Your bias corrections use a power of the current momentum coefficient, "
          "1 - mu_t**t. Since mu_t changes with t, NAdam needs the product of all of them, "
          "1 - mu_1 * mu_2 * ... * mu_t: keep it in the state and multiply it by mu_t at "
          "each step (and by mu_{t+1} for the momentum term).",
          _nadam_mutant("power_not_product"))
_register("nadam_mu_not_ahead", "nadam",
          "Your momentum term uses mu_t. NAdam's look-ahead uses the next coefficient: "
          "lr * mu_{t+1} / (1 - mu_1 * ... * mu_{t+1}) * m_t / denom, while the gradient term "
          "uses lr * (1 - mu_t) / (1 - mu_1 * ... * mu_t).", _nadam_mutant("mu_not_ahead"))

# ------------------------------------------------------------------------------ cases


def _trajectory(seed, shape=(3, 2), steps=5, scale=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(shape).astype(dtype)
    grads = (scale * rng.standard_normal((steps, *shape))).astype(dtype)
    return w0, grads


def _sgd_cases():
    w0, grads = _trajectory(7)
    hyper = {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}
    return [((w0, grads), hyper), ((w0, grads), {**hyper, "nesterov": True}),
            ((w0, grads), {**hyper, "dampening": 0.5}), ((w0, grads), {"lr": 0.3})]


def _adagrad_cases():
    w0, grads = _trajectory(8)
    return [((w0, grads), {"lr": 0.5, "eps": 0.1, "weight_decay": 0.1}),
            ((w0, grads), {"lr": 0.5, "lr_decay": 0.5, "initial_accumulator_value": 0.2})]


def _rmsprop_cases():
    w0, grads = _trajectory(9)
    return [((w0, grads), {"lr": 0.1, "alpha": 0.8, "eps": 0.1, "weight_decay": 0.1}),
            ((w0, grads), {"lr": 0.1, "alpha": 0.8, "momentum": 0.9, "centered": True})]


def _adadelta_cases():
    w0, grads = _trajectory(10)
    return [((w0, grads), {"lr": 0.5, "rho": 0.8, "eps": 0.01, "weight_decay": 0.1})]


def _adam_cases():
    w0, grads = _trajectory(11)
    hyper = {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-2, "weight_decay": 0.1}
    return [((w0, grads), hyper), ((w0, grads), {**hyper, "amsgrad": True})]


def _adamw_cases():
    w0, grads = _trajectory(12)
    hyper = {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-2, "weight_decay": 0.5}
    shrinking = grads * np.linspace(2, 0.2, len(grads)).reshape(-1, 1, 1)
    return [((w0, grads), hyper), ((w0, shrinking), {**hyper, "amsgrad": True})]


def _nadam_cases():
    w0, grads = _trajectory(13)
    return [((w0, grads), {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-3, "weight_decay": 0.1,
                           "momentum_decay": 1.0})]


def _with_float32(cases: Callable) -> Callable:
    """The cases, and the first of them in float32 (a float64 constant must not promote)."""

    def with_float32():
        found = cases()
        (w0, grads), hyper = found[0]
        return [*found, ((w0.astype(np.float32), grads.astype(np.float32)), hyper)]

    return with_float32


def _in_place_mutant(factory: Callable) -> Callable:
    """A correct step that writes the new parameter into ``w`` and returns ``w`` itself."""
    correct = factory("none")

    def step(w, dw, state, **hyper):
        w[...] = correct(w, dw, state, **hyper)
        return w

    step.__signature__ = inspect.signature(correct)
    return step


_IN_PLACE_MSG = ("Your step changes w in place (w -= ..., or w[...] = ...) and returns it. The "
                 "caller's array changes, and every iterate the caller keeps is then one and "
                 "the same array, the last one. Return a new array instead: "
                 "new_w = w - lr * step (and never modify w or dw).")

for _name, _factory, _cases in [("sgd", _sgd_mutant, _sgd_cases),
                                ("adagrad", _adagrad_mutant, _adagrad_cases),
                                ("rmsprop", _rmsprop_mutant, _rmsprop_cases),
                                ("adadelta", _adadelta_mutant, _adadelta_cases),
                                ("adam", _adam_mutant, _adam_cases),
                                ("adamw", _adamw_mutant, _adamw_cases),
                                ("nadam", _nadam_mutant, _nadam_cases)]:
    _register(f"{_name}_in_place", _name, _IN_PLACE_MSG, _in_place_mutant(_factory))
    _graded(_name, getattr(_ref, _name), _factory("none"), _with_float32(_cases),
            kind="optimizer")
