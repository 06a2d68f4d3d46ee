"""Common mistakes in batch, layer and group normalization and in folding BN into a layer.

Each factory returns an implementation of one function with one flaw; the flaws are
isolated (everything else is right) so that a mistake is recognized by what it breaks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from normcore import normalization as _ref
from normcore.grading import DTYPE_MESSAGE, _graded, _register, backward_through


def _channel_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _channel_shape(x):
    return (1, -1) + (1,) * (x.ndim - 2)


def _bn_forward_mutant(flaw: str) -> Callable:
    def batch_norm_forward(x, gamma, beta, running_mean=None, running_var=None, *,
                           training=True, momentum=0.1, eps=1e-5):
        axes, shape = _channel_axes(x), _channel_shape(x)
        m = x.size // x.shape[1]
        mean_c = x.mean(axis=axes)
        var_c = x.var(axis=axes)
        if training and running_mean is not None and flaw != "running_not_updated":
            keep = momentum if flaw == "momentum_inverted" else 1.0 - momentum
            unbiased = var_c if flaw == "biased_running_var" else var_c * (m / (m - 1))
            running_mean *= keep
            running_mean += (1.0 - keep) * mean_c
            running_var *= keep
            running_var += (1.0 - keep) * unbiased
        use_batch = {"running_in_training": False, "batch_in_eval": True}.get(flaw, training)
        if use_batch:
            norm_axes = {"per_position": (0,), "per_sample": tuple(range(1, x.ndim))}.get(
                flaw, axes)
            mu = x.mean(axis=norm_axes, keepdims=True)
            var = x.var(axis=norm_axes, keepdims=True,
                        ddof=1 if flaw == "unbiased_batch_var" else 0)
        else:
            mu, var = running_mean.reshape(shape), running_var.reshape(shape)
        if flaw == "updated_in_eval" and not training:
            running_mean *= 1.0 - momentum
            running_mean += momentum * mean_c
            running_var *= 1.0 - momentum
            running_var += momentum * var_c * (m / (m - 1))
        if flaw == "eps_outside_sqrt":
            xhat = (x - mu) / (np.sqrt(var) + eps)
        else:
            xhat = (x - mu) / np.sqrt(var + eps)
        return gamma.reshape(shape) * xhat + beta.reshape(shape), None

    return batch_norm_forward


def _bn_backward_mutant(flaw: str) -> Callable:
    def batch_norm_backward(dout, x, gamma, beta, running_mean=None, running_var=None, *,
                            training=True, momentum=0.1, eps=1e-5):
        axes, shape = _channel_axes(x), _channel_shape(x)
        if training:
            mu = x.mean(axis=axes, keepdims=True)
            var = x.var(axis=axes, keepdims=True)
        else:
            mu, var = running_mean.reshape(shape), running_var.reshape(shape)
        inv_std = 1.0 / np.sqrt(var + eps)
        xhat = (x - mu) * inv_std
        dbeta = dout.sum(axis=axes)
        dgamma = (dout * (x if flaw == "dgamma_uses_x" else xhat)).sum(axis=axes)
        g = dout * gamma.reshape(shape)
        dx = g * inv_std
        if training and flaw not in ("no_stat_terms", "no_mean_term"):
            dx = dx - g.mean(axis=axes, keepdims=True) * inv_std
        if training and flaw not in ("no_stat_terms", "no_var_term"):
            dx = dx - xhat * (g * xhat).mean(axis=axes, keepdims=True) * inv_std
        return dx, dgamma, dbeta

    return batch_norm_backward


def _ln_axes(x, gamma):
    return tuple(range(x.ndim - gamma.ndim, x.ndim))


def _ln_forward_mutant(flaw: str) -> Callable:
    def layer_norm_forward(x, gamma, beta, *, eps=1e-5):
        axes = {"batch_axis": (0,), "last_axis_only": (-1,)}.get(flaw, _ln_axes(x, gamma))
        mu = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True, ddof=1 if flaw == "unbiased_var" else 0)
        if flaw == "eps_outside_sqrt":
            xhat = (x - mu) / (np.sqrt(var) + eps)
        else:
            xhat = (x - mu) / np.sqrt(var + eps)
        return gamma * xhat + beta, None

    return layer_norm_forward


def _ln_backward_mutant(flaw: str) -> Callable:
    def layer_norm_backward(dout, x, gamma, beta, *, eps=1e-5):
        axes = _ln_axes(x, gamma)
        lead = tuple(range(x.ndim - gamma.ndim))
        mu = x.mean(axis=axes, keepdims=True)
        inv_std = 1.0 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
        xhat = (x - mu) * inv_std
        g = dout * gamma
        dx = g * inv_std
        if flaw != "no_stat_terms":
            dx = dx - (g.mean(axis=axes, keepdims=True)
                       + xhat * (g * xhat).mean(axis=axes, keepdims=True)) * inv_std
        return dx, (dout * xhat).sum(axis=lead), dout.sum(axis=lead)

    return layer_norm_backward


def _gn_groups(x, num_groups, flaw):
    """Grouped view (N, G, M) of x and the function mapping it back to x's layout."""
    n, c = x.shape[:2]
    if flaw == "per_channel":
        num_groups = c
    if flaw == "strided_groups":
        # Channel c in group c % G: interleaved instead of consecutive channels.
        v = x.reshape(n, c // num_groups, num_groups, -1).transpose(0, 2, 1, 3)
        return v.reshape(n, num_groups, -1), lambda y: (
            y.reshape(n, num_groups, c // num_groups, -1).transpose(0, 2, 1, 3).reshape(x.shape))
    return x.reshape(n, num_groups, -1), lambda y: y.reshape(x.shape)


def _gn_forward_mutant(flaw: str) -> Callable:
    def group_norm_forward(x, num_groups, gamma, beta, *, eps=1e-5):
        xg, back = _gn_groups(x, num_groups, flaw)
        mu = xg.mean(axis=2, keepdims=True)
        var = xg.var(axis=2, keepdims=True)
        if flaw == "eps_outside_sqrt":
            xhat = (xg - mu) / (np.sqrt(var) + eps)
        else:
            xhat = (xg - mu) / np.sqrt(var + eps)
        shape = _channel_shape(x)
        return gamma.reshape(shape) * back(xhat) + beta.reshape(shape), None

    return group_norm_forward


def _gn_backward_mutant(flaw: str) -> Callable:
    def group_norm_backward(dout, x, num_groups, gamma, beta, *, eps=1e-5):
        shape, axes = _channel_shape(x), _channel_axes(x)
        xg, back = _gn_groups(x, num_groups, None)
        inv_std = 1.0 / np.sqrt(xg.var(axis=2, keepdims=True) + eps)
        xhat_g = (xg - xg.mean(axis=2, keepdims=True)) * inv_std
        xhat = back(xhat_g)
        gg = (dout * gamma.reshape(shape)).reshape(xg.shape)
        dx = gg * inv_std
        if flaw != "no_stat_terms":
            dx = dx - (gg.mean(axis=2, keepdims=True)
                       + xhat_g * (gg * xhat_g).mean(axis=2, keepdims=True)) * inv_std
        return back(dx), (dout * xhat).sum(axis=axes), dout.sum(axis=axes)

    return group_norm_backward


def _fold_mutant(flaw: str) -> Callable:
    def fold_batch_norm(weight, bias, gamma, beta, running_mean, running_var, *, eps=1e-5):
        std = np.sqrt(running_var + eps)
        scale = gamma * std if flaw == "multiplies_by_std" else gamma / std
        if bias is None:  # np.zeros(C) is float64 whatever the inputs
            b = np.zeros(len(running_mean)) if flaw == "bias_none_float64" else np.zeros_like(
                running_mean)
        else:
            b = bias
        if flaw == "bias_not_scaled":
            new_bias = b - scale * running_mean + beta
        elif flaw == "forgets_mean":
            new_bias = scale * b + beta
        else:
            new_bias = scale * (b - running_mean) + beta
        return weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1)), new_bias

    return fold_batch_norm


_BN_FWD = "batch_norm_forward"
_BN_BWD = ("batch_norm_backward", "batch_norm_backward_alt")
_EPS_MSG = ("eps is added outside the square root: divide by sqrt(var + eps), not by "
            "sqrt(var) + eps.")
_NO_STAT_MSG = ("Your dx treats the mean and the variance as constants. In training they "
                "depend on every input, so dx = (g - mean(g) - xhat * mean(g * xhat)) / "
                "sqrt(var + eps) with g = gamma * dout: the two subtracted terms are the paths "
                "through the mean and through the variance.")

_register("bn_unbiased_batch_var", _BN_FWD,
          "You normalize the batch with the unbiased variance (dividing by m - 1). The batch "
          "is normalized with the biased variance: divide by m, the number of values per "
          "channel (np.var's default ddof=0).", _bn_forward_mutant("unbiased_batch_var"))
_register("bn_biased_running_var", _BN_FWD,
          "Your running_var uses the biased batch variance; running statistics use the "
          "unbiased one (divide by m - 1: multiply the batch variance by m / (m - 1)).",
          _bn_forward_mutant("biased_running_var"))
_register("bn_eps_outside_sqrt", _BN_FWD, _EPS_MSG, _bn_forward_mutant("eps_outside_sqrt"))
_register("bn_stats_per_position", _BN_FWD,
          "Your statistics are computed over the batch axis only, one per channel and "
          "position. Spatial batch norm shares one mean and variance per channel over the "
          "batch and all spatial axes: reduce over axes (0, 2, 3, ...).",
          _bn_forward_mutant("per_position"))
_register("bn_stats_per_sample", _BN_FWD,
          "You normalize over the wrong axes: each sample over its features (that is layer "
          "norm). Batch norm computes one mean and variance per channel, over the batch axis "
          "0 and the spatial axes.", _bn_forward_mutant("per_sample"))
_register("bn_running_not_updated", _BN_FWD,
          "running_mean and running_var are not updated in training mode. Update the "
          "caller's arrays in place (running_mean *= 1 - momentum; running_mean += momentum "
          "* mean): assigning a new array to the name inside the function changes nothing "
          "outside it.", _bn_forward_mutant("running_not_updated"))
_register("bn_momentum_inverted", _BN_FWD,
          "The momentum convention is inverted: momentum is the weight of the new batch, "
          "running = (1 - momentum) * running + momentum * batch_statistic (PyTorch's "
          "convention, momentum=0.1; the lecture's 0.9 weights the old value).",
          _bn_forward_mutant("momentum_inverted"))
_register("bn_running_stats_in_training", _BN_FWD,
          "You normalize with the running statistics during training. In training mode "
          "normalize with the statistics of the current batch; the running statistics are "
          "only updated then, and used in evaluation mode.",
          _bn_forward_mutant("running_in_training"))
_register("bn_batch_stats_in_eval", _BN_FWD,
          "In evaluation mode (training=False) you normalize with the statistics of the "
          "batch. Use running_mean and running_var instead, so that a sample's output does "
          "not depend on the rest of the batch.", _bn_forward_mutant("batch_in_eval"))
_register("bn_running_updated_in_eval", _BN_FWD,
          "Your function updates running_mean and running_var in evaluation mode "
          "(training=False); they must only change while training.",
          _bn_forward_mutant("updated_in_eval"))
_register("bn_backward_no_stat_terms", _BN_BWD, _NO_STAT_MSG,
          _bn_backward_mutant("no_stat_terms"))
_register("bn_backward_no_var_term", _BN_BWD,
          "Your dx is missing the path through the variance: subtract "
          "xhat * mean(g * xhat) / sqrt(var + eps), with g = gamma * dout and the mean over "
          "the batch (and spatial) axes.", _bn_backward_mutant("no_var_term"))
_register("bn_backward_no_mean_term", _BN_BWD,
          "Your dx is missing the path through the mean: subtract mean(g) / sqrt(var + eps), "
          "with g = gamma * dout and the mean over the batch (and spatial) axes.",
          _bn_backward_mutant("no_mean_term"))
_register("bn_backward_dgamma_uses_x", _BN_BWD,
          "dgamma uses x instead of the normalized xhat: dgamma = sum(dout * xhat) over the "
          "batch (and spatial) axes.", _bn_backward_mutant("dgamma_uses_x"))

_register("ln_over_batch_axis", "layer_norm_forward",
          "You normalize over the batch axis. Layer norm normalizes each sample on its own, "
          "over its trailing gamma.ndim axes: take mean and variance over those axes with "
          "keepdims=True.", _ln_forward_mutant("batch_axis"))
_register("ln_last_axis_only", "layer_norm_forward",
          "You normalize over the last axis only. Layer norm normalizes over all trailing "
          "gamma.ndim axes (the whole normalized_shape = gamma.shape), e.g. axis=(-2, -1) "
          "when gamma is 2-d.", _ln_forward_mutant("last_axis_only"))
_register("ln_unbiased_var", "layer_norm_forward",
          "You normalize with the unbiased variance (dividing by M - 1); layer norm uses the "
          "biased variance, dividing by the number M of normalized values.",
          _ln_forward_mutant("unbiased_var"))
_register("ln_eps_outside_sqrt", "layer_norm_forward", _EPS_MSG,
          _ln_forward_mutant("eps_outside_sqrt"))
_register("ln_backward_no_stat_terms", "layer_norm_backward", _NO_STAT_MSG.replace(
          "In training they depend", "They depend").replace("every input", "every input of "
          "the sample"), _ln_backward_mutant("no_stat_terms"))

_register("gn_strided_groups", "group_norm_forward",
          "Your groups take every G-th channel (channel c in group c % G). Group norm groups "
          "consecutive channels: reshape x to (N, G, C // G, *spatial) and reduce over every "
          "axis after G.", _gn_forward_mutant("strided_groups"))
_register("gn_per_channel", "group_norm_forward",
          "You normalize each channel on its own (instance norm) and ignore num_groups: "
          "statistics are shared by the C // num_groups channels of a group.",
          _gn_forward_mutant("per_channel"))
_register("gn_eps_outside_sqrt", "group_norm_forward", _EPS_MSG,
          _gn_forward_mutant("eps_outside_sqrt"))
_register("gn_backward_no_stat_terms", "group_norm_backward", _NO_STAT_MSG.replace(
          "In training they depend", "They depend").replace("every input", "every input of "
          "the group"), _gn_backward_mutant("no_stat_terms"))

_register("fold_bias_not_scaled", "fold_batch_norm",
          "Your folded bias does not scale the layer's bias: b' = s * (b - running_mean) + "
          "beta with s = gamma / sqrt(running_var + eps); the whole pre-activation is scaled.",
          _fold_mutant("bias_not_scaled"))
_register("fold_forgets_mean", "fold_batch_norm",
          "Your folded bias forgets to subtract running_mean: b' = s * (b - running_mean) + "
          "beta.", _fold_mutant("forgets_mean"))
_register("fold_multiplies_by_std", "fold_batch_norm",
          "You multiply by the standard deviation; batch norm divides by it: "
          "s = gamma / sqrt(running_var + eps).", _fold_mutant("multiplies_by_std"))
_register("fold_bias_none_float64", "fold_batch_norm",
          "With bias=None your folded bias is float64 for float32 inputs: np.zeros(C) is "
          "float64 whatever the inputs. " + DTYPE_MESSAGE, _fold_mutant("bias_none_float64"))


# -------------------------------------------------------------------- graded functions


def _inputs(seed=7):
    rng = np.random.default_rng(seed)
    x = 2 * rng.standard_normal((4, 3, 5, 2)) + 1
    c3 = [rng.standard_normal(3) for _ in range(3)] + [rng.random(3) + 0.5]
    return rng, x, c3


def _bn_forward_cases():
    _, x, c3 = _inputs()
    args = (x, c3[0], c3[1], c3[2], c3[3])
    args32 = tuple(a.astype(np.float32) for a in args)
    return [(args, {"training": True, "momentum": 0.3, "eps": 0.05}),
            (args, {"training": False, "momentum": 0.3, "eps": 0.05}),
            (args32, {"training": True, "momentum": 0.3, "eps": 0.05})]


def _bn_backward_cases():
    rng, x, c3 = _inputs()
    dout = rng.standard_normal(x.shape)
    return [((dout, x, c3[0], c3[1]), {"eps": 0.05}),
            ((dout, x, c3[0], c3[1], c3[2], c3[3]), {"training": False, "eps": 0.05})]


def _ln_cases(backward):
    def cases():
        rng, x, _ = _inputs()
        g, b = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
        lead = (rng.standard_normal(x.shape),) if backward else ()
        return [((*lead, x, g, b), {"eps": 0.05})]

    return cases


def _gn_cases(backward):
    def cases():
        rng, _, _ = _inputs()
        x6 = rng.standard_normal((2, 6, 3))
        g, b = rng.standard_normal(6), rng.standard_normal(6)
        lead = (rng.standard_normal(x6.shape),) if backward else ()
        return [((*lead, x6, 3, g, b), {"eps": 0.05})]

    return cases


def _fold_cases():
    rng, _, c3 = _inputs()
    w = rng.standard_normal((3, 2, 3, 3))
    f32 = [c.astype(np.float32) for c in c3]
    return [((w, rng.standard_normal(3), *c3), {"eps": 0.05}),
            ((w, None, *c3), {"eps": 0.05}),
            ((w.astype(np.float32), None, *f32), {"eps": 0.05})]


_GRADS = ("dx", "dgamma", "dbeta")
_graded("batch_norm_forward", _ref.batch_norm_forward, _bn_forward_mutant("none"),
        _bn_forward_cases)
_graded("batch_norm_backward",
        backward_through(_ref.batch_norm_forward, _ref.batch_norm_backward),
        _bn_backward_mutant("none"), _bn_backward_cases, returns=_GRADS)
_graded("batch_norm_backward_alt",
        backward_through(_ref.batch_norm_forward, _ref.batch_norm_backward_alt),
        _bn_backward_mutant("none"), _bn_backward_cases, returns=_GRADS)
_graded("layer_norm_forward", _ref.layer_norm_forward, _ln_forward_mutant("none"),
        _ln_cases(False))
_graded("layer_norm_backward",
        backward_through(_ref.layer_norm_forward, _ref.layer_norm_backward),
        _ln_backward_mutant("none"), _ln_cases(True), returns=_GRADS)
_graded("group_norm_forward", _ref.group_norm_forward, _gn_forward_mutant("none"),
        _gn_cases(False))
_graded("group_norm_backward",
        backward_through(_ref.group_norm_forward, _ref.group_norm_backward),
        _gn_backward_mutant("none"), _gn_cases(True), returns=_GRADS)
_graded("fold_batch_norm", _ref.fold_batch_norm, _fold_mutant("none"), _fold_cases,
        returns=("weight", "bias"))
