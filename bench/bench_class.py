"""Time autograding a class: serially and with parallel jobs, same submissions, same scores.

A throwaway course root receives the configuration, the tools, the grader and every
assignment; a synthetic class submits every assignment, each student one of: the solution,
the blank release, the solution with one catalog-style mistake written as code, or a hostile
notebook (checks patched to no-ops, then an endless loop in an added cell). The class is
graded once serially and once with ``--jobs N`` in a copy of the root (as ``make autograde``
and ``make autograde JOBS=N`` do); the script prints notebooks per minute, seconds per
notebook and the speed-up, and checks that both gradebooks hold the same scores::

    .venv/bin/python bench/bench_class.py [--students 120] [--jobs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402


def _meta(cell):
    return cell.metadata.get("nbgrader", {})


def _notebooks(name: str) -> dict:
    release = nbformat.read(ROOT / "exercises" / name / f"{name}.ipynb", as_version=4)
    source = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    answers = {_meta(c)["grade_id"]: c.source for c in source.cells
               if _meta(c).get("solution") and c.cell_type == "code"}
    solved = copy.deepcopy(release)
    for cell in solved.cells:
        if _meta(cell).get("grade_id") in answers:
            cell.source = answers[_meta(cell)["grade_id"]]
    wrong = copy.deepcopy(solved)
    first = next(c for c in wrong.cells if _meta(c).get("solution") and c.cell_type == "code")
    # A plausible slip: the first function returns its first argument unchanged.
    first.source += "\n\n_right = " + _meta(first)["grade_id"] + "\n" + (
        f"def {_meta(first)['grade_id']}(*args, **kwargs):\n"
        f"    result = _right(*args, **kwargs)\n"
        f"    return (args[0],) + tuple(result[1:]) if isinstance(result, tuple) else args[0]\n")
    hostile = copy.deepcopy(release)
    hostile.cells.insert(1, nbformat.v4.new_code_cell(
        "from normcore import grading as _g\n"
        "for _n in ('check_example', 'check_against_reference', 'check_gradient'):\n"
        "    setattr(_g, _n, lambda *a, **k: None)\n"))
    hostile.cells.append(nbformat.v4.new_code_cell("while True:\n    pass\n"))
    return {"solution": solved, "blank": release, "wrong": wrong, "hostile": hostile}


def _scores(root: Path) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {(s.student.id, a.name): round(s.score, 6) for a in gb.assignments
                for s in a.submissions}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=120)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    names = course.assignments_in(ROOT)
    with tempfile.TemporaryDirectory(prefix="bench-class-") as tmp:
        serial = course.copy_course(Path(tmp) / "serial", names)
        with contextlib.redirect_stdout(io.StringIO()):
            course.release(serial, names)
        kinds = ("solution", "blank", "wrong", "hostile")
        books = {name: _notebooks(name) for name in names}
        for i in range(args.students):
            kind = kinds[i % len(kinds)]
            for name in names:
                folder = serial / "submitted" / f"s{i:03d}-{kind}" / name
                folder.mkdir(parents=True)
                nbformat.write(books[name][kind], folder / f"{name}.ipynb")
        parallel = Path(tmp) / "parallel"
        shutil.copytree(serial, parallel)
        n = args.students * len(names)
        seconds = {}
        for label, root, jobs in (("serial", serial, 1), (f"{args.jobs} jobs", parallel,
                                                            args.jobs)):
            start = time.perf_counter()
            log = io.StringIO()
            with contextlib.redirect_stdout(log):
                course.autograde(root, jobs=jobs)
            seconds[label] = time.perf_counter() - start
            for line in log.getvalue().splitlines():
                if "the serial part" in line:
                    print(f"{label:8s} {line.removeprefix('autograde: ')}")
            print(f"{label:8s} {n} notebooks in {seconds[label]:7.1f} s: "
                  f"{60 * n / seconds[label]:6.1f} notebooks/min, "
                  f"{seconds[label] / n:5.2f} s per notebook")
        same = _scores(serial) == _scores(parallel)
        speedup = seconds["serial"] / seconds[f"{args.jobs} jobs"]
        print(f"speed-up with {args.jobs} jobs: {speedup:.2f}x; identical scores: {same}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
