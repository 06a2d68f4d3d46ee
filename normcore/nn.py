r"""PyTorch modules for the experiments: the normalizations torch lacks, model builders
where the normalization is a name, and a small instrumented training loop.

* :class:`CenteredWeightNormLinear`, :class:`CenteredWeightNormConv2d`: centered weight
  normalization (Huang et al., ICCV 2017).
* :class:`BatchWhitening`: decorrelated batch normalization by PCA, ZCA or Cholesky
  whitening, optionally in groups of features.
* :func:`batch_renorm`, :class:`BatchRenorm`: batch renormalization (Ioffe, 2017).
* :func:`build_mlp`, :func:`build_cnn`: models for the 8x8 digits with
  ``norm in NORMS``.
* :func:`make_loader`, :func:`train`, :func:`evaluate`, :class:`History`: a seeded training
  loop that can record activation statistics, gradient norms and update/weight ratios.

Everything runs on the CPU; :func:`train` uses CUDA when it is available. The NumPy
references of the same formulas are in :mod:`normcore.weightnorm` and
:mod:`normcore.whitening`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

__all__ = [
    "NORMS",
    "ACTIVATIONS",
    "INITS",
    "OPTIMIZERS",
    "centered_weight_norm",
    "CenteredWeightNormLinear",
    "CenteredWeightNormConv2d",
    "BatchWhitening",
    "batch_renorm",
    "BatchRenorm",
    "build_mlp",
    "build_cnn",
    "make_loader",
    "History",
    "train",
    "evaluate",
]

NORMS = ("none", "bn", "ln", "in", "gn", "wn", "cwn", "bw-pca", "bw-zca", "bw-cd", "brn")
ACTIVATIONS = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU, "elu": nn.ELU, "identity": nn.Identity,
}
INITS = ("kaiming", "xavier", "orthogonal", "default")
OPTIMIZERS = ("sgd", "nesterov", "adam", "adamw", "nadam", "rmsprop", "adagrad")
_GAIN_NAME = {"relu": "relu", "leaky_relu": "leaky_relu", "tanh": "tanh", "sigmoid": "sigmoid",
              "gelu": "relu", "elu": "relu", "identity": "linear"}


# --------------------------------------------------------------------------- CWN


def centered_weight_norm(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    r"""Centered, normalized weight: one row per output unit.

    .. math::

        w_i = g_i \frac{v_i - \bar v_i \mathbf{1}}{\lVert v_i - \bar v_i \mathbf{1} \rVert},
        \qquad \bar v_i = \frac{1}{d} \sum_j v_{ij}

    Parameters
    ----------
    v : Tensor, shape (out, *)
        Direction; each output unit's weights ``v[i]`` (``d`` entries) are centered and
        normalized together.
    g : Tensor, shape (out,)

    Returns
    -------
    w : Tensor, same shape as ``v``
        Every ``w[i]`` has mean 0 and norm ``|g[i]|``.
    """
    dims = tuple(range(1, v.dim()))
    centered = v - v.mean(dim=dims, keepdim=True)
    norm = centered.pow(2).sum(dim=dims, keepdim=True).sqrt()
    return g.reshape((-1,) + (1,) * len(dims)) * centered / norm


class _CenteredWeightNorm(nn.Module):
    """Shared parameters and initialization of the CWN layers."""

    def _init_params(self, weight_shape, bias: bool):
        self.v = nn.Parameter(torch.empty(weight_shape))
        self.g = nn.Parameter(torch.empty(weight_shape[0]))
        self.bias = nn.Parameter(torch.empty(weight_shape[0])) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        """``v`` as torch initializes Linear/Conv2d weights, ``g`` from :meth:`set_g_from_v`."""
        nn.init.kaiming_uniform_(self.v, a=math.sqrt(5))
        self.set_g_from_v()
        if self.bias is not None:
            bound = 1 / math.sqrt(self.v[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    @torch.no_grad()
    def set_g_from_v(self):
        """Set ``g`` to the norms of the centered rows of ``v``, so ``w = v - mean(v)``."""
        flat = self.v.reshape(self.v.shape[0], -1)
        self.g.copy_((flat - flat.mean(dim=1, keepdim=True)).norm(dim=1))

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight :math:`w`, same shape as ``v``."""
        return centered_weight_norm(self.v, self.g)


class CenteredWeightNormLinear(_CenteredWeightNorm):
    r"""Linear layer :math:`y = x w^\top + b` with centered weight normalization.

    The weight of each output unit is :math:`w_i = g_i (v_i - \bar v_i) /
    \lVert v_i - \bar v_i \rVert` (:func:`centered_weight_norm`); ``v`` and ``g`` are the
    parameters and autograd differentiates through the reparameterization.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool

    Shape
    -----
    Input ``(N, *, in_features)``, output ``(N, *, out_features)``.

    Notes
    -----
    ``g`` starts at the norm of the centered initial ``v`` (as ``weight_norm`` starts ``g``
    at :math:`\lVert v \rVert`), so the initial :math:`w` is the centered initial ``v``. Set
    ``g`` to ones for unit-norm rows, the constraint of the paper without a learned scale.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._init_params((out_features, in_features), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}"


class CenteredWeightNormConv2d(_CenteredWeightNorm):
    """2-D convolution whose filters are centered and normalized per output channel.

    Each filter ``v[i]`` of shape ``(C_in, kh, kw)`` is centered over all its
    ``C_in * kh * kw`` entries and scaled to norm ``|g[i]|`` (:func:`centered_weight_norm`).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride, padding, dilation : as in ``torch.nn.Conv2d``
    bias : bool
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, bias: bool = True):
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = (kh, kw), stride, padding, \
            dilation
        self._init_params((out_channels, in_channels, kh, kw), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
               f"stride={self.stride}, padding={self.padding}"


# --------------------------------------------------------------------------- whitening


def _whitening_matrix(cov: torch.Tensor, method: str) -> torch.Tensor:
    r"""Whitening matrix :math:`W` with :math:`W \Sigma W^\top = I`, batched over groups.

    .. math::

        \text{PCA: } W = \Lambda^{-1/2} U^\top, \quad
        \text{ZCA: } W = U \Lambda^{-1/2} U^\top, \quad
        \text{CD: } W = L^{-1}

    where :math:`\Sigma = U \Lambda U^\top` (eigenvalues in ascending order, as ``eigh``
    returns them; each eigenvector's largest-magnitude entry positive) and :math:`\Sigma = L L^\top`
    (Cholesky). Whitened data are :math:`\hat X = X_c W^\top`.

    Parameters
    ----------
    cov : Tensor, shape (G, d, d)
        Symmetric positive definite.
    method : {'pca', 'zca', 'cd'}

    Returns
    -------
    W : Tensor, shape (G, d, d)
    """
    if method == "cd":
        L = torch.linalg.cholesky(cov)
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device).expand_as(cov)
        return torch.linalg.solve_triangular(L, eye, upper=False)
    if method not in ("pca", "zca"):
        raise ValueError(f"BatchWhitening: method must be 'pca', 'zca' or 'cd', got {method!r}")
    eigvals, U = torch.linalg.eigh(cov)
    idx = U.detach().abs().argmax(dim=-2, keepdim=True)
    U = U * torch.sign(U.detach().gather(-2, idx))
    W = eigvals.rsqrt().unsqueeze(-1) * U.transpose(-1, -2)
    return U @ W if method == "zca" else W


class BatchWhitening(nn.Module):
    r"""Batch whitening (decorrelated batch normalization), optionally per feature group.

    In training, with the mini-batch rows :math:`X` (features split into ``num_groups``
    contiguous groups of :math:`d = C / G`), per group:

    .. math::

        \mu = \tfrac1m \mathbf{1}^\top X, \quad X_c = X - \mathbf{1}\mu, \quad
        \Sigma = \tfrac1m X_c^\top X_c + \epsilon I, \quad \hat X = X_c W^\top, \quad
        W_{\text{PCA}} = \Lambda^{-1/2} U^\top,\
        W_{\text{ZCA}} = U \Lambda^{-1/2} U^\top,\
        W_{\text{CD}} = L^{-1}

    with :math:`\Sigma = U \Lambda U^\top = L L^\top` (the conventions of
    :mod:`normcore.whitening`: PCA eigenvalues ascending, each eigenvector's largest entry
    positive), then :math:`y = \gamma \odot \hat x + \beta` if ``affine``.
    In evaluation mode :math:`\mu` and :math:`\Sigma` are the running estimates.

    Parameters
    ----------
    num_features : int
        ``C``.
    method : {'zca', 'pca', 'cd'}
    eps : float
        Added to the diagonal of the covariance.
    momentum : float
        Running statistics: ``running = (1 - momentum) * running + momentum * batch``.
    num_groups : int
        ``G``, must divide ``num_features``; ``G = C`` is batch normalization (up to the
        variance's ``eps``), ``G = 1`` whitens all features jointly.
    affine : bool
        Learnable per-feature scale :math:`\gamma` (ones) and shift :math:`\beta` (zeros).

    Shape
    -----
    Input ``(N, C)`` or ``(N, C, H, W)``; for images the ``m = N H W`` positions are the
    samples. Output has the input's shape.

    Notes
    -----
    As in ``torch.nn.BatchNorm``, the running covariance is updated with the unbiased
    estimate :math:`\tfrac{m}{m-1}` times the biased one (without ``eps``), and ``momentum``
    is the weight of the new batch, as in the lecture slides' running averages. Autograd
    differentiates through ``eigh`` / ``cholesky``; PCA and ZCA gradients grow when two
    eigenvalues of :math:`\Sigma` nearly coincide, which is one reason to whiten in groups.
    """

    def __init__(self, num_features: int, method: str = "zca", eps: float = 1e-5,
                 momentum: float = 0.1, num_groups: int = 1, affine: bool = True):
        super().__init__()
        if method not in ("zca", "pca", "cd"):
            raise ValueError(f"BatchWhitening: method must be 'zca', 'pca' or 'cd', got {method!r}")
        if num_groups < 1 or num_features % num_groups:
            raise ValueError(f"BatchWhitening: num_groups={num_groups} does not divide "
                             f"num_features={num_features}")
        if eps <= 0 or not 0 <= momentum <= 1:
            raise ValueError(f"BatchWhitening: need eps > 0 and 0 <= momentum <= 1, "
                             f"got eps={eps}, momentum={momentum}")
        self.num_features, self.method, self.eps = num_features, method, eps
        self.momentum, self.num_groups = momentum, num_groups
        d = num_features // num_groups
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_cov", torch.eye(d).repeat(num_groups, 1, 1))
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchWhitening: expected input (N, {self.num_features}) or "
                             f"(N, {self.num_features}, H, W), got {tuple(x.shape)}")
        rows = x if x.dim() == 2 else x.permute(0, 2, 3, 1).reshape(-1, self.num_features)
        m, G = rows.shape[0], self.num_groups
        eye = torch.eye(self.num_features // G, dtype=x.dtype, device=x.device)
        if self.training:
            if m < 2:
                raise ValueError(f"BatchWhitening: need more than 1 sample in training, got {m}")
            mean = rows.mean(dim=0)
            centered = (rows - mean).reshape(m, G, -1).transpose(0, 1)  # (G, m, d)
            cov = centered.transpose(1, 2) @ centered / m
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_cov.lerp_(cov.detach() * (m / (m - 1)), self.momentum)
        else:
            centered = (rows - self.running_mean).reshape(m, G, -1).transpose(0, 1)
            cov = self.running_cov.to(x.dtype)
        W = _whitening_matrix(cov + self.eps * eye, self.method)
        out = (centered @ W.transpose(1, 2)).transpose(0, 1).reshape(m, self.num_features)
        if self.weight is not None:
            out = out * self.weight + self.bias
        if x.dim() == 4:
            N, C, H, Wd = x.shape
            out = out.reshape(N, H, Wd, C).permute(0, 3, 1, 2)
        return out

    def extra_repr(self) -> str:
        return f"{self.num_features}, method={self.method!r}, eps={self.eps}, " \
               f"momentum={self.momentum}, num_groups={self.num_groups}"


# --------------------------------------------------------------------------- batch renorm


def batch_renorm(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                 weight: torch.Tensor | None = None, bias: torch.Tensor | None = None, *,
                 training: bool = True, momentum: float = 0.1, eps: float = 1e-5,
                 rmax: float = 3.0, dmax: float = 5.0) -> torch.Tensor:
    r"""Batch renormalization of ``x`` of shape ``(N, C, *)``, differentiable by autograd.

    .. math::

        r = \operatorname{sg}\Big(\operatorname{clip}_{[1/r_{\max}, r_{\max}]}
            \frac{\sigma_B}{\sigma}\Big), \quad
        d = \operatorname{sg}\Big(\operatorname{clip}_{[-d_{\max}, d_{\max}]}
            \frac{\mu_B - \mu}{\sigma}\Big), \quad
        y = \gamma\Big(\frac{x - \mu_B}{\sigma_B}\, r + d\Big) + \beta,

    with :math:`\operatorname{sg}` the stop-gradient (``detach``). The running statistics
    are updated in place while training, as by :func:`torch.nn.functional.batch_norm`; in
    evaluation mode this *is* ``F.batch_norm`` with the running statistics. The NumPy
    reference is :func:`normcore.normalization.batch_renorm_forward`.
    """
    if not training:
        return F.batch_norm(x, running_mean, running_var, weight, bias, False, 0.0, eps)
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    count = x.numel() // x.shape[1]
    if count < 2:
        raise ValueError(f"batch_renorm: expected more than 1 value per channel when "
                         f"training, got input of shape {tuple(x.shape)}")
    mean = x.mean(dim=dims)
    var = x.var(dim=dims, unbiased=False)
    std = torch.sqrt(var + eps)
    run_std = torch.sqrt(running_var + eps)
    r = (std.detach() / run_std).clamp(1.0 / rmax, rmax)
    d = ((mean.detach() - running_mean) / run_std).clamp(-dmax, dmax)
    out = (x - mean.view(shape)) / std.view(shape) * r.view(shape) + d.view(shape)
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * count / (count - 1) * var)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    return out


class BatchRenorm(nn.Module):
    r"""Batch renormalization (Ioffe, 2017) over ``(N, C)`` or ``(N, C, *spatial)`` inputs.

    Training uses the batch statistics corrected by :math:`r` and :math:`d` towards the
    running ones (see :func:`batch_renorm`); evaluation is batch norm with the running
    statistics. It has the buffers and parameters of ``nn.BatchNorm*d`` (``running_mean``,
    ``running_var``, ``num_batches_tracked``, ``weight``, ``bias``), so a state dict moves
    between the two. ``rmax`` and ``dmax`` are plain attributes and can follow a schedule
    (the paper starts from 1 and 0, i.e. from batch norm, and relaxes them to 3 and 5).

    Shape:
        - Input: ``(N, C)`` or ``(N, C, *)``
        - Output: same shape as the input
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 rmax: float = 3.0, dmax: float = 5.0):
        super().__init__()
        if rmax < 1 or dmax < 0:
            raise ValueError(f"BatchRenorm: need rmax >= 1 and dmax >= 0, got rmax={rmax}, "
                             f"dmax={dmax}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.rmax, self.dmax = rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm: expected input of shape (N, {self.num_features}, "
                             f"*), got {tuple(x.shape)}")
        if self.training:
            self.num_batches_tracked += 1
        return batch_renorm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=self.training, momentum=self.momentum, eps=self.eps,
                            rmax=self.rmax, dmax=self.dmax)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, " \
               f"rmax={self.rmax}, dmax={self.dmax}"


# --------------------------------------------------------------------------- builders


def _check_name(func: str, what: str, name, valid):
    if name not in valid:
        raise ValueError(f"{func}: unknown {what} {name!r}; valid: {', '.join(valid)}")


def _default_groups(norm: str, width: int) -> int:
    """GN: the most groups (<= 32) with >= 4 channels each; BW: groups of <= 16 features."""
    if norm == "gn":
        return max([g for g in range(1, min(32, width // 4) + 1) if width % g == 0], default=1)
    return min(g for g in range(1, width + 1) if width % g == 0 and width // g <= 16)


def _norm_module(func, norm, width, *, image, num_groups):
    groups = num_groups if num_groups is not None else _default_groups(norm, width)
    if norm in ("gn", "bw-pca", "bw-zca", "bw-cd") and width % groups:
        raise ValueError(f"{func}: num_groups={groups} does not divide width {width}")
    if norm == "bn":
        return nn.BatchNorm2d(width) if image else nn.BatchNorm1d(width)
    if norm == "ln":
        return nn.GroupNorm(1, width) if image else nn.LayerNorm(width)
    if norm == "in":
        return nn.InstanceNorm2d(width, affine=True)
    if norm == "gn":
        return nn.GroupNorm(groups, width)
    if norm == "brn":
        return BatchRenorm(width)
    return BatchWhitening(width, method=norm[3:], num_groups=groups)


def _init_weight(weight: torch.Tensor, init: str, activation: str):
    gain_name = _GAIN_NAME[activation]
    if init == "kaiming":
        nn.init.kaiming_normal_(weight, a=0.01 if gain_name == "leaky_relu" else 0,
                                nonlinearity=gain_name)
    elif init == "xavier":
        nn.init.xavier_normal_(weight)
    elif init == "orthogonal":
        param = 0.01 if gain_name == "leaky_relu" else None
        nn.init.orthogonal_(weight, gain=nn.init.calculate_gain(gain_name, param))


def _weighted_layer(kind, fan_in, fan_out, *, norm, init, activation):
    """Linear/conv layer (plain, WN or CWN) with the named initialization applied."""
    if norm == "cwn":
        layer = (CenteredWeightNormConv2d(fan_in, fan_out, 3, padding=1) if kind == "conv"
                 else CenteredWeightNormLinear(fan_in, fan_out))
        weight = layer.v
    else:
        layer = nn.Conv2d(fan_in, fan_out, 3, padding=1) if kind == "conv" \
            else nn.Linear(fan_in, fan_out)
        weight = layer.weight
    if init != "default":
        with torch.no_grad():
            _init_weight(weight, init, activation)
            layer.bias.zero_()
    if norm == "cwn":
        layer.set_g_from_v()
    if norm == "wn":
        layer = nn.utils.parametrizations.weight_norm(layer)
    return layer


def _check_common(func, norm, placement, activation, init, dropout):
    _check_name(func, "norm", norm, NORMS)
    _check_name(func, "placement", placement, ("before", "after"))
    _check_name(func, "activation", activation, tuple(ACTIVATIONS))
    _check_name(func, "init", init, INITS)
    if not 0 <= dropout < 1:
        raise ValueError(f"{func}: dropout must be in [0, 1), got {dropout}")


def _block(func, index, layer, width, *, norm, placement, activation, dropout, image, num_groups):
    """[layer, norm, act] or [layer, act, norm], then dropout; names carry the index."""
    mods = [(f"{'conv' if image else 'fc'}{index}", layer)]
    act = (f"act{index}", ACTIVATIONS[activation]())
    normed = norm not in ("none", "wn", "cwn")
    norm_mod = (f"norm{index}",
                _norm_module(func, norm, width, image=image, num_groups=num_groups)) \
        if normed else None
    pair = [norm_mod, act] if placement == "before" else [act, norm_mod]
    mods += [m for m in pair if m is not None]
    if dropout > 0:
        mods.append((f"drop{index}", nn.Dropout(dropout)))
    return mods


def build_mlp(in_features: int, hidden=(64, 64), out_features: int = 10, *, norm: str = "bn",
              placement: str = "before", activation: str = "relu", init: str = "kaiming",
              dropout: float = 0.0, num_groups: int | None = None, seed: int = 0
              ) -> nn.Sequential:
    """Fully connected network ``fc1, norm1, act1, ..., out`` with a named normalization.

    Parameters
    ----------
    in_features, out_features : int
    hidden : sequence of int
        Widths of the hidden layers.
    norm : one of :data:`NORMS` except ``'in'``
        ``none``; ``bn`` BatchNorm1d; ``ln`` LayerNorm; ``gn`` GroupNorm; ``wn``
        ``torch.nn.utils.parametrizations.weight_norm`` on each hidden Linear; ``cwn``
        :class:`CenteredWeightNormLinear`; ``bw-pca`` / ``bw-zca`` / ``bw-cd``
        :class:`BatchWhitening`; ``brn`` :class:`BatchRenorm`. The output layer is a plain
        ``Linear`` in every case.
    placement : {'before', 'after'}
        Normalization before (``fc, norm, act``) or after (``fc, act, norm``) the
        nonlinearity; no effect for ``none``, ``wn``, ``cwn``.
    activation : one of :data:`ACTIVATIONS`
    init : {'kaiming', 'xavier', 'orthogonal', 'default'}
        Weights: He normal with the activation's gain, Glorot normal (gain 1), orthogonal
        with the activation's gain, or torch's default; biases zero except for
        ``'default'``. The output layer uses the linear gain. For ``wn`` and ``cwn`` the
        initialization is that of the effective weight (``g`` is set from ``v``).
    dropout : float
        Dropout probability after each hidden block (0: no Dropout module).
    num_groups : int, optional
        Groups for ``gn`` and ``bw-*``. Default: for ``gn`` the most groups (at most 32)
        with at least 4 features each; for ``bw-*`` groups of at most 16 features.
    seed : int
        Seeds the initialization; the global torch RNG is left as it was.

    Raises
    ------
    ValueError
        For an unknown name, and for ``norm='in'``: instance normalization of a feature
        vector normalizes each sample over its features, which is layer normalization
        (``'ln'``); there are no spatial positions to normalize over.
    """
    func = "build_mlp"
    _check_common(func, norm, placement, activation, init, dropout)
    if norm == "in":
        raise ValueError(f"{func}: norm='in' needs spatial positions (use build_cnn); for "
                         f"1-D features instance normalization is layer normalization, 'ln'")
    mods, fan_in = [], in_features
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, width in enumerate(hidden, start=1):
            layer = _weighted_layer("linear", fan_in, width, norm=norm, init=init,
                                    activation=activation)
            mods += _block(func, i, layer, width, norm=norm, placement=placement,
                           activation=activation, dropout=dropout, image=False,
                           num_groups=num_groups)
            fan_in = width
        mods.append(("out", _weighted_layer("linear", fan_in, out_features, norm="none",
                                            init=init, activation="identity")))
    return nn.Sequential(OrderedDict(mods))


def build_cnn(in_channels: int = 1, num_classes: int = 10, *, channels=(16, 32),
              norm: str = "bn", placement: str = "before", activation: str = "relu",
              init: str = "kaiming", dropout: float = 0.0, num_groups: int | None = None,
              input_size: int = 8, seed: int = 0) -> nn.Sequential:
    """Small CNN for 8x8 images: 3x3 conv blocks with 2x2 max pooling, then a Linear.

    Block ``i`` is ``conv{i}`` (3x3, padding 1), ``norm{i}`` and ``act{i}`` in the order set
    by ``placement``, optional ``drop{i}``, then ``pool{i}`` while the feature map is at
    least 4 pixels wide (8 -> 4 -> 2); then ``flatten`` and ``out``.

    Parameters
    ----------
    in_channels, num_classes : int
    channels : sequence of int
        Output channels of the conv blocks.
    norm : one of :data:`NORMS`
        As in :func:`build_mlp`, over channels: ``bn`` BatchNorm2d; ``ln`` GroupNorm with
        one group (normalizes over C, H, W with per-channel affine); ``in`` InstanceNorm2d
        (affine); ``gn`` GroupNorm; ``wn`` / ``cwn`` on the convolutions; ``bw-*``
        :class:`BatchWhitening` of the channels over the ``N H W`` positions; ``brn``
        :class:`BatchRenorm`.
    placement, activation, init, dropout, num_groups, seed
        As in :func:`build_mlp`.
    input_size : int
        Side of the square input images.
    """
    func = "build_cnn"
    _check_common(func, norm, placement, activation, init, dropout)
    mods, fan_in, size = [], in_channels, input_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, width in enumerate(channels, start=1):
            layer = _weighted_layer("conv", fan_in, width, norm=norm, init=init,
                                    activation=activation)
            mods += _block(func, i, layer, width, norm=norm, placement=placement,
                           activation=activation, dropout=dropout, image=True,
                           num_groups=num_groups)
            if size >= 4:
                mods.append((f"pool{i}", nn.MaxPool2d(2)))
                size //= 2
            fan_in = width
        mods.append(("flatten", nn.Flatten()))
        mods.append(("out", _weighted_layer("linear", fan_in * size * size, num_classes,
                                            norm="none", init=init, activation="identity")))
    return nn.Sequential(OrderedDict(mods))


# --------------------------------------------------------------------------- training


def make_loader(X, y, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                drop_last: bool = False) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` over NumPy arrays (or tensors) with its own seeded generator.

    ``X`` becomes float32; ``y`` becomes int64 if it holds integers (class labels), else
    float32. :func:`train` rewinds the generator to ``seed`` at its start, so every run on
    the same loader sees the same batch order.
    """
    X_t = torch.as_tensor(np.asarray(X) if not torch.is_tensor(X) else X).float()
    y_t = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y)
    y_t = y_t.long() if not (y_t.is_floating_point() or y_t.is_complex()) else y_t.float()
    if len(X_t) != len(y_t):
        raise ValueError(f"make_loader: X and y must have the same length, got {len(X_t)} "
                         f"and {len(y_t)}")
    if batch_size < 1:
        raise ValueError(f"make_loader: batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_t, y_t),
                                       batch_size=batch_size, shuffle=shuffle,
                                       generator=generator, drop_last=drop_last)


@dataclass
class History:
    r"""What :func:`train` records; plain lists, ready for ``plt.plot``.

    Per step: ``loss``, ``accuracy`` and, with ``track=True``, one list per module or
    parameter name in ``activation_mean``, ``activation_std`` (outputs of normalization and
    activation modules), ``grad_norm`` (:math:`\lVert \nabla_w L \rVert`), ``weight_norm``
    (:math:`\lVert w_t \rVert`, before the step) and ``update_ratio``
    (:math:`\lVert w_{t+1} - w_t \rVert / \lVert w_t \rVert`; NaN where :math:`w_t = 0`).
    :mod:`normcore.diagnostics` turns these into gradient:data and update:data ratios.
    Per epoch: ``epoch_loss``, ``epoch_accuracy`` (means over the epoch's steps) and
    ``val_loss``, ``val_accuracy``, whose entry 0 is *before* training (so they have
    ``epochs + 1`` entries). ``accuracy`` is NaN for non-integer targets.
    """

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    epoch_loss: list = field(default_factory=list)
    epoch_accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    steps_per_epoch: int = 0
    activation_mean: dict = field(default_factory=dict)
    activation_std: dict = field(default_factory=dict)
    grad_norm: dict = field(default_factory=dict)
    weight_norm: dict = field(default_factory=dict)
    update_ratio: dict = field(default_factory=dict)
    diverged: bool = False

    @property
    def steps(self) -> np.ndarray:
        """Step indices ``0 .. len(loss) - 1``, the x axis of the per-step curves."""
        return np.arange(len(self.loss))


_TRACKED = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d,
            BatchWhitening, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU)


def _make_optimizer(model, name, lr, weight_decay, momentum):
    _check_name("train", "optimizer", name, OPTIMIZERS)
    params = model.parameters()
    if momentum and name not in ("sgd", "nesterov", "rmsprop"):
        raise ValueError(f"train: momentum applies to sgd, nesterov and rmsprop, got "
                         f"momentum={momentum} with optimizer={name!r}")
    if name in ("sgd", "nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=name == "nesterov")
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "nadam": torch.optim.NAdam,
           "adagrad": torch.optim.Adagrad}[name]
    return cls(params, lr=lr, weight_decay=weight_decay)


def _batch_accuracy(logits, target):
    if target.is_floating_point() or logits.dim() != 2:
        return float("nan")
    return (logits.argmax(dim=1) == target).float().mean().item()


@torch.no_grad()
def evaluate(model: nn.Module, loader, *, loss_fn=None, device=None) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` in eval mode over ``loader``.

    ``loss_fn`` defaults to cross entropy; accuracy is NaN for non-integer targets. The
    model's train/eval mode is restored afterwards.
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_loss, total_correct, count = 0.0, 0.0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        out = model(xb)
        total_loss += loss_fn(out, yb).item() * len(xb)
        total_correct += _batch_accuracy(out, yb) * len(xb)
        count += len(xb)
    model.train(was_training)
    return total_loss / count, total_correct / count


def train(model: nn.Module, train_loader, *, epochs: int, lr: float, optimizer: str = "sgd",
          weight_decay: float = 0.0, momentum: float = 0.0, val_loader=None, seed: int = 0,
          track: bool = False, progress: bool = True, device=None, loss_fn=None,
          stop_on_nonfinite: bool = True) -> History:
    """Train ``model`` in place and return its :class:`History`.

    Parameters
    ----------
    model : nn.Module
        Moved to ``device``.
    train_loader : DataLoader
        Yields ``(x, y)``; a generator attached to it (:func:`make_loader`) is rewound to its
        initial seed, so reruns see the same batches.
    epochs : int
    lr : float
    optimizer : one of :data:`OPTIMIZERS`
        ``torch.optim`` classes with their default hyperparameters besides ``lr``,
        ``weight_decay`` (L2 added to the gradient; decoupled for ``adamw``) and
        ``momentum`` (``sgd``, ``nesterov``, ``rmsprop`` only).
    val_loader : DataLoader, optional
        Evaluated before training and after every epoch.
    seed : int
        Seeds torch (dropout, unseeded loaders) inside a forked RNG state; the caller's
        global RNG is left as it was. Same seed, model and loader: identical history.
    track : bool
        Record activation statistics, gradient norms and update/weight ratios per step.
    progress : bool
        Show a tqdm progress bar.
    device : str or torch.device, optional
        Default ``'cuda'`` if available, else ``'cpu'``.
    loss_fn : callable, optional
        ``loss_fn(output, target)``; default cross entropy.
    stop_on_nonfinite : bool
        Stop (and set ``History.diverged``) when the loss becomes NaN or infinite.
    """
    if epochs < 0 or lr <= 0:
        raise ValueError(f"train: need epochs >= 0 and lr > 0, got epochs={epochs}, lr={lr}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    model.to(device)
    opt = _make_optimizer(model, optimizer, lr, weight_decay, momentum)
    history = History(steps_per_epoch=len(train_loader))
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    stats, handles = {}, []
    if track:
        def hook(name):
            def record(module, inputs, output):
                if module.training:
                    out = output.detach().float()
                    stats[name] = torch.stack([out.mean(), out.std()])
            return record
        handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
                   if isinstance(m, _TRACKED)]
    generator = getattr(train_loader, "generator", None)
    if generator is not None:
        generator.manual_seed(generator.initial_seed())
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    bar = tqdm(total=epochs * len(train_loader), disable=not progress, desc="train")
    try:
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            if val_loader is not None:
                _append_val(history, model, val_loader, loss_fn, device)
            for _ in range(epochs):
                model.train()
                first = len(history.loss)
                for xb, yb in train_loader:
                    xb, yb = xb.to(device), yb.to(device)
                    out = model(xb)
                    loss = loss_fn(out, yb)
                    if stop_on_nonfinite and not torch.isfinite(loss):
                        history.diverged = True
                        break
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if track:
                        before = [p.detach().clone() for _, p in params]
                        grads = torch.stack([p.grad.norm() if p.grad is not None
                                             else torch.zeros((), device=device)
                                             for _, p in params])
                    opt.step()
                    history.loss.append(loss.item())
                    history.accuracy.append(_batch_accuracy(out.detach(), yb))
                    if track:
                        _record_tracking(history, stats, params, before, grads)
                    bar.update(1)
                    if len(history.loss) % 10 == 0:
                        bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
                if len(history.loss) > first:
                    history.epoch_loss.append(float(np.mean(history.loss[first:])))
                    history.epoch_accuracy.append(float(np.mean(history.accuracy[first:])))
                if history.diverged:
                    break
                if val_loader is not None:
                    _append_val(history, model, val_loader, loss_fn, device)
    finally:
        bar.close()
        for h in handles:
            h.remove()
    return history


def _append_val(history, model, loader, loss_fn, device):
    val_loss, val_acc = evaluate(model, loader, loss_fn=loss_fn, device=device)
    history.val_loss.append(val_loss)
    history.val_accuracy.append(val_acc)


@torch.no_grad()
def _record_tracking(history, stats, params, before, grads):
    w_norm = torch.stack([b.norm() for b in before])
    delta = torch.stack([(p.detach() - b).norm() for (_, p), b in zip(params, before)])
    ratio = torch.where(w_norm > 0, delta / w_norm, torch.full_like(w_norm, float("nan")))
    for (name, _), g, r, n in zip(params, grads.tolist(), ratio.tolist(), w_norm.tolist()):
        history.grad_norm.setdefault(name, []).append(g)
        history.weight_norm.setdefault(name, []).append(n)
        history.update_ratio.setdefault(name, []).append(r)
    for name, value in stats.items():
        mean, std = value.tolist()
        history.activation_mean.setdefault(name, []).append(mean)
        history.activation_std.setdefault(name, []).append(std)
    stats.clear()
