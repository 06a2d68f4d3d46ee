"""Common mistakes in weight initialization: fans, gains, Xavier/Glorot, He/Kaiming, orthogonal.

Each factory returns an implementation of one initializer with one flaw; the flaws are
isolated (everything else is right, including how the random numbers are drawn: float64
draws from ``rng``, then a cast to ``dtype``) so that a mistake is recognized by what it
breaks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from normcore import init as _ref
from normcore.grading import _graded, _register

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "sigmoid")


def _fans(shape, flaw=None) -> tuple[int, int]:
    shape = tuple(shape)
    receptive = 1 if flaw == "no_kernel" else math.prod(shape[2:])
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    return (fan_out, fan_in) if flaw == "swapped" else (fan_in, fan_out)


def _gain(nonlinearity, param=None, flaw=None) -> float:
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 1.0 if flaw == "tanh_one" else 5.0 / 3
    if nonlinearity == "relu":
        return 2.0 if flaw == "relu_two" else math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if flaw == "leaky_no_slope":
            return math.sqrt(2.0)
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + (slope if flaw == "slope_not_squared" else slope**2)))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity, got {nonlinearity!r}")


def _generator(rng) -> np.random.Generator:
    return np.random.default_rng(rng)  # a Generator is returned unchanged


# ----------------------------------------------------------------------------- factories


def _fan_mutant(flaw: str) -> Callable:
    def fan_in_and_fan_out(shape):
        return _fans(shape, flaw)

    return fan_in_and_fan_out


def _gain_mutant(flaw: str) -> Callable:
    def calculate_gain(nonlinearity, param=None):
        return _gain(nonlinearity, param, flaw)

    return calculate_gain


def _xavier_uniform_mutant(flaw: str) -> Callable:
    def xavier_uniform(shape, *, gain=1.0, rng, dtype=np.float64):
        shape, gen = tuple(shape), _generator(rng)
        fan_in, fan_out = _fans(shape, "no_kernel" if flaw == "no_kernel" else None)
        g = 1.0 if flaw == "no_gain" else gain
        std = g * math.sqrt(2.0 / (fan_in + fan_out))
        if flaw == "fan_in_only":
            std = g * math.sqrt(1.0 / fan_in)
        if flaw == "draws_normal":
            return (std * gen.standard_normal(shape)).astype(dtype)
        bound = std if flaw == "bound_is_std" else math.sqrt(3.0) * std
        return gen.uniform(-bound, bound, size=shape).astype(dtype)

    return xavier_uniform


def _xavier_normal_mutant(flaw: str) -> Callable:
    def xavier_normal(shape, *, gain=1.0, rng, dtype=np.float64):
        shape, gen = tuple(shape), _generator(rng)
        fan_in, fan_out = _fans(shape, "no_kernel" if flaw == "no_kernel" else None)
        g = 1.0 if flaw == "no_gain" else gain
        var = 2.0 / (fan_in + fan_out)
        std = {"std_is_bound": g * math.sqrt(3.0 * var), "fan_in_only": g / math.sqrt(fan_in),
               "var_as_std": g * var}.get(flaw, g * math.sqrt(var))
        if flaw == "draws_in_dtype":
            return (std * gen.standard_normal(shape, dtype=dtype)).astype(dtype)
        return (std * gen.standard_normal(shape)).astype(dtype)

    return xavier_normal


def _kaiming_std(shape, a, mode, nonlinearity, flaw) -> float:
    fan_in, fan_out = _fans(shape)
    fan = fan_out if mode == "fan_out" and flaw != "mode_ignored" else fan_in
    if flaw == "no_gain":
        gain = 1.0
    elif flaw == "relu_gain_always":
        gain = math.sqrt(2.0)
    elif flaw == "slope_ignored":
        gain = _gain(nonlinearity)  # the negative slope a is not passed on
    else:
        gain = _gain(nonlinearity, a)
    return gain / math.sqrt(fan)


def _kaiming_uniform_mutant(flaw: str) -> Callable:
    def kaiming_uniform(shape, *, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng,
                        dtype=np.float64):
        shape, gen = tuple(shape), _generator(rng)
        std = _kaiming_std(shape, a, mode, nonlinearity, flaw)
        bound = std if flaw == "bound_is_std" else math.sqrt(3.0) * std
        return gen.uniform(-bound, bound, size=shape).astype(dtype)

    return kaiming_uniform


def _kaiming_normal_mutant(flaw: str) -> Callable:
    def kaiming_normal(shape, *, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng,
                       dtype=np.float64):
        shape, gen = tuple(shape), _generator(rng)
        std = _kaiming_std(shape, a, mode, nonlinearity, flaw)
        if flaw == "std_is_bound":
            std *= math.sqrt(3.0)
        if flaw == "draws_in_dtype":
            return (std * gen.standard_normal(shape, dtype=dtype)).astype(dtype)
        return (std * gen.standard_normal(shape)).astype(dtype)

    return kaiming_normal


def _orthogonal_mutant(flaw: str) -> Callable:
    def orthogonal(shape, *, gain=1.0, rng, dtype=np.float64):
        shape, gen = tuple(shape), _generator(rng)
        rows = shape[0]
        cols = math.prod(shape) // rows
        flat = gen.standard_normal((rows, cols))
        if rows < cols:
            flat = flat.T
        q, r = np.linalg.qr(flat)
        signs = np.sign(np.diag(r))
        if flaw == "sign_on_rows":
            q = np.diag(signs) @ q
        elif flaw != "no_sign_fix":
            q = q * signs
        if rows < cols:
            q = q.T
        g = 1.0 if flaw == "gain_ignored" else gain
        return (g * q).reshape(shape).astype(dtype)

    return orthogonal


# ----------------------------------------------------------------------------- the catalog

_register("init_fans_swapped", "fan_in_and_fan_out",
          "fan_in and fan_out are swapped. A weight is stored in PyTorch's layout (out, in, "
          "*kernel), the transpose of the lecture's (fan_in, fan_out): fan_in = shape[1] * "
          "prod(kernel) and fan_out = shape[0] * prod(kernel).", _fan_mutant("swapped"))
_register("init_fans_no_kernel", "fan_in_and_fan_out",
          "Your fans ignore the kernel of a convolution weight (out, in, kh, kw): every input "
          "channel feeds kh * kw weights of an output, so multiply both fans by the receptive "
          "field size prod(shape[2:]) (1 for a fully connected weight).",
          _fan_mutant("no_kernel"))

_register("init_gain_relu_two", "calculate_gain",
          "Your ReLU gain is 2, the factor on the variance. The gain multiplies the standard "
          "deviation, so it is the square root of that factor: calculate_gain('relu') = "
          "sqrt(2).", _gain_mutant("relu_two"))
_register("init_gain_tanh_one", "calculate_gain",
          "Your tanh gain is 1. tanh is close to linear only near 0 and shrinks larger "
          "inputs, so the recommended gain (PyTorch's) is 5/3.", _gain_mutant("tanh_one"))
_register("init_gain_leaky_no_slope", "calculate_gain",
          "Your leaky_relu gain ignores the negative slope: it is sqrt(2 / (1 + slope**2)), "
          "with slope = param, or 0.01 when param is None (the ReLU gain sqrt(2) is the "
          "case slope = 0).", _gain_mutant("leaky_no_slope"))
_register("init_gain_slope_not_squared", "calculate_gain",
          "Your leaky_relu gain uses the slope instead of its square: a leaky ReLU keeps "
          "(1 + slope**2) / 2 of the second moment of a symmetric input, so the gain is "
          "sqrt(2 / (1 + slope**2)).", _gain_mutant("slope_not_squared"))

_XU, _XN, _KU, _KN = "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"
_NO_KERNEL = ("Your fans ignore the kernel of a convolution weight: fan_in = shape[1] * "
              "prod(shape[2:]) and fan_out = shape[0] * prod(shape[2:]) (use your "
              "fan_in_and_fan_out).")
_register("init_xavier_uniform_bound_is_std", _XU,
          "Your bound is the standard deviation sqrt(2 / (fan_in + fan_out)). U(-a, a) has "
          "variance a**2 / 3, so the bound is sqrt(3) times the standard deviation: a = gain "
          "* sqrt(6 / (fan_in + fan_out)).", _xavier_uniform_mutant("bound_is_std"))
_register("init_xavier_uniform_fan_in_only", _XU,
          "Your bound uses fan_in alone (the lecture's randn / sqrt(fan_in) rule). Glorot's "
          "variance averages the forward and backward conditions: Var[w] = 2 / (fan_in + "
          "fan_out), so a = gain * sqrt(6 / (fan_in + fan_out)).",
          _xavier_uniform_mutant("fan_in_only"))
_register("init_xavier_uniform_no_gain", _XU,
          "gain is not applied: multiply the bound by gain, a = gain * sqrt(6 / (fan_in + "
          "fan_out)).", _xavier_uniform_mutant("no_gain"))
_register("init_xavier_uniform_no_kernel", _XU, _NO_KERNEL,
          _xavier_uniform_mutant("no_kernel"))
_register("init_xavier_uniform_draws_normal", _XU,
          "xavier_uniform draws from a Gaussian. Draw uniformly in [-a, a] with "
          "rng.uniform(-a, a, size=shape).", _xavier_uniform_mutant("draws_normal"))

_register("init_xavier_normal_std_is_bound", _XN,
          "Your standard deviation is the uniform bound sqrt(6 / (fan_in + fan_out)). The "
          "Gaussian has std = gain * sqrt(2 / (fan_in + fan_out)); the 6 belongs to the "
          "uniform version, whose variance is a**2 / 3.", _xavier_normal_mutant("std_is_bound"))
_register("init_xavier_normal_fan_in_only", _XN,
          "Your standard deviation uses fan_in alone (the lecture's randn / sqrt(fan_in) "
          "rule). Glorot's variance averages the forward and backward conditions: std = gain "
          "* sqrt(2 / (fan_in + fan_out)).", _xavier_normal_mutant("fan_in_only"))
_register("init_xavier_normal_var_as_std", _XN,
          "You use the variance 2 / (fan_in + fan_out) as the standard deviation: take its "
          "square root, std = gain * sqrt(2 / (fan_in + fan_out)).",
          _xavier_normal_mutant("var_as_std"))
_register("init_xavier_normal_no_gain", _XN,
          "gain is not applied: multiply the standard deviation by gain, std = gain * "
          "sqrt(2 / (fan_in + fan_out)).", _xavier_normal_mutant("no_gain"))
_register("init_xavier_normal_no_kernel", _XN, _NO_KERNEL, _xavier_normal_mutant("no_kernel"))
_register("init_xavier_normal_draws_in_dtype", _XN,
          "You draw the Gaussian numbers directly in float32 (standard_normal(..., "
          "dtype=np.float32) uses another algorithm, so the values differ). Draw in float64, "
          "std * rng.standard_normal(shape), and cast the result with .astype(dtype).",
          _xavier_normal_mutant("draws_in_dtype"))

_BOUND_IS_STD = ("Your bound is the standard deviation gain / sqrt(fan). U(-b, b) has variance "
                 "b**2 / 3, so the bound is sqrt(3) times the standard deviation: b = gain * "
                 "sqrt(3 / fan).")
_MODE = ("mode is ignored: with mode='fan_out' divide by fan_out (this preserves the "
         "variance of the back-propagated gradients), with mode='fan_in' by fan_in.")
_SLOPE = ("Your gain ignores the negative slope a: use calculate_gain(nonlinearity, a). For "
          "'leaky_relu' the gain is sqrt(2 / (1 + a**2)); the default a=0 gives exactly "
          "sqrt(2) (without a, calculate_gain would use slope 0.01).")
_register("init_kaiming_uniform_bound_is_std", _KU, _BOUND_IS_STD,
          _kaiming_uniform_mutant("bound_is_std"))
_register("init_kaiming_uniform_no_gain", _KU,
          "Your bound has no gain (it is LeCun's sqrt(3 / fan)). He initialization multiplies "
          "by gain = calculate_gain(nonlinearity, a), sqrt(2) for a ReLU: b = gain * "
          "sqrt(3 / fan).", _kaiming_uniform_mutant("no_gain"))
_register("init_kaiming_uniform_mode_ignored", _KU, _MODE,
          _kaiming_uniform_mutant("mode_ignored"))
_register("init_kaiming_uniform_slope_ignored", _KU, _SLOPE,
          _kaiming_uniform_mutant("slope_ignored"))

_register("init_kaiming_normal_std_is_bound", _KN,
          "Your standard deviation is the uniform bound gain * sqrt(3 / fan). The Gaussian "
          "has std = gain / sqrt(fan); the 3 belongs to the uniform version, whose variance "
          "is b**2 / 3.", _kaiming_normal_mutant("std_is_bound"))
_register("init_kaiming_normal_relu_gain_always", _KN,
          "You use the ReLU gain sqrt(2) whatever the nonlinearity (the lecture's randn / "
          "sqrt(fan_in / 2)). The gain is calculate_gain(nonlinearity, a): 1 for 'linear', "
          "5/3 for 'tanh', sqrt(2 / (1 + a**2)) for 'leaky_relu'.",
          _kaiming_normal_mutant("relu_gain_always"))
_register("init_kaiming_normal_mode_ignored", _KN, _MODE,
          _kaiming_normal_mutant("mode_ignored"))
_register("init_kaiming_normal_slope_ignored", _KN, _SLOPE,
          _kaiming_normal_mutant("slope_ignored"))
_register("init_kaiming_normal_draws_in_dtype", _KN,
          "You draw the Gaussian numbers directly in float32 (standard_normal(..., "
          "dtype=np.float32) uses another algorithm, so the values differ). Draw in float64, "
          "std * rng.standard_normal(shape), and cast the result with .astype(dtype).",
          _kaiming_normal_mutant("draws_in_dtype"))

_register("init_orthogonal_no_sign_fix", "orthogonal",
          "Q is used as np.linalg.qr returns it. QR is unique only up to the signs of its "
          "columns; fix them so that R has a positive diagonal: q = q * np.sign(np.diag(r)) "
          "(this also makes Q uniformly distributed).", _orthogonal_mutant("no_sign_fix"))
_register("init_orthogonal_sign_on_rows", "orthogonal",
          "You multiply the rows of Q by the signs of diag(R) (np.diag(d) @ q). The signs "
          "belong to the columns of Q, as in Q R = (Q D)(D R): q = q * d, or q @ np.diag(d).",
          _orthogonal_mutant("sign_on_rows"))
_register("init_orthogonal_gain_ignored", "orthogonal",
          "gain is not applied: return gain * Q (then W W^T = gain**2 I for a wide weight).",
          _orthogonal_mutant("gain_ignored"))


# -------------------------------------------------------------------- graded functions


def _gen(seed):
    return np.random.default_rng(seed)


def _fan_cases():
    return [(((5, 3),), {}), (((4, 2, 3, 3),), {}), (((6, 3, 5),), {})]


def _gain_cases():
    return [(("tanh",), {}), (("relu",), {}), (("leaky_relu",), {}),
            (("leaky_relu", 0.2), {}), (("conv2d",), {})]


def _xavier_cases():
    return [(((5, 3),), {"rng": _gen(1)}),
            (((6, 2, 3, 3),), {"gain": 2.0, "rng": _gen(2)}),
            (((4, 7),), {"gain": 0.5, "rng": _gen(3), "dtype": np.float32})]


def _kaiming_cases():
    return [(((5, 3),), {"rng": _gen(1)}),
            (((5, 3, 2, 2),), {"mode": "fan_out", "nonlinearity": "relu", "rng": _gen(2)}),
            (((4, 6),), {"a": 0.2, "rng": _gen(3)}),
            (((6, 4),), {"nonlinearity": "tanh", "rng": _gen(4), "dtype": np.float32})]


def _orthogonal_cases():
    return [(((4, 4),), {"rng": _gen(1)}),
            (((3, 2, 2, 2),), {"gain": 2.0, "rng": _gen(2)}),
            (((6, 3),), {"gain": 0.5, "rng": _gen(3), "dtype": np.float32})]


_graded("fan_in_and_fan_out", _ref.fan_in_and_fan_out, _fan_mutant("none"), _fan_cases,
        returns=("fan_in", "fan_out"))
_graded("calculate_gain", _ref.calculate_gain, _gain_mutant("none"), _gain_cases,
        returns="gain")
_graded(_XU, _ref.xavier_uniform, _xavier_uniform_mutant("none"), _xavier_cases, returns="w")
_graded(_XN, _ref.xavier_normal, _xavier_normal_mutant("none"), _xavier_cases, returns="w")
_graded(_KU, _ref.kaiming_uniform, _kaiming_uniform_mutant("none"), _kaiming_cases,
        returns="w")
_graded(_KN, _ref.kaiming_normal, _kaiming_normal_mutant("none"), _kaiming_cases, returns="w")
_graded("orthogonal", _ref.orthogonal, _orthogonal_mutant("none"), _orthogonal_cases,
        returns="w")
