"""Common mistakes in dropout (inverted and vanilla), the L2 penalty and weight decay.

Each factory returns an implementation of one graded function with one flaw (or none); the
flaws are isolated, so that a mistake is recognized by what it breaks. A backward mutant has
the signature of :func:`normcore.grading.backward_through`'s composite,
``(dout, *forward_args, **forward_kwargs)``: it draws the forward's mask itself, from the same
``rng``, and then makes its mistake.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from normcore import regularization as _ref
from normcore.grading import _graded, _register, backward_through


def _generator(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


# ------------------------------------------------------------------------ inverted dropout


def _dropout_mutant(flaw: str) -> Callable:
    def dropout_forward(x, p=0.5, *, training=True, rng=None):
        if not training and flaw != "drops_in_eval":
            return (x * x.dtype.type(1 - p) if flaw == "rescaled_at_test" else x.copy()), None
        gen = _generator(rng)
        keep_prob = p if flaw == "p_as_keep" else 1 - p
        if flaw == "mask_complement":  # drop where the draw is below p: other units
            keep = gen.random(x.shape) >= p
        else:
            keep = gen.random(x.shape) < keep_prob
        scale = 1.0 if flaw == "not_rescaled" else 1.0 / keep_prob
        return x * (keep.astype(x.dtype) * x.dtype.type(scale)), None

    return dropout_forward


def _dropout_backward_mutant(flaw: str) -> Callable:
    def dropout_backward(dout, x, p=0.5, *, training=True, rng=None):
        if not training:
            return dout / dout.dtype.type(1 - p) if flaw == "eval_scaled" else dout.copy()
        gen = _generator(rng)
        keep = gen.random(x.shape) < 1 - p
        if flaw == "new_mask":  # a second draw from the generator: other units
            keep = gen.random(x.shape) < 1 - p
        mask = np.ones_like(dout) if flaw == "no_mask" else keep.astype(dout.dtype)
        scale = {"no_scale": 1.0, "p_as_keep": 1.0 / p}.get(flaw, 1.0 / (1 - p))
        return dout * mask * dout.dtype.type(scale)

    return dropout_backward


_register("dropout_not_rescaled", "dropout_forward",
          "Your training output is not rescaled. Inverted dropout divides the kept units by "
          "the keep probability 1 - p, so that the expected output equals x and nothing has "
          "to change at test time.", _dropout_mutant("not_rescaled"))
_register("dropout_rescaled_at_test", "dropout_forward",
          "Your evaluation output is rescaled. With inverted dropout the layer is the "
          "identity at test time (out = x); scaling by the keep probability at test time "
          "belongs to 'vanilla' dropout, which does not rescale while training.",
          _dropout_mutant("rescaled_at_test"))
_register("dropout_p_as_keep", "dropout_forward",
          "You use p as the probability of keeping a unit. Here (as in PyTorch) p is the "
          "probability of zeroing it: keep = rng.random(x.shape) < 1 - p, then divide by "
          "1 - p. (The lecture's p is the keep probability.)", _dropout_mutant("p_as_keep"))
_register("dropout_mask_drawn_differently", "dropout_forward",
          "Your mask keeps the units whose uniform draw is at least p: the right keep "
          "probability, but not the units the tests expect (rng.random(x.shape) > p does "
          "this, and so does rng.binomial(1, 1 - p, x.shape) when p >= 0.5). Draw the mask "
          "exactly as keep = rng.random(x.shape) < 1 - p, so that the same seed gives the "
          "same mask as the reference.", _dropout_mutant("mask_complement"))
_register("dropout_drops_in_eval", "dropout_forward",
          "Your function still drops units in evaluation mode. With training=False dropout "
          "is switched off: return a copy of x, unchanged, and draw no random numbers.",
          _dropout_mutant("drops_in_eval"))

_register("dropout_backward_no_mask", "dropout_backward",
          "Your dx does not apply the mask: the units dropped in the forward pass did not "
          "reach the output, so their gradient is zero. Multiply dout by the mask you kept "
          "in the cache, dx = keep * dout / (1 - p).", _dropout_backward_mutant("no_mask"))
_register("dropout_backward_no_scale", "dropout_backward",
          "Your dx is missing the factor 1/(1 - p). The forward pass multiplies the kept "
          "units by 1/(1 - p), so the backward pass must too: dx = keep * dout / (1 - p).",
          _dropout_backward_mutant("no_scale"))
_register("dropout_backward_p_as_keep", "dropout_backward",
          "Your dx divides by p instead of by the keep probability 1 - p: dx = keep * dout / "
          "(1 - p), the same factor as in the forward pass (p is the probability of "
          "zeroing).", _dropout_backward_mutant("p_as_keep"))
_register("dropout_backward_new_mask", "dropout_backward",
          "Your backward draws a new mask instead of reusing the forward's: the gradient "
          "flows through exactly the units the forward pass kept. Store the mask in the "
          "cache and use dx = keep * dout / (1 - p); draw no random numbers in the backward.",
          _dropout_backward_mutant("new_mask"))
_register("dropout_backward_eval_scaled", "dropout_backward",
          "In evaluation mode (training=False) the forward pass is the identity, so dx = "
          "dout; your backward still scales by 1/(1 - p). Store training in the cache and "
          "return dout unchanged when it is False.", _dropout_backward_mutant("eval_scaled"))


# ------------------------------------------------------------------------- vanilla dropout


def _vanilla_mutant(flaw: str) -> Callable:
    def vanilla_dropout_forward(x, p_keep, *, training=True, rng=None):
        keep_prob = 1 - p_keep if flaw == "p_as_drop" else p_keep
        if not training:
            if flaw == "not_scaled_at_test":
                return x.copy(), None
            if flaw == "divides_at_test":
                return x / x.dtype.type(keep_prob), None
            return x * x.dtype.type(keep_prob), None
        draws = _generator(rng).random(x.shape)
        # mask_complement: drop where the draw is below 1 - p_keep, i.e. other units
        keep = draws >= 1 - keep_prob if flaw == "mask_complement" else draws < keep_prob
        scale = 1.0 / keep_prob if flaw == "scaled_in_training" else 1.0
        return x * (keep.astype(x.dtype) * x.dtype.type(scale)), None

    return vanilla_dropout_forward


def _vanilla_backward_mutant(flaw: str) -> Callable:
    def vanilla_dropout_backward(dout, x, p_keep, *, training=True, rng=None):
        if not training:
            return dout.copy() if flaw == "eval_not_scaled" else dout * dout.dtype.type(p_keep)
        keep = _generator(rng).random(x.shape) < p_keep
        dx = dout.copy() if flaw == "no_mask" else dout * keep.astype(dout.dtype)
        return dx / dout.dtype.type(p_keep) if flaw == "scaled_in_training" else dx

    return vanilla_dropout_backward


_register("vanilla_dropout_scaled_in_training", "vanilla_dropout_forward",
          "You divide the kept units by p_keep during training: that is inverted dropout. "
          "Vanilla dropout only multiplies by the mask while training, out = keep * x, and "
          "does the scaling at test time instead.", _vanilla_mutant("scaled_in_training"))
_register("vanilla_dropout_not_scaled_at_test", "vanilla_dropout_forward",
          "Your evaluation output is not scaled. In vanilla dropout the training output has "
          "expectation p_keep * x, so at test time (training=False) return p_keep * x.",
          _vanilla_mutant("not_scaled_at_test"))
_register("vanilla_dropout_divides_at_test", "vanilla_dropout_forward",
          "At test time you divide by p_keep. Multiply instead: out = p_keep * x is the "
          "expected training output, since each unit survives with probability p_keep.",
          _vanilla_mutant("divides_at_test"))
_register("vanilla_dropout_p_keep_as_drop", "vanilla_dropout_forward",
          "You use p_keep as the probability of dropping a unit. p_keep (the lecture's p) is "
          "the probability of keeping it: keep = rng.random(x.shape) < p_keep, and the test "
          "output is p_keep * x.", _vanilla_mutant("p_as_drop"))
_register("vanilla_dropout_mask_drawn_differently", "vanilla_dropout_forward",
          "Your mask keeps the units whose uniform draw is at least 1 - p_keep: the right "
          "keep probability, but not the units the tests expect (rng.random(x.shape) > 1 - "
          "p_keep does this, and so does rng.binomial(1, p_keep, x.shape) when p_keep <= "
          "0.5). Draw the mask exactly as keep = rng.random(x.shape) < p_keep.",
          _vanilla_mutant("mask_complement"))

_register("vanilla_dropout_backward_no_mask", "vanilla_dropout_backward",
          "Your dx does not apply the mask: a dropped unit did not reach the output, so its "
          "gradient is zero. In training, dx = keep * dout with the mask of the forward pass.",
          _vanilla_backward_mutant("no_mask"))
_register("vanilla_dropout_backward_eval_not_scaled", "vanilla_dropout_backward",
          "In evaluation mode the vanilla forward pass is out = p_keep * x, so dx = p_keep * "
          "dout; your backward returns dout unscaled.",
          _vanilla_backward_mutant("eval_not_scaled"))
_register("vanilla_dropout_backward_scaled", "vanilla_dropout_backward",
          "Your dx divides by p_keep, but the vanilla forward pass does not scale while "
          "training (out = keep * x): dx = keep * dout.",
          _vanilla_backward_mutant("scaled_in_training"))


# ------------------------------------------------------------------ L2 penalty, weight decay


def _l2_mutant(flaw: str) -> Callable:
    def l2_penalty(w, weight_decay):
        w64 = w.astype(np.float64)
        if flaw == "norm_not_squared":
            total = float(np.sqrt(np.sum(w64 * w64)))
        elif flaw == "mean":
            total = float(np.mean(w64 * w64))
        else:
            total = float(np.sum(w64 * w64))
        half = 1.0 if flaw == "no_half" else 0.5
        factor = 2.0 if flaw == "grad_doubled" else 1.0
        return half * weight_decay * total, w * w.dtype.type(factor * weight_decay)

    return l2_penalty


def _weight_decay_mutant(flaw: str) -> Callable:
    def weight_decay_step(w, lr, weight_decay):
        shrink = weight_decay if flaw == "no_lr" else lr * weight_decay
        factor = w.dtype.type(1 + shrink if flaw == "wrong_sign" else 1 - shrink)
        if flaw == "in_place":
            w *= factor
            return w
        return w * factor

    return weight_decay_step


_register("l2_no_half", "l2_penalty",
          "Your penalty is weight_decay * sum(w**2): it lacks the factor 1/2. The penalty is "
          "(weight_decay / 2) * sum(w**2), whose gradient is exactly weight_decay * w (the "
          "term torch.optim adds to the gradient for weight_decay=...).",
          _l2_mutant("no_half"))
_register("l2_grad_doubled", "l2_penalty",
          "Your gradient is 2 * weight_decay * w. With the factor 1/2 in the penalty, "
          "(weight_decay / 2) * sum(w**2), the 2 of the derivative cancels: grad = "
          "weight_decay * w.", _l2_mutant("grad_doubled"))
_register("l2_norm_not_squared", "l2_penalty",
          "Your penalty uses the norm of w, not its square (np.linalg.norm(w) is "
          "sqrt(sum(w**2))). The L2 penalty is (weight_decay / 2) * sum(w**2).",
          _l2_mutant("norm_not_squared"))
_register("l2_mean_instead_of_sum", "l2_penalty",
          "Your penalty averages the squared weights (np.mean) instead of summing them: the "
          "L2 penalty is (weight_decay / 2) * sum(w**2), over every element of w.",
          _l2_mutant("mean"))

_register("weight_decay_wrong_sign", "weight_decay_step",
          "Your step makes the weights grow: decay shrinks them toward zero, new_w = w - lr * "
          "weight_decay * w = (1 - lr * weight_decay) * w.", _weight_decay_mutant("wrong_sign"))
_register("weight_decay_no_lr", "weight_decay_step",
          "Your step forgets the learning rate: each step shrinks the weights by the factor "
          "1 - lr * weight_decay, not 1 - weight_decay (the decay is part of the gradient "
          "step, so it is multiplied by lr like the rest).", _weight_decay_mutant("no_lr"))
_register("weight_decay_in_place", "weight_decay_step",
          "Your function shrinks the caller's w in place (w *= ...). Return a new array, "
          "new_w = w * (1 - lr * weight_decay), and leave w unchanged.",
          _weight_decay_mutant("in_place"))


# ------------------------------------------------------------------------ graded functions


def _dropout_cases():
    rng = np.random.default_rng(7)
    x5 = rng.standard_normal((6, 5))
    return [((x5,), {"p": 0.3, "rng": np.random.default_rng(11)}),
            ((x5,), {"p": 0.3, "training": False, "rng": 5}),
            ((x5.astype(np.float32),), {"p": 0.6, "rng": np.random.default_rng(12)})]


def _dropout_backward_cases():
    rng = np.random.default_rng(8)
    x, dout = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    return [((dout, x), {"p": 0.3, "rng": 13}),
            ((dout, x), {"p": 0.3, "training": False, "rng": 13}),
            ((dout.astype(np.float32), x.astype(np.float32)), {"p": 0.6, "rng": 14})]


def _vanilla_cases():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 4))
    return [((x, 0.7), {"rng": 15}), ((x, 0.7), {"training": False, "rng": 15}),
            ((x.astype(np.float32), 0.4), {"rng": 16})]


def _vanilla_backward_cases():
    rng = np.random.default_rng(10)
    x, dout = rng.standard_normal((3, 6)), rng.standard_normal((3, 6))
    return [((dout, x, 0.7), {"rng": 17}), ((dout, x, 0.7), {"training": False, "rng": 17})]


def _l2_cases():
    rng = np.random.default_rng(11)
    return [((rng.standard_normal((4, 3)), 0.1), {}),
            ((rng.standard_normal(7).astype(np.float32), 0.03), {})]


def _weight_decay_cases():
    rng = np.random.default_rng(12)
    return [((rng.standard_normal((3, 4)), 0.1, 0.5), {}),
            ((rng.standard_normal(5).astype(np.float32), 0.2, 0.1), {})]


_graded("dropout_forward", _ref.dropout_forward, _dropout_mutant("none"), _dropout_cases)
_graded("dropout_backward", backward_through(_ref.dropout_forward, _ref.dropout_backward),
        _dropout_backward_mutant("none"), _dropout_backward_cases, returns="dx")
_graded("vanilla_dropout_forward", _ref.vanilla_dropout_forward, _vanilla_mutant("none"),
        _vanilla_cases)
_graded("vanilla_dropout_backward",
        backward_through(_ref.vanilla_dropout_forward, _ref.vanilla_dropout_backward),
        _vanilla_backward_mutant("none"), _vanilla_backward_cases, returns="dx")
_graded("l2_penalty", _ref.l2_penalty, _l2_mutant("none"), _l2_cases,
        returns=("loss", "grad"))
_graded("weight_decay_step", _ref.weight_decay_step, _weight_decay_mutant("none"),
        _weight_decay_cases, returns="new_w")
