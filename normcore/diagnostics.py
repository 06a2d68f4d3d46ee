r"""Watching a network train: the checks of "babysitting the learning process".

A few numbers tell early whether a network is set up to learn:

* the loss at step 0 against its expected value :math:`-\ln(1/C) = \ln C` for :math:`C`
  balanced classes and a network whose initial outputs are (nearly) uniform
  (:func:`expected_initial_loss`);
* the distribution of every layer's activations and of the gradient arriving at them, at a few
  steps of training (:class:`LayerRecorder`);
* the fraction of saturated units of a bounded nonlinearity, :math:`|h| > 0.99` for
  :math:`\tanh` (:func:`saturation_fraction`);
* the size of the gradient and of the update relative to the weights,
  :math:`\lVert \nabla_W L\rVert / \lVert W \rVert` and
  :math:`\lVert \Delta W\rVert / \lVert W \rVert`, whose rule of thumb is about
  :math:`10^{-3}` per step for the update (:func:`parameter_ratios`, computed from the
  :class:`normcore.nn.History` that :func:`normcore.nn.train` records with ``track=True``).

Example
-------
>>> recorder = LayerRecorder(model, steps=[0, 100], module_types=(torch.nn.Tanh,))
>>> with recorder:                                                    # doctest: +SKIP
...     history = normcore.nn.train(model, loader, epochs=5, lr=0.1, track=True)
>>> recorder.snapshots[100]["activation"]["act1"]                     # doctest: +SKIP
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import nn

from ._checks import check_finite, check_float_array, check_scalar

__all__ = [
    "LayerRecorder",
    "expected_initial_loss",
    "parameter_ratios",
    "saturation_fraction",
    "UPDATE_RATIO_RULE_OF_THUMB",
]

#: The update:data ratio :math:`\lVert \Delta W\rVert / \lVert W \rVert` per step that the
#: lecture recommends aiming for (much smaller: learning rate too low; much larger: too high).
UPDATE_RATIO_RULE_OF_THUMB = 1e-3


def expected_initial_loss(num_classes: int) -> float:
    r"""Cross-entropy of a uniform prediction over ``num_classes`` classes: :math:`\ln C`.

    A freshly initialized classifier with small output weights predicts
    :math:`p_k \approx 1/C` for every class, so its mean cross-entropy is
    :math:`-\ln(1/C)`. A first loss far above this means large initial logits (the network
    is confidently wrong from the start); a loss far below means a bug, such as labels
    leaking into the input.

    Parameters
    ----------
    num_classes : int, >= 2

    Returns
    -------
    float
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"expected_initial_loss: num_classes must be an int, got "
                        f"{type(num_classes).__name__}")
    if num_classes < 2:
        raise ValueError(f"expected_initial_loss: num_classes must be >= 2, got {num_classes}")
    return math.log(num_classes)


def saturation_fraction(h, threshold: float = 0.99) -> np.ndarray:
    r"""Per unit, the fraction of examples whose activation is saturated, :math:`|h| > t`.

    For :math:`\tanh`, :math:`|h| > 0.99` means :math:`\tanh'(z) = 1 - h^2 < 0.02`: the unit
    passes back less than 2% of the gradient it receives. A unit saturated for every example
    has stopped learning.

    Parameters
    ----------
    h : ndarray, shape (N, units) or (N, C, *), float32 or float64
        Activations of one layer for ``N`` examples. Further dimensions (channels, pixels)
        are kept: the result has shape ``h.shape[1:]``.
    threshold : float, in (0, inf)
        :math:`t`. For a sigmoid, whose outputs saturate at 0 and 1, pass ``2 * h - 1``.

    Returns
    -------
    ndarray, shape ``h.shape[1:]``, dtype of ``h``
        Values in [0, 1].
    """
    func = "saturation_fraction"
    check_float_array(func, "h", h, min_ndim=2)
    if h.shape[0] < 1:
        raise ValueError(f"{func}: h needs at least one example (row), got shape {h.shape}")
    check_finite(func, "h", h)
    t = check_scalar(func, "threshold", threshold, low=0.0, low_inclusive=False)
    return np.mean(np.abs(h) > t, axis=0).astype(h.dtype)


def parameter_ratios(history, *, kind: str = "update", weights_only: bool = True) -> dict:
    r"""Per-step ratios of the gradient or of the update to the weights, per parameter.

    .. math::

        \text{gradient:data} = \frac{\lVert \nabla_W L \rVert}{\lVert W \rVert}, \qquad
        \text{update:data} = \frac{\lVert W_{t+1} - W_t \rVert}{\lVert W_t \rVert}.

    For plain SGD the update is :math:`-\eta \nabla_W L`, so the two differ exactly by the
    learning rate :math:`\eta`; with momentum or Adam they do not.

    Parameters
    ----------
    history : normcore.nn.History
        Recorded by :func:`normcore.nn.train` with ``track=True``.
    kind : {'update', 'gradient'}
    weights_only : bool
        Keep only parameters whose name ends in ``weight`` (biases start at zero, where the
        ratio is undefined, and normalization layers' ``weight`` is their scale
        :math:`\gamma`, kept).

    Returns
    -------
    dict
        Parameter name to an ndarray of shape (steps,), float64 (NaN where
        :math:`\lVert W_t \rVert = 0`).
    """
    func = "parameter_ratios"
    if kind not in ("update", "gradient"):
        raise ValueError(f"{func}: kind must be 'update' or 'gradient', got {kind!r}")
    for name in ("grad_norm", "weight_norm", "update_ratio"):
        if not hasattr(history, name):
            raise TypeError(f"{func}: history must be a normcore.nn.History, got "
                            f"{type(history).__name__}")
    if not history.update_ratio:
        raise ValueError(f"{func}: history has no per-parameter records; train with "
                         f"track=True")
    ratios = {}
    for name, update in history.update_ratio.items():
        if weights_only and not name.endswith("weight"):
            continue
        if kind == "update":
            ratios[name] = np.asarray(update, dtype=np.float64)
        else:
            grad = np.asarray(history.grad_norm[name], dtype=np.float64)
            norm = np.asarray(history.weight_norm[name], dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios[name] = np.where(norm > 0, grad / np.where(norm > 0, norm, 1.0),
                                        np.nan)
    return ratios


class LayerRecorder:
    """Keep the outputs of chosen modules, and the gradients arriving at them, at given steps.

    Counts the training-mode forward passes of ``model`` (step 0 is the first one) and, at
    the steps listed, stores for every module of the chosen types its output and the gradient
    of the loss with respect to that output (filled in by the backward pass of the same
    step). Eval-mode passes (validation) are neither counted nor stored. Use it as a context
    manager around training; the hooks are removed on exit.

    Parameters
    ----------
    model : torch.nn.Module
    steps : iterable of int, >= 0
        Training steps to keep.
    module_types : tuple of module classes
        Default: the activation functions and normalization layers that
        :func:`normcore.nn.train` tracks (``Tanh``, ``ReLU``, ..., ``BatchNorm1d``, ...).
    max_examples : int, optional
        Keep only the first rows of each batch (memory).

    Attributes
    ----------
    snapshots : dict
        ``{step: {"activation": {name: ndarray}, "gradient": {name: ndarray}}}``, float32
        arrays of shape ``(examples, *features)``.
    names : list of str
        The recorded modules, in forward order.
    """

    def __init__(self, model: nn.Module, steps, *, module_types=None,
                 max_examples: int | None = None):
        func = "LayerRecorder"
        if not isinstance(model, nn.Module):
            raise TypeError(f"{func}: model must be a torch.nn.Module, got "
                            f"{type(model).__name__}")
        steps = list(steps)
        if not steps or not all(isinstance(s, numbers.Integral) and s >= 0 for s in steps):
            raise ValueError(f"{func}: steps must be a non-empty list of ints >= 0, got {steps}")
        if max_examples is not None and (not isinstance(max_examples, numbers.Integral)
                                         or max_examples < 1):
            raise ValueError(f"{func}: max_examples must be a positive int, got {max_examples}")
        if module_types is None:
            from .nn import _TRACKED
            module_types = _TRACKED
        self.model = model
        self.steps = set(int(s) for s in steps)
        self.module_types = tuple(module_types)
        self.max_examples = max_examples
        self.names = [n for n, m in model.named_modules()
                      if n and isinstance(m, self.module_types)]
        if not self.names:
            raise ValueError(f"{func}: the model has no module of the types "
                             f"{[t.__name__ for t in self.module_types]}")
        self.snapshots: dict = {}
        self._handles: list = []
        self._count = 0
        self._capture: int | None = None

    # ----------------------------------------------------------------- hooks
    def __enter__(self):
        self._handles.append(self.model.register_forward_pre_hook(self._on_step))
        for name, module in self.model.named_modules():
            if name in self.names:
                self._handles.append(module.register_forward_hook(self._keeper(name)))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        return False

    def _on_step(self, module, inputs):
        if not module.training:
            self._capture = None
            return
        step = self._count
        self._count += 1
        self._capture = step if step in self.steps else None

    def _rows(self, tensor: torch.Tensor) -> np.ndarray:
        if self.max_examples is not None:
            tensor = tensor[: self.max_examples]
        return tensor.detach().float().cpu().numpy().copy()

    def _keeper(self, name):
        def keep(module, inputs, output):
            step = self._capture
            if step is None or not isinstance(output, torch.Tensor):
                return
            snap = self.snapshots.setdefault(step, {"activation": {}, "gradient": {}})
            snap["activation"][name] = self._rows(output)
            if output.requires_grad:
                def keep_grad(grad):
                    snap["gradient"][name] = self._rows(grad)
                output.register_hook(keep_grad)
        return keep

    @property
    def steps_seen(self) -> int:
        """Number of training-mode forward passes counted so far."""
        return self._count
