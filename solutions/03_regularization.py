# %% [markdown]
# # Assignment 3: Dropout and weight decay
#
# You will implement the two regularizers of the lecture with NumPy: dropout, in the inverted
# form that PyTorch uses (forward and backward pass) and in the lecture's "vanilla" form that
# scales at test time, and weight decay, both as an L2 penalty added to the loss and as the
# shrinking step that decoupled weight decay applies to the weights.
#
# **Total: 27 points** (23 graded automatically, 4 for the written question at the end).
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
#   the arrays you are given.
# * Dropout is random. Draw every mask exactly as described below, so that the same seed
#   gives your function and the reference the same mask; the tests pass the seed as `rng`.
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
# ## 1. Inverted dropout: forward pass (6 points)
#
# During training, dropout sets each element of its input to zero with probability $p$,
# independently of the others, and scales the survivors so that the expected output is the
# input itself ("inverted" dropout, what `torch.nn.Dropout(p)` does):
#
# $$
# m_i \sim \operatorname{Bernoulli}(1 - p), \qquad
# y = \frac{m \odot x}{1 - p} \quad \text{(training)}, \qquad
# y = x \quad \text{(evaluation)} .
# $$
#
# Since $\mathbb{E}[m_i] = 1 - p$, $\mathbb{E}[y] = x$, and at test time the layer does
# nothing. Mind the convention: here, as in PyTorch, `p` is the probability of **zeroing** a
# unit; the lecture's $p$ is the probability of *keeping* it, $p_\text{keep} = 1 - p$ (with
# $0.5$ the two agree, which hides the difference).
#
# **Drawing the mask.** `rng` is a `numpy.random.Generator`, an integer seed or `None`;
# `np.random.default_rng(rng)` turns each of them into a generator (a generator is returned
# as it is). Draw one uniform number per element of `x` and keep the units whose number is
# below the keep probability:
#
# ```python
# gen = np.random.default_rng(rng)
# keep = gen.random(x.shape) < 1 - p
# ```
#
# Other ways to draw a mask (`gen.random(x.shape) > p`, `gen.binomial`, `np.random.rand`)
# have the right statistics but in general give other masks than the reference. With
# `training=False`, return a copy of `x` and draw no random numbers.
#
# The function returns `(out, cache)`. The cache is yours: store whatever your backward
# pass needs (the mask, `p`, and whether you were training).

# %% nbgrader="answer" grade_id="dropout_forward"
def dropout_forward(x, p=0.5, *, training=True, rng=None):
    """Inverted dropout forward pass.

    Parameters
    ----------
    x : ndarray, any shape
    p : float in [0, 1)
        Probability of zeroing each element.
    training : bool
        If False, return a copy of x (no random numbers drawn).
    rng : numpy.random.Generator, int or None
        Source of the mask: keep = np.random.default_rng(rng).random(x.shape) < 1 - p.

    Returns
    -------
    out : ndarray, shape and dtype of x
    cache : anything your backward pass needs
    """
    ### BEGIN SOLUTION
    if not training:
        return x.copy(), (None, p, False)
    keep = np.random.default_rng(rng).random(x.shape) < 1 - p
    return x * keep / (1 - p), (keep, p, True)
    ### END SOLUTION


# %% [markdown]
# By hand: `np.random.default_rng(1).random(4)` is $(0.512, 0.950, 0.144, 0.949)$. With
# $p = 0.2$ the units whose number is below $0.8$ are kept, the first and the third, so for
# `x = [1, 2, 3, 4]` the output is $(1, 0, 3, 0) / 0.8 = (1.25, 0, 3.75, 0)$. With seed 0
# the numbers are $(0.637, 0.270, 0.041, 0.017)$ and $p = 0.5$ drops only the first unit:
# $(0, 4, 6, 8)$.

# %% nbgrader="tests" grade_id="test_dropout_forward" points=4
# 4 points: training-mode output.
x = np.array([1.0, 2.0, 3.0, 4.0])
grading.check_example(dropout_forward, (x,), {"p": 0.2, "rng": 1}, name="dropout_forward",
                      returns=("out", None), expected={"out": [1.25, 0.0, 3.75, 0.0]})
grading.check_example(dropout_forward, (x,), {"p": 0.5, "rng": 0}, name="dropout_forward",
                      returns=("out", None), expected={"out": [0.0, 4.0, 6.0, 8.0]})
# A generator with the same seed gives the same mask; float32 stays float32.
grading.check_example(dropout_forward, (x.astype(np.float32),),
                      {"p": 0.2, "rng": np.random.default_rng(1)}, name="dropout_forward",
                      returns=("out", None),
                      expected={"out": np.array([1.25, 0.0, 3.75, 0.0], dtype=np.float32)})
# On many units, about a fraction p is zeroed and the mean stays 1.
out, _ = dropout_forward(np.ones((200, 500)), 0.3, rng=2)
assert out.shape == (200, 500), f"dropout_forward: out has shape {out.shape}, not (200, 500)"
assert abs(np.mean(out == 0) - 0.3) < 0.01, (
    f"dropout_forward zeroed a fraction {np.mean(out == 0):.3f} of the units, not about p = 0.3")
assert abs(out.mean() - 1) < 0.02, (
    f"dropout_forward: the mean output for an input of ones is {out.mean():.3f}, not about 1")
### BEGIN HIDDEN TESTS
from normcore import regularization as _ref

_rng = np.random.default_rng(3031)
for _shape, _dtype, _p, _seed in [((5, 4), np.float64, 0.3, 11), ((2, 3, 4, 4), np.float32, 0.6, 12),
                                  ((7,), np.float64, 0.0, 13), ((3, 8), np.float64, 0.9, 14),
                                  ((4, 3, 5), np.float32, 0.25, 15)]:
    _x = (2 * _rng.standard_normal(_shape) + 1).astype(_dtype)
    grading.check_against_reference(dropout_forward, _ref.dropout_forward, (_x,),
                                     {"p": _p, "rng": _seed}, name="dropout_forward",
                                     returns=("out", None))
_x = _rng.standard_normal((6, 5))
grading.check_against_reference(dropout_forward, _ref.dropout_forward, (_x,),
                                 {"p": 0.4, "rng": np.random.default_rng(16)},
                                 name="dropout_forward", returns=("out", None))
### END HIDDEN TESTS

# %% [markdown]
# In evaluation mode the layer is the identity, whatever `p` and `rng` are.

# %% nbgrader="tests" grade_id="test_dropout_eval" points=2
# 2 points: evaluation mode.
x = np.array([1.0, 2.0, 3.0, 4.0])
grading.check_example(dropout_forward, (x,), {"p": 0.2, "training": False, "rng": 1},
                      name="dropout_forward", returns=("out", None), expected={"out": x})
grading.check_example(dropout_forward, (x,), {"p": 0.5, "training": False},
                      name="dropout_forward", returns=("out", None), expected={"out": x})
### BEGIN HIDDEN TESTS
from normcore import regularization as _ref

_rng = np.random.default_rng(3032)
for _shape, _dtype, _p in [((5, 4), np.float64, 0.3), ((2, 3, 4), np.float32, 0.6),
                           ((6,), np.float64, 0.9)]:
    _x = _rng.standard_normal(_shape).astype(_dtype)
    grading.check_against_reference(dropout_forward, _ref.dropout_forward, (_x,),
                                     {"p": _p, "training": False, "rng": 21},
                                     name="dropout_forward", returns=("out", None))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Inverted dropout: backward pass (4 points)
#
# The forward pass multiplies each element by a constant, $m_i / (1 - p)$, so the gradient
# flows back through the kept units with the same factor and is zero for the dropped ones:
#
# $$
# \frac{\partial L}{\partial x} = \frac{m \odot \partial L / \partial y}{1 - p}
# \quad \text{(training)}, \qquad
# \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}
# \quad \text{(evaluation)} .
# $$
#
# Use the mask of the forward pass from the cache (never draw a new one). By hand, for the
# first example above ($p = 0.2$, seed 1, kept units 1 and 3) and
# `dout = [2, -1, 1, 3]`: `dx = [2, 0, 1, 0] / 0.8 = [2.5, 0, 1.25, 0]`.

# %% nbgrader="answer" grade_id="dropout_backward"
def dropout_backward(dout, cache):
    """Inverted dropout backward pass.

    Parameters
    ----------
    dout : ndarray, shape of x
    cache : what your dropout_forward returned

    Returns
    -------
    dx : ndarray, shape and dtype of dout
    """
    ### BEGIN SOLUTION
    keep, p, training = cache
    if not training:
        return dout.copy()
    return dout * keep / (1 - p)
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_dropout_backward" points=4
# 4 points: gradient of dropout.
x, dout = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, -1.0, 1.0, 3.0])
# The forward and backward passes together: dx for the upstream gradient dout.
forward_backward = grading.backward_through(dropout_forward, dropout_backward)
grading.check_example(forward_backward, (dout, x), {"p": 0.2, "rng": 1}, name="dropout_backward",
                      returns="dx", expected={"dx": [2.5, 0.0, 1.25, 0.0]})
grading.check_example(forward_backward, (dout, x), {"p": 0.2, "training": False, "rng": 1},
                      name="dropout_backward", returns="dx", expected={"dx": dout})
# Your backward must be the gradient of your forward (centered differences, fixed mask):
rng = np.random.default_rng(1)
grading.check_gradient(dropout_forward, dropout_backward, (rng.standard_normal((3, 4)),),
                       {"p": 0.3, "rng": 0}, name="dropout_backward")
### BEGIN HIDDEN TESTS
from normcore import regularization as _ref

_rng = np.random.default_rng(3033)
for _shape, _dtype, _p, _training in [((6, 4), np.float64, 0.3, True),
                                      ((2, 3, 4, 4), np.float32, 0.6, True),
                                      ((5,), np.float64, 0.0, True),
                                      ((3, 5), np.float64, 0.7, False),
                                      ((2, 4, 3), np.float32, 0.4, False)]:
    _args = (_rng.standard_normal(_shape).astype(_dtype),
             _rng.standard_normal(_shape).astype(_dtype))
    grading.check_backward(dropout_forward, dropout_backward,
                           _ref.dropout_forward, _ref.dropout_backward, _args,
                           {"p": _p, "training": _training, "rng": 31},
                           name="dropout_backward", returns="dx")
grading.check_gradient(dropout_forward, dropout_backward, (_rng.standard_normal((2, 3, 3)),),
                       {"p": 0.6, "rng": 32}, name="dropout_backward")
# A generator: the backward must reuse the forward's mask, not draw a new one.
grading.check_backward(dropout_forward, dropout_backward,
                       _ref.dropout_forward, _ref.dropout_backward,
                       (_rng.standard_normal((4, 5)), _rng.standard_normal((4, 5))),
                       {"p": 0.5, "rng": np.random.default_rng(33)},
                       name="dropout_backward", returns="dx")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Vanilla dropout (6 points)
#
# The lecture's first version keeps each unit with probability $p_\text{keep}$ and does not
# scale while training; the scaling moves to test time, where the activations are multiplied
# by their expected mask:
#
# $$
# m_i \sim \operatorname{Bernoulli}(p_\text{keep}), \qquad
# y = m \odot x \quad \text{(training)}, \qquad
# y = p_\text{keep}\, x \quad \text{(evaluation)} ,
# $$
#
# so that the test output equals the expected training output, $p_\text{keep}\, x$. Draw the
# mask as before, with the keep probability: `keep = gen.random(x.shape) < p_keep`. (With
# the same seed, `dropout_forward(x, p)` and `vanilla_dropout_forward(x, 1 - p)` then draw the
# same mask.) The backward pass follows: $\partial L/\partial x = m \odot \partial L /
# \partial y$ in training, $p_\text{keep}\, \partial L / \partial y$ in evaluation.
#
# By hand, with `x = [1, 2, 3, 4]`, $p_\text{keep} = 0.8$ and seed 1 (kept units 1 and 3):
# the training output is $(1, 0, 3, 0)$ and the evaluation output $(0.8, 1.6, 2.4, 3.2)$;
# for `dout = [2, -1, 1, 3]` the gradients are $(2, 0, 1, 0)$ in training and
# $(1.6, -0.8, 0.8, 2.4)$ in evaluation.

# %% nbgrader="answer" grade_id="vanilla_dropout_forward"
def vanilla_dropout_forward(x, p_keep, *, training=True, rng=None):
    """Vanilla dropout forward pass: drop while training, scale at test time.

    Parameters
    ----------
    x : ndarray, any shape
    p_keep : float in (0, 1]
        Probability of keeping each element (the lecture's p).
    training : bool
    rng : numpy.random.Generator, int or None
        Source of the mask: keep = np.random.default_rng(rng).random(x.shape) < p_keep.

    Returns
    -------
    out : ndarray, shape and dtype of x
    cache : anything your backward pass needs
    """
    ### BEGIN SOLUTION
    if not training:
        return x * p_keep, (None, p_keep, False)
    keep = np.random.default_rng(rng).random(x.shape) < p_keep
    return x * keep, (keep, p_keep, True)
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_vanilla_dropout_forward" points=4
# 4 points: vanilla dropout, training and evaluation.
x = np.array([1.0, 2.0, 3.0, 4.0])
grading.check_example(vanilla_dropout_forward, (x, 0.8), {"rng": 1},
                      name="vanilla_dropout_forward", returns=("out", None),
                      expected={"out": [1.0, 0.0, 3.0, 0.0]})
grading.check_example(vanilla_dropout_forward, (x, 0.8), {"training": False, "rng": 1},
                      name="vanilla_dropout_forward", returns=("out", None),
                      expected={"out": [0.8, 1.6, 2.4, 3.2]})
grading.check_example(vanilla_dropout_forward, (x.astype(np.float32), 0.5), {"rng": 0},
                      name="vanilla_dropout_forward", returns=("out", None),
                      expected={"out": np.array([0.0, 2.0, 3.0, 4.0], dtype=np.float32)})
### BEGIN HIDDEN TESTS
from normcore import regularization as _ref

_rng = np.random.default_rng(3034)
for _shape, _dtype, _p_keep, _training in [((5, 4), np.float64, 0.7, True),
                                           ((2, 3, 4, 4), np.float32, 0.4, True),
                                           ((6,), np.float64, 1.0, True),
                                           ((4, 3), np.float64, 0.3, False),
                                           ((2, 5, 2), np.float32, 0.9, False)]:
    _x = (2 * _rng.standard_normal(_shape) + 1).astype(_dtype)
    grading.check_against_reference(vanilla_dropout_forward, _ref.vanilla_dropout_forward,
                                     (_x, _p_keep), {"training": _training, "rng": 41},
                                     name="vanilla_dropout_forward", returns=("out", None))
grading.check_against_reference(vanilla_dropout_forward, _ref.vanilla_dropout_forward,
                                 (_rng.standard_normal((3, 7)), 0.6),
                                 {"rng": np.random.default_rng(42)},
                                 name="vanilla_dropout_forward", returns=("out", None))
### END HIDDEN TESTS

# %% nbgrader="answer" grade_id="vanilla_dropout_backward"
def vanilla_dropout_backward(dout, cache):
    """Vanilla dropout backward pass.

    Parameters
    ----------
    dout : ndarray, shape of x
    cache : what your vanilla_dropout_forward returned

    Returns
    -------
    dx : ndarray, shape and dtype of dout
    """
    ### BEGIN SOLUTION
    keep, p_keep, training = cache
    if not training:
        return dout * p_keep
    return dout * keep
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_vanilla_dropout_backward" points=2
# 2 points: gradient of vanilla dropout.
x, dout = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, -1.0, 1.0, 3.0])
forward_backward = grading.backward_through(vanilla_dropout_forward, vanilla_dropout_backward)
grading.check_example(forward_backward, (dout, x, 0.8), {"rng": 1},
                      name="vanilla_dropout_backward", returns="dx",
                      expected={"dx": [2.0, 0.0, 1.0, 0.0]})
grading.check_example(forward_backward, (dout, x, 0.8), {"training": False, "rng": 1},
                      name="vanilla_dropout_backward", returns="dx",
                      expected={"dx": [1.6, -0.8, 0.8, 2.4]})
### BEGIN HIDDEN TESTS
from normcore import regularization as _ref

_rng = np.random.default_rng(3035)
for _shape, _dtype, _p_keep, _training in [((6, 4), np.float64, 0.7, True),
                                           ((2, 3, 4), np.float32, 0.4, True),
                                           ((3, 5), np.float64, 0.6, False)]:
    _args = (_rng.standard_normal(_shape).astype(_dtype),
             _rng.standard_normal(_shape).astype(_dtype), _p_keep)
    grading.check_backward(vanilla_dropout_forward, vanilla_dropout_backward,
                           _ref.vanilla_dropout_forward, _ref.vanilla_dropout_backward, _args,
                           {"training": _training, "rng": 51},
                           name="vanilla_dropout_backward", returns="dx")
for _training in (True, False):
    grading.check_gradient(vanilla_dropout_forward, vanilla_dropout_backward,
                           (_rng.standard_normal((3, 4)), 0.6),
                           {"training": _training, "rng": 52}, wrt=(0,),
                           name="vanilla_dropout_backward")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. L2 penalty and weight decay (7 points)
#
# Weight decay adds the squared norm of the weights to the data loss $L_0$, with the factor
# $\frac{1}{2}$ of Krogh and Hertz (1992) and of the lecture:
#
# $$
# L(w) = L_0(w) + R(w), \qquad
# R(w) = \frac{\lambda}{2} \lVert w \rVert_2^2 = \frac{\lambda}{2} \sum_i w_i^2, \qquad
# \nabla_w R = \lambda w ,
# $$
#
# with $\lambda$ = `weight_decay` and the sum over **every** element of `w`, whatever its
# shape. Thanks to the $\frac{1}{2}$ the gradient is exactly $\lambda w$, the term that
# `torch.optim.SGD(..., weight_decay=λ)` adds to the gradient. Return the penalty as a
# Python float (or a NumPy scalar) and its gradient as an array of `w`'s dtype.
#
# A gradient step on $L$ then reads
#
# $$
# w \leftarrow w - \eta\, \nabla_w L_0 - \eta \lambda w
#   = (1 - \eta \lambda)\, w - \eta\, \nabla_w L_0 ,
# $$
#
# i.e. shrink every weight by the factor $1 - \eta\lambda$ ($\eta$ = `lr`), then take the
# ordinary step on the data loss. `weight_decay_step(w, lr, weight_decay)` is that first half,
# $w \mapsto (1 - \eta\lambda)\, w$: it is what AdamW applies outside its adaptive update
# ("decoupled" weight decay). It returns a new array and leaves `w` alone.
#
# By hand: for `w = [1, -2, 2, 4]` and $\lambda = 0.1$, $\sum_i w_i^2 = 25$, so the penalty is
# $0.05 \cdot 25 = 1.25$ and the gradient $(0.1, -0.2, 0.2, 0.4)$. For `w = [1, -2, 4]`,
# `lr = 0.1` and `weight_decay = 0.5` the factor is $1 - 0.05 = 0.95$ and the decayed weights
# are $(0.95, -1.9, 3.8)$.

# %% nbgrader="answer" grade_id="l2_penalty"
def l2_penalty(w, weight_decay):
    """L2 penalty (weight_decay / 2) * sum(w**2) and its gradient.

    Parameters
    ----------
    w : ndarray, any shape
    weight_decay : float, >= 0

    Returns
    -------
    loss : float
    grad : ndarray, shape and dtype of w
    """
    ### BEGIN SOLUTION
    loss = 0.5 * weight_decay * float(np.sum(w * w))
    return loss, weight_decay * w
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_l2_penalty" points=4
# 4 points: penalty and gradient.
w = np.array([1.0, -2.0, 2.0, 4.0])
grading.check_example(l2_penalty, (w, 0.1), name="l2_penalty", returns=("loss", "grad"),
                      expected={"loss": 1.25, "grad": [0.1, -0.2, 0.2, 0.4]})
# float32 in, float32 gradient out:
grading.check_example(l2_penalty, (w.astype(np.float32), 0.1), name="l2_penalty",
                      returns=("loss", "grad"),
                      expected={"loss": 1.25,
                                "grad": np.array([0.1, -0.2, 0.2, 0.4], np.float32)})
# The gradient is the gradient of your penalty (centered differences):
from normcore.gradcheck import numerical_gradient

w = np.random.default_rng(3).standard_normal((3, 4))
loss, grad = l2_penalty(w, 0.3)
grading.assert_close("l2_penalty: grad (compared with the numerical gradient of your loss)",
                     grad, numerical_gradient(lambda z: l2_penalty(z, 0.3)[0], w.copy()))
### BEGIN HIDDEN TESTS
from normcore import regularization as _ref

_rng = np.random.default_rng(3036)
for _shape, _dtype, _lam in [((5, 4), np.float64, 0.01), ((2, 3, 3, 3), np.float64, 0.5),
                             ((16,), np.float32, 1e-3), ((4, 6), np.float32, 0.2),
                             ((3, 2), np.float64, 0.0)]:
    _w = (3 * _rng.standard_normal(_shape)).astype(_dtype)
    grading.check_against_reference(l2_penalty, _ref.l2_penalty, (_w, _lam), name="l2_penalty",
                                     returns=("loss", "grad"))
### END HIDDEN TESTS

# %% nbgrader="answer" grade_id="weight_decay_step"
def weight_decay_step(w, lr, weight_decay):
    """Decoupled weight decay: shrink the weights, w -> (1 - lr * weight_decay) * w.

    Parameters
    ----------
    w : ndarray, any shape (not modified)
    lr : float, >= 0
    weight_decay : float, >= 0

    Returns
    -------
    new_w : ndarray, shape and dtype of w
    """
    ### BEGIN SOLUTION
    return w * (1 - lr * weight_decay)
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_weight_decay_step" points=3
# 3 points: the decay step.
w = np.array([1.0, -2.0, 4.0])
grading.check_example(weight_decay_step, (w, 0.1, 0.5), name="weight_decay_step",
                      returns="new_w", expected={"new_w": [0.95, -1.9, 3.8], "w": w.copy()})
grading.check_example(weight_decay_step, (w.astype(np.float32), 0.1, 0.5),
                      name="weight_decay_step", returns="new_w",
                      expected={"new_w": np.array([0.95, -1.9, 3.8], np.float32)})
# Followed by a plain gradient step on the data loss, it is the lecture's update:
rng = np.random.default_rng(4)
w, dw, lr, lam = rng.standard_normal((3, 2)), rng.standard_normal((3, 2)), 0.1, 0.01
grading.assert_close("weight_decay_step(w, lr, lam) - lr * dw",
                     weight_decay_step(w, lr, lam) - lr * dw, w - lr * dw - lr * lam * w)
### BEGIN HIDDEN TESTS
from normcore import regularization as _ref

_rng = np.random.default_rng(3037)
for _shape, _dtype, _lr, _lam in [((5, 4), np.float64, 0.1, 0.01), ((2, 3, 3), np.float32, 0.5, 0.2),
                                  ((7,), np.float64, 1e-3, 5e-4), ((3, 3), np.float64, 0.0, 0.1),
                                  ((4, 2), np.float32, 0.3, 0.0)]:
    _w = _rng.standard_normal(_shape).astype(_dtype)
    grading.check_against_reference(weight_decay_step, _ref.weight_decay_step, (_w, _lr, _lam),
                                     name="weight_decay_step", returns="new_w")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Written question (4 points)
#
# Run the cell below once your dropout functions pass their tests. It applies both forms of
# dropout, with the same masks, to 100 000 copies of a small input, as a network would see
# it in 100 000 training steps, and compares the average training output with the test-time
# output.

# %%
x = np.array([1.0, -2.0, 3.0])
p = 0.25                        # inverted dropout's probability of zeroing; p_keep = 0.75
batch = np.tile(x, (100_000, 1))  # one row per draw of the mask
inverted_train, _ = dropout_forward(batch, p, rng=0)
vanilla_train, _ = vanilla_dropout_forward(batch, 1 - p, rng=0)
inverted_test, _ = dropout_forward(x, p, training=False)
vanilla_test, _ = vanilla_dropout_forward(x, 1 - p, training=False)
print("same masks, inverted == vanilla / (1 - p):",
      np.allclose(inverted_train, vanilla_train / (1 - p)))
for name, train, test in [("inverted", inverted_train, inverted_test),
                          ("vanilla", vanilla_train, vanilla_test)]:
    print(f"{name:>8}: mean training output {train.mean(axis=0)}, test output {test}, "
          f"std of the training output {train.std(axis=0)}")

# %% [markdown]
# (a) For each form, compare the mean training output with the test output, and explain with
# the expectation of the mask why they agree.
#
# (b) The spread of the training outputs differs between the two forms. By what factor, and
# why? Give the standard deviation of one inverted-dropout output $y_i$ as a formula in $x_i$
# and $p$, and check it against the printed numbers.
#
# (c) A colleague deploys a network trained with vanilla dropout ($p_\text{keep} = 0.75$) but
# forgets the test-time scaling. By what factor are the inputs of the next layer off? Why can
# this mistake not happen with inverted dropout?
#
# Answer in a few sentences in the cell below.

# %% [markdown] nbgrader="manual" grade_id="written_answer" points=4
# (a) Inverted dropout: the mean training output is about $x = (1, -2, 3)$, equal to the test
# output $x$; vanilla dropout: about $0.75\,x = (0.75, -1.5, 2.25)$, equal to its test output
# $p_\text{keep}\,x$. The mask has expectation $\mathbb{E}[m_i] = 1 - p = p_\text{keep}$, so
# $\mathbb{E}[m_i x_i / (1-p)] = x_i$ and $\mathbb{E}[m_i x_i] = p_\text{keep}\, x_i$: each
# form chooses its test output to be the expected training output.
#
# (b) With the same masks the inverted output is the vanilla one divided by $1 - p$, so its
# standard deviation is $1/(1-p) = 4/3$ times larger. For a Bernoulli mask,
# $\operatorname{Var}[m_i] = p(1-p)$, so
# $\operatorname{std}[y_i] = |x_i| \sqrt{p(1-p)}/(1-p) = |x_i|\sqrt{p/(1-p)} \approx 0.577\,|x_i|$
# (printed: about $0.577, 1.155, 1.732$), against $|x_i|\sqrt{p(1-p)} \approx 0.433\,|x_i|$ for
# vanilla dropout. The means are matched at test time, not this extra variance.
#
# (c) Without the factor $p_\text{keep}$ every input of the next layer is $1/p_\text{keep} =
# 4/3$ times what it was on average in training, and the error compounds through the
# following layers. Inverted dropout puts the factor $1/(1-p)$ into training, where the
# expected output already equals the full one, so the test-time layer is the identity: the
# deployed network needs no knowledge of $p$ and there is no scaling to forget.
