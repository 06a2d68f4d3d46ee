"""An assignment as the trusted grader sees it: read from its source ``solutions/<name>.py``.

The source text (jupytext percent format, see ``solutions/README.md``) is the one place that
holds the hidden tests. The nbgrader notebooks built from it (``solutions/<a>/<a>.ipynb``, the
release, the gradebook's copies of the test cells) carry only the visible tests; the trusted
grader reads the full test cells from here, in the instructor's process.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def strip_region(source: str, begin: str, end: str, replacement: str | None = None) -> str:
    """``source`` without the lines from ``begin`` to ``end`` (inclusive)."""
    lines, inside = [], False
    for line in source.split("\n"):
        if begin in line:
            inside = True
            if replacement is not None:
                lines.append(line[: len(line) - len(line.lstrip())] + replacement)
        elif end in line:
            inside = False
        elif not inside:
            lines.append(line)
    return "\n".join(lines)


def region_lines(source: str, begin: str, end: str) -> list[str]:
    """The stripped lines strictly inside the ``begin``/``end`` regions of ``source``."""
    lines, inside = [], False
    for line in source.split("\n"):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            lines.append(line.strip())
    return lines


def unmark(source: str) -> str:
    """The source with its solution/hidden-test marker lines removed (regions kept)."""
    markers = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
    return "\n".join(ln for ln in source.split("\n") if not any(m in ln for m in markers))


@dataclasses.dataclass(frozen=True)
class TestCell:
    grade_id: str
    points: float
    visible: str  #: what students see (and the gradebook holds)
    full: str  #: visible and hidden tests, markers removed (trusted side only)


@dataclasses.dataclass(frozen=True)
class Assignment:
    """The parts of an assignment the trusted grader needs."""

    name: str
    setup: tuple[str, ...]  #: sources of the read-only code cells before the first answer
    answers: tuple[str, ...]  #: grade_ids of the answer cells (the graded functions' cells)
    tests: tuple[TestCell, ...]
    plain: tuple[str, ...]  #: sources of the release's other code cells (not run for grading)
    solution_lines: frozenset[str]  #: lines inside solution regions and model answers
    hidden_lines: frozenset[str]  #: lines inside hidden-test regions
    visible_lines: frozenset[str]  #: every line a student sees in the release

    def test(self, grade_id: str) -> TestCell | None:
        return next((t for t in self.tests if t.grade_id == grade_id), None)


def read_cells(source: Path):
    """The cells of a source text: ``(kind or None, grade_id, points, cell)``."""
    import jupytext

    nb = jupytext.read(source, fmt="py:percent")
    out = []
    for cell in nb.cells:
        meta = dict(cell.metadata)
        out.append((meta.get("nbgrader"), meta.get("grade_id"), meta.get("points"), cell))
    return out


@functools.lru_cache(maxsize=64)
def _load(path: str, mtime: float) -> Assignment:
    source = Path(path)
    setup, answers, tests, plain = [], [], [], []
    solution, hidden, visible = set(), set(), set()
    seen_answer = False
    for kind, grade_id, points, cell in read_cells(source):
        text = cell.source
        kept = strip_region(strip_region(text, BEGIN_SOLUTION, END_SOLUTION),
                            BEGIN_HIDDEN, END_HIDDEN)
        if kind != "manual":
            visible.update(ln.strip() for ln in kept.split("\n"))
        solution.update(region_lines(text, BEGIN_SOLUTION, END_SOLUTION))
        hidden.update(region_lines(text, BEGIN_HIDDEN, END_HIDDEN))
        if kind == "manual":
            solution.update(ln.strip() for ln in text.split("\n"))
        if cell.cell_type != "code":
            continue
        if kind == "answer":
            answers.append(grade_id)
            seen_answer = True
        elif kind == "tests":
            tests.append(TestCell(grade_id, float(points),
                                  strip_region(text, BEGIN_HIDDEN, END_HIDDEN), unmark(text)))
        elif kind == "readonly" and not seen_answer:
            setup.append(text)
        else:
            plain.append(text)
    return Assignment(source.stem, tuple(setup), tuple(answers), tuple(tests), tuple(plain),
                      frozenset(solution), frozenset(hidden), frozenset(visible))


def load(root: Path, name: str) -> Assignment:
    """Read ``solutions/<name>.py`` of the course ``root`` (cached while unchanged)."""
    path = Path(root) / "solutions" / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no source for assignment {name!r}: {path} is missing")
    return _load(str(path), path.stat().st_mtime)


def names(root: Path) -> list[str]:
    import re

    return sorted(p.stem for p in (Path(root) / "solutions").glob("*.py")
                  if re.fullmatch(r"\d\d_[a-z0-9_]+", p.stem))
