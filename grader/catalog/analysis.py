"""Common mistakes in weight normalization, centered weight normalization and the analysis tools.

Each factory returns an implementation of one graded function with one flaw (or none); the
flaws are isolated, so that a mistake is recognized by what it breaks. A backward mutant has
the signature of :func:`normcore.grading.backward_through`'s composite,
``(dw, v, g, *, eps=0.0)``: it computes its own forward and then makes its mistake.

The references of the analysis functions are imported from :mod:`normcore.analysis` when they
are first called, because that module imports torch, which ``normcore.grading`` (imported by
every exercise notebook) should not pay for.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from normcore import weightnorm as _ref
from normcore.grading import _graded, _register, backward_through


def _rows(a: np.ndarray) -> np.ndarray:
    """One row per output unit: ``(out, everything else)``."""
    return a.reshape(a.shape[0], -1)


def _row_norm(sq, eps, flaw):
    """``sqrt(sq + eps)``, or ``sqrt(sq) + eps`` for the flaw ``eps_outside_sqrt``."""
    return np.sqrt(sq) + eps if flaw == "eps_outside_sqrt" else np.sqrt(sq + eps)


# ------------------------------------------------------------------- weight normalization


def _wn_forward_mutant(flaw: str) -> Callable:
    def weight_norm_forward(v, g, *, eps=0.0):
        if flaw == "axis1_only":  # a conv kernel normalized over its input channels only
            norm = np.sqrt(np.sum(v * v, axis=1, keepdims=True) + eps)
            return v / norm * g.reshape((-1,) + (1,) * (v.ndim - 1)), None
        rows = _rows(v)
        if flaw == "whole_matrix":
            norm = np.sqrt(np.sum(rows * rows) + eps)
            return (rows / norm * g[:, None]).reshape(v.shape), None
        norm = _row_norm(np.sum(rows * rows, axis=1), eps, flaw)
        direction = (rows / norm[:, None]).reshape(v.shape)
        if flaw == "g_last_axis":  # g * direction: NumPy aligns g with the LAST axis
            return g * direction, None
        return direction * g.reshape((-1,) + (1,) * (v.ndim - 1)), None

    return weight_norm_forward


def _wn_backward_mutant(flaw: str) -> Callable:
    def weight_norm_backward(dw, v, g, *, eps=0.0):
        rows, d = _rows(v), _rows(dw)
        norm = np.sqrt(np.sum(rows * rows, axis=1) + eps)
        proj = np.sum(d * rows, axis=1)  # <v_i, dw_i>
        dg = proj if flaw == "dg_uses_v" else proj / norm
        scale = (1.0 if flaw == "no_g" else g) / norm
        if flaw == "no_projection":
            dv = scale[:, None] * d
        elif flaw == "projection_scale":  # g/|v| dw - g u (u . dw): 1/|v| missing on the 2nd term
            dv = scale[:, None] * d - (g * proj / norm**2)[:, None] * rows
        else:
            dv = scale[:, None] * (d - rows * (proj / norm**2)[:, None])
        return dv.reshape(v.shape), dg

    return weight_norm_backward


_register("wn_norm_whole_matrix", "weight_norm_forward",
          "You divide by the norm of the whole matrix v. Weight normalization gives every "
          "output unit its own length: divide each row v[i] by its own norm, "
          "norm_i = sqrt(sum of v[i]**2 over every axis after the first + eps), then multiply "
          "by g[i].", _wn_forward_mutant("whole_matrix"))
_register("wn_norm_axis1_only", "weight_norm_forward",
          "For a convolution kernel v of shape (out, in, kh, kw) you normalize over axis 1 "
          "only, i.e. separately for every kernel position. One output unit is the whole "
          "v[i]: take the norm over ALL axes after the first (reshape v to (out, -1) first).",
          _wn_forward_mutant("axis1_only"))
_register("wn_g_last_axis", "weight_norm_forward",
          "g is applied along the wrong axis: g * (v / norm) lines g up with the LAST axis of "
          "v (the inputs), not with the output units. Reshape it to g[:, None] (or "
          "g.reshape(-1, 1, ..., 1) for a convolution kernel) so that g[i] scales row v[i].",
          _wn_forward_mutant("g_last_axis"))
_register("wn_eps_outside_sqrt", "weight_norm_forward",
          "eps is added outside the square root. Here the norm is sqrt(sum(v[i]**2) + eps), "
          "with eps inside the square root.", _wn_forward_mutant("eps_outside_sqrt"))

_register("wn_backward_no_projection", "weight_norm_backward",
          "Your dv lacks the projection term: dv = g/|v| * dw is only the gradient through the "
          "numerator of v/|v|. The norm depends on v too, which removes the component of dw "
          "along v: dv_i = g_i/|v_i| * (dw_i - u_i * <u_i, dw_i>) with u_i = v_i/|v_i|.",
          _wn_backward_mutant("no_projection"))
_register("wn_backward_dg_uses_v", "weight_norm_backward",
          "Your dg is <v_i, dw_i>, the inner product with v itself. w_i = g_i * v_i/|v_i| is "
          "linear in g_i with coefficient the unit direction, so dg_i = <v_i, dw_i> / |v_i|.",
          _wn_backward_mutant("dg_uses_v"))
_register("wn_backward_projection_scale", "weight_norm_backward",
          "Your projection term is missing a factor 1/|v_i|: the factor g_i/|v_i| multiplies "
          "the whole bracket, dv_i = g_i/|v_i| * (dw_i - u_i * <u_i, dw_i>) with u_i = "
          "v_i/|v_i|, not only its first term.", _wn_backward_mutant("projection_scale"))
_register("wn_backward_no_g", "weight_norm_backward",
          "Your dv does not depend on g: w_i = g_i * v_i/|v_i| is multiplied by g_i, so dv_i "
          "is too, dv_i = g_i/|v_i| * (dw_i - u_i * <u_i, dw_i>).", _wn_backward_mutant("no_g"))


# ---------------------------------------------------------- centered weight normalization


def _cwn_forward_mutant(flaw: str) -> Callable:
    def centered_weight_norm_forward(v, g, *, eps=0.0):
        rows = _rows(v)
        if flaw == "not_centered":
            centered = rows
        elif flaw == "center_over_outputs":
            centered = rows - rows.mean(axis=0, keepdims=True)
        else:
            centered = rows - rows.mean(axis=1, keepdims=True)
        measured = rows if flaw == "norm_of_uncentered" else centered
        norm = _row_norm(np.sum(measured * measured, axis=1), eps, flaw)
        return (centered * (g / norm)[:, None]).reshape(v.shape), None

    return centered_weight_norm_forward


def _cwn_backward_mutant(flaw: str) -> Callable:
    def centered_weight_norm_backward(dw, v, g, *, eps=0.0):
        rows, d = _rows(v), _rows(dw)
        centered = rows - rows.mean(axis=1, keepdims=True)
        norm = np.sqrt(np.sum(centered * centered, axis=1) + eps)
        proj = np.sum(d * centered, axis=1)
        dg = np.sum(d * rows, axis=1) / norm if flaw == "dg_uncentered" else proj / norm
        if flaw == "no_projection":
            dc = (g / norm)[:, None] * d
        else:
            dc = (g / norm)[:, None] * (d - centered * (proj / norm**2)[:, None])
        dv = dc if flaw == "not_centered" else dc - dc.mean(axis=1, keepdims=True)
        return dv.reshape(v.shape), dg

    return centered_weight_norm_backward


_register("cwn_not_centered", "centered_weight_norm_forward",
          "Your rows are not centered: that is weight normalization. CWN first subtracts from "
          "each row v[i] its own mean (over every axis after the first), then divides the "
          "centered row by its norm and multiplies by g[i].", _cwn_forward_mutant("not_centered"))
_register("cwn_center_over_outputs", "centered_weight_norm_forward",
          "You center over the output units (v - v.mean(axis=0)). CWN centers each output "
          "unit's weight vector: subtract from row v[i] the mean of that row, taken over every "
          "axis after the first (rows.mean(axis=1, keepdims=True) with rows = v.reshape(out, "
          "-1)).", _cwn_forward_mutant("center_over_outputs"))
_register("cwn_norm_of_uncentered", "centered_weight_norm_forward",
          "You divide the centered row by the norm of the uncentered row v[i]. Divide by the "
          "norm of the centered row, sqrt(sum((v[i] - mean_i)**2) + eps), so that every row "
          "of w has length |g[i]|.", _cwn_forward_mutant("norm_of_uncentered"))
_register("cwn_eps_outside_sqrt", "centered_weight_norm_forward",
          "eps is added outside the square root. Here the norm of a centered row is "
          "sqrt(sum((v[i] - mean_i)**2) + eps), with eps inside the square root.",
          _cwn_forward_mutant("eps_outside_sqrt"))

_register("cwn_backward_not_centered", "centered_weight_norm_backward",
          "Your dv stops at the centered weights: the centering v_i - mean(v_i) is part of "
          "the forward pass, so its backward subtracts from each row of the gradient its own "
          "mean (dv = dc - dc.mean(axis=1)). Every row of dv must sum to zero.",
          _cwn_backward_mutant("not_centered"))
_register("cwn_backward_no_projection", "centered_weight_norm_backward",
          "Your dv lacks the projection term of the normalization: with c_i the centered row "
          "and u_i = c_i/|c_i|, the gradient with respect to c_i is g_i/|c_i| * (dw_i - u_i * "
          "<u_i, dw_i>), which you then center.", _cwn_backward_mutant("no_projection"))
_register("cwn_backward_dg_uncentered", "centered_weight_norm_backward",
          "Your dg uses the uncentered v. w_i = g_i * u_i with u_i the CENTERED row divided "
          "by its norm, so dg_i = <u_i, dw_i> = <v_i - mean_i, dw_i> / |v_i - mean_i|.",
          _cwn_backward_mutant("dg_uncentered"))


# ------------------------------------------------------------- effective learning rate


def _elr_mutant(flaw: str) -> Callable:
    def effective_learning_rate(lr, w_norm):
        norms = np.asarray(w_norm, dtype=np.float64)
        if flaw == "not_squared":
            out = lr / norms
        elif flaw == "inverted":
            out = lr * norms**2
        else:
            out = lr / norms**2
        return float(out) if out.ndim == 0 else out

    return effective_learning_rate


_register("elr_not_squared", "effective_learning_rate",
          "You divide by the norm, not by its square. The gradient of a scale-invariant "
          "weight is the unit-sphere gradient divided by |w|, and the direction w/|w| moves "
          "by that step divided by |w| once more: eta_eff = lr / |w|**2.",
          _elr_mutant("not_squared"))
_register("elr_inverted", "effective_learning_rate",
          "You multiply by |w|**2. A larger weight gets a smaller gradient and turns more "
          "slowly, so the effective learning rate is lr / |w|**2.", _elr_mutant("inverted"))


# -------------------------------------------------------------------- equilibrium norm


def _eq_norm_mutant(flaw: str) -> Callable:
    def equilibrium_norm(lr, weight_decay, unit_grad_norm=1.0):
        grad2 = unit_grad_norm if flaw == "grad_not_squared" else unit_grad_norm**2
        if flaw == "approximation":
            x_star = math.sqrt(lr * grad2 / (2 * weight_decay))
        elif flaw == "decay_not_squared":
            x_star = math.sqrt(lr * grad2 / weight_decay)
        else:
            x_star = math.sqrt(lr * grad2 / (weight_decay * (2 - lr * weight_decay)))
        return x_star if flaw == "returns_squared" else math.sqrt(x_star)

    return equilibrium_norm


_register("eq_norm_returns_squared", "equilibrium_norm",
          "You return the fixed point x* of the recursion for x = |w|**2, i.e. the squared "
          "norm. Return the norm itself, |w*| = sqrt(x*).", _eq_norm_mutant("returns_squared"))
_register("eq_norm_approximation", "equilibrium_norm",
          "You return the small-lr*weight_decay approximation |w*|**2 = G sqrt(lr / (2 "
          "weight_decay)). The exact fixed point of x -> (1 - lr wd)**2 x + lr**2 G**2 / x is "
          "(x*)**2 = lr G**2 / (wd (2 - lr wd)); keep the factor 2 - lr * wd.",
          _eq_norm_mutant("approximation"))
_register("eq_norm_decay_not_squared", "equilibrium_norm",
          "Your decay shrinks |w|**2 by (1 - lr wd) per step, but the weight shrinks by that "
          "factor, so its squared norm shrinks by (1 - lr wd)**2: solve x = (1 - lr wd)**2 x "
          "+ lr**2 G**2 / x.", _eq_norm_mutant("decay_not_squared"))
_register("eq_norm_grad_not_squared", "equilibrium_norm",
          "unit_grad_norm G enters squared: the gradient step adds lr**2 |g|**2 = lr**2 G**2 "
          "/ |w|**2 to the squared norm, so (x*)**2 = lr G**2 / (wd (2 - lr wd)).",
          _eq_norm_mutant("grad_not_squared"))


# ---------------------------------------------------------------------- constraint count


def _constraint_mutant(flaw: str) -> Callable:
    def constraint_count(method, *, batch_size, num_channels, num_groups=None, height=1,
                         width=1, dataset_size=None):
        m, d = batch_size, num_channels
        per_group = {"ln": 1, "in": d}
        if flaw == "ln_in_swapped":
            per_group = {"ln": d, "in": 1}
        g = per_group.get(method, num_groups)
        kind = "gn" if method in ("ln", "in") else method
        if kind == "bn":
            zeta = 2 * d
        elif kind == "bw":
            zeta = {"bw_full_covariance": d * (d + 1),
                    "bw_no_means": d * (d + 1) // 2}.get(flaw, d * (d + 3) // 2)
        elif kind == "gn":
            zeta = 2 * g if flaw == "gn_per_batch" else 2 * g * m
        else:
            c = d // g if flaw == "gw_group_size" else g
            zeta = m * c * (c + 3) // 2
        if flaw == "times_spatial":
            zeta *= height * width
        if dataset_size is None:
            return zeta
        if flaw == "dataset_times_n":
            return zeta * dataset_size
        total = zeta * dataset_size
        return total // m if total % m == 0 else total / m

    return constraint_count


_register("constraints_bw_full_covariance", "constraint_count",
          "Your batch-whitening count treats all d*d covariance entries as equations. The "
          "covariance is symmetric, so whitening fixes d(d+1)/2 entries, plus d means: "
          "zeta = d(d+3)/2.", _constraint_mutant("bw_full_covariance"))
_register("constraints_bw_no_means", "constraint_count",
          "Your batch-whitening count has the d(d+1)/2 covariance entries but not the d "
          "means: whitening centers every channel too, so zeta = d + d(d+1)/2 = d(d+3)/2.",
          _constraint_mutant("bw_no_means"))
_register("constraints_gn_per_batch", "constraint_count",
          "Your group-norm count is per batch, not per sample. GN (and LN, IN) normalize "
          "every sample on its own: 2 equations (mean and variance) per group and per "
          "sample, zeta = 2 g m.", _constraint_mutant("gn_per_batch"))
_register("constraints_gw_group_size", "constraint_count",
          "Your group-whitening count uses the group size d/g. GW whitens, per sample, the g "
          "groups against each other: g means and g(g+1)/2 covariance entries per sample, "
          "zeta = m g (g+3)/2 with g = num_groups.", _constraint_mutant("gw_group_size"))
_register("constraints_times_spatial", "constraint_count",
          "Your count grows with height * width. The statistics are shared by all positions "
          "of a feature map, so the number of equations does not depend on the spatial size "
          "(only the number of output entries does).", _constraint_mutant("times_spatial"))
_register("constraints_dataset_times_n", "constraint_count",
          "Your data-set count multiplies the batch count by N. An epoch has N / m batches, "
          "so zeta(D) = zeta(X) * N / m (an int when m divides zeta * N, else a float).",
          _constraint_mutant("dataset_times_n"))
_register("constraints_ln_in_swapped", "constraint_count",
          "You swapped layer and instance normalization. LN is GN with ONE group (all "
          "channels of a sample share the statistics), IN is GN with d groups (one per "
          "channel): 2m and 2dm equations.", _constraint_mutant("ln_in_swapped"))


# ------------------------------------------------------------------------ graded functions


def _effective_learning_rate(lr, w_norm):
    from normcore import analysis

    return analysis.effective_learning_rate(lr, w_norm)


def _equilibrium_norm(lr, weight_decay, unit_grad_norm=1.0):
    from normcore import analysis

    return analysis.equilibrium_norm(lr, weight_decay, unit_grad_norm)


def _constraint_count(method, *, batch_size, num_channels, num_groups=None, height=1, width=1,
                      dataset_size=None):
    from normcore import analysis

    return analysis.constraint_count(method, batch_size=batch_size, num_channels=num_channels,
                                     num_groups=num_groups, height=height, width=width,
                                     dataset_size=dataset_size)


def _wn_cases():
    rng = np.random.default_rng(61)
    return [((np.array([[3.0, 4.0], [0.0, 2.0]]), np.array([2.0, -1.0])), {}),
            ((rng.standard_normal((3, 3)), rng.standard_normal(3)), {"eps": 0.5}),
            ((rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)), {}),
            ((rng.standard_normal((5, 6)).astype(np.float32),
              rng.standard_normal(5).astype(np.float32)), {"eps": 0.1})]


def _wn_backward_cases():
    rng = np.random.default_rng(62)
    return [((rng.standard_normal((3, 4)), rng.standard_normal((3, 4)),
              rng.standard_normal(3)), {}),
            ((rng.standard_normal((2, 3, 2, 2)), rng.standard_normal((2, 3, 2, 2)),
              rng.standard_normal(2)), {"eps": 0.3})]


def _cwn_cases():
    rng = np.random.default_rng(63)
    return [((np.array([[0.0, 0.0, 2.0, 2.0], [7.0, 1.0, 1.0, -1.0]]),
              np.array([2.0, 3.0])), {}),
            ((rng.standard_normal((4, 5)) + 1, rng.standard_normal(4)), {"eps": 0.5}),
            ((rng.standard_normal((3, 2, 3, 3)) + 1, rng.standard_normal(3)), {}),
            (((rng.standard_normal((5, 6)) + 1).astype(np.float32),
              rng.standard_normal(5).astype(np.float32)), {"eps": 0.1})]


def _cwn_backward_cases():
    rng = np.random.default_rng(64)
    return [((rng.standard_normal((3, 5)), rng.standard_normal((3, 5)) + 1,
              rng.standard_normal(3)), {}),
            ((rng.standard_normal((2, 3, 2, 2)), rng.standard_normal((2, 3, 2, 2)) + 1,
              rng.standard_normal(2)), {"eps": 0.3})]


def _elr_cases():
    return [((0.1, 2.0), {}), ((0.5, np.array([0.5, 1.0, 2.0, 4.0])), {}),
            ((0.05, np.array([[0.3, 3.0], [1.5, 7.0]])), {})]


def _eq_norm_cases():
    return [((0.8, 0.5, 4.0), {}), ((0.1, 5e-4), {}), ((0.3, 0.2, 2.5), {})]


def _constraint_cases():
    base = {"batch_size": 8, "num_channels": 6}
    return [(("bn",), {**base, "height": 4, "width": 4}),
            (("bw",), base), (("gn",), {**base, "num_groups": 3}),
            (("gw",), {**base, "num_groups": 2}), (("ln",), base), (("in",), base),
            (("bn",), {**base, "dataset_size": 100}),
            (("bw",), {**base, "dataset_size": 100})]


_graded("weight_norm_forward", _ref.weight_norm_forward, _wn_forward_mutant("none"),
        _wn_cases, returns=("w", None))
_graded("weight_norm_backward",
        backward_through(_ref.weight_norm_forward, _ref.weight_norm_backward),
        _wn_backward_mutant("none"), _wn_backward_cases, returns=("dv", "dg"))
_graded("centered_weight_norm_forward", _ref.centered_weight_norm_forward,
        _cwn_forward_mutant("none"), _cwn_cases, returns=("w", None))
_graded("centered_weight_norm_backward",
        backward_through(_ref.centered_weight_norm_forward, _ref.centered_weight_norm_backward),
        _cwn_backward_mutant("none"), _cwn_backward_cases, returns=("dv", "dg"))
_graded("effective_learning_rate", _effective_learning_rate, _elr_mutant("none"), _elr_cases,
        returns="eta_eff")
_graded("equilibrium_norm", _equilibrium_norm, _eq_norm_mutant("none"), _eq_norm_cases,
        returns="norm")
_graded("constraint_count", _constraint_count, _constraint_mutant("none"), _constraint_cases,
        returns="zeta")
