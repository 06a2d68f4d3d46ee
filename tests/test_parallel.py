"""Parallel autograding (``make autograde JOBS=N``) gives exactly the gradebook of a serial run.

One mixed class (a solution, the blank release, a wrong function, a notebook that loops, a
cheat that patches the checks, an unreadable file) is graded serially in one throwaway
course root and with two jobs in a copy of it; every score, every verdict in the autograded
notebooks and the failure report must be the same.
"""

import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from grader.sandbox import SandboxUnavailable, preflight

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402
from test_course_pipeline import perfect_submission, with_cell  # noqa: E402

A = "04_normalization"
pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning")]


def _meta(cell):
    return cell.metadata.get("nbgrader", {})


def _class():
    perfect = perfect_submission(A)

    def edited(grade_id, change):
        source = next(c for c in perfect.cells if _meta(c).get("grade_id") == grade_id).source
        return with_cell(perfect, grade_id, change(source))

    return {
        "solution": perfect,
        "blank": nbformat.read(ROOT / "exercises" / A / f"{A}.ipynb", as_version=4),
        "wrong": edited("batch_norm_forward",
                        lambda s: s.replace("var = x.var(axis=axes)",
                                            "var = x.var(axis=axes, ddof=1)")),
        "loops": edited("layer_norm_forward", lambda s: "while True:\n    pass\n" + s),
        "cheat": edited("batch_norm_forward", lambda s: (
            "from normcore import grading as _g\n_g.check_example = lambda *a, **k: None\n"
            + s.replace("return out, cache", "return x, cache"))),
    }


def _gradebook(root):
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for sub in gb.find_assignment(A).submissions:
            nb = sub.notebooks[0]
            out[sub.student.id] = ({g.name: (g.auto_score, g.needs_manual_grade)
                                    for g in nb.grades}, sub.timestamp, sub.late_submission_penalty)
    return out


def _verdicts(root):
    out = {}
    for path in sorted((root / "autograded").glob(f"*/{A}/{A}.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out[path.parts[-3]] = [[(o.get("ename"), o.get("evalue")) for o in c.get("outputs", [])
                                if o.get("output_type") == "error"]
                               for c in nb.cells if _meta(c).get("grade")]
    return out


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    try:
        preflight()
    except SandboxUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no sandbox here: {exc}")
    serial = course.copy_course(tmp_path_factory.mktemp("serial"), [A], config=(
        "\nc.Execute.timeout = 10\nc.TrustedChecks.cell_time_limit = 10\n"))
    assert course.main(["--root", str(serial), "release"]) == 0
    for student, nb in _class().items():
        folder = serial / "submitted" / student / A
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{A}.ipynb")
    broken = serial / "submitted" / "unreadable" / A
    broken.mkdir(parents=True)
    (broken / f"{A}.ipynb").write_text("{ not a notebook")
    parallel = tmp_path_factory.mktemp("parallel")
    shutil.copytree(serial, parallel, dirs_exist_ok=True)
    return serial, parallel


def test_parallel_equals_serial(roots, capsys):
    serial, parallel = roots
    assert course.main(["--root", str(serial), "autograde"]) == 1
    serial_out = capsys.readouterr().out
    assert course.main(["--root", str(parallel), "autograde", "--jobs", "2"]) == 1
    captured = capsys.readouterr()
    assert _gradebook(parallel) == _gradebook(serial)
    assert _verdicts(parallel) == _verdicts(serial)
    scores = {s: sum(a or 0 for a, _ in g.values()) for s, (g, _, _) in _gradebook(serial).items()}
    assert scores["solution"] == 31 and scores["blank"] == 0 and scores["cheat"] < 31 - 8
    assert 0 < scores["wrong"] < 31 and 0 < scores["loops"] < 31
    for out in (serial_out, captured.out):
        assert "6 submissions: 5 graded, 0 up to date, 1 failed" in out
    assert "autograde unreadable/04_normalization: FAILED" in captured.err + captured.out
    assert "notebook" in captured.err  # the progress bar
    assert not list(Path("/tmp").glob("autograde-parallel-*"))
