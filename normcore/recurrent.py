r"""Normalization in recurrent networks, and a synthetic sequence task to train them on.

A vanilla (Elman) RNN computes, for :math:`t = 1, \dots, T`,

.. math::

    h_t = \tanh\big(W_x x_t + W_h h_{t-1} + b\big).

:class:`NormalizedRNN` inserts a normalization in four ways:

``"none"``
    The plain cell above (the same function as ``torch.nn.RNN`` with one bias).
``"bn-seq"``
    Sequence-wise batch normalization of the input term (Laurent et al., 2016): one mean and
    variance per unit over the batch *and all time steps*, :math:`h_t =
    \tanh(\mathrm{BN}(W_x x_t) + W_h h_{t-1} + b)`; the recurrent term is not normalized.
``"bn-step"``
    Recurrent batch normalization (Cooijmans et al., 2017): separate batch norms of the input
    and the recurrent term, with statistics (and running averages) *per time step*,
    :math:`h_t = \tanh(\mathrm{BN}_t(W_x x_t; \gamma_x) + \mathrm{BN}_t(W_h h_{t-1};
    \gamma_h) + b)`, with the scales initialized to 0.1 as the paper recommends.
``"ln"``
    Layer normalization of the summed pre-activation over the hidden units, per example and
    time step (Ba et al., 2016): :math:`h_t = \tanh(\mathrm{LN}(W_x x_t + W_h h_{t-1}))`,
    with LN's own shift as the bias.

:func:`adding_problem` generates the classic long-range task on which they are compared.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_rng, check_scalar

__all__ = ["RNN_NORMS", "NormalizedRNN", "adding_problem"]

RNN_NORMS = ("none", "bn-seq", "bn-step", "ln")


def adding_problem(num_sequences: int, length: int, *, rng, dtype=np.float32):
    r"""The adding problem (Hochreiter & Schmidhuber, 1997): add the two marked numbers.

    Each sequence has ``length`` steps of two features: a value drawn uniformly from
    :math:`[0, 1]` and a marker that is 1 at exactly two steps (one in each half of the
    sequence) and 0 elsewhere. The target is the sum of the two marked values. Predicting the
    constant 1 gives a mean squared error of :math:`1/6`; solving the task needs memory over
    up to ``length`` steps.

    Parameters
    ----------
    num_sequences, length : int
        ``length`` >= 2.
    rng : numpy.random.Generator or int
    dtype : float32 or float64

    Returns
    -------
    x : ndarray, shape (num_sequences, length, 2)
    y : ndarray, shape (num_sequences,)
    """
    func = "adding_problem"
    check_scalar(func, "num_sequences", num_sequences, low=1, integer=True)
    check_scalar(func, "length", length, low=2, integer=True)
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{func}: dtype must be float32 or float64, got {dtype!r}")
    gen = check_rng(func, rng)
    values = gen.uniform(0.0, 1.0, (num_sequences, length))
    half = length // 2
    first = gen.integers(0, half, num_sequences)
    second = gen.integers(half, length, num_sequences)
    markers = np.zeros((num_sequences, length))
    rows = np.arange(num_sequences)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(dtype)
    y = (values[rows, first] + values[rows, second]).astype(dtype)
    return x, y


class _StepBatchNorm(nn.Module):
    """Batch norm of ``(N, H)`` with separate running statistics for each time step."""

    def __init__(self, hidden: int, max_steps: int, *, gamma: float, momentum: float,
                 eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full((hidden,), gamma))
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(max_steps, hidden))
        self.register_buffer("running_var", torch.ones(max_steps, hidden))

    def forward(self, z: torch.Tensor, step: int) -> torch.Tensor:
        return F.batch_norm(z, self.running_mean[step], self.running_var[step], self.weight,
                            None, self.training, self.momentum, self.eps)


class NormalizedRNN(nn.Module):
    r"""A one-layer tanh RNN with a named normalization and a linear read-out.

    Parameters
    ----------
    input_size, hidden_size : int
    output_size : int
        Size of the read-out of the last hidden state.
    norm : one of :data:`RNN_NORMS`
        See the module docstring.
    max_steps : int
        Longest sequence for ``"bn-step"`` (one set of running statistics per step); at
        evaluation, steps beyond the ones seen in training would have no statistics.
    momentum, eps : float
        Of the batch norms (PyTorch's convention: ``momentum`` weights the new batch).
    seed : int
        Seeds the initialization (the global torch RNG is left as it was): input weights
        Glorot-uniform, recurrent weights orthogonal, biases zero.

    Shape:
        - Input: ``(N, T, input_size)``
        - Output: ``(N, output_size)``, from :math:`h_T`.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int = 1, *,
                 norm: str = "none", max_steps: int = 100, momentum: float = 0.1,
                 eps: float = 1e-5, seed: int = 0):
        super().__init__()
        if norm not in RNN_NORMS:
            raise ValueError(f"NormalizedRNN: unknown norm {norm!r}; valid: "
                             f"{', '.join(RNN_NORMS)}")
        self.norm, self.max_steps, self.eps = norm, max_steps, eps
        self.hidden_size = hidden_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
            self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
            nn.init.xavier_uniform_(self.weight_ih)
            nn.init.orthogonal_(self.weight_hh)
            self.bias = nn.Parameter(torch.zeros(hidden_size))
            self.readout = nn.Linear(hidden_size, output_size)
        if norm == "bn-seq":
            self.bn_input = nn.BatchNorm1d(hidden_size, momentum=momentum, eps=eps)
        elif norm == "bn-step":
            kwargs = dict(gamma=0.1, momentum=momentum, eps=eps)
            self.bn_input = _StepBatchNorm(hidden_size, max_steps, **kwargs)
            self.bn_hidden = _StepBatchNorm(hidden_size, max_steps, **kwargs)
        elif norm == "ln":
            self.ln_weight = nn.Parameter(torch.ones(hidden_size))

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """All hidden states :math:`h_1, \\dots, h_T`, shape ``(N, T, hidden_size)``."""
        if x.dim() != 3:
            raise ValueError(f"NormalizedRNN: expected input (N, T, features), got "
                             f"{tuple(x.shape)}")
        n, steps, _ = x.shape
        if self.norm == "bn-step" and steps > self.max_steps:
            raise ValueError(f"NormalizedRNN: sequence of {steps} steps exceeds max_steps="
                             f"{self.max_steps} (one set of statistics per step)")
        inputs = x @ self.weight_ih.T                                   # (N, T, H)
        if self.norm == "bn-seq":                                       # stats over N and T
            inputs = self.bn_input(inputs.reshape(n * steps, -1)).reshape(n, steps, -1)
        h = x.new_zeros(n, self.hidden_size)
        states = []
        for t in range(steps):
            recurrent = h @ self.weight_hh.T
            if self.norm == "bn-step":
                pre = self.bn_input(inputs[:, t], t) + self.bn_hidden(recurrent, t) + self.bias
            elif self.norm == "ln":
                pre = F.layer_norm(inputs[:, t] + recurrent, (self.hidden_size,),
                                   self.ln_weight, self.bias, self.eps)
            else:
                pre = inputs[:, t] + recurrent + self.bias
            h = torch.tanh(pre)
            states.append(h)
        return torch.stack(states, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.hidden_states(x)[:, -1])

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, norm={self.norm!r}"
