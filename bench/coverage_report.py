"""How many of the catalog's mistakes each assignment's tests catch: visible tests alone, and all.

For every catalog mistake of a function an assignment grades, the mistake's mutant stands in
for the solution (every other function stays correct) and the assignment's test cells run in
the trusted grader (:func:`grader.trusted.run_tests`), once with the visible tests only (what
a student's own kernel runs before submitting) and once with the full cells. A mistake is
caught when a test cell of its function fails (or one whose message names the function).
``make coverage-report`` prints the table; ``tests/test_course_pipeline.py`` requires at
least :data:`THRESHOLD` of the mistakes of every assignment to be caught by the visible tests
alone.

    python bench/coverage_report.py [assignment ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader import assignment as assignments  # noqa: E402
from grader import trusted  # noqa: E402  (registers the catalog)
from grader.mutants import functions_of, with_mutant  # noqa: E402
from normcore import grading  # noqa: E402

#: The share of an assignment's catalog mistakes its visible tests must catch.
THRESHOLD = 0.8


def solution_functions(root: Path, name: str) -> dict:
    """The functions the setup and answer cells of the assignment's source notebook define."""
    nb = nbformat.read(Path(root) / "solutions" / name / f"{name}.ipynb", as_version=4)
    return functions_of(nb.cells)


def mutants_of(name: str, functions: dict) -> list:
    """``(mistake, function)`` for every catalog mistake of a function the assignment grades."""
    a = assignments.load(ROOT, name)
    return [(m, f) for m in grading.CATALOG for f in m.applies_to if f in a.answers
            and f in functions]


def _caught(a, function: str, verdicts: dict) -> bool:
    """Whether a failing cell catches the mistake of ``function``: a cell that grades it
    (``name="<function>"`` in its checks), or whose message names it (a dependent cell)."""
    for grade_id, message in verdicts.items():
        if message and (f'name="{function}"' in a.test(grade_id).full or function in message):
            return True
    return False


def coverage(name: str, root: Path = ROOT) -> dict:
    """``{"mutants": n, "visible": caught, "all": caught, "missed_visible": [...], ...}``."""
    a = assignments.load(root, name)
    functions = solution_functions(root, name)
    found = {"mutants": 0, "visible": 0, "all": 0, "missed_visible": [], "missed_all": []}
    for mistake, function in mutants_of(name, functions):
        provide = trusted.functions_provider(with_mutant(functions, mistake, function))
        found["mutants"] += 1
        visible = _caught(a, function, trusted.run_tests(a, provide, visible_only=True))
        full = visible or _caught(a, function, trusted.run_tests(a, provide))
        found["visible"] += visible
        found["all"] += full
        if not visible:
            found["missed_visible"].append(f"{mistake.key} ({function})")
        if not full:
            found["missed_all"].append(f"{mistake.key} ({function})")
    return found


def table(names=None, root: Path = ROOT) -> dict:
    return {name: coverage(name, root) for name in (names or assignments.names(root))}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rows = table(argv or None)
    print(f"{'assignment':<22} {'mutants':>7} {'visible':>14} {'all tests':>14}")
    low = []
    for name, row in rows.items():
        n = max(row["mutants"], 1)
        print(f"{name:<22} {row['mutants']:>7} {row['visible']:>5} ({row['visible'] / n:4.0%}) "
              f"{row['all']:>5} ({row['all'] / n:4.0%})")
        if row["visible"] < THRESHOLD * row["mutants"]:
            low.append(name)
    for name, row in rows.items():
        if row["missed_visible"]:
            print(f"\n{name}: not caught by the visible tests: "
                  f"{', '.join(row['missed_visible'])}")
        if row["missed_all"]:
            print(f"{name}: NOT CAUGHT AT ALL: {', '.join(row['missed_all'])}")
    if low:
        print(f"\nbelow {THRESHOLD:.0%} visible coverage: {', '.join(low)}")
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
