r"""Regularization: dropout (inverted and the lecture's vanilla form), L2 penalty, weight decay.

Dropout follows PyTorch: ``p`` is the probability of *zeroing* a unit and the kept
units are scaled by :math:`1/(1-p)` during training, so evaluation is the identity
("inverted dropout"). The lecture's first version, where ``p`` is the probability of
*keeping* a unit and the activations are scaled at test time instead, is provided as
:func:`vanilla_dropout_forward` for comparison; ``p_keep = 1 - p``.

Weight decay comes in two forms that coincide for plain SGD and differ for adaptive
methods such as Adam:

* coupled (L2 penalty in the loss, ``torch.optim.SGD/Adam(weight_decay=...)``):
  :func:`l2_penalty` adds :math:`\lambda w` to the gradient;
* decoupled (``torch.optim.AdamW``): :func:`weight_decay_step` shrinks the weights
  directly, :math:`w \leftarrow (1 - \eta\lambda) w`, outside the adaptive update.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_float_array, check_rng, check_scalar, check_shape

__all__ = [
    "dropout_backward",
    "dropout_forward",
    "l2_penalty",
    "vanilla_dropout_backward",
    "vanilla_dropout_forward",
    "weight_decay_step",
]


def _keep_mask(shape, p_keep: float, rng) -> np.ndarray:
    """Boolean mask with independent entries, True with probability ``p_keep``."""
    return rng.random(shape) < p_keep


def dropout_forward(x, p: float = 0.5, *, training: bool = True, rng=None):
    r"""Inverted dropout (PyTorch's ``torch.nn.functional.dropout``).

    .. math::

        y = \frac{m \odot x}{1 - p}, \qquad m_i \sim \text{Bernoulli}(1 - p)
        \quad \text{(training)}, \qquad y = x \quad \text{(evaluation)}.

    Hence :math:`\mathbb{E}_m[y] = x` and nothing changes at test time.

    Parameters
    ----------
    x : ndarray, float32 or float64, any shape
    p : float in [0, 1)
        Probability of zeroing each element. ``p = 1`` is rejected because the
        scale :math:`1/(1-p)` would divide by zero (PyTorch returns all zeros then).
    training : bool
        If False, return a copy of ``x`` and draw no random numbers.
    rng : numpy.random.Generator, int or None
        Source of the mask: ``keep = rng.random(x.shape) < 1 - p``.

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    cache : tuple ``(keep, p, training)``
        ``keep`` is the boolean mask of kept units (None in evaluation).

    Notes
    -----
    The lecture writes ``p`` for the *keep* probability and, in its inverted version,
    divides by it: ``U = (rand(*H.shape) < p) / p``. That is this function with
    ``p_lecture = 1 - p``. With the same generator state, :func:`dropout_forward`
    with ``p`` and :func:`vanilla_dropout_forward` with ``p_keep = 1 - p`` draw the
    same mask.
    """
    func = "dropout_forward"
    check_float_array(func, "x", x)
    check_scalar(func, "p", p, low=0.0, high=1.0, high_inclusive=False)
    if not training:
        return x.copy(), (None, p, False)
    gen = check_rng(func, rng)
    keep = _keep_mask(x.shape, 1.0 - p, gen)
    scale = x.dtype.type(1.0) / x.dtype.type(1.0 - p)
    out = x * (keep.astype(x.dtype) * scale)
    return out, (keep, p, True)


def dropout_backward(dout, cache):
    r"""Backward of :func:`dropout_forward`.

    .. math::

        \frac{\partial L}{\partial x} = \frac{m \odot \partial L / \partial y}{1 - p}
        \quad \text{(training)}, \qquad
        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}
        \quad \text{(evaluation)}.

    Parameters
    ----------
    dout : ndarray, same shape as the forward input
    cache : tuple from :func:`dropout_forward`

    Returns
    -------
    dx : ndarray, same shape and dtype as ``dout``
    """
    func = "dropout_backward"
    check_float_array(func, "dout", dout)
    keep, p, training = cache
    if not training:
        return dout.copy()
    check_shape(func, "dout", dout, keep.shape)
    scale = dout.dtype.type(1.0) / dout.dtype.type(1.0 - p)
    return dout * (keep.astype(dout.dtype) * scale)


def vanilla_dropout_forward(x, p_keep: float, *, training: bool = True, rng=None):
    r"""The lecture's "vanilla" dropout: drop at training time, scale at test time.

    .. math::

        y = m \odot x, \quad m_i \sim \text{Bernoulli}(p_\text{keep})
        \quad \text{(training)}, \qquad
        y = p_\text{keep}\, x \quad \text{(evaluation)}.

    The training output has expectation :math:`p_\text{keep} x`, which is exactly the
    evaluation output.

    Parameters
    ----------
    x : ndarray, float32 or float64, any shape
    p_keep : float in (0, 1]
        Probability of *keeping* each element (the lecture's ``p``).
    training : bool
    rng : numpy.random.Generator, int or None
        Source of the mask: ``keep = rng.random(x.shape) < p_keep``.

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    cache : tuple ``(keep, p_keep, training)``

    Notes
    -----
    Not what PyTorch does: the network has to know at test time how much dropout was
    used in training. :func:`dropout_forward` moves the scale into training instead;
    the two are related by ``p = 1 - p_keep`` and the inverted output equals the
    vanilla one divided by ``p_keep``.
    """
    func = "vanilla_dropout_forward"
    check_float_array(func, "x", x)
    check_scalar(func, "p_keep", p_keep, low=0.0, high=1.0, low_inclusive=False)
    if not training:
        return x * x.dtype.type(p_keep), (None, p_keep, False)
    gen = check_rng(func, rng)
    keep = _keep_mask(x.shape, p_keep, gen)
    return x * keep.astype(x.dtype), (keep, p_keep, True)


def vanilla_dropout_backward(dout, cache):
    r"""Backward of :func:`vanilla_dropout_forward`.

    .. math::

        \frac{\partial L}{\partial x} = m \odot \frac{\partial L}{\partial y}
        \quad \text{(training)}, \qquad
        \frac{\partial L}{\partial x} = p_\text{keep} \frac{\partial L}{\partial y}
        \quad \text{(evaluation)}.

    Returns
    -------
    dx : ndarray, same shape and dtype as ``dout``
    """
    func = "vanilla_dropout_backward"
    check_float_array(func, "dout", dout)
    keep, p_keep, training = cache
    if not training:
        return dout * dout.dtype.type(p_keep)
    check_shape(func, "dout", dout, keep.shape)
    return dout * keep.astype(dout.dtype)


def l2_penalty(w, weight_decay: float):
    r"""L2 penalty and its gradient.

    .. math::

        R(w) = \frac{\lambda}{2} \lVert w \rVert_2^2, \qquad
        \nabla_w R = \lambda w, \qquad \lambda = \texttt{weight\_decay}.

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape
    weight_decay : float, >= 0

    Returns
    -------
    loss : float
    grad : ndarray, same shape and dtype as ``w``

    Notes
    -----
    The factor :math:`1/2` (as in Krogh and Hertz, 1992, and the lecture) makes the
    gradient exactly :math:`\lambda w`, which is what ``torch.optim.SGD`` and
    ``torch.optim.Adam`` add to the gradient when given ``weight_decay=λ``. So adding
    this loss and using ``weight_decay=0`` is the same as ``weight_decay=λ`` with the
    plain loss, for every optimizer of that "coupled" kind.
    """
    func = "l2_penalty"
    check_float_array(func, "w", w)
    check_scalar(func, "weight_decay", weight_decay, low=0.0)
    w64 = w.astype(np.float64)
    loss = 0.5 * weight_decay * float(np.sum(w64 * w64))
    return loss, w * w.dtype.type(weight_decay)


def weight_decay_step(w, lr: float, weight_decay: float):
    r"""Decoupled weight decay: shrink the weights toward zero.

    .. math::

        w \leftarrow w - \eta \lambda w = (1 - \eta\lambda)\, w

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape
    lr : float, >= 0
        Learning rate :math:`\eta`.
    weight_decay : float, >= 0
        :math:`\lambda`.

    Returns
    -------
    new_w : ndarray, same shape and dtype as ``w`` (``w`` itself is not modified)

    Notes
    -----
    Computed as ``w * (1 - lr * weight_decay)``, the order ``torch.optim.AdamW`` uses,
    before its Adam update (which uses the gradient of the data loss only).

    For plain SGD the lecture's rule
    :math:`w \leftarrow w - \eta \partial L_0/\partial w - \eta\lambda w` is both this
    step followed by a gradient step and a gradient step on
    :math:`L_0 + \frac{\lambda}{2}\lVert w\rVert^2` (:func:`l2_penalty`): coupled and
    decoupled decay coincide. For Adam they do not: the L2 gradient is divided by
    :math:`\sqrt{\hat v}` along with the data gradient, so weights with large
    gradients are decayed less (Loshchilov and Hutter, 2019).
    """
    func = "weight_decay_step"
    check_float_array(func, "w", w)
    check_scalar(func, "lr", lr, low=0.0)
    check_scalar(func, "weight_decay", weight_decay, low=0.0)
    return w * w.dtype.type(1.0 - lr * weight_decay)
