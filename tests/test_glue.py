"""normcore.book.glue: every glued number is printed, with or without MyST-NB."""

import numpy as np
import pytest

from normcore import book


@pytest.mark.parametrize("with_myst", [True, False])
def test_glue_prints_plain_numbers(monkeypatch, capsys, with_myst):
    glued = {}
    monkeypatch.setattr(book, "_myst_glue", lambda: (
        (lambda name, value, display: glued.update({name: value})) if with_myst else None))
    assert book.glue("kappa", np.float64(100.5), fmt=".1f") == 100.5
    assert type(book.glue("steps", np.int64(1364))) is int
    assert capsys.readouterr().out == "kappa = 100.5\nsteps = 1364\n"
    if with_myst:
        assert glued == {"kappa": 100.5, "steps": 1364}
        assert type(glued["kappa"]) is float  # not np.float64(...) in the text


def test_glue_rejects_a_bad_name():
    with pytest.raises(ValueError, match="non-empty string"):
        book.glue("", 1.0)
