r"""Why normalization helps: numerical tools for the analysis chapter.

Five topics, each a few plain functions:

* **Scale invariance.** A linear layer followed by batch (or layer) normalization computes
  the same output for ``W`` and ``a W``; its weight gradient scales by ``1/a`` and is
  orthogonal to the weight, so plain SGD can only grow the weight norm and the step size
  on the sphere shrinks like ``lr / ||w||^2``. Weight decay balances that growth at an
  equilibrium whose angular update is ``arccos(1 - lr * weight_decay)``, about
  ``sqrt(2 lr weight_decay)``. (:func:`scale_invariance_report`,
  :func:`simulate_norm_growth`, :func:`effective_learning_rate`, :func:`equilibrium_norm`,
  :func:`equilibrium_angular_update`.)
* **Conditioning.** Exact Hessians of small torch models, Hessian-vector products, the
  top of the spectrum by Lanczos or power iteration, condition numbers (also over the top
  50 % / 80 % of the spectrum) and the layer-wise condition numbers of the input and
  output-gradient covariances. (:func:`hessian`, :func:`hessian_vector_product`,
  :func:`top_hessian_eigenvalues`, :func:`condition_number`,
  :func:`layerwise_condition_numbers`, :func:`flat_loss_function`.)
* **Linear regression.** The Hessian is the input second-moment matrix, the learning-rate
  thresholds follow from its spectrum, and the number of gradient-descent iterations grows
  with its condition number. (:func:`linear_regression_hessian`,
  :func:`optimal_learning_rate`, :func:`divergent_learning_rate`,
  :func:`gradient_descent_errors`, :func:`gd_iterations_to_tolerance`.)
* **Stochasticity.** The stochastic normalization disturbance (SND) of batch
  standardization and of PCA, ZCA and Cholesky batch whitening.
  (:func:`stochastic_normalization_disturbance`.)
* **Constraints.** How many equations a normalization imposes on its output.
  (:func:`constraint_count`, :func:`constraint_ratio`.)

The torch-based functions compute in the dtype of the tensors they are given; use float64
for the identities that are checked to rounding error.

The functions live in one module per topic (:mod:`~normcore.analysis.scale_invariance`,
:mod:`~normcore.analysis.curvature`, :mod:`~normcore.analysis.conditioning`,
:mod:`~normcore.analysis.stochasticity`, :mod:`~normcore.analysis.constraints`) and are all
re-exported here, so ``from normcore import analysis; analysis.hessian(...)`` and
``from normcore.analysis import hessian`` both work. Importing the package does not import
torch; the functions that need it import it on first use.
"""

from __future__ import annotations

from .conditioning import (
    condition_number,
    divergent_learning_rate,
    gd_iterations_to_tolerance,
    gradient_descent_errors,
    layerwise_condition_numbers,
    linear_regression_hessian,
    optimal_learning_rate,
)
from .constraints import (
    constraint_count,
    constraint_ratio,
)
from .curvature import (
    flat_loss_function,
    hessian,
    hessian_vector_product,
    top_hessian_eigenvalues,
)
from .scale_invariance import (
    effective_learning_rate,
    equilibrium_angular_update,
    equilibrium_norm,
    scale_invariance_report,
    simulate_norm_growth,
)
from .stochasticity import (
    normalized_sample_outputs,
    stochastic_normalization_disturbance,
)

__all__ = [
    # scale invariance
    "scale_invariance_report",
    "effective_learning_rate",
    "equilibrium_norm",
    "equilibrium_angular_update",
    "simulate_norm_growth",
    # curvature
    "flat_loss_function",
    "hessian",
    "hessian_vector_product",
    "top_hessian_eigenvalues",
    # conditioning
    "condition_number",
    "layerwise_condition_numbers",
    "linear_regression_hessian",
    "optimal_learning_rate",
    "divergent_learning_rate",
    "gradient_descent_errors",
    "gd_iterations_to_tolerance",
    # stochasticity
    "normalized_sample_outputs",
    "stochastic_normalization_disturbance",
    # constraints
    "constraint_count",
    "constraint_ratio",
]
