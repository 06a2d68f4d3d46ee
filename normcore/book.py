"""Helpers for the book's chapters, so that each chapter also runs as a plain notebook.

The book hands computed numbers to its prose with MyST-NB's ``glue``. Outside the book build
(Jupyter, Colab) ``myst_nb`` may be missing; :func:`glue` then only prints the value, and in the
build it does both, so every number the text states is also visible in a cell output.
"""

from __future__ import annotations

import numbers

__all__ = ["glue"]


def _myst_glue():
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return None
    return myst_glue


def glue(name: str, value, *, fmt: str | None = None, display: bool = False):
    """Hand ``value`` to the book's text as ``{glue:text}`name``` and print it.

    Parameters
    ----------
    name : str
        The key the prose refers to.
    value : number, str or object
        What is glued. Numbers and strings are printed as ``name = value`` (with ``fmt``
        when given); other objects (figures) are glued and, with ``display=True``, shown.
    fmt : str, optional
        A format spec for the printed line, e.g. ``".3f"``.
    display : bool
        Passed to MyST-NB: show the glued object in this cell's output as well.

    Returns
    -------
    The value, so that ``x = glue("x", compute())`` reads naturally.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"glue: name must be a non-empty string, got {name!r}")
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()  # a NumPy scalar shows as np.float64(...) in the text otherwise
    myst_glue = _myst_glue()
    if myst_glue is not None:
        myst_glue(name, value, display=display)
    if isinstance(value, numbers.Number | str):
        shown = format(value, fmt) if fmt else value
        print(f"{name} = {shown}")
    elif myst_glue is None and display:
        try:
            from IPython.display import display as show
        except ImportError:
            return value
        show(value)
    return value
