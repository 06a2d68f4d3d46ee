# %% [markdown]
# # Assignment 4: Normalization layers
#
# You will implement the normalization layers of the lecture with NumPy: batch normalization
# (forward with running statistics, two backward passes, the spatial version for
# convolutions), layer normalization, group normalization, and the folding of a trained batch
# norm into the layer before it.
#
# **Total: 35 points** (31 graded automatically, 4 for the written question at the end).
#
# How this notebook is graded:
#
# * Write your code in the cells that say `YOUR CODE HERE`, replacing
#   `raise NotImplementedError()`. Keep the function names and signatures: they are those of
#   the course library `normcore`, and your functions are compared with it.
# * Each test cell is worth the points written in its first line, all or nothing. The tests
#   you see check shapes and a small example worked out by hand. When the assignment is
#   graded, more tests run in the same cells: random shapes, float32 inputs, edge cases,
#   comparison with a reference implementation and numerical gradient checks. A failing test
#   says what is wrong.
# * Use NumPy only. A function that calls `normcore`'s implementation of the same layer, or
#   `torch.nn` / `torch.optim`, scores zero on that test.
# * Arrays are `float32` or `float64`; return arrays of the input's dtype, and never modify
#   the arrays you are given (except the running statistics, see below).
# * Before submitting, restart the kernel and run all cells (*Kernel → Restart & Run All*).
#   Test cells you edit or delete are restored from the original when grading.

# %% nbgrader="readonly" grade_id="setup"
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("normcore") is None:  # outside the course environment (Colab)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet",
                           "normcore @ git+https://github.com/normcore-course/normalization-course"])

import numpy as np

from normcore import grading

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## 1. Batch normalization: forward pass (9 points)
#
# For an input $x$ of shape `(N, C)` (a fully connected layer) or `(N, C, *spatial)` (a
# convolutional layer, e.g. `(N, C, H, W)`), batch normalization computes one mean and one
# variance **per channel** $c$, over the $m = N \cdot H \cdot W$ values of that channel in the
# batch (over axis 0 and every spatial axis):
#
# $$
# \mu_c = \frac{1}{m} \sum_{n, h, w} x_{nchw}, \qquad
# \sigma_c^2 = \frac{1}{m} \sum_{n, h, w} (x_{nchw} - \mu_c)^2, \qquad
# \hat{x}_{nchw} = \frac{x_{nchw} - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}}, \qquad
# y_{nchw} = \gamma_c \hat{x}_{nchw} + \beta_c .
# $$
#
# Note the **biased** variance (divide by $m$) and $\epsilon$ **inside** the square root.
# Sharing the statistics over the spatial positions ("spatial batch norm") keeps the
# convolution's property that every position of a feature map is treated alike.
#
# At test time a sample's output must not depend on the other samples of its batch, so the
# layer keeps running averages of the statistics while training, updated **in place** (the
# caller's arrays change) with PyTorch's convention, where `momentum` weighs the new batch:
#
# $$
# \mathrm{running\_mean} \leftarrow (1 - \mathrm{momentum})\, \mathrm{running\_mean}
#     + \mathrm{momentum}\, \mu, \qquad
# \mathrm{running\_var} \leftarrow (1 - \mathrm{momentum})\, \mathrm{running\_var}
#     + \mathrm{momentum}\, \frac{m}{m - 1}\, \sigma^2 .
# $$
#
# The running variance accumulates the **unbiased** estimate $\frac{m}{m-1}\sigma^2$. (Both
# lectures write the average with the weight on the new batch, as PyTorch does, with
# `momentum` $= 0.1$; the blog notes average the standard deviation $\sigma$ instead of the
# variance $\sigma^2$, which is not the same average: here, as in PyTorch, it is $\sigma^2$.) With
# `training=False` the layer normalizes with `running_mean` and `running_var` instead of
# $\mu$ and $\sigma^2$, and changes nothing.
#
# The function returns `(out, cache)`. The cache is yours: store whatever your backward
# pass needs.

# %% nbgrader="answer" grade_id="batch_norm_forward"
def batch_norm_forward(x, gamma, beta, running_mean=None, running_var=None, *,
                       training=True, momentum=0.1, eps=1e-5):
    """Batch normalization forward pass.

    Parameters
    ----------
    x : ndarray, shape (N, C) or (N, C, *spatial)
    gamma, beta : ndarray, shape (C,)
    running_mean, running_var : ndarray, shape (C,), or None
        Updated in place when training; used instead of the batch statistics otherwise.
    training : bool
    momentum : float
    eps : float

    Returns
    -------
    out : ndarray, shape of x
    cache : anything your backward pass needs
    """
    ### BEGIN SOLUTION
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        m = x.size // x.shape[1]
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * (m / (m - 1))
    else:
        mean, var = running_mean, running_var
    inv_std = 1 / np.sqrt(var + eps)
    xhat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
    out = gamma.reshape(shape) * xhat + beta.reshape(shape)
    cache = (xhat, inv_std, gamma, training)
    return out, cache
    ### END SOLUTION


# %% [markdown]
# A small example you can check by hand: with $\epsilon = 0$ the two channels of
# `x = [[1, 2], [3, 6]]` have means $(2, 4)$ and variances $(1, 4)$, so both normalize to
# $(-1, 1)$. With $\epsilon = 3$, added inside the square root, the channels are divided by
# $\sqrt{1 + 3} = 2$ and $\sqrt{4 + 3} = \sqrt 7$ instead: $(\mp 1/2)$ and $(\mp 2/\sqrt 7)$.

# %% nbgrader="tests" grade_id="test_batch_norm_forward" points=4
# 4 points: training-mode output.
x = np.array([[1.0, 2.0], [3.0, 6.0]])
grading.check_example(batch_norm_forward, (x, np.ones(2), np.zeros(2)), {"eps": 0.0},
                      name="batch_norm_forward", returns=("out", None),
                      expected={"out": [[-1.0, -1.0], [1.0, 1.0]]})
grading.check_example(batch_norm_forward, (x, np.array([2.0, 1.0]), np.array([0.0, 10.0])),
                      {"eps": 0.0}, name="batch_norm_forward", returns=("out", None),
                      expected={"out": [[-2.0, 9.0], [2.0, 11.0]]})
grading.check_example(batch_norm_forward, (x, np.ones(2), np.zeros(2)), {"eps": 3.0},
                      name="batch_norm_forward", returns=("out", None),
                      expected={"out": [[-1 / 2, -2 / np.sqrt(7)], [1 / 2, 2 / np.sqrt(7)]]})
x32 = np.array([[1, 2], [3, 6]], dtype=np.float32)
grading.check_example(batch_norm_forward, (x32, np.ones(2, np.float32), np.zeros(2, np.float32)),
                      {"eps": 0.0}, name="batch_norm_forward", returns=("out", None),
                      expected={"out": np.array([[-1, -1], [1, 1]], dtype=np.float32)})
### BEGIN HIDDEN TESTS
from normcore import normalization as _ref

_rng = np.random.default_rng(4041)
for _shape, _dtype, _eps in [((8, 3), np.float64, 1e-5), ((5, 4), np.float64, 0.1),
                             ((2, 3), np.float64, 1e-3), ((16, 5), np.float32, 1e-5)]:
    _x = (3 * _rng.standard_normal(_shape) + 2).astype(_dtype)
    _g = _rng.standard_normal(_shape[1]).astype(_dtype)
    _b = _rng.standard_normal(_shape[1]).astype(_dtype)
    grading.check_against_reference(batch_norm_forward, _ref.batch_norm_forward,
                                     (_x, _g, _b), {"eps": _eps}, name="batch_norm_forward",
                                     returns=("out", None))
_x = _rng.standard_normal((6, 3))
_x[:, 1] = 5.0  # a constant channel: the variance is 0 and eps keeps the output finite
grading.check_against_reference(batch_norm_forward, _ref.batch_norm_forward,
                                 (_x, np.ones(3), np.zeros(3)), {"eps": 1e-3},
                                 name="batch_norm_forward", returns=("out", None))
### END HIDDEN TESTS

# %% [markdown]
# Running statistics, by hand: starting from `running_mean = [0, 0]`, `running_var = [1, 1]`
# and `momentum = 0.1`, one training step on the example above gives
# `running_mean = 0.9 * 0 + 0.1 * [2, 4] = [0.2, 0.4]` and, with the unbiased variances
# $(2, 8)$, `running_var = 0.9 * 1 + 0.1 * [2, 8] = [1.1, 1.7]`. A second step on the same
# batch goes on from there: `running_mean = 0.9 * [0.2, 0.4] + 0.1 * [2, 4] = [0.38, 0.76]` and
# `running_var = 0.9 * [1.1, 1.7] + 0.1 * [2, 8] = [1.19, 2.33]`.

# %% nbgrader="tests" grade_id="test_batch_norm_running_stats" points=3
# 3 points: running statistics while training, and evaluation mode.
x = np.array([[1.0, 2.0], [3.0, 6.0]])
grading.check_example(batch_norm_forward, (x, np.ones(2), np.zeros(2), np.zeros(2), np.ones(2)),
                      {"momentum": 0.1}, name="batch_norm_forward", returns=("out", None),
                      expected={"running_mean": [0.2, 0.4], "running_var": [1.1, 1.7]})
grading.check_example(batch_norm_forward,
                      (x, np.ones(2), np.zeros(2), np.array([0.2, 0.4]), np.array([1.1, 1.7])),
                      {"momentum": 0.1}, name="batch_norm_forward", returns=("out", None),
                      expected={"running_mean": [0.38, 0.76], "running_var": [1.19, 2.33]})
# Evaluation mode: normalize with the running statistics and leave them unchanged.
running_mean, running_var = np.array([0.2, 0.4]), np.array([1.1, 1.7])
grading.check_example(batch_norm_forward, (x, np.ones(2), np.zeros(2), running_mean, running_var),
                      {"training": False, "eps": 0.0}, name="batch_norm_forward",
                      returns=("out", None),
                      expected={"out": (x - running_mean) / np.sqrt(running_var),
                                "running_mean": running_mean, "running_var": running_var})
### BEGIN HIDDEN TESTS
from normcore import normalization as _ref

_rng = np.random.default_rng(4042)
for _shape, _training, _momentum in [((8, 3), True, 0.1), ((5, 4), True, 0.3),
                                     ((4, 3, 2, 2), True, 0.25), ((8, 3), False, 0.1),
                                     ((4, 3, 5), False, 0.3)]:
    _x = 2 * _rng.standard_normal(_shape) + 1
    _c = _shape[1]
    _args = (_x, _rng.standard_normal(_c), _rng.standard_normal(_c),
             _rng.standard_normal(_c), _rng.random(_c) + 0.5)
    grading.check_against_reference(batch_norm_forward, _ref.batch_norm_forward, _args,
                                     {"training": _training, "momentum": _momentum, "eps": 0.01},
                                     name="batch_norm_forward", returns=("out", None))
### END HIDDEN TESTS

# %% [markdown]
# **Spatial batch norm.** The same function must handle `x` of shape `(N, C, H, W)` (and
# any number of spatial axes): the statistics of channel $c$ are shared by all positions.
# By hand: for `x` of shape `(2, 2, 2)` holding the values 1, 3 (first sample) and 5, 7
# (second sample) in channel 0, the mean is 4, the variance 5, and the output is
# $(-3, -1)/\sqrt{5}$ and $(1, 3)/\sqrt{5}$; channel 1, holding 2, 2 and 4, 4, has mean 3 and
# variance 1, and normalizes to $(-1, -1)$ and $(1, 1)$. (Statistics per position would give
# channel 0 $(-1, -1)$ and $(1, 1)$ instead: one mean per channel, over the batch and every
# position.)

# %% nbgrader="tests" grade_id="test_batch_norm_spatial" points=2
# 2 points: spatial batch normalization.
x = np.array([[[1.0, 3.0], [2.0, 2.0]], [[5.0, 7.0], [4.0, 4.0]]])
r5 = np.sqrt(5)
grading.check_example(batch_norm_forward, (x, np.ones(2), np.zeros(2)), {"eps": 0.0},
                      name="batch_norm_forward", returns=("out", None),
                      expected={"out": [[[-3 / r5, -1 / r5], [-1.0, -1.0]],
                                        [[1 / r5, 3 / r5], [1.0, 1.0]]]})
### BEGIN HIDDEN TESTS
from normcore import normalization as _ref

_rng = np.random.default_rng(4043)
for _shape in [(2, 3, 4, 5), (3, 2, 1, 1), (2, 4, 7), (2, 2, 3, 2, 2)]:
    _c = _shape[1]
    _args = (_rng.standard_normal(_shape) + 3, _rng.standard_normal(_c),
             _rng.standard_normal(_c), np.zeros(_c), np.ones(_c))
    grading.check_against_reference(batch_norm_forward, _ref.batch_norm_forward, _args,
                                     {"momentum": 0.2}, name="batch_norm_forward",
                                     returns=("out", None))
_x = _rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
grading.check_against_reference(batch_norm_forward, _ref.batch_norm_forward,
                                 (_x, np.ones(3, np.float32), np.zeros(3, np.float32)),
                                 name="batch_norm_forward", returns=("out", None))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Batch normalization: backward pass (4 points)
#
# Write the forward pass as a chain of simple steps, per channel:
# $\mu \to x_c = x - \mu \to \sigma^2 = \operatorname{mean}(x_c^2) \to
# r = (\sigma^2 + \epsilon)^{-1/2} \to \hat{x} = x_c\, r \to y = \gamma \hat{x} + \beta$,
# and go back through it, one step at a time, with $\delta = \partial L / \partial y$
# (`dout`). Every step that reads a value contributes a term to that value's gradient; in
# particular $x$ reaches the output directly, **through the mean** and **through the
# variance**:
#
# $$
# \frac{\partial L}{\partial \beta} = \sum \delta, \quad
# \frac{\partial L}{\partial \gamma} = \sum \delta\, \hat{x}, \quad
# \frac{\partial L}{\partial \sigma^2} = -\frac{1}{2} r^3 \sum \gamma\, \delta\, x_c, \quad
# \frac{\partial L}{\partial \mu} = -r \sum \gamma\, \delta
#     - \frac{2}{m} \frac{\partial L}{\partial \sigma^2} \sum x_c,
# $$
# $$
# \frac{\partial L}{\partial x} = \gamma\, \delta\, r
#     + \frac{2}{m} \frac{\partial L}{\partial \sigma^2}\, x_c
#     + \frac{1}{m} \frac{\partial L}{\partial \mu},
# $$
#
# with the sums over the $m$ values of a channel (axis 0 and the spatial axes). In evaluation
# mode the statistics are constants and only the first term of
# $\partial L / \partial x$ remains. Return `(dx, dgamma, dbeta)`.

# %% nbgrader="answer" grade_id="batch_norm_backward"
def batch_norm_backward(dout, cache):
    """Batch normalization backward pass, step by step through the graph.

    Parameters
    ----------
    dout : ndarray, shape of x
    cache : what your batch_norm_forward returned

    Returns
    -------
    dx : ndarray, shape of x
    dgamma, dbeta : ndarray, shape (C,)
    """
    ### BEGIN SOLUTION
    xhat, inv_std, gamma, training = cache
    axes = (0,) + tuple(range(2, dout.ndim))
    shape = (1, -1) + (1,) * (dout.ndim - 2)
    m = dout.size // dout.shape[1]
    r = inv_std.reshape(shape)
    xc = xhat / r
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    dxhat = dout * gamma.reshape(shape)
    if not training:
        return dxhat * r, dgamma, dbeta
    dvar = -0.5 * r**3 * (dxhat * xc).sum(axis=axes, keepdims=True)
    dmu = -r * dxhat.sum(axis=axes, keepdims=True) - 2 / m * dvar * xc.sum(
        axis=axes, keepdims=True)
    dx = dxhat * r + 2 / m * dvar * xc + dmu / m
    return dx, dgamma, dbeta
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_batch_norm_backward" points=4
# 4 points: gradients of batch normalization.
rng = np.random.default_rng(1)
x, gamma, beta = rng.standard_normal((5, 3)), rng.standard_normal(3), rng.standard_normal(3)
# Your backward must be the gradient of your forward (centered differences):
grading.check_gradient(batch_norm_forward, batch_norm_backward, (x, gamma, beta), {"eps": 0.0},
                       name="batch_norm_backward")
### BEGIN HIDDEN TESTS
from normcore import normalization as _ref

_rng = np.random.default_rng(4044)
for _shape, _training in [((6, 4), True), ((2, 3, 4, 4), True), ((3, 2, 5), True),
                          ((6, 4), False)]:
    _c = _shape[1]
    _args = (_rng.standard_normal(_shape), _rng.standard_normal(_shape) + 1,
             _rng.standard_normal(_c), _rng.standard_normal(_c))
    if not _training:
        _args += (_rng.standard_normal(_c), _rng.random(_c) + 0.5)
    grading.check_backward(batch_norm_forward, batch_norm_backward,
                           _ref.batch_norm_forward, _ref.batch_norm_backward, _args,
                           {"training": _training, "eps": 0.01},
                           name="batch_norm_backward",
                           returns=("dx", "dgamma", "dbeta"))
grading.check_gradient(batch_norm_forward, batch_norm_backward,
                       (_rng.standard_normal((2, 3, 2, 2)), _rng.standard_normal(3),
                        _rng.standard_normal(3)), {"eps": 0.0}, name="batch_norm_backward")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. The closed-form backward pass (3 points)
#
# Simplify the staged gradient on paper. With $\sigma = \sqrt{\sigma^2 + \epsilon}$ and the
# sums over the $m$ values of a channel, everything collapses to
#
# $$
# \frac{\partial L}{\partial x} = \frac{\gamma}{m\, \sigma}
#     \left( m\, \delta - \sum \delta - \hat{x} \sum \delta\, \hat{x} \right)
#   = \frac{\gamma}{m\, \sigma}
#     \left( m\, \delta - \frac{\partial L}{\partial \beta}
#         - \hat{x}\, \frac{\partial L}{\partial \gamma} \right):
# $$
#
# two reductions, no intermediate gradients. Implement it: like the staged backward, it must
# be the gradient of your forward, in training and in evaluation mode (where the statistics
# are constants and $\partial L / \partial x = \gamma\, \delta / \sqrt{\mathrm{running\_var} + \epsilon}$).

# %% nbgrader="answer" grade_id="batch_norm_backward_alt"
def batch_norm_backward_alt(dout, cache):
    """Batch normalization backward pass from the closed form.

    Returns
    -------
    dx : ndarray, shape of x
    dgamma, dbeta : ndarray, shape (C,)
    """
    ### BEGIN SOLUTION
    xhat, inv_std, gamma, training = cache
    axes = (0,) + tuple(range(2, dout.ndim))
    shape = (1, -1) + (1,) * (dout.ndim - 2)
    m = dout.size // dout.shape[1]
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    scale = (gamma * inv_std).reshape(shape)
    if not training:
        return dout * scale, dgamma, dbeta
    dx = scale / m * (m * dout - dbeta.reshape(shape) - xhat * dgamma.reshape(shape))
    return dx, dgamma, dbeta
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_batch_norm_backward_alt" points=3
# 3 points: the closed form is the gradient of your forward (centered differences).
rng = np.random.default_rng(2)
x, gamma, beta = rng.standard_normal((6, 4)), rng.standard_normal(4), rng.standard_normal(4)
grading.check_gradient(batch_norm_forward, batch_norm_backward_alt, (x, gamma, beta),
                       {"eps": 0.0}, name="batch_norm_backward_alt")
grading.check_gradient(batch_norm_forward, batch_norm_backward_alt,
                       (x, gamma, beta, rng.standard_normal(4), rng.random(4) + 0.5),
                       {"training": False, "eps": 0.0}, name="batch_norm_backward_alt")
### BEGIN HIDDEN TESTS
from normcore import normalization as _ref

_rng = np.random.default_rng(4045)
for _shape, _training in [((7, 3), True), ((2, 4, 3, 3), True), ((5, 2), False)]:
    _c = _shape[1]
    _args = (_rng.standard_normal(_shape), _rng.standard_normal(_shape),
             _rng.standard_normal(_c), _rng.standard_normal(_c))
    if not _training:
        _args += (_rng.standard_normal(_c), _rng.random(_c) + 0.5)
    grading.check_backward(batch_norm_forward, batch_norm_backward_alt,
                           _ref.batch_norm_forward, _ref.batch_norm_backward_alt, _args,
                           {"training": _training, "eps": 0.01},
                           name="batch_norm_backward_alt",
                           returns=("dx", "dgamma", "dbeta"))
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Layer normalization (6 points)
#
# Layer normalization normalizes **each sample on its own**, over its trailing axes: for
# `gamma` of shape `normalized_shape` (PyTorch's name), the statistics are computed over the
# last `gamma.ndim` axes of `x`, one mean and variance per sample (and per leading
# position), and `gamma`, `beta` scale and shift elementwise:
#
# $$
# \mu_n = \frac{1}{M} \sum_j x_{nj}, \qquad
# \sigma_n^2 = \frac{1}{M} \sum_j (x_{nj} - \mu_n)^2, \qquad
# y_{nj} = \gamma_j \frac{x_{nj} - \mu_n}{\sqrt{\sigma_n^2 + \epsilon}} + \beta_j ,
# $$
#
# where $j$ runs over the $M$ elements of the normalized shape. Nothing depends on the other
# samples, so training and evaluation are the same. The backward pass is that of batch norm
# with the roles of the axes exchanged: with $g = \gamma\, \delta$ and means over the
# normalized elements of a sample,
# $\partial L / \partial x = (g - \bar{g} - \hat{x}\, \overline{g \hat{x}}) / \sigma$,
# while `dgamma` and `dbeta` sum over the leading axes.

# %% nbgrader="answer" grade_id="layer_norm_forward"
def layer_norm_forward(x, gamma, beta, *, eps=1e-5):
    """Layer normalization forward pass over the trailing gamma.ndim axes of x.

    Returns
    -------
    out : ndarray, shape of x
    cache : anything your backward pass needs
    """
    ### BEGIN SOLUTION
    axes = tuple(range(x.ndim - gamma.ndim, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - mean) * inv_std
    return gamma * xhat + beta, (xhat, inv_std, gamma, axes)
    ### END SOLUTION


# %% [markdown]
# By hand: the rows `[1, 2, 3]` and `[2, 4, 6]` have variances $2/3$ and $8/3$ and both
# normalize to $(-1, 0, 1)\cdot\sqrt{3/2}$. Taken together as one sample of shape `(2, 3)`
# (a 2-d `gamma`), the six values have mean 3 and variance $8/3$.

# %% nbgrader="tests" grade_id="test_layer_norm_forward" points=3
# 3 points: layer normalization forward.
x = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])
row = np.array([-1.0, 0.0, 1.0]) * np.sqrt(1.5)
grading.check_example(layer_norm_forward, (x, np.ones(3), np.zeros(3)), {"eps": 0.0},
                      name="layer_norm_forward", returns=("out", None),
                      expected={"out": np.stack([row, row])})
# eps inside the square root: with eps = 1/3 the variances 2/3 and 8/3 become 1 and 3.
grading.check_example(layer_norm_forward, (x, np.ones(3), np.zeros(3)), {"eps": 1 / 3},
                      name="layer_norm_forward", returns=("out", None),
                      expected={"out": [[-1.0, 0.0, 1.0], np.array([-2.0, 0.0, 2.0]) / np.sqrt(3)]})
# With a 2-d gamma the two trailing axes are normalized together:
grading.check_example(layer_norm_forward, (x.reshape(1, 2, 3), np.ones((2, 3)), np.zeros((2, 3))),
                      {"eps": 0.0}, name="layer_norm_forward", returns=("out", None),
                      expected={"out": ((x - 3) / np.sqrt(8 / 3)).reshape(1, 2, 3)})
### BEGIN HIDDEN TESTS
from normcore import normalization as _ref

_rng = np.random.default_rng(4046)
for _shape, _nshape, _dtype in [((6, 5), (5,), np.float64), ((3, 4, 5), (4, 5), np.float64),
                                ((2, 3, 4), (4,), np.float64), ((4, 8), (8,), np.float32),
                                ((2, 3, 2, 2), (3, 2, 2), np.float64)]:
    _args = ((2 * _rng.standard_normal(_shape) + 1).astype(_dtype),
             _rng.standard_normal(_nshape).astype(_dtype),
             _rng.standard_normal(_nshape).astype(_dtype))
    grading.check_against_reference(layer_norm_forward, _ref.layer_norm_forward, _args,
                                     {"eps": 0.01}, name="layer_norm_forward",
                                     returns=("out", None))
### END HIDDEN TESTS

# %% nbgrader="answer" grade_id="layer_norm_backward"
def layer_norm_backward(dout, cache):
    """Layer normalization backward pass.

    Returns
    -------
    dx : ndarray, shape of x
    dgamma, dbeta : ndarray, shape of gamma
    """
    ### BEGIN SOLUTION
    xhat, inv_std, gamma, axes = cache
    lead = tuple(range(dout.ndim - gamma.ndim))
    g = dout * gamma
    dx = (g - g.mean(axis=axes, keepdims=True)
          - xhat * (g * xhat).mean(axis=axes, keepdims=True)) * inv_std
    return dx, (dout * xhat).sum(axis=lead), dout.sum(axis=lead)
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_layer_norm_backward" points=3
# 3 points: layer normalization backward.
rng = np.random.default_rng(4)
x, gamma, beta = rng.standard_normal((4, 5)), rng.standard_normal(5), rng.standard_normal(5)
grading.check_gradient(layer_norm_forward, layer_norm_backward, (x, gamma, beta), {"eps": 0.0},
                       name="layer_norm_backward")
### BEGIN HIDDEN TESTS
from normcore import normalization as _ref

_rng = np.random.default_rng(4047)
for _shape, _nshape in [((6, 5), (5,)), ((3, 4, 5), (4, 5)), ((2, 3, 4), (4,))]:
    _args = (_rng.standard_normal(_shape), _rng.standard_normal(_shape),
             _rng.standard_normal(_nshape), _rng.standard_normal(_nshape))
    grading.check_backward(layer_norm_forward, layer_norm_backward,
                           _ref.layer_norm_forward, _ref.layer_norm_backward, _args, {"eps": 0.01},
                           name="layer_norm_backward",
                           returns=("dx", "dgamma", "dbeta"))
grading.check_gradient(layer_norm_forward, layer_norm_backward,
                       (_rng.standard_normal((2, 3, 2)), _rng.standard_normal((3, 2)),
                        _rng.standard_normal((3, 2))), {"eps": 0.0}, name="layer_norm_backward")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Group normalization (6 points)
#
# Group normalization splits the $C$ channels into $G$ = `num_groups` groups of $C/G$
# **consecutive** channels (channels $0, \dots, C/G - 1$ form group 0) and normalizes each
# sample over each group, i.e. over $C/G$ channels and all spatial positions. `gamma` and
# `beta` have one entry per channel, as in batch norm. With $G = 1$ this is layer norm over
# `(C, H, W)`; with $G = C$ it is instance norm. A reshape to `(N, G, C // G, *spatial)`
# does the grouping; the backward pass has the same form as layer norm's, per group.

# %% nbgrader="answer" grade_id="group_norm_forward"
def group_norm_forward(x, num_groups, gamma, beta, *, eps=1e-5):
    """Group normalization forward pass.

    Parameters
    ----------
    x : ndarray, shape (N, C) or (N, C, *spatial)
    num_groups : int, divides C
    gamma, beta : ndarray, shape (C,)

    Returns
    -------
    out : ndarray, shape of x
    cache : anything your backward pass needs
    """
    ### BEGIN SOLUTION
    n, c = x.shape[:2]
    xg = x.reshape(n, num_groups, -1)
    inv_std = 1 / np.sqrt(xg.var(axis=2, keepdims=True) + eps)
    xhat = ((xg - xg.mean(axis=2, keepdims=True)) * inv_std).reshape(x.shape)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = gamma.reshape(shape) * xhat + beta.reshape(shape)
    return out, (xhat, inv_std, gamma, num_groups)
    ### END SOLUTION


# %% [markdown]
# By hand: with two groups, `x = [[1, 3, 10, 14]]` splits into `[1, 3]` (mean 2, variance 1)
# and `[10, 14]` (mean 12, variance 4), and normalizes to `[[-1, 1, -1, 1]]`.

# %% nbgrader="tests" grade_id="test_group_norm_forward" points=3
# 3 points: group normalization forward.
x = np.array([[1.0, 3.0, 10.0, 14.0]])
grading.check_example(group_norm_forward, (x, 2, np.ones(4), np.zeros(4)), {"eps": 0.0},
                      name="group_norm_forward", returns=("out", None),
                      expected={"out": [[-1.0, 1.0, -1.0, 1.0]]})
# eps inside the square root: with eps = 3 the group variances 1 and 4 become 4 and 7.
grading.check_example(group_norm_forward, (x, 2, np.ones(4), np.zeros(4)), {"eps": 3.0},
                      name="group_norm_forward", returns=("out", None),
                      expected={"out": [[-1 / 2, 1 / 2, -2 / np.sqrt(7), 2 / np.sqrt(7)]]})
### BEGIN HIDDEN TESTS
from normcore import normalization as _ref

_rng = np.random.default_rng(4048)
for _shape, _groups, _dtype in [((2, 6, 3, 3), 3, np.float64), ((3, 6, 4), 2, np.float64),
                                ((2, 4, 2, 2), 1, np.float64), ((2, 4, 3, 3), 4, np.float64),
                                ((4, 6), 3, np.float64), ((2, 8, 3, 3), 4, np.float32)]:
    _c = _shape[1]
    _args = ((2 * _rng.standard_normal(_shape) + 1).astype(_dtype), _groups,
             _rng.standard_normal(_c).astype(_dtype), _rng.standard_normal(_c).astype(_dtype))
    grading.check_against_reference(group_norm_forward, _ref.group_norm_forward, _args,
                                     {"eps": 0.01}, name="group_norm_forward",
                                     returns=("out", None))
### END HIDDEN TESTS

# %% nbgrader="answer" grade_id="group_norm_backward"
def group_norm_backward(dout, cache):
    """Group normalization backward pass.

    Returns
    -------
    dx : ndarray, shape of x
    dgamma, dbeta : ndarray, shape (C,)
    """
    ### BEGIN SOLUTION
    xhat, inv_std, gamma, num_groups = cache
    n = dout.shape[0]
    axes = (0,) + tuple(range(2, dout.ndim))
    shape = (1, -1) + (1,) * (dout.ndim - 2)
    g = (dout * gamma.reshape(shape)).reshape(n, num_groups, -1)
    xg = xhat.reshape(n, num_groups, -1)
    dx = (g - g.mean(axis=2, keepdims=True)
          - xg * (g * xg).mean(axis=2, keepdims=True)) * inv_std
    return dx.reshape(dout.shape), (dout * xhat).sum(axis=axes), dout.sum(axis=axes)
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_group_norm_backward" points=3
# 3 points: group normalization backward.
rng = np.random.default_rng(6)
x, gamma, beta = rng.standard_normal((2, 4, 3)), rng.standard_normal(4), rng.standard_normal(4)
grading.check_gradient(group_norm_forward, group_norm_backward, (x, 2, gamma, beta),
                       {"eps": 0.0}, name="group_norm_backward")
### BEGIN HIDDEN TESTS
from normcore import normalization as _ref

_rng = np.random.default_rng(4049)
for _shape, _groups in [((2, 6, 3, 3), 3), ((3, 4, 5), 2), ((4, 6), 3), ((2, 4, 2, 2), 4)]:
    _c = _shape[1]
    _args = (_rng.standard_normal(_shape), _rng.standard_normal(_shape), _groups,
             _rng.standard_normal(_c), _rng.standard_normal(_c))
    grading.check_backward(group_norm_forward, group_norm_backward,
                           _ref.group_norm_forward, _ref.group_norm_backward, _args, {"eps": 0.01},
                           name="group_norm_backward",
                           returns=("dx", "dgamma", "dbeta"))
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Folding batch norm into the layer before it (3 points)
#
# In evaluation mode batch norm is a fixed affine map per channel. Applied after a linear
# or convolution layer with weight $W$ (output channel first) and bias $b$, the two can be
# replaced by one layer with
#
# $$
# s_o = \frac{\gamma_o}{\sqrt{\mathrm{running\_var}_o + \epsilon}}, \qquad
# W'_{o\ldots} = s_o\, W_{o\ldots}, \qquad
# b'_o = s_o\, (b_o - \mathrm{running\_mean}_o) + \beta_o .
# $$
#
# This is how networks trained with batch norm are deployed (and the structural
# re-parameterization behind RepVGG). `bias=None` means a layer without bias (zero).

# %% nbgrader="answer" grade_id="fold_batch_norm"
def fold_batch_norm(weight, bias, gamma, beta, running_mean, running_var, *, eps=1e-5):
    """Fold an evaluation-mode batch norm into the preceding linear/convolution layer.

    Parameters
    ----------
    weight : ndarray, shape (out, in) or (out, in, *kernel)
    bias : ndarray, shape (out,), or None
    gamma, beta, running_mean, running_var : ndarray, shape (out,)

    Returns
    -------
    folded_weight : ndarray, shape of weight
    folded_bias : ndarray, shape (out,)
    """
    ### BEGIN SOLUTION
    scale = gamma / np.sqrt(running_var + eps)
    b = np.zeros_like(running_mean) if bias is None else bias
    folded_weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    return folded_weight, scale * (b - running_mean) + beta
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_fold_batch_norm" points=3
# 3 points: folding.
# By hand: s = [4, 3] / sqrt([3, 0] + 1) = [2, 3], so W' = [[2, 4], [9, 12]] and
# b' = [2 * (1 - 1) + 0, 3 * (-1 - 0) + 1] = [0, -2].
args = (np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, -1.0]), np.array([4.0, 3.0]),
        np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array([3.0, 0.0]))
grading.check_example(fold_batch_norm, args, {"eps": 1.0}, name="fold_batch_norm",
                      returns=("weight", "bias"),
                      expected={"weight": [[2.0, 4.0], [9.0, 12.0]], "bias": [0.0, -2.0]})
# Without a bias (bias=None counts as zeros), in float32: b' = [2 * (0 - 1) + 0, 3 * (0 - 0) + 1].
args32 = [a.astype(np.float32) for a in args]
args32[1] = None
grading.check_example(fold_batch_norm, tuple(args32), {"eps": 1.0}, name="fold_batch_norm",
                      returns=("weight", "bias"),
                      expected={"weight": np.array([[2, 4], [9, 12]], np.float32),
                                "bias": np.array([-2, 1], np.float32)})
# The folded layer computes what the linear layer followed by batch norm (eval mode) does:
rng = np.random.default_rng(7)
w, b = rng.standard_normal((3, 5)), rng.standard_normal(3)
gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
mean, var = rng.standard_normal(3), rng.random(3) + 0.5
x = rng.standard_normal((8, 5))
expected = gamma * (x @ w.T + b - mean) / np.sqrt(var + 1e-5) + beta
folded_weight, folded_bias = fold_batch_norm(w, b, gamma, beta, mean, var)
grading.assert_close("fold_batch_norm: x @ folded_weight.T + folded_bias",
                     x @ folded_weight.T + folded_bias, expected)
### BEGIN HIDDEN TESTS
from normcore import normalization as _ref

_rng = np.random.default_rng(4050)
for _wshape, _has_bias, _dtype in [((4, 3), True, np.float64), ((4, 3, 3, 3), True, np.float64),
                                   ((2, 3, 5), False, np.float64),
                                   ((3, 2, 3, 3), False, np.float32),
                                   ((3, 4), True, np.float32)]:
    _o = _wshape[0]
    _args = (_rng.standard_normal(_wshape).astype(_dtype),
             _rng.standard_normal(_o).astype(_dtype) if _has_bias else None,
             _rng.standard_normal(_o).astype(_dtype), _rng.standard_normal(_o).astype(_dtype),
             _rng.standard_normal(_o).astype(_dtype), (_rng.random(_o) + 0.5).astype(_dtype))
    grading.check_against_reference(fold_batch_norm, _ref.fold_batch_norm, _args,
                                     {"eps": 0.05}, name="fold_batch_norm",
                                     returns=("weight", "bias"))
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Written question (4 points)
#
# (a) Batch norm computes something different in training and in evaluation mode; layer
# norm and group norm do not. Why? What happens to the predictions of a batch-norm network
# evaluated one sample at a time if you forget to switch it to evaluation mode?
#
# (b) Why can an evaluation-mode batch norm be folded into the convolution before it, while
# layer norm and group norm cannot?
#
# Answer in a few sentences in the cell below.

# %% [markdown] nbgrader="manual" grade_id="written_answer" points=4
# (a) Batch norm's statistics are taken over the batch, so in training a sample's output
# depends on the other samples; at test time that dependence is removed by normalizing with
# fixed population estimates (the running averages). Layer and group norm compute their
# statistics within each sample, so they are the same function at training and test time.
# Evaluated one sample at a time in training mode, a batch of one has every channel equal to
# its own mean (fully connected) or uses the statistics of a single image: the output is
# zero (beta) or heavily distorted, and the running statistics are overwritten as well.
#
# (b) In evaluation mode batch norm is a fixed per-channel affine map, y = s x + t with
# constants s and t, which composes with the affine convolution into another convolution.
# Layer and group norm divide by statistics of the current sample, a nonlinear function of
# the input computed anew for every sample, so there is no constant s and t to fold.
