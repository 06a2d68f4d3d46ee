r"""Many small MLPs trained at once: stacked weights and batched matrix products.

A grid of experiments (init scale x learning rate x seed) on a small network is dominated by
per-step overhead, not by arithmetic. :class:`StackedMLP` holds ``M`` independent networks of the
same shape in tensors with a leading model axis, so that one ``torch.bmm`` per layer runs all of
them (:class:`StackedCNN` does the same for small CNNs with grouped convolutions);
:func:`train_stacked` trains them together with SGD or Adam, each model with its own
learning rate if wanted. The models never interact: the loss is the sum of the models' own mean
losses, so each parameter receives exactly the gradient of its own model, and the per-channel
statistics of batch normalization are computed per model (BN of ``M`` stacked models of width
``W`` is BN of a ``(B, M W)`` matrix).

Every model of a :class:`StackedMLP` computes what :func:`normcore.nn.build_mlp` computes with
the same weights, normalization before the nonlinearity (tested against it).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .nn import batch_renorm

__all__ = ["STACKED_NORMS", "StackedMLP", "StackedCNN", "train_stacked", "stacked_accuracy"]

#: Normalizations of :class:`StackedMLP`, named as in :func:`normcore.nn.build_mlp`.
STACKED_NORMS = ("none", "bn", "brn", "ln", "gn", "bgn")
_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


def _per_model(func: str, name: str, value, num_models: int) -> torch.Tensor:
    """A scalar or a length-``num_models`` sequence as a float64 tensor of shape (M,)."""
    array = np.broadcast_to(np.asarray(value, dtype=np.float64), (num_models,)) \
        if np.ndim(value) == 0 else np.asarray(value, dtype=np.float64)
    if array.shape != (num_models,):
        raise ValueError(f"{func}: {name} must be a scalar or have length {num_models}, got "
                         f"shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{func}: {name} must be positive and finite, got {value!r}")
    return torch.from_numpy(array.copy())


class StackedMLP(nn.Module):
    r"""``num_models`` MLPs ``Linear -> norm -> activation`` (repeated), then ``Linear``.

    Parameters
    ----------
    num_models : int
        ``M``, the number of independent networks.
    in_features, out_features : int
    hidden : sequence of int
        Widths of the hidden layers.
    norm : one of :data:`STACKED_NORMS`
        ``none``; ``bn`` batch norm (running statistics, PyTorch's momentum); ``brn`` batch
        renormalization (:func:`normcore.nn.batch_renorm`); ``ln`` layer norm over the
        units; ``gn`` group norm with ``num_groups`` groups of units; ``bgn`` batch group
        norm (:func:`normcore.normalization.batch_group_norm_forward`: one statistic per group
        of units over the batch, with running averages for evaluation as in BN). Every norm
        has a learnable per-unit scale and shift.
    activation : {'relu', 'tanh'}
    init_scale : float or sequence of M floats
        Hidden and output weights are drawn from :math:`N(0, (s\,\sqrt{2/\mathrm{fan\_in}})^2)`:
        ``s`` times He's standard deviation, one ``s`` per model. Biases start at zero.
    num_groups : int
        Groups for ``gn``.
    momentum, eps, rmax, dmax : float
        Of the normalization layers, as in PyTorch / :class:`normcore.nn.BatchRenorm`.
    seed : int
        Seeds the weights (model ``m`` uses the generator's draws in order, so models with
        different ``init_scale`` share the same random directions).
    dtype : torch.dtype

    Shape:
        - Input: ``(B, in_features)`` (the same batch for every model) or
          ``(M, B, in_features)``
        - Output: ``(M, B, out_features)``
    """

    def __init__(self, num_models: int, in_features: int, hidden, out_features: int, *,
                 norm: str = "none", activation: str = "relu", init_scale=1.0,
                 num_groups: int = 8, momentum: float = 0.1, eps: float = 1e-5,
                 rmax: float = 3.0, dmax: float = 5.0, seed: int = 0,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        func = "StackedMLP"
        if not isinstance(num_models, int) or num_models < 1:
            raise ValueError(f"{func}: num_models must be a positive int, got {num_models!r}")
        if norm not in STACKED_NORMS:
            raise ValueError(f"{func}: unknown norm {norm!r}; valid: {', '.join(STACKED_NORMS)}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"{func}: unknown activation {activation!r}; valid: "
                             f"{', '.join(_ACTIVATIONS)}")
        hidden = tuple(hidden)
        if norm in ("gn", "bgn") and any(w % num_groups for w in hidden):
            raise ValueError(f"{func}: num_groups={num_groups} does not divide the widths "
                             f"{hidden}")
        scale = _per_model(func, "init_scale", init_scale, num_models)
        self.num_models, self.norm, self.activation = num_models, norm, activation
        self.num_groups, self.momentum, self.eps = num_groups, momentum, eps
        self.rmax, self.dmax = rmax, dmax
        sizes = (in_features, *hidden, out_features)
        gen = torch.Generator().manual_seed(seed)
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        self.gammas, self.betas = nn.ParameterList(), nn.ParameterList()
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            w = torch.randn(num_models, fan_in, fan_out, generator=gen, dtype=torch.float64)
            w *= (scale * math.sqrt(2.0 / fan_in)).view(-1, 1, 1)
            self.weights.append(nn.Parameter(w.to(dtype)))
            self.biases.append(nn.Parameter(torch.zeros(num_models, 1, fan_out, dtype=dtype)))
            if i < len(hidden) and norm != "none":
                self.gammas.append(nn.Parameter(torch.ones(num_models, 1, fan_out, dtype=dtype)))
                self.betas.append(nn.Parameter(torch.zeros(num_models, 1, fan_out, dtype=dtype)))
                if norm in ("bn", "brn", "bgn"):
                    stats = num_models * (num_groups if norm == "bgn" else fan_out)
                    self.register_buffer(f"running_mean{i}", torch.zeros(stats, dtype=dtype))
                    self.register_buffer(f"running_var{i}", torch.ones(stats, dtype=dtype))

    @property
    def num_hidden(self) -> int:
        return len(self.weights) - 1

    def load_model(self, index: int, model: nn.Sequential) -> None:
        """Copy the weights of a :func:`normcore.nn.build_mlp` model (norm before the
        activation, same widths and norm) into model ``index``; running statistics too."""
        layers = [model.get_submodule(f"fc{i + 1}") for i in range(self.num_hidden)]
        layers.append(model.get_submodule("out"))
        with torch.no_grad():
            for i, layer in enumerate(layers):
                self.weights[i][index] = layer.weight.T
                self.biases[i][index, 0] = layer.bias
                if i < self.num_hidden and self.norm != "none":
                    norm = model.get_submodule(f"norm{i + 1}")
                    self.gammas[i][index, 0] = norm.weight
                    self.betas[i][index, 0] = norm.bias
                    if self.norm in ("bn", "brn"):
                        width = layer.weight.shape[0]
                        part = slice(index * width, (index + 1) * width)
                        getattr(self, f"running_mean{i}")[part] = norm.running_mean
                        getattr(self, f"running_var{i}")[part] = norm.running_var

    def _normalize(self, h: torch.Tensor, i: int) -> torch.Tensor:
        m, b, w = h.shape
        if self.norm in ("bn", "brn"):
            flat = h.transpose(0, 1).reshape(b, m * w)             # channels = models x units
            stats = (getattr(self, f"running_mean{i}"), getattr(self, f"running_var{i}"))
            if self.norm == "bn":
                flat = F.batch_norm(flat, *stats, None, None, self.training, self.momentum,
                                    self.eps)
            else:
                flat = batch_renorm(flat, *stats, training=self.training,
                                    momentum=self.momentum, eps=self.eps, rmax=self.rmax,
                                    dmax=self.dmax)
            h = flat.reshape(b, m, w).transpose(0, 1)
        elif self.norm == "bgn":                                   # (B, M G, W / G)
            flat = h.transpose(0, 1).reshape(b, m * self.num_groups, w // self.num_groups)
            flat = F.batch_norm(flat, getattr(self, f"running_mean{i}"),
                                getattr(self, f"running_var{i}"), None, None, self.training,
                                self.momentum, self.eps)
            h = flat.reshape(b, m, w).transpose(0, 1)
        elif self.norm == "ln":
            h = F.layer_norm(h, (w,), eps=self.eps)
        else:
            h = F.group_norm(h.reshape(m * b, w), self.num_groups, eps=self.eps).reshape(m, b, w)
        return h * self.gammas[i] + self.betas[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.num_models, -1, -1)
        if x.dim() != 3 or x.shape[0] != self.num_models:
            raise ValueError(f"StackedMLP: expected input (B, in) or ({self.num_models}, B, in), "
                             f"got {tuple(x.shape)}")
        act = _ACTIVATIONS[self.activation]
        h = x
        for i in range(self.num_hidden):
            h = torch.baddbmm(self.biases[i], h, self.weights[i])
            if self.norm != "none":
                h = self._normalize(h, i)
            h = act(h)
        return torch.baddbmm(self.biases[-1], h, self.weights[-1])


class StackedCNN(nn.Module):
    r"""``num_models`` small CNNs for 8x8 images, run as grouped convolutions.

    Each model is :func:`normcore.nn.build_cnn` with ``channels=(c1, c2)``: ``conv1`` (3x3,
    padding 1), ``norm1``, ReLU, 2x2 max pooling, ``conv2``, ``norm2``, ReLU, 2x2 max pooling,
    then a linear layer on the flattened ``c2 x 2 x 2`` features. The models' channels are
    concatenated, ``(B, M c, H, W)``, and every convolution uses ``groups=M``, so that no model
    sees another's channels; BN's per-channel statistics and GN's groups (which never straddle
    two models) are then computed per model.

    Parameters
    ----------
    num_models : int
    channels : pair of int
    num_classes : int
    norm : {'none', 'bn', 'gn', 'ln'}
        ``ln`` is GN with one group (normalizes over C, H, W with a per-channel affine), as in
        ``build_cnn``.
    num_groups : int
        Groups of ``gn`` in each layer (must divide both channel counts).
    init_scale : float or sequence of M floats
        Multiple of He's standard deviation for all weights; biases start at zero.
    seed : int
    dtype : torch.dtype

    Shape:
        - Input: ``(B, 1, 8, 8)``; Output: ``(M, B, num_classes)``
    """

    def __init__(self, num_models: int, channels=(8, 16), num_classes: int = 10, *,
                 norm: str = "none", num_groups: int = 4, init_scale=1.0, momentum: float = 0.1,
                 eps: float = 1e-5, seed: int = 0, dtype: torch.dtype = torch.float32):
        super().__init__()
        func = "StackedCNN"
        if norm not in ("none", "bn", "gn", "ln"):
            raise ValueError(f"{func}: unknown norm {norm!r}; valid: none, bn, gn, ln")
        c1, c2 = channels
        if norm == "gn" and (c1 % num_groups or c2 % num_groups):
            raise ValueError(f"{func}: num_groups={num_groups} does not divide the channels "
                             f"{tuple(channels)}")
        scale = _per_model(func, "init_scale", init_scale, num_models)
        self.num_models, self.norm, self.channels = num_models, norm, (c1, c2)
        self.num_groups, self.momentum, self.eps = num_groups, momentum, eps
        gen = torch.Generator().manual_seed(seed)

        w1 = torch.randn(num_models, c1, 1, 3, 3, generator=gen, dtype=torch.float64)
        w2 = torch.randn(num_models, c2, c1, 3, 3, generator=gen, dtype=torch.float64)
        w3 = torch.randn(num_models, 4 * c2, num_classes, generator=gen, dtype=torch.float64)
        w1 *= (scale * math.sqrt(2 / 9)).view(-1, 1, 1, 1, 1)
        w2 *= (scale * math.sqrt(2 / (9 * c1))).view(-1, 1, 1, 1, 1)
        w3 *= (scale * math.sqrt(2 / (4 * c2))).view(-1, 1, 1)
        self.conv1 = nn.Parameter(w1.reshape(num_models * c1, 1, 3, 3).to(dtype))
        self.conv2 = nn.Parameter(w2.reshape(num_models * c2, c1, 3, 3).to(dtype))
        self.bias1 = nn.Parameter(torch.zeros(num_models * c1, dtype=dtype))
        self.bias2 = nn.Parameter(torch.zeros(num_models * c2, dtype=dtype))
        self.out_weight = nn.Parameter(w3.to(dtype))
        self.out_bias = nn.Parameter(torch.zeros(num_models, 1, num_classes, dtype=dtype))
        self.gammas, self.betas = nn.ParameterList(), nn.ParameterList()
        if norm != "none":
            for width in (c1, c2):
                self.gammas.append(nn.Parameter(torch.ones(num_models * width, dtype=dtype)))
                self.betas.append(nn.Parameter(torch.zeros(num_models * width, dtype=dtype)))
        if norm == "bn":
            for i, width in enumerate((c1, c2)):
                self.register_buffer(f"running_mean{i}", torch.zeros(num_models * width,
                                                                     dtype=dtype))
                self.register_buffer(f"running_var{i}", torch.ones(num_models * width,
                                                                   dtype=dtype))

    def load_model(self, index: int, model: nn.Sequential) -> None:
        """Copy a :func:`normcore.nn.build_cnn` model (same channels and norm) into model
        ``index``, running statistics included."""
        c1, c2 = self.channels
        with torch.no_grad():
            for i, (width, conv, bias) in enumerate([(c1, self.conv1, self.bias1),
                                                     (c2, self.conv2, self.bias2)]):
                part = slice(index * width, (index + 1) * width)
                layer = model.get_submodule(f"conv{i + 1}")
                conv[part] = layer.weight
                bias[part] = layer.bias
                if self.norm != "none":
                    norm = model.get_submodule(f"norm{i + 1}")
                    self.gammas[i][part] = norm.weight
                    self.betas[i][part] = norm.bias
                    if self.norm == "bn":
                        getattr(self, f"running_mean{i}")[part] = norm.running_mean
                        getattr(self, f"running_var{i}")[part] = norm.running_var
            out = model.get_submodule("out")
            self.out_weight[index] = out.weight.T
            self.out_bias[index, 0] = out.bias

    def _normalize(self, h: torch.Tensor, i: int) -> torch.Tensor:
        if self.norm == "none":
            return h
        gamma, beta = self.gammas[i], self.betas[i]
        if self.norm == "bn":
            return F.batch_norm(h, getattr(self, f"running_mean{i}"),
                                getattr(self, f"running_var{i}"), gamma, beta, self.training,
                                self.momentum, self.eps)
        groups = self.num_groups if self.norm == "gn" else 1
        return F.group_norm(h, self.num_models * groups, gamma, beta, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"StackedCNN: expected input (B, 1, H, W), got {tuple(x.shape)}")
        m, b = self.num_models, x.shape[0]
        h = x.expand(-1, m, -1, -1)
        h = F.conv2d(h, self.conv1, self.bias1, padding=1, groups=m)
        h = F.max_pool2d(torch.relu(self._normalize(h, 0)), 2)
        h = F.conv2d(h, self.conv2, self.bias2, padding=1, groups=m)
        h = F.max_pool2d(torch.relu(self._normalize(h, 1)), 2)
        h = h.reshape(b, m, -1).transpose(0, 1)                  # (M, B, c2 * 2 * 2)
        return torch.baddbmm(self.out_bias, h, self.out_weight)


def _per_model_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    m, b, k = logits.shape
    target = y.expand(m, b) if y.dim() == 1 else y
    return F.cross_entropy(logits.reshape(m * b, k), target.reshape(-1),
                           reduction="none").view(m, b).mean(dim=1)


def train_stacked(model: StackedMLP | StackedCNN, X, y, *, steps: int, batch_size: int, lr,
                  optimizer: str = "sgd", momentum: float = 0.0, seed: int = 0,
                  diverged_loss: float = 1e3, before_step=None) -> np.ndarray:
    """Train every model of ``model`` in place on the same batches; return the losses.

    Parameters
    ----------
    model : StackedMLP or StackedCNN
    X : ndarray or tensor, shape (n, in_features), or (n, 1, 8, 8) for a StackedCNN
    y : ndarray or tensor of int, shape (n,)
    steps, batch_size : int
        Batches are drawn without replacement from a permutation of the data (seeded by
        ``seed``), a new permutation each epoch.
    lr : float or sequence of M floats
        One learning rate per model for ``sgd``; ``adam`` takes one float.
    optimizer : {'sgd', 'adam'}
        Plain (or heavy-ball, ``momentum``) SGD, or ``torch.optim.Adam``; both act on each
        element separately, so the models stay independent.
    diverged_loss : float
        A model whose loss exceeds this (or is not finite) is marked diverged and frozen:
        its later losses are reported as ``inf``.
    before_step : callable, optional
        ``before_step(step, model)`` is called before each step, e.g. to follow a schedule
        of ``model.rmax`` and ``model.dmax``.

    Returns
    -------
    losses : ndarray, shape (steps, M)
        The training loss of each model at each step (``inf`` once diverged).
    """
    func = "train_stacked"
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"{func}: optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"{func}: need steps >= 1 and batch_size >= 1, got steps={steps}, "
                         f"batch_size={batch_size}")
    dtype = next(model.parameters()).dtype
    X = torch.as_tensor(np.asarray(X) if not torch.is_tensor(X) else X).to(dtype)
    y = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y).long()
    if batch_size > len(X):
        raise ValueError(f"{func}: batch_size={batch_size} exceeds the {len(X)} examples")
    m = model.num_models
    params = list(model.parameters())
    if optimizer == "adam":
        if np.ndim(lr) != 0:
            raise ValueError(f"{func}: adam takes one learning rate, got {lr!r}")
        opt = torch.optim.Adam(params, lr=float(lr))
    else:
        rates = _per_model(func, "lr", lr, m).to(dtype)
        velocity = [torch.zeros_like(p) for p in params]
    alive = torch.ones(m, dtype=torch.bool)
    losses = np.empty((steps, m))
    gen = torch.Generator().manual_seed(seed)
    order, position = torch.randperm(len(X), generator=gen), 0
    model.train()
    for step in range(steps):
        if before_step is not None:
            before_step(step, model)
        if position + batch_size > len(X):
            order, position = torch.randperm(len(X), generator=gen), 0
        idx = order[position:position + batch_size]
        position += batch_size
        per_model = _per_model_loss(model(X[idx]), y[idx])
        with torch.no_grad():
            alive &= torch.isfinite(per_model) & (per_model < diverged_loss)
        losses[step] = torch.where(alive, per_model.detach(), torch.inf).double().numpy()
        for p in params:
            p.grad = None
        torch.where(alive, per_model, 0.0).sum().backward()
        with torch.no_grad():
            if optimizer == "adam":
                opt.step()
            else:
                for p, v in zip(params, velocity, strict=True):
                    v.mul_(momentum).add_(p.grad)
                    # every parameter is laid out model-major: (M, ...) or (M * channels, ...)
                    p.view(m, -1).sub_(rates[:, None] * v.view(m, -1))
            if not alive.all():                        # keep diverged models finite
                for p in params:
                    p.view(m, -1)[~alive] = 0.0
    return losses


@torch.no_grad()
def stacked_accuracy(model: StackedMLP | StackedCNN, X, y) -> np.ndarray:
    """Accuracy of each model on ``(X, y)`` in the model's current mode, shape (M,)."""
    dtype = next(model.parameters()).dtype
    X = torch.as_tensor(np.asarray(X) if not torch.is_tensor(X) else X).to(dtype)
    y = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y).long()
    pred = model(X).argmax(dim=-1)
    return (pred == y).double().mean(dim=1).numpy()
