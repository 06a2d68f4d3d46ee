"""Common mistakes in optimizer steps: momentum, weight decay, Adam's bias correction."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from normcore import optim as _ref
from normcore.grading import _graded, _register


def _sgd_mutant(flaw: str) -> Callable:
    def sgd(w, dw, state, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
            weight_decay=0.0):
        g = dw if flaw == "decay_on_update" else dw + weight_decay * w
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if flaw == "momentum_sign":  # a velocity of -g, then subtracted as a buffer
                buf = -g if buf is None else momentum * buf - g
            else:
                buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            state["momentum_buffer"] = buf
            direction = g + momentum * buf if nesterov else buf
        else:
            direction = g
        new_w = w - lr * direction
        if flaw == "decay_on_update":
            new_w = new_w - lr * weight_decay * w
        return new_w

    return sgd


def _adam_mutant(flaw: str) -> Callable:
    def adam(w, dw, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
             amsgrad=False):
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(w), exp_avg_sq=np.zeros_like(w),
                         max_exp_avg_sq=None)
        beta1, beta2 = betas
        state["step"] += 1
        t = state["step"] + (1 if flaw == "step_off_by_one" else 0)
        g = dw if flaw == "decay_on_update" else dw + weight_decay * w
        m = beta1 * state["exp_avg"] + (1 - beta1) * g
        v = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
        state["exp_avg"], state["exp_avg_sq"] = m, v
        if amsgrad:
            previous = state["max_exp_avg_sq"]
            v = v if previous is None else np.maximum(previous, v)
            state["max_exp_avg_sq"] = v
        if flaw == "no_bias_correction":
            m_hat, v_hat = m, v
        else:
            m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        if flaw == "eps_inside_sqrt":
            new_w = w - lr * m_hat / np.sqrt(v_hat + eps)
        else:
            new_w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        if flaw == "decay_on_update":
            new_w = new_w - lr * weight_decay * w
        return new_w

    return adam


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


def _cases(name):
    def cases():
        rng = np.random.default_rng(7)
        w0, grads = rng.standard_normal((3, 2)), rng.standard_normal((4, 3, 2))
        if name == "sgd":
            hyper = {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}
            return [((w0, grads), hyper), ((w0, grads), {**hyper, "nesterov": True})]
        hyper = {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-2, "weight_decay": 0.1}
        return [((w0, grads), hyper), ((w0, grads), {**hyper, "amsgrad": True})]

    return cases


_graded("sgd", _ref.sgd, _sgd_mutant("none"), _cases("sgd"), kind="optimizer")
_graded("adam", _ref.adam, _adam_mutant("none"), _cases("adam"), kind="optimizer")
