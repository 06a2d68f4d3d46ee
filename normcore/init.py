r"""Weight initialization: constant, small Gaussian, Xavier/Glorot, He/Kaiming, orthogonal.

Every initializer takes the weight ``shape`` and an explicit ``rng`` (a
``numpy.random.Generator`` or an int seed) and returns a new array of ``dtype``
(float64 by default). Names, arguments and defaults follow ``torch.nn.init``.

Fans follow PyTorch's layout: a weight has shape ``(out_features, in_features, *kernel)``
and

.. math::

    \text{fan\_in} = \text{in} \cdot \prod \text{kernel}, \qquad
    \text{fan\_out} = \text{out} \cdot \prod \text{kernel}.

Samples are always drawn in float64 and then cast, so the same seed gives the same
values (up to rounding) for float32 and float64.

:func:`activation_statistics` reproduces the lecture's experiment: unit-Gaussian data
pushed through a deep MLP without biases, recording the mean and standard deviation of
every layer's activations (and, optionally, of the back-propagated gradients).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ._checks import check_float_dtype, check_rng, check_scalar

__all__ = [
    "ActivationStatistics",
    "activation_statistics",
    "calculate_gain",
    "constant",
    "fan_in_and_fan_out",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "orthogonal",
    "xavier_normal",
    "xavier_uniform",
]

_LINEAR_FNS = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)


# ----------------------------------------------------------------------------- helpers


def _check_shape_arg(func: str, shape, *, min_ndim: int = 0) -> tuple[int, ...]:
    """Normalize ``shape`` (an int or a sequence of non-negative ints) to a tuple."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(
            f"{func}: shape must be a tuple of non-negative ints, got {shape!r}"
        ) from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0:
            raise ValueError(f"{func}: shape must be a tuple of non-negative ints, got {shape!r}")
    dims = tuple(int(d) for d in dims)
    if len(dims) < min_ndim:
        raise ValueError(
            f"{func}: shape must have at least {min_ndim} dimensions, got {dims}"
        )
    return dims


def _check_dtype(func: str, dtype) -> np.dtype:
    return check_float_dtype(func, dtype)


def _fan_for_mode(func: str, shape: tuple[int, ...], mode: str) -> int:
    if not isinstance(mode, str) or mode.lower() not in ("fan_in", "fan_out"):
        raise ValueError(f"{func}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(shape)
    fan = fan_in if mode.lower() == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"{func}: {mode.lower()} is 0 for shape {shape}")
    return fan


def _uniform(shape, bound: float, rng: np.random.Generator, dtype) -> np.ndarray:
    return rng.uniform(-bound, bound, size=shape).astype(dtype, copy=False)


def _gaussian(shape, std: float, rng: np.random.Generator, dtype, mean: float = 0.0):
    return (mean + std * rng.standard_normal(shape)).astype(dtype, copy=False)


# ----------------------------------------------------------------------------- gains and fans


def calculate_gain(nonlinearity: str, param=None) -> float:
    r"""Recommended gain for a nonlinearity, identical to ``torch.nn.init.calculate_gain``.

    ================================  =====================================
    nonlinearity                      gain
    ================================  =====================================
    linear, conv*d, conv_transpose*d  :math:`1`
    sigmoid                           :math:`1`
    tanh                              :math:`5/3`
    relu                              :math:`\sqrt{2}`
    leaky_relu                        :math:`\sqrt{2 / (1 + \text{negative\_slope}^2)}`
    selu                              :math:`3/4`
    ================================  =====================================

    Parameters
    ----------
    nonlinearity : str
        Name as in ``torch.nn.functional``.
    param : float, optional
        Negative slope of ``leaky_relu`` (default 0.01); ignored otherwise.

    Returns
    -------
    gain : float

    Notes
    -----
    The gain is the factor by which the nonlinearity shrinks the second moment of a
    zero-mean Gaussian input, inverted and square-rooted: ReLU keeps half of it, hence
    :math:`\sqrt{2}` (He et al., 2015). The ``tanh`` and ``selu`` values are the
    empirical choices made by PyTorch.
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            negative_slope = param
        else:
            raise ValueError(
                f"calculate_gain: param (negative slope) must be a number, got {param!r}"
            )
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity, got {nonlinearity!r}")


def fan_in_and_fan_out(shape) -> tuple[int, int]:
    r"""Fan-in and fan-out of a weight of ``shape``, as PyTorch computes them.

    Parameters
    ----------
    shape : tuple of int, length >= 2
        ``(out_features, in_features, *kernel)`` (PyTorch's weight layout).

    Returns
    -------
    fan_in, fan_out : int
        ``shape[1] * prod(kernel)`` and ``shape[0] * prod(kernel)``.

    Notes
    -----
    The lecture writes a dense layer as ``X @ W`` with ``W`` of shape
    ``(fan_in, fan_out)``; PyTorch stores the transpose, ``(fan_out, fan_in)``. Pass
    PyTorch's layout here (``W.T.shape`` for the lecture's ``W``).
    """
    dims = _check_shape_arg("fan_in_and_fan_out", shape, min_ndim=2)
    receptive = math.prod(dims[2:])
    return dims[1] * receptive, dims[0] * receptive


# ----------------------------------------------------------------------------- initializers


def constant(shape, value: float, *, dtype=np.float64) -> np.ndarray:
    """Array of ``shape`` filled with ``value`` (``torch.nn.init.constant_``).

    Notes
    -----
    A constant (for example all-zero) initialization gives every unit of a layer the
    same output and the same gradient, so the units never become different: the
    symmetry is never broken. Use it for biases, not for weights.
    """
    dims = _check_shape_arg("constant", shape)
    dt = _check_dtype("constant", dtype)
    check_scalar("constant", "value", value)
    return np.full(dims, value, dtype=dt)


def normal(shape, std: float, *, rng, mean: float = 0.0, dtype=np.float64) -> np.ndarray:
    r"""Gaussian samples :math:`W_{ij} \sim \mathcal{N}(\text{mean}, \text{std}^2)`.

    Parameters
    ----------
    shape : tuple of int
    std : float, >= 0
    rng : numpy.random.Generator or int
    mean : float
    dtype : float32 or float64

    Returns
    -------
    w : ndarray, shape ``shape``

    Notes
    -----
    The lecture's first idea, "small random numbers", is ``W = 0.01 * randn(D, H)``,
    i.e. ``normal((D, H), 0.01, rng=rng)``. Unlike ``torch.nn.init.normal_`` (default
    ``std=1``), ``std`` has no default here, so the scale is always visible.
    """
    dims = _check_shape_arg("normal", shape)
    dt = _check_dtype("normal", dtype)
    check_scalar("normal", "std", std, low=0)
    check_scalar("normal", "mean", mean)
    gen = check_rng("normal", rng)
    return _gaussian(dims, std, gen, dt, mean)


def xavier_uniform(shape, *, gain: float = 1.0, rng, dtype=np.float64) -> np.ndarray:
    r"""Glorot/Xavier uniform: :math:`\mathcal{U}(-a, a)`.

    .. math::

        a = \text{gain} \sqrt{\frac{6}{\text{fan\_in} + \text{fan\_out}}}

    which gives variance :math:`\text{gain}^2 \cdot 2 / (\text{fan\_in} + \text{fan\_out})`.

    Parameters
    ----------
    shape : tuple of int, length >= 2
        PyTorch layout ``(out, in, *kernel)``.
    gain : float
    rng : numpy.random.Generator or int
    dtype : float32 or float64
    """
    dims = _check_shape_arg("xavier_uniform", shape, min_ndim=2)
    dt = _check_dtype("xavier_uniform", dtype)
    check_scalar("xavier_uniform", "gain", gain)
    gen = check_rng("xavier_uniform", rng)
    fan_in, fan_out = fan_in_and_fan_out(dims)
    if fan_in + fan_out == 0:
        raise ValueError(f"xavier_uniform: fan_in + fan_out is 0 for shape {dims}")
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return _uniform(dims, math.sqrt(3.0) * std, gen, dt)


def xavier_normal(shape, *, gain: float = 1.0, rng, dtype=np.float64) -> np.ndarray:
    r"""Glorot/Xavier normal: :math:`\mathcal{N}(0, \sigma^2)`.

    .. math::

        \sigma = \text{gain} \sqrt{\frac{2}{\text{fan\_in} + \text{fan\_out}}}

    Notes
    -----
    The lecture's "Xavier" is ``randn(fan_in, fan_out) / sqrt(fan_in)``, which keeps
    only the forward condition :math:`\text{fan\_in} \operatorname{Var}[w] = 1`.
    Glorot and Bengio average it with the backward condition
    :math:`\text{fan\_out} \operatorname{Var}[w] = 1`, giving the harmonic mean above;
    the two coincide for square layers (``fan_in == fan_out``).
    """
    dims = _check_shape_arg("xavier_normal", shape, min_ndim=2)
    dt = _check_dtype("xavier_normal", dtype)
    check_scalar("xavier_normal", "gain", gain)
    gen = check_rng("xavier_normal", rng)
    fan_in, fan_out = fan_in_and_fan_out(dims)
    if fan_in + fan_out == 0:
        raise ValueError(f"xavier_normal: fan_in + fan_out is 0 for shape {dims}")
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return _gaussian(dims, std, gen, dt)


def kaiming_uniform(
    shape,
    *,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng,
    dtype=np.float64,
) -> np.ndarray:
    r"""He/Kaiming uniform: :math:`\mathcal{U}(-b, b)`.

    .. math::

        b = \text{gain} \sqrt{\frac{3}{\text{fan\_mode}}}, \qquad
        \text{gain} = \texttt{calculate\_gain}(\text{nonlinearity}, a)

    Parameters
    ----------
    shape : tuple of int, length >= 2
        PyTorch layout ``(out, in, *kernel)``.
    a : float
        Negative slope of the rectifier (used only with ``'leaky_relu'``).
    mode : {'fan_in', 'fan_out'}
        ``'fan_in'`` preserves the variance of the forward activations,
        ``'fan_out'`` that of the backward gradients.
    nonlinearity : str
        Name accepted by :func:`calculate_gain`. The default ``'leaky_relu'`` with
        ``a=0`` gives the ReLU gain :math:`\sqrt{2}`, as in PyTorch.
    rng : numpy.random.Generator or int
    dtype : float32 or float64
    """
    dims = _check_shape_arg("kaiming_uniform", shape, min_ndim=2)
    dt = _check_dtype("kaiming_uniform", dtype)
    check_scalar("kaiming_uniform", "a", a)
    gen = check_rng("kaiming_uniform", rng)
    fan = _fan_for_mode("kaiming_uniform", dims, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return _uniform(dims, math.sqrt(3.0) * std, gen, dt)


def kaiming_normal(
    shape,
    *,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng,
    dtype=np.float64,
) -> np.ndarray:
    r"""He/Kaiming normal: :math:`\mathcal{N}(0, \sigma^2)`.

    .. math::

        \sigma = \frac{\text{gain}}{\sqrt{\text{fan\_mode}}}

    Arguments as in :func:`kaiming_uniform`.

    Notes
    -----
    The lecture writes He initialization as ``randn(fan_in, fan_out) / sqrt(fan_in / 2)``,
    which is ``kaiming_normal((fan_out, fan_in), nonlinearity='relu')`` transposed.
    """
    dims = _check_shape_arg("kaiming_normal", shape, min_ndim=2)
    dt = _check_dtype("kaiming_normal", dtype)
    check_scalar("kaiming_normal", "a", a)
    gen = check_rng("kaiming_normal", rng)
    fan = _fan_for_mode("kaiming_normal", dims, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return _gaussian(dims, std, gen, dt)


def orthogonal(shape, *, gain: float = 1.0, rng, dtype=np.float64) -> np.ndarray:
    r"""(Semi-)orthogonal matrix scaled by ``gain`` (Saxe et al., 2014).

    The weight is viewed as a matrix of ``rows = shape[0]`` and
    ``cols = prod(shape[1:])``; a Gaussian matrix is QR-factorized and the signs of
    :math:`\operatorname{diag}(R)` are folded into :math:`Q` so that :math:`Q` is
    uniformly (Haar) distributed. The result satisfies

    .. math::

        W W^\top = \text{gain}^2 I \ (\text{rows} \le \text{cols}), \qquad
        W^\top W = \text{gain}^2 I \ (\text{rows} \ge \text{cols}).

    Parameters
    ----------
    shape : tuple of int, length >= 2
    gain : float
    rng : numpy.random.Generator or int
    dtype : float32 or float64

    Notes
    -----
    Same algorithm as ``torch.nn.init.orthogonal_``; the values differ from PyTorch's
    only because the random numbers come from NumPy.
    """
    dims = _check_shape_arg("orthogonal", shape, min_ndim=2)
    dt = _check_dtype("orthogonal", dtype)
    check_scalar("orthogonal", "gain", gain)
    gen = check_rng("orthogonal", rng)
    if math.prod(dims) == 0:
        return np.zeros(dims, dtype=dt)
    rows = dims[0]
    cols = math.prod(dims) // rows
    flat = gen.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(dims).astype(dt, copy=False)


# ----------------------------------------------------------------------------- experiment


_ACTIVATIONS = {
    "tanh": (np.tanh, lambda z, h: 1.0 - h * h),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z, h: (z > 0).astype(z.dtype)),
    "leaky_relu": (
        lambda z: np.where(z > 0, z, 0.01 * z),
        lambda z, h: np.where(z > 0, 1.0, 0.01),
    ),
    # 0.5 * (1 + tanh(z / 2)) is the logistic sigmoid without overflow in exp.
    "sigmoid": (lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)), lambda z, h: h * (1.0 - h)),
    "linear": (lambda z: z.copy(), lambda z, h: np.ones_like(z)),
}
_INITS = ("normal", "xavier", "he", "orthogonal")


@dataclass(frozen=True)
class ActivationStatistics:
    """Per-layer statistics returned by :func:`activation_statistics`.

    Attributes
    ----------
    input_mean, input_std : float
        Mean and standard deviation of the input data.
    means, stds : ndarray, shape (L,)
        Mean and standard deviation (over all samples and units) of the activations
        :math:`H_1, \\dots, H_L` after the nonlinearity.
    grad_stds : ndarray, shape (L,) or None
        With ``backward=True``: ``grad_stds[l]`` is the standard deviation of the
        gradient with respect to the *input* of layer ``l + 1`` (``grad_stds[0]`` is
        the gradient that reaches the data, ``grad_stds[L-1]`` the one entering the
        last layer).
    weight_grad_stds : ndarray, shape (L,) or None
        With ``backward=True``: standard deviation of the gradient with respect to
        each layer's weight matrix.
    inputs : ndarray, shape (num_samples, width) or None
        With ``return_activations=True``: the input data.
    activations : list of L ndarrays, shape (num_samples, width), or None
        With ``return_activations=True``: :math:`H_1, \\dots, H_L`.
    weights : list of L ndarrays, shape (width, width), or None
        With ``return_activations=True``: the weights in the lecture's layout
        ``(fan_in, fan_out)``, so that :math:`H_l = f(H_{l-1} W_l)`.
    upstream_grad : ndarray, shape (num_samples, width) or None
        With ``return_activations=True`` and ``backward=True``: the unit-Gaussian
        gradient with respect to :math:`H_L` that was back-propagated.
    """

    input_mean: float
    input_std: float
    means: np.ndarray
    stds: np.ndarray
    grad_stds: np.ndarray | None = None
    weight_grad_stds: np.ndarray | None = None
    inputs: np.ndarray | None = None
    activations: list | None = None
    weights: list | None = None
    upstream_grad: np.ndarray | None = None


def _layer_weight(init, scale, nonlinearity, width, gen) -> np.ndarray:
    if init == "normal":
        return scale * gen.standard_normal((width, width))
    if init == "xavier":
        return gen.standard_normal((width, width)) / np.sqrt(width)
    if init == "he":
        return gen.standard_normal((width, width)) / np.sqrt(width / 2)
    # orthogonal: PyTorch layout (fan_out, fan_in), transposed to the lecture's layout.
    return orthogonal((width, width), gain=calculate_gain(nonlinearity), rng=gen).T


def activation_statistics(
    num_layers: int = 10,
    width: int = 500,
    num_samples: int = 1000,
    *,
    init: str = "xavier",
    nonlinearity: str = "tanh",
    scale: float | None = None,
    rng=0,
    backward: bool = False,
    return_activations: bool = False,
) -> ActivationStatistics:
    r"""Push unit-Gaussian data through a deep bias-free MLP and record per-layer statistics.

    With :math:`H_0 = X \sim \mathcal{N}(0, 1)^{\text{num\_samples} \times \text{width}}`,

    .. math::

        H_l = f(H_{l-1} W_l), \qquad W_l \in \mathbb{R}^{\text{width} \times \text{width}},
        \quad l = 1, \dots, \text{num\_layers}.

    The weight of every layer is drawn, in the lecture's ``(fan_in, fan_out)`` layout, by

    ============  =====================================================================
    ``init``      :math:`W_l`
    ============  =====================================================================
    'normal'      ``scale * randn(fan_in, fan_out)`` (``scale`` defaults to 0.01)
    'xavier'      ``randn(fan_in, fan_out) / sqrt(fan_in)``
    'he'          ``randn(fan_in, fan_out) / sqrt(fan_in / 2)``
    'orthogonal'  :func:`orthogonal` with ``gain = calculate_gain(nonlinearity)``
    ============  =====================================================================

    Parameters
    ----------
    num_layers, width, num_samples : int
        Depth, units per layer (also the input dimension) and number of data points.
    init : {'normal', 'xavier', 'he', 'orthogonal'}
    nonlinearity : {'tanh', 'relu', 'leaky_relu', 'sigmoid', 'linear'}
        ``'leaky_relu'`` uses slope 0.01.
    scale : float, optional
        Standard deviation of the weights for ``init='normal'``; not allowed otherwise.
    rng : numpy.random.Generator or int
        Draws the input first, then the weights layer by layer, then (with
        ``backward=True``) the upstream gradient.
    backward : bool
        Also back-propagate a unit-Gaussian gradient
        :math:`\partial L / \partial H_L \sim \mathcal{N}(0, 1)` and record gradient
        statistics.
    return_activations : bool
        Keep the input, activations, weights (and upstream gradient), e.g. for
        histograms.

    Returns
    -------
    ActivationStatistics

    Notes
    -----
    The lecture's "Xavier" row uses ``randn / sqrt(fan_in)``, a gain-1 normal with
    variance :math:`1/\text{fan\_in}`. ``torch.nn.init.xavier_normal_`` uses variance
    :math:`2 / (\text{fan\_in} + \text{fan\_out})` instead; the two are identical here
    because every layer is square. The lecture's "He" row is
    ``torch.nn.init.kaiming_normal_(w, nonlinearity='relu')`` in the same sense.

    Why the numbers look the way they do: a layer multiplies the variance of its
    pre-activations by :math:`\text{fan\_in} \operatorname{Var}[w]`. With
    ``scale=0.01`` and 500 inputs that factor is 0.05, so the activations shrink by
    :math:`\approx 0.22` per layer and vanish; with ``scale=1`` it is 500 and ``tanh``
    saturates at :math:`\pm 1`; Xavier keeps it at 1 for a linear unit, but ReLU zeroes
    half of its input and so halves the second moment each layer, which He's extra
    factor 2 compensates.
    """
    func = "activation_statistics"
    check_scalar(func, "num_layers", num_layers, low=1, integer=True)
    check_scalar(func, "width", width, low=1, integer=True)
    check_scalar(func, "num_samples", num_samples, low=2, integer=True)
    if init not in _INITS:
        raise ValueError(f"{func}: init must be one of {_INITS}, got {init!r}")
    if nonlinearity not in _ACTIVATIONS:
        raise ValueError(
            f"{func}: nonlinearity must be one of {tuple(_ACTIVATIONS)}, got {nonlinearity!r}"
        )
    if init == "normal":
        scale = 0.01 if scale is None else scale
        check_scalar(func, "scale", scale, low=0)
    elif scale is not None:
        raise ValueError(f"{func}: scale is only used with init='normal', got init={init!r}")
    gen = check_rng(func, rng)
    act, dact = _ACTIVATIONS[nonlinearity]

    x = gen.standard_normal((num_samples, width))
    h = x
    inputs, pre, acts, weights = [], [], [], []
    for _ in range(num_layers):
        w = _layer_weight(init, scale, nonlinearity, width, gen)
        z = h @ w
        inputs.append(h)
        weights.append(w)
        pre.append(z)
        h = act(z)
        acts.append(h)
    means = np.array([a.mean() for a in acts])
    stds = np.array([a.std() for a in acts])

    grad_stds = weight_grad_stds = upstream = None
    if backward:
        upstream = gen.standard_normal((num_samples, width))
        dh = upstream
        grad_stds = np.empty(num_layers)
        weight_grad_stds = np.empty(num_layers)
        for l in reversed(range(num_layers)):
            dz = dh * dact(pre[l], acts[l])
            weight_grad_stds[l] = (inputs[l].T @ dz).std()
            dh = dz @ weights[l].T
            grad_stds[l] = dh.std()

    keep = return_activations
    return ActivationStatistics(
        input_mean=float(x.mean()),
        input_std=float(x.std()),
        means=means,
        stds=stds,
        grad_stds=grad_stds,
        weight_grad_stds=weight_grad_stds,
        inputs=x if keep else None,
        activations=acts if keep else None,
        weights=weights if keep else None,
        upstream_grad=upstream if keep else None,
    )
