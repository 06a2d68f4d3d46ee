r"""Normalization with population statistics: the centering trick and natural-network whitening.

Before batch normalization, the "ML community" normalized the input of each layer with
statistics of the whole data (population statistics), estimated now and then, and
re-parameterized the layer so that the function the network computes does not jump when they
are re-estimated (Montavon & Mueller's centering trick, 2012; Wiesler et al.'s mean-normalized
SGD, 2014; Desjardins et al.'s natural neural networks, 2015). :class:`PopulationNormLinear` is
such a layer:

.. math::

    y = V\,U\,(x - c) + d,

with trainable :math:`V, d` and fixed :math:`c` (the input mean) and :math:`U` (the identity
for centering, the ZCA whitening matrix :math:`\Sigma^{-1/2}` of the input for whitening). The
gradient step on :math:`V` then sees centered (or whitened) inputs, which is what conditions
the problem. While training, the layer keeps running averages of the mean and covariance of its
input (starting from the first batch's) and, at the first step and then every
``refresh_every`` steps, replaces :math:`c, U` by them and changes :math:`V, d` so that the
effective weight :math:`W = V U` and bias :math:`b = d - V U c` stay the same:

.. math::

    V' = W\,U'^{-1}, \qquad d' = b + W c'.

Unlike batch normalization, the output of one example never depends on the rest of its batch,
and training and evaluation compute the same function.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["POPULATION_MODES", "PopulationNormLinear", "build_population_mlp"]

POPULATION_MODES = ("center", "whiten")


class PopulationNormLinear(nn.Module):
    r"""Linear layer ``y = V U (x - c) + d`` with population centering or whitening.

    Parameters
    ----------
    in_features, out_features : int
    mode : {'center', 'whiten'}
        ``center``: :math:`U = I`, :math:`c` the running input mean (the centering trick).
        ``whiten``: also :math:`U = (\Sigma + \epsilon I)^{-1/2}` from the running input
        covariance (a natural-neural-network-style layer).
    refresh_every : int
        Training steps (forward calls in training mode) between re-estimates of
        :math:`c, U`; the first re-estimate is at the first step, from that batch alone.
    momentum : float
        Weight of the new batch in the running mean and covariance.
    eps : float
        Added to the covariance's diagonal before the inverse square root.

    Shape:
        - Input: ``(N, in_features)``; Output: ``(N, out_features)``
    """

    def __init__(self, in_features: int, out_features: int, *, mode: str = "center",
                 refresh_every: int = 20, momentum: float = 0.1, eps: float = 1e-2):
        super().__init__()
        if mode not in POPULATION_MODES:
            raise ValueError(f"PopulationNormLinear: unknown mode {mode!r}; valid: "
                             f"{', '.join(POPULATION_MODES)}")
        if refresh_every < 1:
            raise ValueError(f"PopulationNormLinear: refresh_every must be >= 1, got "
                             f"{refresh_every}")
        self.mode, self.refresh_every = mode, refresh_every
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.empty(out_features, in_features))     # V
        self.bias = nn.Parameter(torch.zeros(out_features))                    # d
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        self.register_buffer("center", torch.zeros(in_features))               # c
        self.register_buffer("transform", torch.eye(in_features))              # U
        self.register_buffer("running_mean", torch.zeros(in_features))
        self.register_buffer("running_cov", torch.eye(in_features))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))

    @property
    def effective_weight(self) -> torch.Tensor:
        """:math:`W = V U`, the weight of the equivalent plain linear layer."""
        return self.weight @ self.transform

    @property
    def effective_bias(self) -> torch.Tensor:
        """:math:`b = d - V U c`."""
        return self.bias - self.effective_weight @ self.center

    @torch.no_grad()
    def refresh(self, mean: torch.Tensor | None = None, cov: torch.Tensor | None = None):
        """Re-estimate :math:`c, U` (default: from the running statistics) keeping ``W, b``."""
        mean = self.running_mean if mean is None else mean
        cov = self.running_cov if cov is None else cov
        weight, bias = self.effective_weight.clone(), self.effective_bias.clone()
        if self.mode == "whiten":
            eye = torch.eye(len(cov), dtype=cov.dtype)
            values, vectors = torch.linalg.eigh(cov + self.eps * eye)
            transform = vectors @ torch.diag(values.rsqrt()) @ vectors.T
            inverse = vectors @ torch.diag(values.sqrt()) @ vectors.T
            self.transform.copy_(transform)
            self.weight.copy_(weight @ inverse)
        self.center.copy_(mean)
        self.bias.copy_(bias + weight @ mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                xd = x.detach()
                mean = xd.mean(dim=0)
                centered = xd - mean
                cov = centered.T @ centered / max(len(xd) - 1, 1)
                self.steps += 1
                first = int(self.steps) == 1            # start from the first batch's statistics
                self.running_mean.lerp_(mean, 1.0 if first else self.momentum)
                self.running_cov.lerp_(cov, 1.0 if first else self.momentum)
                if first or int(self.steps) % self.refresh_every == 0:
                    self.refresh()
        return ((x - self.center) @ self.transform.T) @ self.weight.T + self.bias

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[1]}, {self.weight.shape[0]}, mode={self.mode!r}, "
                f"refresh_every={self.refresh_every}")


def build_population_mlp(in_features: int, hidden=(64, 64), out_features: int = 10, *,
                         mode: str = "center", refresh_every: int = 20, seed: int = 0,
                         **kwargs) -> nn.Sequential:
    """MLP ``fc1, act1, ..., out`` of :class:`PopulationNormLinear` layers and ReLUs.

    Every layer, the output layer included, normalizes its own input. Named like
    :func:`normcore.nn.build_mlp`; ``kwargs`` go to :class:`PopulationNormLinear`. The
    initial weights are He-normal (the output layer's too) and the biases zero.
    """
    sizes = (in_features, *hidden)
    mods = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), 1):
            mods += [(f"fc{i}", PopulationNormLinear(fan_in, fan_out, mode=mode,
                                                     refresh_every=refresh_every, **kwargs)),
                     (f"act{i}", nn.ReLU())]
        mods.append(("out", PopulationNormLinear(sizes[-1], out_features, mode=mode,
                                                 refresh_every=refresh_every, **kwargs)))
    return nn.Sequential(OrderedDict(mods))
