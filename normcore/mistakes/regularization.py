"""Common mistakes in dropout."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from normcore import regularization as _ref
from normcore.grading import _graded, _register


def _dropout_mutant(flaw: str) -> Callable:
    def dropout_forward(x, p=0.5, *, training=True, rng=None):
        if not training:
            return (x * x.dtype.type(1 - p) if flaw == "rescaled_at_test" else x.copy()), None
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        keep_prob = p if flaw == "p_as_keep" else 1 - p
        keep = gen.random(x.shape) < keep_prob
        scale = 1.0 if flaw == "not_rescaled" else 1.0 / keep_prob
        return x * (keep.astype(x.dtype) * x.dtype.type(scale)), None

    return dropout_forward


_register("dropout_not_rescaled", "dropout_forward",
          "Your training output is not rescaled. Inverted dropout divides the kept units by "
          "the keep probability 1 - p, so that the expected output equals x and nothing has "
          "to change at test time.", _dropout_mutant("not_rescaled"))
_register("dropout_rescaled_at_test", "dropout_forward",
          "Your evaluation output is rescaled. With inverted dropout the layer is the "
          "identity at test time (out = x); scaling by the keep probability at test time "
          "belongs to 'vanilla' dropout, which does not rescale while training.",
          _dropout_mutant("rescaled_at_test"))
_register("dropout_p_as_keep", "dropout_forward",
          "You use p as the probability of keeping a unit. Here (as in PyTorch) p is the "
          "probability of zeroing it: keep = rng.random(x.shape) < 1 - p, then divide by "
          "1 - p. (The lecture's p is the keep probability.)", _dropout_mutant("p_as_keep"))


def _dropout_cases():
    rng = np.random.default_rng(7)
    x5 = rng.standard_normal((6, 5))
    return [((x5,), {"p": 0.3, "rng": np.random.default_rng(11)}),
            ((x5,), {"p": 0.3, "training": False}),
            ((x5.astype(np.float32),), {"p": 0.6, "rng": np.random.default_rng(12)})]


_graded("dropout_forward", _ref.dropout_forward, _dropout_mutant("none"), _dropout_cases)
