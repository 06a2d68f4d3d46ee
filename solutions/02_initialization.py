# %% [markdown]
# # Assignment 2: Weight initialization
#
# You will implement the weight initializers of the lecture with NumPy: the fans of a weight
# (fully connected or convolutional), the gain of a nonlinearity, Xavier/Glorot and
# He/Kaiming initialization (uniform and normal), and orthogonal initialization. At the end
# you push data through ten layers initialized with your functions and explain the numbers.
#
# **Total: 28 points** (24 graded automatically, 4 for the written question at the end).
#
# How this notebook is graded:
#
# * Write your code in the cells that say `YOUR CODE HERE`, replacing
#   `raise NotImplementedError()`. Keep the function names and signatures: they are those of
#   the course library `normcore` (`normcore.init`), and your functions are compared with it.
# * Each test cell is worth the points written in its first line, all or nothing. The tests
#   you see check a small example worked out by hand and the distribution of a large draw.
#   When the assignment is graded, more tests run in the same cells: other shapes (including
#   convolution weights), gains, modes, nonlinearities and `float32`, compared number by
#   number with a reference implementation. A failing test says what is wrong.
# * Use NumPy only. A function that calls `normcore`'s implementation or `torch.nn.init`
#   scores zero on that test.
# * The initializers are random, yet graded exactly: draw every random number from the
#   generator `rng` you are given, with the one call that section 3 prescribes, in float64,
#   and return a new array of the requested `dtype`. The same seed then gives the same
#   weights as the reference.
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
# ## 1. Fan-in and fan-out (2 points)
#
# Every rule of the lecture sets the variance of a weight from the number of inputs of a unit
# (its **fan-in** $n_{\text{in}}$) and the number of units an input feeds (its **fan-out**
# $n_{\text{out}}$). Weights are stored as PyTorch stores them: a fully connected layer with
# `in_features` inputs and `out_features` outputs has a weight of shape
# `(out_features, in_features)` (the transpose of the lecture's $n_{\text{in}} \times
# n_{\text{out}}$ matrix in $H W$), and a convolution has a weight of shape
# `(out_channels, in_channels, *kernel)`, e.g. `(out, in, kh, kw)`. An output of a convolution
# sums over `in_channels` times the kernel size inputs, so
#
# $$
# \text{fan\_in} = \texttt{shape[1]} \cdot r, \qquad
# \text{fan\_out} = \texttt{shape[0]} \cdot r, \qquad
# r = \prod_{k \ge 2} \texttt{shape[k]} \quad (r = 1 \text{ for a 2-d weight}).
# $$
#
# By hand: `nn.Linear(5, 3)` has a weight of shape `(3, 5)`, so fan_in = 5 and fan_out = 3. A
# $3 \times 3$ convolution from 2 to 4 channels has a weight of shape `(4, 2, 3, 3)`, $r = 9$,
# fan_in $= 2 \cdot 9 = 18$ and fan_out $= 4 \cdot 9 = 36$.

# %% nbgrader="answer" grade_id="fan_in_and_fan_out"
def fan_in_and_fan_out(shape):
    """Fan-in and fan-out of a weight of ``shape``, as PyTorch computes them.

    Parameters
    ----------
    shape : tuple of int, length >= 2
        ``(out_features, in_features)`` or ``(out_channels, in_channels, *kernel)``.

    Returns
    -------
    fan_in, fan_out : int
    """
    ### BEGIN SOLUTION
    receptive = 1
    for k in shape[2:]:
        receptive *= k
    return shape[1] * receptive, shape[0] * receptive
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_fan_in_and_fan_out" points=2
# 2 points: fans of fully connected and convolution weights.
grading.check_example(fan_in_and_fan_out, ((3, 5),), name="fan_in_and_fan_out",
                      returns=("fan_in", "fan_out"), expected={"fan_in": 5, "fan_out": 3})
grading.check_example(fan_in_and_fan_out, ((4, 2, 3, 3),), name="fan_in_and_fan_out",
                      returns=("fan_in", "fan_out"), expected={"fan_in": 18, "fan_out": 36})
### BEGIN HIDDEN TESTS
from normcore import init as _ref

for _shape in [(7, 2), (1, 9), (16, 3, 5), (8, 4, 3, 3), (2, 3, 2, 2, 2), (5, 6, 1, 1)]:
    grading.check_against_reference(fan_in_and_fan_out, _ref.fan_in_and_fan_out, (_shape,),
                                     name="fan_in_and_fan_out", returns=("fan_in", "fan_out"))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The gain of a nonlinearity (3 points)
#
# A layer multiplies the second moment of its input by $n \operatorname{Var}[w]$. For a unit
# that is linear near zero the rule $n \operatorname{Var}[w] = 1$ keeps it constant; a
# nonlinearity that removes part of the second moment has to be compensated by a larger
# weight. The **gain** $g$ is the factor on the *standard deviation*:
# $\operatorname{Var}[w] = g^2 / n$. A ReLU keeps exactly half of the second moment of a
# symmetric input, so $g^2 = 2$; a leaky ReLU with negative slope $\alpha$ keeps
# $(1 + \alpha^2)/2$ of it. Implement PyTorch's table:
#
# | `nonlinearity` | gain |
# |---|---|
# | `'linear'`, `'conv1d'`, `'conv2d'`, `'conv3d'`, `'conv_transpose1d'`, `'conv_transpose2d'`, `'conv_transpose3d'`, `'sigmoid'` | $1$ |
# | `'tanh'` | $5/3$ |
# | `'relu'` | $\sqrt{2}$ |
# | `'leaky_relu'` | $\sqrt{2 / (1 + \alpha^2)}$, with $\alpha$ = `param`, or $0.01$ when `param` is `None` |
# | `'selu'` | $3/4$ |
#
# (Any other name may raise a `ValueError`.) By hand: `calculate_gain('leaky_relu', 1.0)`
# $= \sqrt{2/2} = 1$, a leaky ReLU of slope 1 being the identity.

# %% nbgrader="answer" grade_id="calculate_gain"
def calculate_gain(nonlinearity, param=None):
    """Recommended gain for a nonlinearity (``torch.nn.init.calculate_gain``).

    Parameters
    ----------
    nonlinearity : str
    param : float, optional
        Negative slope of ``'leaky_relu'`` (default 0.01); ignored otherwise.

    Returns
    -------
    gain : float
    """
    ### BEGIN SOLUTION
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return np.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return np.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_calculate_gain" points=3
# 3 points: the gains of PyTorch's table.
for nonlinearity, gain in [("linear", 1.0), ("conv2d", 1.0), ("sigmoid", 1.0),
                           ("tanh", 5 / 3), ("relu", np.sqrt(2)),
                           ("leaky_relu", np.sqrt(2 / (1 + 0.01**2))), ("selu", 0.75)]:
    grading.check_example(calculate_gain, (nonlinearity,), name="calculate_gain",
                          returns="gain", expected={"gain": gain})
grading.check_example(calculate_gain, ("leaky_relu", 1.0), name="calculate_gain",
                      returns="gain", expected={"gain": 1.0})
### BEGIN HIDDEN TESTS
from normcore import init as _ref

for _args in [("leaky_relu", 0.2), ("leaky_relu", 0.0), ("leaky_relu", 3.0), ("conv1d",),
              ("conv3d",), ("conv_transpose2d",), ("relu", 0.5), ("tanh", 0.3)]:
    grading.check_against_reference(calculate_gain, _ref.calculate_gain, _args,
                                     name="calculate_gain", returns="gain")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Xavier/Glorot initialization (6 points)
#
# The forward pass asks for $n_{\text{in}} \operatorname{Var}[w] = 1$ and the backward pass
# for $n_{\text{out}} \operatorname{Var}[w] = 1$; when the two differ, Glorot and Bengio take
# the compromise
#
# $$
# \operatorname{Var}[w] = \text{gain}^2 \cdot \frac{2}{\text{fan\_in} + \text{fan\_out}} .
# $$
#
# Two distributions have this variance:
#
# * **`xavier_normal`**: $w \sim \mathcal{N}(0, \sigma^2)$ with
#   $\sigma = \text{gain} \sqrt{2 / (\text{fan\_in} + \text{fan\_out})}$;
# * **`xavier_uniform`**: $w \sim \mathcal{U}(-a, a)$ with
#   $a = \text{gain} \sqrt{6 / (\text{fan\_in} + \text{fan\_out})} = \sqrt{3}\,\sigma$, since
#   $\operatorname{Var}[\mathcal{U}(-a, a)] = a^2 / 3$.
#
# Do not mix the two up: the bound $a$ is $\sqrt{3}$ times the standard deviation. Compute
# the fans with your `fan_in_and_fan_out`.
#
# **How to draw (for every initializer of this notebook).** Draw all random numbers from the
# `rng` argument (a `numpy.random.Generator`) with exactly one call, in float64, and cast the
# result at the end:
#
# * uniform $\mathcal{U}(-a, a)$: `rng.uniform(-a, a, size=shape)`;
# * normal $\mathcal{N}(0, \sigma^2)$: `sigma * rng.standard_normal(shape)`;
# * then `.astype(dtype)`. Do not pass `dtype` to the generator: `standard_normal(...,
#   dtype=np.float32)` uses another algorithm and gives other numbers.
#
# By hand: a weight of shape `(4, 2)` has fan_in = 2 and fan_out = 4, so $a = \sqrt{6/6} = 1$
# and `xavier_uniform((4, 2), rng=rng)` is exactly `rng.uniform(-1, 1, size=(4, 2))`. With
# `gain=3`, a $2 \times 2$ convolution from 1 to 5 channels, shape `(5, 1, 2, 2)`, has
# fan_in = 4 and fan_out = 20, so $a = 3 \sqrt{6/24} = 1.5$.

# %% nbgrader="answer" grade_id="xavier_uniform"
def xavier_uniform(shape, *, gain=1.0, rng, dtype=np.float64):
    """Glorot/Xavier uniform initialization, U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)).

    Parameters
    ----------
    shape : tuple of int, length >= 2
        PyTorch layout ``(out, in, *kernel)``.
    gain : float
    rng : numpy.random.Generator
    dtype : float32 or float64

    Returns
    -------
    w : ndarray, shape ``shape``, dtype ``dtype``
    """
    ### BEGIN SOLUTION
    fan_in, fan_out = fan_in_and_fan_out(shape)
    a = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape).astype(dtype)
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_xavier_uniform_distribution" points=1
# 1 point: xavier_uniform draws from U(-a, a) with the right bound (statistics of a large draw).
def largest_and_std(shape, gain=1.0, dtype=np.float64):
    w = xavier_uniform(shape, gain=gain, rng=np.random.default_rng(0), dtype=dtype)
    return float(np.abs(w).max()), float(w.std())


names = ("largest |w| (just below the bound a)", "std of w (a / sqrt(3))")
# (300, 500): a = sqrt(6 / 800); (64, 32, 3, 3) with gain 2: a = 2 sqrt(6 / (288 + 576)).
for shape, gain, a in [((300, 500), 1.0, np.sqrt(6 / 800)),
                       ((64, 32, 3, 3), 2.0, 2 * np.sqrt(6 / 864))]:
    grading.check_example(largest_and_std, (shape, gain), name="xavier_uniform", mistakes=[],
                          returns=names, expected=dict(zip(names, (a, a / np.sqrt(3)))),
                          rtol=0.02)
### BEGIN HIDDEN TESTS
grading.check_example(largest_and_std, ((200, 100, 3), 0.5, np.float32), name="xavier_uniform",
                      mistakes=[], returns=names,
                      expected=dict(zip(names, (0.5 * np.sqrt(6 / 900),
                                                0.5 * np.sqrt(2 / 900)))), rtol=0.02)
### END HIDDEN TESTS

# %% nbgrader="tests" grade_id="test_xavier_uniform_values" points=2
# 2 points: xavier_uniform gives exactly the reference's numbers for the same seed.
# If the distribution test passes but this one does not, draw as section 3 says:
# one call rng.uniform(-a, a, size=shape) in float64, then .astype(dtype).
def seed_difference(shape):
    """Two draws from generators with the same seed must be identical."""
    w1 = xavier_uniform(shape, rng=np.random.default_rng(0))
    w2 = xavier_uniform(shape, rng=np.random.default_rng(0))
    return float(np.abs(w1 - w2).max())


same_seed = "largest difference between two draws with the same seed (draw from rng)"
grading.check_example(seed_difference, ((4, 2),), name="xavier_uniform", mistakes=[],
                      returns=same_seed, expected={same_seed: 0.0})
grading.check_example(xavier_uniform, ((4, 2),), {"rng": np.random.default_rng(0)},
                      name="xavier_uniform", returns="w",
                      expected={"w": np.random.default_rng(0).uniform(-1, 1, size=(4, 2))})
expected = np.random.default_rng(1).uniform(-1.5, 1.5, size=(5, 1, 2, 2))
grading.check_example(xavier_uniform, ((5, 1, 2, 2),),
                      {"gain": 3.0, "rng": np.random.default_rng(1)},
                      name="xavier_uniform", returns="w", expected={"w": expected})
expected = np.random.default_rng(2).uniform(-1, 1, size=(4, 2)).astype(np.float32)
grading.check_example(xavier_uniform, ((4, 2),),
                      {"rng": np.random.default_rng(2), "dtype": np.float32},
                      name="xavier_uniform", returns="w", expected={"w": expected})
### BEGIN HIDDEN TESTS
from normcore import init as _ref

for _seed, (_shape, _gain, _dtype) in enumerate([((7, 3), 1.0, np.float64),
                                                 ((3, 8), 0.7, np.float64),
                                                 ((6, 2, 3, 3), 2.0, np.float64),
                                                 ((4, 3, 5), 5 / 3, np.float64),
                                                 ((16, 9), 1.0, np.float32),
                                                 ((8, 4, 2, 2), np.sqrt(2), np.float32)]):
    grading.check_against_reference(xavier_uniform, _ref.xavier_uniform, (_shape,),
                                     {"gain": _gain, "rng": np.random.default_rng(200 + _seed),
                                      "dtype": _dtype}, name="xavier_uniform", returns="w")
### END HIDDEN TESTS

# %% [markdown]
# By hand, for `xavier_normal`: a weight of shape `(3, 5)` has
# $\sigma = \sqrt{2 / (5 + 3)} = 0.5$, so `xavier_normal((3, 5), rng=rng)` is exactly
# `0.5 * rng.standard_normal((3, 5))`. A $2 \times 2$ convolution from one channel to one
# channel, shape `(1, 1, 2, 2)`, has fan_in = fan_out = 4; with `gain=3`,
# $\sigma = 3 \sqrt{2/8} = 1.5$.

# %% nbgrader="answer" grade_id="xavier_normal"
def xavier_normal(shape, *, gain=1.0, rng, dtype=np.float64):
    """Glorot/Xavier normal initialization, N(0, sigma^2).

    sigma = gain * sqrt(2 / (fan_in + fan_out)).

    Parameters
    ----------
    shape : tuple of int, length >= 2
        PyTorch layout ``(out, in, *kernel)``.
    gain : float
    rng : numpy.random.Generator
    dtype : float32 or float64

    Returns
    -------
    w : ndarray, shape ``shape``, dtype ``dtype``
    """
    ### BEGIN SOLUTION
    fan_in, fan_out = fan_in_and_fan_out(shape)
    sigma = gain * np.sqrt(2.0 / (fan_in + fan_out))
    return (sigma * rng.standard_normal(shape)).astype(dtype)
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_xavier_normal_distribution" points=1
# 1 point: xavier_normal draws from N(0, sigma^2) with the right sigma (statistics of a large
# draw). A Gaussian has 4.55% of its values beyond 2 standard deviations (a uniform: none).
def std_and_tail(shape, gain=1.0, dtype=np.float64):
    w = xavier_normal(shape, gain=gain, rng=np.random.default_rng(0), dtype=dtype)
    return float(w.std()), float(np.mean(np.abs(w) > 2 * w.std()))


names = ("std of w (sigma)", "share of |w| beyond 2 std (Gaussian: 0.0455)")
# (300, 500): sigma = sqrt(2 / 800); (64, 32, 3, 3) with gain 2: sigma = 2 sqrt(2 / 864).
for shape, gain, sigma in [((300, 500), 1.0, np.sqrt(2 / 800)),
                           ((64, 32, 3, 3), 2.0, 2 * np.sqrt(2 / 864))]:
    grading.check_example(std_and_tail, (shape, gain), name="xavier_normal", mistakes=[],
                          returns=names, expected={names[0]: sigma}, rtol=0.02)
    grading.check_example(std_and_tail, (shape, gain), name="xavier_normal", mistakes=[],
                          returns=names, expected={names[1]: 0.0455}, rtol=0, atol=0.004)
### BEGIN HIDDEN TESTS
grading.check_example(std_and_tail, ((200, 100, 3), 0.5, np.float32), name="xavier_normal",
                      mistakes=[], returns=names,
                      expected={names[0]: 0.5 * np.sqrt(2 / 900)}, rtol=0.02)
### END HIDDEN TESTS

# %% nbgrader="tests" grade_id="test_xavier_normal_values" points=2
# 2 points: xavier_normal gives exactly the reference's numbers for the same seed.
# If the distribution test passes but this one does not, draw as section 3 says:
# one call sigma * rng.standard_normal(shape) in float64, then .astype(dtype).
def seed_difference(shape):
    """Two draws from generators with the same seed must be identical."""
    w1 = xavier_normal(shape, rng=np.random.default_rng(0))
    w2 = xavier_normal(shape, rng=np.random.default_rng(0))
    return float(np.abs(w1 - w2).max())


same_seed = "largest difference between two draws with the same seed (draw from rng)"
grading.check_example(seed_difference, ((3, 5),), name="xavier_normal", mistakes=[],
                      returns=same_seed, expected={same_seed: 0.0})
grading.check_example(xavier_normal, ((3, 5),), {"rng": np.random.default_rng(0)},
                      name="xavier_normal", returns="w",
                      expected={"w": 0.5 * np.random.default_rng(0).standard_normal((3, 5))})
expected = 1.5 * np.random.default_rng(1).standard_normal((1, 1, 2, 2))
grading.check_example(xavier_normal, ((1, 1, 2, 2),),
                      {"gain": 3.0, "rng": np.random.default_rng(1)},
                      name="xavier_normal", returns="w", expected={"w": expected})
expected = (0.5 * np.random.default_rng(2).standard_normal((3, 5))).astype(np.float32)
grading.check_example(xavier_normal, ((3, 5),),
                      {"rng": np.random.default_rng(2), "dtype": np.float32},
                      name="xavier_normal", returns="w", expected={"w": expected})
### BEGIN HIDDEN TESTS
from normcore import init as _ref

for _seed, (_shape, _gain, _dtype) in enumerate([((7, 3), 1.0, np.float64),
                                                 ((3, 8), 0.7, np.float64),
                                                 ((6, 2, 3, 3), 2.0, np.float64),
                                                 ((4, 3, 5), 5 / 3, np.float64),
                                                 ((16, 9), 1.0, np.float32),
                                                 ((8, 4, 2, 2), np.sqrt(2), np.float32)]):
    grading.check_against_reference(xavier_normal, _ref.xavier_normal, (_shape,),
                                     {"gain": _gain, "rng": np.random.default_rng(300 + _seed),
                                      "dtype": _dtype}, name="xavier_normal", returns="w")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. He/Kaiming initialization (8 points)
#
# He et al. keep one direction exactly: the forward activations (`mode='fan_in'`, the
# default) or the back-propagated gradients (`mode='fan_out'`), with the gain of the
# nonlinearity:
#
# $$
# \sigma = \frac{\text{gain}}{\sqrt{\text{fan\_mode}}}, \qquad
# b = \sqrt{3}\, \sigma = \text{gain} \sqrt{\frac{3}{\text{fan\_mode}}}, \qquad
# \text{gain} = \texttt{calculate\_gain(nonlinearity, a)},
# $$
#
# where fan_mode is fan_in or fan_out according to `mode` (use your `fan_in_and_fan_out` and
# `calculate_gain`). `kaiming_normal` draws
# $\mathcal{N}(0, \sigma^2)$ and `kaiming_uniform` draws $\mathcal{U}(-b, b)$, exactly as in
# section 3. The argument `a` is the negative slope of the rectifier and is passed to the gain
# (it only matters for `'leaky_relu'`); PyTorch's defaults `nonlinearity='leaky_relu'` and
# `a=0` give the ReLU gain $\sqrt{2}$. The lecture's He initialization,
# `randn(fan_in, fan_out) / sqrt(fan_in / 2)`, is `kaiming_normal` with
# `nonlinearity='relu'`, transposed.
#
# By hand: a weight of shape `(6, 2)` has fan_in = 2 and fan_out = 6. With the defaults,
# $b = \sqrt{2} \sqrt{3/2} = \sqrt{3}$; with `mode='fan_out'`, $b = \sqrt{2}\sqrt{3/6} = 1$. A
# weight of shape `(5, 3)` with `nonlinearity='tanh'` has $b = \frac{5}{3}\sqrt{3/3} = 5/3$,
# and with `a=1` (a leaky ReLU of slope 1, gain 1) $b = \sqrt{3/3} = 1$.

# %% nbgrader="answer" grade_id="kaiming_uniform"
def kaiming_uniform(shape, *, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng,
                    dtype=np.float64):
    """He/Kaiming uniform initialization, U(-b, b) with b = gain * sqrt(3 / fan_mode).

    Parameters
    ----------
    shape : tuple of int, length >= 2
        PyTorch layout ``(out, in, *kernel)``.
    a : float
        Negative slope of the rectifier (used by the gain of ``'leaky_relu'``).
    mode : {'fan_in', 'fan_out'}
    nonlinearity : str
        A name accepted by ``calculate_gain``.
    rng : numpy.random.Generator
    dtype : float32 or float64

    Returns
    -------
    w : ndarray, shape ``shape``, dtype ``dtype``
    """
    ### BEGIN SOLUTION
    fan_in, fan_out = fan_in_and_fan_out(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    b = calculate_gain(nonlinearity, a) * np.sqrt(3.0 / fan)
    return rng.uniform(-b, b, size=shape).astype(dtype)
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_kaiming_uniform_distribution" points=1
# 1 point: kaiming_uniform draws from U(-b, b) with the right bound (statistics of a large draw).
def largest_and_std(shape, **kwargs):
    w = kaiming_uniform(shape, rng=np.random.default_rng(0), **kwargs)
    return float(np.abs(w).max()), float(w.std())


names = ("largest |w| (just below the bound b)", "std of w (b / sqrt(3))")
# (300, 500): fan_in = 500, fan_out = 300; the default gain is sqrt(2).
for kwargs, b in [({}, np.sqrt(2) * np.sqrt(3 / 500)),
                  ({"mode": "fan_out"}, np.sqrt(2) * np.sqrt(3 / 300)),
                  ({"nonlinearity": "tanh"}, 5 / 3 * np.sqrt(3 / 500))]:
    grading.check_example(largest_and_std, ((300, 500),), kwargs, name="kaiming_uniform",
                          mistakes=[], returns=names,
                          expected=dict(zip(names, (b, b / np.sqrt(3)))), rtol=0.02)
### BEGIN HIDDEN TESTS
_b = np.sqrt(2) * np.sqrt(3 / 288)
grading.check_example(largest_and_std, ((32, 64, 3, 3),),
                      {"mode": "fan_out", "nonlinearity": "relu", "dtype": np.float32},
                      name="kaiming_uniform", mistakes=[], returns=names,
                      expected=dict(zip(names, (_b, _b / np.sqrt(3)))), rtol=0.02)
### END HIDDEN TESTS

# %% nbgrader="tests" grade_id="test_kaiming_uniform_values" points=3
# 3 points: kaiming_uniform gives exactly the reference's numbers (modes, gains, dtype).
# If the distribution test passes but this one does not, draw as section 3 says:
# one call rng.uniform(-b, b, size=shape) in float64, then .astype(dtype).
def seed_difference(shape):
    """Two draws from generators with the same seed must be identical."""
    w1 = kaiming_uniform(shape, rng=np.random.default_rng(0))
    w2 = kaiming_uniform(shape, rng=np.random.default_rng(0))
    return float(np.abs(w1 - w2).max())


same_seed = "largest difference between two draws with the same seed (draw from rng)"
grading.check_example(seed_difference, ((6, 2),), name="kaiming_uniform", mistakes=[],
                      returns=same_seed, expected={same_seed: 0.0})
for shape, kwargs, b in [((6, 2), {}, np.sqrt(3)),
                         ((6, 2), {"mode": "fan_out"}, 1.0),
                         ((5, 3), {"nonlinearity": "tanh"}, 5 / 3),
                         ((5, 3), {"a": 1.0}, 1.0)]:
    grading.check_example(kaiming_uniform, (shape,), {**kwargs, "rng": np.random.default_rng(1)},
                          name="kaiming_uniform", returns="w",
                          expected={"w": np.random.default_rng(1).uniform(-b, b, size=shape)})
expected = np.random.default_rng(2).uniform(-np.sqrt(3), np.sqrt(3), size=(6, 2))
grading.check_example(kaiming_uniform, ((6, 2),),
                      {"rng": np.random.default_rng(2), "dtype": np.float32},
                      name="kaiming_uniform", returns="w",
                      expected={"w": expected.astype(np.float32)})
### BEGIN HIDDEN TESTS
from normcore import init as _ref

for _seed, (_shape, _kwargs) in enumerate([
        ((7, 3), {"a": 0.2}),
        ((3, 8), {"mode": "fan_out", "nonlinearity": "relu"}),
        ((6, 2, 3, 3), {"nonlinearity": "tanh"}),
        ((4, 3, 5), {"mode": "fan_out", "a": 0.1}),
        ((5, 9), {"nonlinearity": "linear", "mode": "fan_out"}),
        ((9, 5), {"nonlinearity": "leaky_relu", "a": 0.3, "mode": "fan_out"}),
        ((16, 9), {"dtype": np.float32}),
        ((8, 4, 2, 2), {"nonlinearity": "relu", "dtype": np.float32})]):
    grading.check_against_reference(kaiming_uniform, _ref.kaiming_uniform, (_shape,),
                                     {**_kwargs, "rng": np.random.default_rng(400 + _seed)},
                                     name="kaiming_uniform", returns="w")
### END HIDDEN TESTS

# %% [markdown]
# By hand, for `kaiming_normal`: a weight of shape `(8, 2)` with `nonlinearity='relu'` has
# $\sigma = \sqrt{2}/\sqrt{2} = 1$, and with `mode='fan_out'` $\sigma = \sqrt{2}/\sqrt{8} = 0.5$.
# A weight of shape `(8, 4)` has $\sigma = \frac{5/3}{2} = 5/6$ with `nonlinearity='tanh'`
# and $\sigma = 1/2$ with `a=1`.

# %% nbgrader="answer" grade_id="kaiming_normal"
def kaiming_normal(shape, *, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng,
                   dtype=np.float64):
    """He/Kaiming normal initialization, N(0, sigma^2) with sigma = gain / sqrt(fan_mode).

    Parameters
    ----------
    shape : tuple of int, length >= 2
        PyTorch layout ``(out, in, *kernel)``.
    a : float
        Negative slope of the rectifier (used by the gain of ``'leaky_relu'``).
    mode : {'fan_in', 'fan_out'}
    nonlinearity : str
        A name accepted by ``calculate_gain``.
    rng : numpy.random.Generator
    dtype : float32 or float64

    Returns
    -------
    w : ndarray, shape ``shape``, dtype ``dtype``
    """
    ### BEGIN SOLUTION
    fan_in, fan_out = fan_in_and_fan_out(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    sigma = calculate_gain(nonlinearity, a) / np.sqrt(fan)
    return (sigma * rng.standard_normal(shape)).astype(dtype)
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_kaiming_normal_distribution" points=1
# 1 point: kaiming_normal draws from N(0, sigma^2) with the right sigma (statistics of a large
# draw). A Gaussian has 4.55% of its values beyond 2 standard deviations (a uniform: none).
def std_and_tail(shape, **kwargs):
    w = kaiming_normal(shape, rng=np.random.default_rng(0), **kwargs)
    return float(w.std()), float(np.mean(np.abs(w) > 2 * w.std()))


names = ("std of w (sigma)", "share of |w| beyond 2 std (Gaussian: 0.0455)")
# (300, 500): fan_in = 500, fan_out = 300; the default gain is sqrt(2).
for kwargs, sigma in [({}, np.sqrt(2 / 500)),
                      ({"mode": "fan_out"}, np.sqrt(2 / 300)),
                      ({"nonlinearity": "tanh"}, 5 / 3 / np.sqrt(500))]:
    grading.check_example(std_and_tail, ((300, 500),), kwargs, name="kaiming_normal",
                          mistakes=[], returns=names, expected={names[0]: sigma}, rtol=0.02)
    grading.check_example(std_and_tail, ((300, 500),), kwargs, name="kaiming_normal",
                          mistakes=[], returns=names, expected={names[1]: 0.0455},
                          rtol=0, atol=0.004)
### BEGIN HIDDEN TESTS
grading.check_example(std_and_tail, ((32, 64, 3, 3),),
                      {"mode": "fan_out", "nonlinearity": "relu", "dtype": np.float32},
                      name="kaiming_normal", mistakes=[], returns=names,
                      expected={names[0]: np.sqrt(2 / 288)}, rtol=0.02)
### END HIDDEN TESTS

# %% nbgrader="tests" grade_id="test_kaiming_normal_values" points=3
# 3 points: kaiming_normal gives exactly the reference's numbers (modes, gains, dtype).
# If the distribution test passes but this one does not, draw as section 3 says:
# one call sigma * rng.standard_normal(shape) in float64, then .astype(dtype).
def seed_difference(shape):
    """Two draws from generators with the same seed must be identical."""
    w1 = kaiming_normal(shape, rng=np.random.default_rng(0))
    w2 = kaiming_normal(shape, rng=np.random.default_rng(0))
    return float(np.abs(w1 - w2).max())


same_seed = "largest difference between two draws with the same seed (draw from rng)"
grading.check_example(seed_difference, ((8, 2),), name="kaiming_normal", mistakes=[],
                      returns=same_seed, expected={same_seed: 0.0})
for shape, kwargs, sigma in [((8, 2), {"nonlinearity": "relu"}, 1.0),
                             ((8, 2), {"nonlinearity": "relu", "mode": "fan_out"}, 0.5),
                             ((8, 4), {"nonlinearity": "tanh"}, 5 / 6),
                             ((8, 4), {"a": 1.0}, 0.5)]:
    grading.check_example(kaiming_normal, (shape,), {**kwargs, "rng": np.random.default_rng(1)},
                          name="kaiming_normal", returns="w",
                          expected={"w": sigma * np.random.default_rng(1).standard_normal(shape)})
expected = np.random.default_rng(2).standard_normal((8, 2)).astype(np.float32)
grading.check_example(kaiming_normal, ((8, 2),),
                      {"nonlinearity": "relu", "rng": np.random.default_rng(2),
                       "dtype": np.float32},
                      name="kaiming_normal", returns="w", expected={"w": expected})
### BEGIN HIDDEN TESTS
from normcore import init as _ref

for _seed, (_shape, _kwargs) in enumerate([
        ((7, 3), {"a": 0.2}),
        ((7, 3), {}),
        ((3, 8), {"mode": "fan_out", "nonlinearity": "relu"}),
        ((6, 2, 3, 3), {"nonlinearity": "tanh"}),
        ((4, 3, 5), {"mode": "fan_out", "a": 0.1}),
        ((5, 9), {"nonlinearity": "linear", "mode": "fan_out"}),
        ((16, 9), {"dtype": np.float32}),
        ((8, 4, 2, 2), {"nonlinearity": "selu", "dtype": np.float32})]):
    grading.check_against_reference(kaiming_normal, _ref.kaiming_normal, (_shape,),
                                     {**_kwargs, "rng": np.random.default_rng(500 + _seed)},
                                     name="kaiming_normal", returns="w")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Orthogonal initialization (5 points)
#
# Xavier and He fix the *average* gain of a layer; an orthogonal weight fixes every singular
# value to the same number, $W W^\top = \text{gain}^2 I$ (Saxe et al.). The weight is viewed as
# a matrix with `rows = shape[0]` rows and `cols` = the product of the other dimensions, and
# is built from a QR decomposition of a Gaussian matrix. Follow these steps exactly (they are
# PyTorch's, and they define which orthogonal matrix a seed gives):
#
# 1. `g = rng.standard_normal((rows, cols))`, one draw of this shape, also when the matrix is
#    wide;
# 2. if `rows < cols`, transpose it, `g = g.T`, so that it has at least as many rows as columns;
# 3. `q, r = np.linalg.qr(g)` (the reduced QR: `q` has the shape of `g`, orthonormal columns);
# 4. fix the signs: `q = q * np.sign(np.diag(r))`, which multiplies column $j$ of $Q$ by the
#    sign of $R_{jj}$. A QR decomposition is unique only up to these signs
#    ($QR = (QD)(DR)$ for any diagonal $D$ of $\pm 1$); after the fix $R$ has a positive
#    diagonal, $Q$ is exactly what Gram–Schmidt gives on the columns of `g`, and it is
#    uniformly distributed over the orthogonal matrices;
# 5. transpose back if you transposed in step 2, multiply by `gain`, reshape to `shape`
#    and cast to `dtype`.
#
# The result satisfies $W W^\top = \text{gain}^2 I$ when rows $\le$ cols and
# $W^\top W = \text{gain}^2 I$ when rows $\ge$ cols (for the flattened `(rows, cols)` matrix).
#
# By hand: for a single row, shape `(1, 3)`, Gram–Schmidt on the one column of `g.T` only
# normalizes it, so `orthogonal((1, 3), gain=2, rng=rng)` is `2 * g / np.linalg.norm(g)` with
# `g = rng.standard_normal((1, 3))`: the Gaussian row scaled to length 2, signs kept. For a
# $2 \times 2$ weight, $q_1 = g_1 / \lVert g_1 \rVert$ and $q_2$ is $g_2 - (q_1^\top g_2)\, q_1$
# normalized, with $g_1, g_2$ the columns of `g`.

# %% nbgrader="answer" grade_id="orthogonal"
def orthogonal(shape, *, gain=1.0, rng, dtype=np.float64):
    """(Semi-)orthogonal initialization scaled by gain, by QR of a Gaussian matrix.

    Parameters
    ----------
    shape : tuple of int, length >= 2
        Viewed as a ``(shape[0], prod(shape[1:]))`` matrix.
    gain : float
    rng : numpy.random.Generator
    dtype : float32 or float64

    Returns
    -------
    w : ndarray, shape ``shape``, dtype ``dtype``
    """
    ### BEGIN SOLUTION
    rows = shape[0]
    cols = int(np.prod(shape)) // rows
    g = rng.standard_normal((rows, cols))
    if rows < cols:
        g = g.T
    q, r = np.linalg.qr(g)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype)
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_orthogonal_properties" points=2
# 2 points: orthogonality of wide, tall and convolution weights, with the gain.
def gram(shape, gain=1.0, dtype=np.float64):
    """W W^T for a wide weight, W^T W for a tall one (W flattened to (rows, cols))."""
    w = orthogonal(shape, gain=gain, rng=np.random.default_rng(0), dtype=dtype)
    m = w.reshape(shape[0], -1).astype(np.float64)
    return m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m


for shape, gain in [((4, 6), 2.0), ((6, 4), 1.0), ((3, 2, 2, 2), 0.5), ((5, 5), 1.5)]:
    k = min(shape[0], int(np.prod(shape[1:])))
    grading.check_example(gram, (shape, gain), name="orthogonal", mistakes=[],
                          returns="Gram matrix (should be gain**2 * I)",
                          expected={"Gram matrix (should be gain**2 * I)": gain**2 * np.eye(k)})
### BEGIN HIDDEN TESTS
for _shape in [(1, 7), (7, 1), (16, 3, 3, 3), (4, 32, 3)]:
    _k = min(_shape[0], int(np.prod(_shape[1:])))
    grading.check_example(gram, (_shape, 1.2), name="orthogonal", mistakes=[],
                          returns="Gram matrix (should be gain**2 * I)",
                          expected={"Gram matrix (should be gain**2 * I)": 1.44 * np.eye(_k)})
grading.check_example(gram, ((6, 3), 1.0, np.float32), name="orthogonal", mistakes=[],
                      returns="Gram matrix (should be gain**2 * I)",
                      expected={"Gram matrix (should be gain**2 * I)": np.eye(3)},
                      rtol=1e-5, atol=1e-5)
### END HIDDEN TESTS

# %% nbgrader="tests" grade_id="test_orthogonal_values" points=3
# 3 points: orthogonal gives exactly the reference's matrix for the same seed (the steps
# of section 5, with the sign fix).
# A 2 x 2 weight by Gram-Schmidt on the columns of g:
g = np.random.default_rng(0).standard_normal((2, 2))
q1 = g[:, 0] / np.linalg.norm(g[:, 0])
v = g[:, 1] - (q1 @ g[:, 1]) * q1
expected = np.stack([q1, v / np.linalg.norm(v)], axis=1)
grading.check_example(orthogonal, ((2, 2),), {"rng": np.random.default_rng(0)},
                      name="orthogonal", returns="w", expected={"w": expected})
grading.check_example(orthogonal, ((2, 2),), {"rng": np.random.default_rng(0), "dtype": np.float32},
                      name="orthogonal", returns="w", expected={"w": expected.astype(np.float32)})
# A single row: the Gaussian row scaled to length gain.
g = np.random.default_rng(1).standard_normal((1, 3))
grading.check_example(orthogonal, ((1, 3),), {"gain": 2.0, "rng": np.random.default_rng(1)},
                      name="orthogonal", returns="w",
                      expected={"w": 2 * g / np.linalg.norm(g)})
### BEGIN HIDDEN TESTS
from normcore import init as _ref

for _seed, (_shape, _gain, _dtype) in enumerate([((5, 5), 1.0, np.float64),
                                                 ((7, 3), 1.0, np.float64),
                                                 ((3, 7), np.sqrt(2), np.float64),
                                                 ((4, 2, 3, 3), 5 / 3, np.float64),
                                                 ((12, 3, 2), 0.5, np.float64),
                                                 ((6, 6), 1.0, np.float32),
                                                 ((8, 2, 2, 2), 2.0, np.float32)]):
    grading.check_against_reference(orthogonal, _ref.orthogonal, (_shape,),
                                     {"gain": _gain, "rng": np.random.default_rng(600 + _seed),
                                      "dtype": _dtype}, name="orthogonal", returns="w")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Ten layers deep (4 points)
#
# The cell below repeats the lecture's experiment with your initializers (it is not graded,
# and it runs once your functions work): unit-Gaussian data, 500 samples of dimension 500,
# pushed through ten fully connected layers of 500 units without biases,
# $H_l = f(H_{l-1} W_l^\top)$ with $W_l$ in PyTorch's layout, and the standard deviation of
# every layer's activations is printed. (The lecture uses 1000 samples; the statistics are
# the same up to sampling noise.)

# %%
def layer_stds(draw, activation, num_layers=10, width=500, num_samples=500, seed=0):
    """Standard deviation of H_1, ..., H_L for weights draw((width, width), rng)."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((num_samples, width))
    stds = []
    for _ in range(num_layers):
        h = activation(h @ draw((width, width), rng).T)
        stds.append(h.std())
    return np.array(stds)


def relu(z):
    return np.maximum(z, 0.0)


experiments = {
    "xavier_normal, tanh": (lambda s, r: xavier_normal(s, rng=r), np.tanh),
    "xavier_normal gain 5/3, tanh": (
        lambda s, r: xavier_normal(s, gain=calculate_gain("tanh"), rng=r), np.tanh),
    "xavier_normal, relu": (lambda s, r: xavier_normal(s, rng=r), relu),
    "kaiming_normal, relu": (lambda s, r: kaiming_normal(s, nonlinearity="relu", rng=r), relu),
}
print(f"{'layer':<30}" + "".join(f"{layer:>7}" for layer in range(1, 11)))
for name, (draw, activation) in experiments.items():
    print(f"{name:<30}" + "".join(f"{s:7.3f}" for s in layer_stds(draw, activation)))

# %% [markdown]
# **Question.** (a) With ReLU, by which factor does the standard deviation shrink from one
# layer to the next under `xavier_normal` in the deeper layers, and where does this factor
# come from? Why does `kaiming_normal` keep it constant, and why is the value it keeps about
# $0.83$ rather than $1$? (b) With $\tanh$, why does the standard deviation still decay under
# `xavier_normal` with gain 1, and what changes with gain $5/3$?
#
# Answer in a few sentences in the cell below.

# %% [markdown] nbgrader="manual" grade_id="written_answer" points=4
# (a) Under Xavier with ReLU the standard deviation settles into a factor of about
# $1/\sqrt{2} \approx 0.71$ per layer. A square layer with $n \operatorname{Var}[w] = 1$
# passes the second moment on unchanged,
# $\operatorname{Var}[z_l] = n \operatorname{Var}[w]\, \mathbb{E}[h_{l-1}^2]
# = \mathbb{E}[h_{l-1}^2]$, but ReLU keeps only half of the second moment of its symmetric
# input, $\mathbb{E}[\max(z, 0)^2] = \operatorname{Var}[z]/2$, so $\mathbb{E}[h^2]$ halves in
# every layer and the standard deviation (of a distribution whose shape no longer changes)
# falls by $\sqrt{2}$. He initialization doubles the variance of the weights, gain
# $\sqrt{2}$, $n \operatorname{Var}[w] = 2$, which exactly compensates:
# $\operatorname{Var}[z_l] = 2$ and $\mathbb{E}[h_l^2] = 1$ in every layer. The printed number
# is the standard deviation of the ReLU output, not its root second moment: with
# $z \sim \mathcal{N}(0, 2)$, $\mathbb{E}[h] = \sqrt{2}/\sqrt{2\pi} = 1/\sqrt{\pi}$, so
# $\operatorname{std}(h) = \sqrt{1 - 1/\pi} \approx 0.83$ (the measured values wander by a
# few percent around it from layer to layer, sampling noise of one random draw).
#
# (b) $\tanh$ is linear only near 0 and compresses larger inputs, so
# $\mathbb{E}[\tanh(z)^2] < \operatorname{Var}[z]$: with gain 1 every layer loses part of the
# second moment (first layer $\approx 0.63$), and the decay slows down as the activations
# shrink into the linear regime, where $\tanh(z) \approx z$. The gain $5/3$ makes
# $n \operatorname{Var}[w] = 25/9$ and amplifies the pre-activations just enough to make up for
# the compression: the standard deviation stays at a constant level (about 0.65) in every
# layer instead of decaying, without pushing the units into saturation at $\pm 1$ as
# $\mathcal{N}(0, 1)$ weights do.
