"""Every chapter runs top to bottom as a plain notebook, without MyST-NB.

Students open the chapters in Jupyter or Colab, where ``myst_nb`` is usually missing. The
chapters hand their numbers to the text with :func:`normcore.book.glue`, which then only prints
them. This test executes each lecture chapter of ``_toc.yml`` with nbclient in a kernel where
``import myst_nb`` fails (a stub module that raises ``ImportError`` shadows the real package),
and checks that the notebook runs without error and that every value the prose refers to with
``{glue:text}`` or ``{glue}`` is printed as ``name = value``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_book import CHAPTERS  # the lecture chapters of _toc.yml, read once

ROOT = Path(__file__).resolve().parents[1]
#: ``{glue:text}`name:fmt` `` and ``{glue}`name` `` in the prose; figures are not printed.
GLUE_REF_RE = re.compile(r"\{glue(?::text)?\}`([^`:]+)(?::[^`]*)?`")
ABSENT_MARKER = "myst_nb is absent in this kernel"


def test_the_toc_lists_chapters():
    assert "book/00_why_normalize" in CHAPTERS


@pytest.fixture
def kernel_without_myst_nb(tmp_path, monkeypatch):
    """PYTHONPATH for the kernel: a ``myst_nb`` stub that refuses to be imported."""
    stub_dir = tmp_path / "no_myst_nb"
    stub_dir.mkdir()
    (stub_dir / "myst_nb.py").write_text(
        'raise ImportError("myst_nb is hidden: the chapter must run without it")\n',
        encoding="utf-8",
    )
    path = [str(stub_dir), str(ROOT)]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    return stub_dir


def _printed_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "data" in output:
                parts.append(output["data"].get("text/plain", ""))
    # one output per line: a figure's text/plain has no final newline
    return "\n".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_runs_without_myst_nb(docname, kernel_without_myst_nb):
    source = ROOT / f"{docname}.ipynb"
    assert source.exists(), f"{docname} is in _toc.yml but {source} is missing"
    nb = nbformat.read(source, as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    referenced = sorted(set(GLUE_REF_RE.findall(prose)))
    nb.cells.append(nbformat.v4.new_code_cell(
        "try:\n    import myst_nb  # noqa: F401\nexcept ImportError:\n"
        f"    print({ABSENT_MARKER!r})\n"
    ))
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", allow_errors=False,
        resources={"metadata": {"path": str(source.parent)}},
    )
    client.execute()
    printed = _printed_text(nb)
    assert ABSENT_MARKER in printed, "the stub did not hide myst_nb from the kernel"
    missing = [name for name in referenced
               if not re.search(rf"^{re.escape(name)} = ", printed, re.M)]
    assert not missing, (
        f"{docname}: glued values referenced in the text but never printed "
        f"(use normcore.book.glue): {missing}"
    )

