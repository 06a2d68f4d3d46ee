r"""How many equations a normalization imposes on its output (BN, BW, GN, GW, LN, IN),
and how many per output entry.
"""

from __future__ import annotations

from ._common import _check_choice, _check_int

__all__ = [
    "constraint_count",
    "constraint_ratio",
]


_CONSTRAINT_METHODS = ("bn", "bw", "gn", "gw", "ln", "in")


def _constraints(func, method, batch_size, num_channels, num_groups, height, width):
    _check_choice(func, "method", method, _CONSTRAINT_METHODS)
    m = _check_int(func, "batch_size", batch_size, low=1)
    d = _check_int(func, "num_channels", num_channels, low=1)
    _check_int(func, "height", height, low=1)
    _check_int(func, "width", width, low=1)
    if method in ("gn", "gw"):
        if num_groups is None:
            raise ValueError(f"{func}: method={method!r} needs num_groups, got None")
        g = _check_int(func, "num_groups", num_groups, low=1)
        if d % g:
            raise ValueError(f"{func}: num_groups={g} does not divide num_channels={d}")
    elif num_groups is not None:
        raise ValueError(
            f"{func}: num_groups applies only to 'gn' and 'gw', got num_groups={num_groups!r} "
            f"with method={method!r}"
        )
    else:
        g = {"ln": 1, "in": d}.get(method)
    if method in ("ln", "in"):
        method = "gn"
    if method == "bn":
        zeta = 2 * d
    elif method == "bw":
        zeta = d * (d + 3) // 2
    elif method == "gn":
        zeta = 2 * g * m
    else:
        zeta = m * g * (g + 3) // 2
    return zeta, m * d * height * width


def constraint_count(
    method,
    *,
    batch_size,
    num_channels,
    num_groups=None,
    height=1,
    width=1,
    dataset_size=None,
):
    r"""Number of equations :math:`\zeta` a normalization imposes on its output.

    Batch normalization of a mini-batch :math:`X \in \mathbb{R}^{d \times m}` makes every
    row of the output :math:`\hat X` satisfy
    :math:`\sum_{j} \hat X_{ij} = 0` and :math:`\sum_j \hat X_{ij}^2 = m`: two equations
    per neuron. Whitening adds one equation per off-diagonal covariance entry. Counting
    (tutorial, after Huang et al.):

    ======  ======================  ===============================  ============================
    method  :math:`\zeta(\phi; X)`  :math:`\zeta(\phi; \mathbb{D})`  valid range
    ======  ======================  ===============================  ============================
    BN      :math:`2d`              :math:`2Nd/m`                    :math:`m\ge 2`
    BW      :math:`d(d+3)/2`        :math:`Nd(d+3)/(2m)`             :math:`m\ge (d+3)/2`
    GN      :math:`2gm`             :math:`2gN`                      :math:`g\le d/2`
    GW      :math:`mg(g+3)/2`       :math:`Ng(g+3)/2`                :math:`g\le(\sqrt{8d+9}-3)/2`
    ======  ======================  ===============================  ============================

    Here :math:`d` = ``num_channels``, :math:`m` = ``batch_size``, :math:`g` =
    ``num_groups`` and :math:`N` = ``dataset_size``. BW: :math:`d` means and
    :math:`d(d+1)/2` covariance entries. GN: :math:`g` groups per sample, two equations
    each. GW whitens, per sample, the :math:`g` groups against each other (each group's
    :math:`d/g` values are the observations), giving :math:`g(g+3)/2` per sample. The
    data-set count is the batch count times the :math:`N/m` batches of an epoch. The
    valid range is where :math:`\zeta(\phi; X)` does not exceed the :math:`md` entries of
    the output (see :func:`constraint_ratio`); beyond it the output is (over)determined by
    the constraints alone. ``"ln"`` and ``"in"`` are GN with :math:`g = 1` and
    :math:`g = d`.

    For a convolutional feature map each channel holds ``height * width`` values per
    sample; the equations are the same (statistics are shared over positions), so
    :math:`\zeta` is unchanged while the number of entries grows to :math:`mdHW`.

    Parameters
    ----------
    method : {"bn", "bw", "gn", "gw", "ln", "in"}
    batch_size : int, >= 1
    num_channels : int, >= 1
    num_groups : int, optional
        Required for ``"gn"``/``"gw"`` (must divide ``num_channels``); not allowed otherwise.
    height, width : int, >= 1
    dataset_size : int, optional
        If given, return :math:`\zeta(\phi; \mathbb{D}) = \zeta(\phi; X)\, N / m`.

    Returns
    -------
    int, or float when ``dataset_size`` is not a multiple of ``batch_size``
    """
    func = "constraint_count"
    zeta, _ = _constraints(func, method, batch_size, num_channels, num_groups, height, width)
    if dataset_size is None:
        return zeta
    N = _check_int(func, "dataset_size", dataset_size, low=1)
    total = zeta * N
    return total // batch_size if total % batch_size == 0 else total / batch_size


def constraint_ratio(method, *, batch_size, num_channels, num_groups=None, height=1, width=1):
    r"""Constraints per output entry, :math:`\zeta(\phi; X) / (m\,d\,H\,W)`.

    The tutorial's valid ranges (:math:`m \ge 2` for BN, :math:`m \ge (d+3)/2` for BW,
    :math:`g \le d/2` for GN, :math:`g(g+3) \le 2d` for GW, with :math:`H = W = 1`) are
    exactly the settings where this ratio is at most 1. The closer to 1, the less freedom
    the normalized representation keeps (the small-batch problem of BN/BW, the
    large-group problem of GN/GW).

    Parameters
    ----------
    Same as :func:`constraint_count` (without ``dataset_size``).

    Returns
    -------
    float
    """
    zeta, entries = _constraints(
        "constraint_ratio", method, batch_size, num_channels, num_groups, height, width
    )
    return zeta / entries
