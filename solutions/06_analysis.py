# %% [markdown]
# # Assignment 6: Weight normalization and why normalization helps
#
# You will implement weight normalization and centered weight normalization with NumPy
# (forward and backward pass, for the weights of linear and convolution layers), check
# numerically that they make a layer invariant to the scale of its weights, and compute three
# quantities of the analysis chapter: the effective learning rate of a scale-invariant weight,
# the weight norm at which weight decay balances the growth caused by the gradient, and the
# number of equations a normalization imposes on its output.
#
# **Total: 31 points** (27 graded automatically, 4 for the written question at the end).
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
# * Use NumPy only. A function that calls `normcore`'s implementation of the same function, or
#   `torch.nn` / `torch.optim`, scores zero on that test.
# * Arrays are `float32` or `float64`; return arrays of the input's dtype, and never modify
#   the arrays you are given.
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
# ## 1. Weight normalization (8 points)
#
# Weight normalization writes the weight vector of each output unit as a length times a
# direction and trains the two separately. The weight `v` of a linear layer has shape
# `(out_features, in_features)`; that of a convolution `(out_channels, in_channels, kh, kw)`
# (or any number of trailing kernel axes). Either way, **output unit $i$ owns everything in
# `v[i]`**: its $D$ weights are all the entries along the axes after the first ($D$ =
# `in_features`, or `in_channels * kh * kw`). With `g` of shape `(out,)`, one length per unit,
#
# $$
# w_i = g_i\, \frac{v_i}{\lVert v_i \rVert}, \qquad
# \lVert v_i \rVert = \sqrt{\textstyle\sum_{j=1}^{D} v_{ij}^2 + \epsilon} ,
# $$
#
# so that (for $\epsilon = 0$) the row $w_i$ has length $|g_i|$ whatever $v_i$ is. This is
# what `torch.nn.utils.parametrizations.weight_norm(layer, dim=0)` computes (without
# $\epsilon$). Flattening each unit with `v.reshape(v.shape[0], -1)` turns every case into a
# matrix with one row per unit; reshape the result back to the shape of `v`.
#
# The function returns `(w, cache)`. The cache is yours: store whatever your backward pass
# needs.

# %% nbgrader="answer" grade_id="weight_norm_forward"
def weight_norm_forward(v, g, *, eps=0.0):
    """Weight normalization forward pass.

    Parameters
    ----------
    v : ndarray, shape (out, in) or (out, in, *kernel)
        Direction parameter; row v[i] (all axes after the first) is output unit i.
    g : ndarray, shape (out,)
        Length parameter, same dtype as v.
    eps : float
        Added to the squared norm of each row, inside the square root.

    Returns
    -------
    w : ndarray, shape and dtype of v
    cache : anything your backward pass needs
    """
    ### BEGIN SOLUTION
    rows = v.reshape(v.shape[0], -1)
    norm = np.sqrt(np.sum(rows * rows, axis=1) + eps)
    w = (rows * (g / norm)[:, None]).reshape(v.shape)
    return w, (rows, g, norm)
    ### END SOLUTION


# %% [markdown]
# By hand: the rows of `v = [[3, 4], [0, 2]]` have norms 5 and 2, so with `g = [2, -1]` the
# effective weight is `w = [[2 * 3/5, 2 * 4/5], [0, -1 * 2/2]] = [[1.2, 1.6], [0, -1]]`. For a
# convolution weight of shape `(1, 2, 2)` holding four ones, the single unit has the norm
# $\sqrt{4} = 2$, and with `g = [3]` every entry of `w` is $3/2$. With `eps = 11`, inside the
# square root, the norms of the first example become $\sqrt{25 + 11} = 6$ and $\sqrt{4 + 11}$.

# %% nbgrader="tests" grade_id="test_weight_norm_forward" points=4
# 4 points: weight normalization forward.
v, g = np.array([[3.0, 4.0], [0.0, 2.0]]), np.array([2.0, -1.0])
grading.check_example(weight_norm_forward, (v, g), name="weight_norm_forward",
                      returns=("w", None), expected={"w": [[1.2, 1.6], [0.0, -1.0]]})
grading.check_example(weight_norm_forward, (v.astype(np.float32), g.astype(np.float32)),
                      name="weight_norm_forward", returns=("w", None),
                      expected={"w": np.array([[1.2, 1.6], [0.0, -1.0]], dtype=np.float32)})
grading.check_example(weight_norm_forward, (np.ones((1, 2, 2)), np.array([3.0])),
                      name="weight_norm_forward", returns=("w", None),
                      expected={"w": np.full((1, 2, 2), 1.5)})
grading.check_example(weight_norm_forward, (v, g), {"eps": 11.0}, name="weight_norm_forward",
                      returns=("w", None),
                      expected={"w": [[2 * 3 / 6, 2 * 4 / 6], [0.0, -1 * 2 / np.sqrt(15)]]})
### BEGIN HIDDEN TESTS
from normcore import weightnorm as _ref

_rng = np.random.default_rng(6061)
for _shape, _dtype, _eps in [((4, 7), np.float64, 0.0), ((5, 5), np.float64, 0.0),
                             ((4, 3, 3, 3), np.float64, 0.0), ((3, 2, 5), np.float64, 1e-3),
                             ((3, 4), np.float64, 0.5), ((6, 8), np.float32, 0.0),
                             ((4, 2, 3, 3), np.float32, 0.1)]:
    _v = (_rng.standard_normal(_shape) * 0.7).astype(_dtype)
    _g = _rng.standard_normal(_shape[0]).astype(_dtype)
    grading.check_against_reference(weight_norm_forward, _ref.weight_norm_forward, (_v, _g),
                                     {"eps": _eps}, name="weight_norm_forward",
                                     returns=("w", None))
_v = _rng.standard_normal((3, 4))
_v[1] = 0.0  # an all-zero row has no direction; eps keeps the output finite (zero)
grading.check_against_reference(weight_norm_forward, _ref.weight_norm_forward,
                                 (_v, _rng.standard_normal(3)), {"eps": 0.01},
                                 name="weight_norm_forward", returns=("w", None))
### END HIDDEN TESTS

# %% [markdown]
# **Backward pass.** With $\delta_i = \partial L / \partial w_i$ (row $i$ of `dw`, flattened
# like $v_i$) and $u_i = v_i / \lVert v_i \rVert$, differentiating $w_i = g_i u_i$ gives
#
# $$
# \frac{\partial L}{\partial g_i} = \langle u_i, \delta_i \rangle, \qquad
# \frac{\partial L}{\partial v_i} = \frac{g_i}{\lVert v_i \rVert}
#     \Big(\delta_i - u_i\, \frac{\langle v_i, \delta_i \rangle}{\lVert v_i \rVert}\Big)
#   = \frac{g_i}{\lVert v_i \rVert}\Big(I - \frac{v_i v_i^\top}{\lVert v_i \rVert^2}\Big)\,
#     \delta_i .
# $$
#
# The second term comes from the norm, which depends on $v_i$ too: it removes the component of
# $\delta_i$ along $v_i$, so the gradient is orthogonal to $v_i$ (for $\epsilon = 0$). Use the
# same $\lVert v_i \rVert$, with $\epsilon$, everywhere (then the formulas are the exact
# gradient for every $\epsilon$). Return `(dv, dg)`.

# %% nbgrader="answer" grade_id="weight_norm_backward"
def weight_norm_backward(dw, cache):
    """Weight normalization backward pass.

    Parameters
    ----------
    dw : ndarray, shape of v
        Upstream gradient with respect to w.
    cache : what your weight_norm_forward returned

    Returns
    -------
    dv : ndarray, shape of v
    dg : ndarray, shape (out,)
    """
    ### BEGIN SOLUTION
    rows, g, norm = cache
    d = dw.reshape(rows.shape)
    proj = np.sum(d * rows, axis=1)  # <v_i, dw_i>
    dg = proj / norm
    dv = (g / norm)[:, None] * (d - rows * (proj / norm**2)[:, None])
    return dv.reshape(dw.shape), dg
    ### END SOLUTION


# %% [markdown]
# By hand: for `v = [[3, 4]]`, `g = [2]` and `dw = [[1, 0]]`, the direction is
# $u = (0.6, 0.8)$, so $\partial L/\partial g = 0.6$ and
# $\partial L/\partial v = \tfrac{2}{5}\big((1, 0) - 0.6\,(0.6, 0.8)\big) = (0.256, -0.192)$,
# which is indeed orthogonal to $v$: $3 \cdot 0.256 - 4 \cdot 0.192 = 0$.

# %% nbgrader="tests" grade_id="test_weight_norm_backward" points=4
# 4 points: weight normalization backward.
grading.check_example(grading.backward_through(weight_norm_forward, weight_norm_backward),
                      (np.array([[1.0, 0.0]]), np.array([[3.0, 4.0]]), np.array([2.0])),
                      name="weight_norm_backward", returns=("dv", "dg"),
                      expected={"dv": [[0.256, -0.192]], "dg": [0.6]})
# Your backward must be the gradient of your forward (centered differences):
rng = np.random.default_rng(1)
grading.check_gradient(weight_norm_forward, weight_norm_backward,
                       (rng.standard_normal((3, 4)), rng.standard_normal(3)),
                       name="weight_norm_backward")
### BEGIN HIDDEN TESTS
from normcore import weightnorm as _ref

_rng = np.random.default_rng(6062)
for _shape, _dtype, _eps in [((4, 6), np.float64, 0.0), ((3, 2, 3, 3), np.float64, 0.0),
                             ((2, 3, 4), np.float64, 0.3), ((5, 7), np.float32, 0.0),
                             ((3, 2, 2, 2), np.float32, 0.1)]:
    _args = (_rng.standard_normal(_shape).astype(_dtype),
             _rng.standard_normal(_shape).astype(_dtype),
             _rng.standard_normal(_shape[0]).astype(_dtype))
    grading.check_backward(weight_norm_forward, weight_norm_backward,
                           _ref.weight_norm_forward, _ref.weight_norm_backward, _args,
                           {"eps": _eps}, name="weight_norm_backward", returns=("dv", "dg"))
grading.check_gradient(weight_norm_forward, weight_norm_backward,
                       (_rng.standard_normal((2, 3, 2, 2)), _rng.standard_normal(2)),
                       {"eps": 0.0}, name="weight_norm_backward")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Centered weight normalization (8 points)
#
# Weight normalization fixes the length of each weight vector but not the mean of the
# pre-activation $z_i = w_i^\top x$: for inputs that share a mean $c$ (non-negative pixels, the
# outputs of a ReLU) it is $c\, w_i^\top \mathbf 1$. Centered weight normalization also
# centers every row, so that $w_i^\top \mathbf 1 = 0$:
#
# $$
# c_i = v_i - \bar v_i \mathbf 1, \quad \bar v_i = \frac{1}{D} \sum_{j=1}^{D} v_{ij}, \qquad
# w_i = g_i\, \frac{c_i}{\lVert c_i \rVert}, \qquad
# \lVert c_i \rVert = \sqrt{\textstyle\sum_j c_{ij}^2 + \epsilon} .
# $$
#
# The mean $\bar v_i$ is that of **one output unit's** $D$ weights, over all the axes after
# the first, as for the norm. The backward pass goes through the normalization of $c_i$
# exactly as in weight normalization, then through the centering, whose backward subtracts
# the row mean of the gradient: with $u_i = c_i / \lVert c_i \rVert$,
#
# $$
# \frac{\partial L}{\partial g_i} = \langle u_i, \delta_i \rangle, \qquad
# \frac{\partial L}{\partial c_i} = \frac{g_i}{\lVert c_i \rVert}
#     \Big(\delta_i - u_i\, \frac{\langle c_i, \delta_i \rangle}{\lVert c_i \rVert}\Big),
# \qquad
# \frac{\partial L}{\partial v_i} = \frac{\partial L}{\partial c_i}
#     - \operatorname{mean}\Big(\frac{\partial L}{\partial c_i}\Big) \mathbf 1 .
# $$
#
# Every row of the gradient with respect to $v$ sums to zero and (for $\epsilon = 0$) is
# orthogonal to $c_i$.

# %% nbgrader="answer" grade_id="centered_weight_norm_forward"
def centered_weight_norm_forward(v, g, *, eps=0.0):
    """Centered weight normalization forward pass.

    Parameters
    ----------
    v : ndarray, shape (out, in) or (out, in, *kernel)
        Proxy parameter; row v[i] (all axes after the first) is output unit i.
    g : ndarray, shape (out,)
        Length parameter, same dtype as v.
    eps : float
        Added to the squared norm of each centered row, inside the square root.

    Returns
    -------
    w : ndarray, shape and dtype of v
        Every row has zero mean (and norm |g[i]| when eps=0).
    cache : anything your backward pass needs
    """
    ### BEGIN SOLUTION
    rows = v.reshape(v.shape[0], -1)
    centered = rows - rows.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.sum(centered * centered, axis=1) + eps)
    w = (centered * (g / norm)[:, None]).reshape(v.shape)
    return w, (centered, g, norm)
    ### END SOLUTION


# %% [markdown]
# By hand: `v = [[0, 0, 2, 2], [7, 1, 1, -1]]` has row means 1 and 2, the centered rows
# $(-1, -1, 1, 1)$ and $(5, -1, -1, -3)$ have norms 2 and 6, so with `g = [2, 3]` the effective
# weight is `w = [[-1, -1, 1, 1], [2.5, -0.5, -0.5, -1.5]]`. With `eps = 5` the norms are
# $\sqrt{4 + 5} = 3$ and $\sqrt{36 + 5} = \sqrt{41}$.

# %% nbgrader="tests" grade_id="test_centered_weight_norm_forward" points=4
# 4 points: centered weight normalization forward.
v, g = np.array([[0.0, 0.0, 2.0, 2.0], [7.0, 1.0, 1.0, -1.0]]), np.array([2.0, 3.0])
expected = np.array([[-1.0, -1.0, 1.0, 1.0], [2.5, -0.5, -0.5, -1.5]])
grading.check_example(centered_weight_norm_forward, (v, g), name="centered_weight_norm_forward",
                      returns=("w", None), expected={"w": expected})
grading.check_example(centered_weight_norm_forward, (v.reshape(2, 1, 2, 2), g),
                      name="centered_weight_norm_forward", returns=("w", None),
                      expected={"w": expected.reshape(2, 1, 2, 2)})
centered = np.array([[-1.0, -1.0, 1.0, 1.0], [5.0, -1.0, -1.0, -3.0]])
grading.check_example(centered_weight_norm_forward, (v, g), {"eps": 5.0},
                      name="centered_weight_norm_forward", returns=("w", None),
                      expected={"w": [2 / 3 * centered[0], 3 / np.sqrt(41) * centered[1]]})
grading.check_example(centered_weight_norm_forward, (v.astype(np.float32), g.astype(np.float32)),
                      name="centered_weight_norm_forward", returns=("w", None),
                      expected={"w": expected.astype(np.float32)})
### BEGIN HIDDEN TESTS
from normcore import weightnorm as _ref

_rng = np.random.default_rng(6063)
for _shape, _dtype, _eps in [((4, 7), np.float64, 0.0), ((5, 5), np.float64, 0.0),
                             ((4, 3, 3, 3), np.float64, 0.0), ((3, 2, 5), np.float64, 1e-3),
                             ((3, 4), np.float64, 0.5), ((6, 8), np.float32, 0.0),
                             ((4, 2, 3, 3), np.float32, 0.1)]:
    _v = (_rng.standard_normal(_shape) * 0.7 + 1.0).astype(_dtype)
    _g = _rng.standard_normal(_shape[0]).astype(_dtype)
    grading.check_against_reference(centered_weight_norm_forward,
                                     _ref.centered_weight_norm_forward, (_v, _g), {"eps": _eps},
                                     name="centered_weight_norm_forward", returns=("w", None))
_v = _rng.standard_normal((3, 4))
_v[2] = 1.5  # a constant row is zero after centering; eps keeps the output finite (zero)
grading.check_against_reference(centered_weight_norm_forward, _ref.centered_weight_norm_forward,
                                 (_v, _rng.standard_normal(3)), {"eps": 0.01},
                                 name="centered_weight_norm_forward", returns=("w", None))
### END HIDDEN TESTS

# %% nbgrader="answer" grade_id="centered_weight_norm_backward"
def centered_weight_norm_backward(dw, cache):
    """Centered weight normalization backward pass.

    Parameters
    ----------
    dw : ndarray, shape of v
        Upstream gradient with respect to w.
    cache : what your centered_weight_norm_forward returned

    Returns
    -------
    dv : ndarray, shape of v
    dg : ndarray, shape (out,)
    """
    ### BEGIN SOLUTION
    centered, g, norm = cache
    d = dw.reshape(centered.shape)
    proj = np.sum(d * centered, axis=1)  # <c_i, dw_i>
    dg = proj / norm
    dc = (g / norm)[:, None] * (d - centered * (proj / norm**2)[:, None])
    dv = dc - dc.mean(axis=1, keepdims=True)
    return dv.reshape(dw.shape), dg
    ### END SOLUTION


# %% [markdown]
# By hand: for `v = [[0, 0, 2, 2]]`, `g = [2]` and `dw = [[1, 0, 0, 0]]`, the centered row
# $c = (-1, -1, 1, 1)$ has norm 2 and $u = c/2$, so $\partial L/\partial g = -0.5$,
# $\partial L/\partial c = \tfrac{2}{2}\big((1, 0, 0, 0) + 0.5\,u\big)
# = (0.75, -0.25, 0.25, 0.25)$, and removing its mean $0.25$ gives
# $\partial L/\partial v = (0.5, -0.5, 0, 0)$: it sums to zero and is orthogonal to $c$.

# %% nbgrader="tests" grade_id="test_centered_weight_norm_backward" points=4
# 4 points: centered weight normalization backward.
grading.check_example(
    grading.backward_through(centered_weight_norm_forward, centered_weight_norm_backward),
    (np.array([[1.0, 0.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 2.0, 2.0]]), np.array([2.0])),
    name="centered_weight_norm_backward", returns=("dv", "dg"),
    expected={"dv": [[0.5, -0.5, 0.0, 0.0]], "dg": [-0.5]})
rng = np.random.default_rng(2)
grading.check_gradient(centered_weight_norm_forward, centered_weight_norm_backward,
                       (rng.standard_normal((3, 5)) + 1, rng.standard_normal(3)),
                       name="centered_weight_norm_backward")
### BEGIN HIDDEN TESTS
from normcore import weightnorm as _ref

_rng = np.random.default_rng(6064)
for _shape, _dtype, _eps in [((4, 6), np.float64, 0.0), ((3, 2, 3, 3), np.float64, 0.0),
                             ((2, 3, 4), np.float64, 0.3), ((5, 7), np.float32, 0.0),
                             ((3, 2, 2, 2), np.float32, 0.1)]:
    _args = (_rng.standard_normal(_shape).astype(_dtype),
             (_rng.standard_normal(_shape) + 1).astype(_dtype),
             _rng.standard_normal(_shape[0]).astype(_dtype))
    grading.check_backward(centered_weight_norm_forward, centered_weight_norm_backward,
                           _ref.centered_weight_norm_forward,
                           _ref.centered_weight_norm_backward, _args, {"eps": _eps},
                           name="centered_weight_norm_backward", returns=("dv", "dg"))
grading.check_gradient(centered_weight_norm_forward, centered_weight_norm_backward,
                       (_rng.standard_normal((2, 3, 2, 2)) + 1, _rng.standard_normal(2)),
                       {"eps": 0.0}, name="centered_weight_norm_backward")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Scale invariance (2 points)
#
# A layer whose weight is weight-normalized computes the same function for $v$ and $a v$,
# $a > 0$, exactly as a linear layer followed by batch normalization does for $W$ and $a W$.
# Differentiating $L(a v) = L(v)$ gives the two identities of the chapter,
#
# $$
# \frac{\partial L}{\partial v}\Big|_{a v} = \frac{1}{a}\,\frac{\partial L}{\partial v}\Big|_{v},
# \qquad
# \Big\langle v_i, \frac{\partial L}{\partial v_i} \Big\rangle = 0 ,
# $$
#
# and centered weight normalization is in addition invariant to adding a constant to a row,
# $v_i \to v_i + b_i \mathbf 1$, so its gradient rows also sum to zero. There is nothing new to
# write: the four cells below check these identities on **your** functions, each function on
# its own (with $\epsilon = 0$). If one fails while the cells above pass, look at how that
# function uses its cache.

# %% nbgrader="tests" grade_id="test_weight_norm_scale_invariance" points=0.5
# 0.5 points: your weight_norm_forward gives the same w for v and a * v.
grading.check_example(weight_norm_forward, (np.array([[30.0, 40.0], [0.0, 20.0]]),
                                            np.array([2.0, -1.0])),
                      name="weight_norm_forward", returns=("w", None),
                      expected={"w": [[1.2, 1.6], [0.0, -1.0]]})
rng = np.random.default_rng(3)
v, g = rng.standard_normal((4, 6)), rng.standard_normal(4)
w1, _ = weight_norm_forward(v.copy(), g.copy())
w2, _ = weight_norm_forward(3.0 * v, g.copy())
grading.assert_close("weight_norm_forward: w at 3 * v (should equal w at v)", w2, w1)

# %% nbgrader="tests" grade_id="test_weight_norm_gradient_identities" points=0.5
# 0.5 points: your weight_norm_backward scales by 1/a and is orthogonal to each row of v.
# (It is checked through your weight_norm_forward, which must pass its example first.)
grading.check_example(weight_norm_forward, (np.array([[3.0, 4.0], [0.0, 2.0]]),
                                            np.array([2.0, -1.0])),
                      name="weight_norm_forward", returns=("w", None),
                      expected={"w": [[1.2, 1.6], [0.0, -1.0]]})
rng = np.random.default_rng(3)
v, g, dw, a = rng.standard_normal((4, 6)), rng.standard_normal(4), rng.standard_normal((4, 6)), 3.0
_, cache1 = weight_norm_forward(v.copy(), g.copy())
_, cache2 = weight_norm_forward(a * v, g.copy())
dv1, dg1 = weight_norm_backward(dw.copy(), cache1)
dv2, dg2 = weight_norm_backward(dw.copy(), cache2)
grading.assert_close(f"weight_norm_backward: {a:g} * dv at {a:g} * v (should equal dv at v)",
                     a * dv2, dv1)
grading.assert_close("weight_norm_backward: dg at 3 * v (should equal dg at v)", dg2, dg1)
grading.assert_close("weight_norm_backward: <v_i, dv_i> for each row (should be 0)",
                     np.sum(v * dv1, axis=1), np.zeros(4))

# %% nbgrader="tests" grade_id="test_centered_weight_norm_scale_invariance" points=0.5
# 0.5 points: your centered_weight_norm_forward gives the same w for v and a * v + b.
grading.check_example(centered_weight_norm_forward,
                      (np.array([[7.0, 7.0, 27.0, 27.0], [77.0, 17.0, 17.0, -3.0]]),
                       np.array([2.0, 3.0])),
                      name="centered_weight_norm_forward", returns=("w", None),
                      expected={"w": [[-1.0, -1.0, 1.0, 1.0], [2.5, -0.5, -0.5, -1.5]]})
rng = np.random.default_rng(3)
v, g = rng.standard_normal((4, 6)), rng.standard_normal(4)
shift = rng.standard_normal((4, 1))
w1, _ = centered_weight_norm_forward(v.copy(), g.copy())
w2, _ = centered_weight_norm_forward(3.0 * v + shift, g.copy())
grading.assert_close("centered_weight_norm_forward: w at 3 * v + b (should equal w at v)",
                     w2, w1)

# %% nbgrader="tests" grade_id="test_centered_weight_norm_gradient_identities" points=0.5
# 0.5 points: your centered_weight_norm_backward scales by 1/a, is orthogonal to each row of v
# and has rows that sum to zero. (It is checked through your centered_weight_norm_forward,
# which must pass its example first.)
grading.check_example(centered_weight_norm_forward,
                      (np.array([[0.0, 0.0, 2.0, 2.0], [10.0, 4.0, 4.0, 2.0]]),
                       np.array([2.0, 3.0])),
                      name="centered_weight_norm_forward", returns=("w", None),
                      expected={"w": [[-1.0, -1.0, 1.0, 1.0], [2.5, -0.5, -0.5, -1.5]]})
rng = np.random.default_rng(3)
v, g, dw, a = rng.standard_normal((4, 6)), rng.standard_normal(4), rng.standard_normal((4, 6)), 3.0
shift = rng.standard_normal((4, 1))
_, cache1 = centered_weight_norm_forward(v.copy(), g.copy())
_, cache2 = centered_weight_norm_forward(a * v + shift, g.copy())
dv1, dg1 = centered_weight_norm_backward(dw.copy(), cache1)
dv2, dg2 = centered_weight_norm_backward(dw.copy(), cache2)
grading.assert_close(f"centered_weight_norm_backward: {a:g} * dv at {a:g} * v + b (should "
                     f"equal dv at v)", a * dv2, dv1)
grading.assert_close("centered_weight_norm_backward: dg at 3 * v + b (should equal dg at v)",
                     dg2, dg1)
grading.assert_close("centered_weight_norm_backward: <v_i - mean(v_i), dv_i> for each row "
                     "(should be 0)", np.sum((v - v.mean(axis=1, keepdims=True)) * dv1, axis=1),
                     np.zeros(4))
grading.assert_close("centered_weight_norm_backward: row sums of dv (should be 0)",
                     dv1.sum(axis=1), np.zeros(4))

# %% [markdown]
# ## 4. The effective learning rate and its equilibrium (5 points)
#
# For a scale-invariant weight $w$ (a row of a weight-normalized layer, or of a layer followed
# by batch normalization) only the direction $\hat w = w / \lVert w \rVert$ matters, and the
# gradient is $\nabla L(w) = \nabla L(\hat w) / \lVert w \rVert$. An SGD step
# $w - \eta \nabla L(w)$ therefore moves the direction, to first order, by
# $\frac{\eta}{\lVert w \rVert^2}\nabla L(\hat w)$: the **effective learning rate** is
#
# $$
# \eta_{\text{eff}} = \frac{\eta}{\lVert w \rVert^2} .
# $$
#
# `effective_learning_rate(lr, w_norm)` takes a number or an array of norms and returns a
# number or a float64 array of the same shape (`w_norm` is never 0).

# %% nbgrader="answer" grade_id="effective_learning_rate"
def effective_learning_rate(lr, w_norm):
    """Effective learning rate lr / |w|**2 of a scale-invariant weight.

    Parameters
    ----------
    lr : float, > 0
    w_norm : float or ndarray, > 0
        Weight norm(s).

    Returns
    -------
    float, or float64 ndarray of the shape of w_norm
    """
    ### BEGIN SOLUTION
    norms = np.asarray(w_norm, dtype=np.float64)
    out = lr / norms**2
    return float(out) if out.ndim == 0 else out
    ### END SOLUTION


# %% [markdown]
# By hand: with `lr = 0.1`, a weight of norm 2 turns with the effective learning rate
# $0.1 / 4 = 0.025$; norms `[0.5, 1, 2]` give `[0.4, 0.1, 0.025]`.

# %% nbgrader="tests" grade_id="test_effective_learning_rate" points=2
# 2 points: effective learning rate.
grading.check_example(effective_learning_rate, (0.1, 2.0), name="effective_learning_rate",
                      returns="eta_eff", expected={"eta_eff": 0.025})
grading.check_example(effective_learning_rate, (0.1, np.array([0.5, 1.0, 2.0])),
                      name="effective_learning_rate", returns="eta_eff",
                      expected={"eta_eff": [0.4, 0.1, 0.025]})
### BEGIN HIDDEN TESTS
from normcore import analysis as _ref_analysis

_rng = np.random.default_rng(6065)
for _lr, _norms in [(0.5, 3.0), (0.03, 0.2), (1.0, _rng.random(7) * 5 + 0.1),
                    (0.2, _rng.random((3, 4)) * 2 + 0.05)]:
    grading.check_against_reference(effective_learning_rate, _ref_analysis.effective_learning_rate,
                                     (_lr, _norms), name="effective_learning_rate",
                                     returns="eta_eff")
### END HIDDEN TESTS

# %% [markdown]
# **Weight decay balances the growth.** Since the gradient $g_t$ of a scale-invariant weight
# is orthogonal to it, a plain SGD step can only lengthen the weight:
# $\lVert w_{t+1} \rVert^2 = \lVert w_t \rVert^2 + \eta^2 \lVert g_t \rVert^2$. With weight
# decay, $w_{t+1} = (1 - \eta\lambda) w_t - \eta g_t$, the weight also shrinks by the factor
# $1 - \eta\lambda$ per step. Write $G = \lVert w_t \rVert\, \lVert g_t \rVert$ for the
# gradient norm on the unit sphere (`unit_grad_norm`, the same at every step here) and
# $x_t = \lVert w_t \rVert^2$. Pythagoras gives the recursion
#
# $$
# x_{t+1} = (1 - \eta\lambda)^2\, x_t + \frac{\eta^2 G^2}{x_t} .
# $$
#
# Find its fixed point $x^*$ (multiply $x = (1-\eta\lambda)^2 x + \eta^2 G^2 / x$ by $x$) and
# return the **equilibrium norm** $\lVert w^* \rVert = \sqrt{x^*}$, exactly, without
# approximating $1 - (1 - \eta\lambda)^2$ by $2\eta\lambda$. (The tests use
# $0 < \eta\lambda < 1$.)

# %% nbgrader="answer" grade_id="equilibrium_norm"
def equilibrium_norm(lr, weight_decay, unit_grad_norm=1.0):
    """Weight norm at which SGD with weight decay keeps a scale-invariant weight's norm fixed.

    Parameters
    ----------
    lr : float, > 0
    weight_decay : float, > 0, with lr * weight_decay < 1
    unit_grad_norm : float, > 0
        G = |w| * |grad L(w)|, the gradient norm on the unit sphere.

    Returns
    -------
    float
        The norm |w*| (not its square).
    """
    ### BEGIN SOLUTION
    x_star = np.sqrt(lr * unit_grad_norm**2 / (weight_decay * (2 - lr * weight_decay)))
    return float(np.sqrt(x_star))
    ### END SOLUTION


# %% [markdown]
# By hand: for $\eta = 0.8$, $\lambda = 0.5$ and $G = 4$, $\eta\lambda = 0.4$ and
# $1 - (1 - 0.4)^2 = 0.64$, so $x^{*2} = \eta^2 G^2 / 0.64 = 10.24 / 0.64 = 16$, $x^* = 4$ and
# $\lVert w^* \rVert = 2$.

# %% nbgrader="tests" grade_id="test_equilibrium_norm" points=3
# 3 points: equilibrium norm.
grading.check_example(equilibrium_norm, (0.8, 0.5, 4.0), name="equilibrium_norm",
                      returns="norm", expected={"norm": 2.0})
# At the equilibrium one step of the recursion leaves the squared norm unchanged:
lr, wd, G = 0.1, 5e-4, 1.3
x = equilibrium_norm(lr, wd, G) ** 2
grading.assert_close("x = equilibrium_norm(0.1, 5e-4, 1.3)**2 after one step of the recursion",
                     (1 - lr * wd) ** 2 * x + lr**2 * G**2 / x, x)
### BEGIN HIDDEN TESTS
from normcore import analysis as _ref_analysis

for _args in [(0.1, 5e-4), (0.3, 0.2, 2.5), (0.05, 1e-2, 0.4), (2.0, 0.45, 3.0)]:
    grading.check_against_reference(equilibrium_norm, _ref_analysis.equilibrium_norm, _args,
                                     name="equilibrium_norm", returns="norm")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Counting constraints (4 points)
#
# A normalization imposes equations on its output. Batch normalization of a mini-batch of
# $m$ samples with $d$ channels makes every channel of the output have mean 0 and variance 1
# over the batch: two equations per channel. Counting the same way (the tutorial's table),
# with $g$ = `num_groups`:
#
# | method | $\zeta(\phi; X)$ | what is fixed |
# |---|---|---|
# | `"bn"` batch norm | $2d$ | mean and variance of each channel over the batch |
# | `"bw"` batch whitening | $d(d+3)/2$ | $d$ means, $d(d+1)/2$ distinct covariance entries |
# | `"gn"` group norm | $2gm$ | mean and variance of each of the $g$ groups, **per sample** |
# | `"gw"` group whitening | $m\,g(g+3)/2$ | per sample, $g$ means and $g(g+1)/2$ covariances |
#
# Group whitening whitens, in every sample, the $g$ groups against each other (the $d/g$
# values of a group are the observations). Layer normalization `"ln"` is GN with $g = 1$
# and instance normalization `"in"` GN with $g = d$ (for these two, and for `"bn"` and
# `"bw"`, `num_groups` is `None`). For a convolutional feature map of size `height`
# $\times$ `width` the statistics are shared by all positions, so $\zeta$ does **not**
# change (only the number of output entries grows).
# With `dataset_size` $N$, return the count over one epoch of $N/m$ mini-batches,
# $\zeta(\phi; \mathbb D) = \zeta(\phi; X)\, N / m$: an `int` when $m$ divides
# $\zeta(\phi; X)\, N$, a `float` otherwise.

# %% nbgrader="answer" grade_id="constraint_count"
def constraint_count(method, *, batch_size, num_channels, num_groups=None, height=1, width=1,
                     dataset_size=None):
    """Number of equations a normalization imposes on its output.

    Parameters
    ----------
    method : {"bn", "bw", "gn", "gw", "ln", "in"}
    batch_size : int
        m.
    num_channels : int
        d.
    num_groups : int or None
        g, for "gn" and "gw" (divides d); None otherwise.
    height, width : int
        Spatial size of the feature map.
    dataset_size : int or None
        N; if given, return the count over one epoch, zeta * N / m.

    Returns
    -------
    int, or float when dataset_size is given and m does not divide zeta * N
    """
    ### BEGIN SOLUTION
    m, d = batch_size, num_channels
    g = {"ln": 1, "in": d}.get(method, num_groups)
    if method == "bn":
        zeta = 2 * d
    elif method == "bw":
        zeta = d * (d + 3) // 2
    elif method == "gw":
        zeta = m * g * (g + 3) // 2
    else:  # "gn", "ln", "in"
        zeta = 2 * g * m
    if dataset_size is None:
        return zeta
    total = zeta * dataset_size
    return total // m if total % m == 0 else total / m
    ### END SOLUTION


# %% [markdown]
# By hand, for $d = 6$ channels and a batch of $m = 8$: BN imposes $2 \cdot 6 = 12$ equations
# (also on $4 \times 4$ feature maps), BW $6 \cdot 9 / 2 = 27$, GN with 3 groups
# $2 \cdot 3 \cdot 8 = 48$, GW with 2 groups $8 \cdot 2 \cdot 5 / 2 = 40$, LN $2 \cdot 8 = 16$
# and IN $2 \cdot 6 \cdot 8 = 96$. Over a data set of $N = 100$ samples, BN imposes
# $12 \cdot 100 / 8 = 150$ equations and BW $27 \cdot 100 / 8 = 337.5$.

# %% nbgrader="tests" grade_id="test_constraint_count" points=4
# 4 points: constraint counts.
base = {"batch_size": 8, "num_channels": 6}
for method, options, zeta in [("bn", {}, 12), ("bn", {"height": 4, "width": 4}, 12),
                              ("bw", {}, 27), ("gn", {"num_groups": 3}, 48),
                              ("gw", {"num_groups": 2}, 40), ("ln", {}, 16), ("in", {}, 96),
                              ("bn", {"dataset_size": 100}, 150),
                              ("bw", {"dataset_size": 100}, 337.5)]:
    grading.check_example(constraint_count, (method,), {**base, **options},
                          name="constraint_count", returns="zeta", expected={"zeta": zeta})
### BEGIN HIDDEN TESTS
from normcore import analysis as _ref_analysis

for _method, _options in [("bn", {"batch_size": 32, "num_channels": 64}),
                          ("bw", {"batch_size": 32, "num_channels": 64}),
                          ("gn", {"batch_size": 4, "num_channels": 64, "num_groups": 32,
                                  "height": 8, "width": 8}),
                          ("gw", {"batch_size": 16, "num_channels": 12, "num_groups": 3}),
                          ("gw", {"batch_size": 5, "num_channels": 64, "num_groups": 8,
                                  "dataset_size": 1000}),
                          ("ln", {"batch_size": 3, "num_channels": 10, "height": 2, "width": 5}),
                          ("in", {"batch_size": 3, "num_channels": 10}),
                          ("bw", {"batch_size": 7, "num_channels": 5, "dataset_size": 60}),
                          ("gn", {"batch_size": 6, "num_channels": 8, "num_groups": 4,
                                  "dataset_size": 50})]:
    grading.check_against_reference(constraint_count, _ref_analysis.constraint_count,
                                     (_method,), _options, name="constraint_count",
                                     returns="zeta")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Written question (4 points)
#
# Run the cell below once your functions pass their tests. For a few pairs of learning rate
# $\eta$ and weight decay $\lambda$ it prints the equilibrium norm (with $G = 1$), the
# effective learning rate at the equilibrium, and the angle by which the weight turns per step
# there, $\theta^* = \arccos(1 - \eta\lambda)$.

# %%
print(f"{'lr':>6}{'wd':>8}{'lr * wd':>9}{'|w*|':>8}{'eta_eff':>9}{'theta*':>8}")
for lr, wd in [(0.1, 1e-3), (0.2, 5e-4), (0.05, 2e-3), (0.1, 4e-3), (0.4, 1e-3)]:
    norm = equilibrium_norm(lr, wd)
    print(f"{lr:6g}{wd:8g}{lr * wd:9.0e}{norm:8.3f}"
          f"{effective_learning_rate(lr, norm):9.4f}{np.arccos(1 - lr * wd):8.4f}")

# %% [markdown]
# (a) The first three pairs end at different weight norms but share their effective learning
# rate and angle, and so do the last two. Show from the formula of section 4 that at the
# equilibrium $\eta_{\text{eff}} = \eta / \lVert w^* \rVert^2$ depends on $\eta$ and $\lambda$
# only through their product, and give its value for small $\eta\lambda$.
#
# (b) The loss of a layer followed by batch normalization does not depend on the scale of its
# weights, so weight decay cannot make its function "simpler". What does weight decay do to
# such a layer instead? And what happens without weight decay to $\lVert w_t \rVert$ and to
# the effective learning rate, for example after you double the learning rate?
#
# Answer in a few sentences in the cell below.

# %% [markdown] nbgrader="manual" grade_id="written_answer" points=4
# (a) From $x^{*2} = \eta G^2 / (\lambda(2 - \eta\lambda))$ with $x^* = \lVert w^* \rVert^2$,
# $\eta_{\text{eff}} = \eta / x^* = \eta \sqrt{\lambda (2 - \eta\lambda)} / (\sqrt{\eta}\, G)
# = \sqrt{\eta\lambda\,(2 - \eta\lambda)} / G$, a function of $\eta\lambda$ alone; for small
# $\eta\lambda$ it is about $\sqrt{2\eta\lambda}/G$ (0.0141 for $\eta\lambda = 10^{-4}$,
# 0.0283 for $4 \cdot 10^{-4}$, as printed). The angle $\arccos(1 - \eta\lambda) \approx
# \sqrt{2\eta\lambda}$ also depends on the product only. Doubling $\eta$ and halving
# $\lambda$ changes the equilibrium norm (by $\sqrt 2$) but not how fast the direction moves.
#
# (b) For a scale-invariant weight, weight decay only sets the norm, and through it the
# effective learning rate: it shrinks the norm until the growth from the orthogonal gradient
# steps balances it, and at that equilibrium the direction turns by $\theta^* \approx
# \sqrt{2\eta\lambda}$ per step. So $\eta$ and $\lambda$ act together, as one learning rate
# of the direction, and cannot be tuned independently. Without weight decay every step
# lengthens the weight ($\lVert w_{t+1} \rVert^2 = \lVert w_t \rVert^2 + \eta^2
# \lVert g_t \rVert^2$), so the effective learning rate $\eta / \lVert w_t \rVert^2$ keeps
# falling, an automatic annealing. Doubling $\eta$ makes the norm grow faster, which lowers
# $\eta_{\text{eff}}$ again: the scale-invariant weights do not diverge. (For large $t$,
# $\lVert w_t \rVert^2 \approx \eta G \sqrt{2t}$, so $\eta_{\text{eff}} \approx 1/(G\sqrt{2t})$
# no longer depends on $\eta$ at all.) Parameters that are not scale invariant (the last
# layer, the shifts) are not protected this way.
