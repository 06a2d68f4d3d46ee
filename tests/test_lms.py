"""An LMS in place of nbgrader's exchange: importing its zip of submissions (tools/lms.py, via
nbgrader's zip_collect) and exporting grades in the layout Canvas's gradebook imports.

Everything runs in a throwaway course root; the scores in the gradebook are written with
nbgrader's API (the autograder is tested elsewhere), and every expected value is worked out
here from the source notebook's points.
"""

import csv
import io
import json
import shutil
import sys
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402

A, B = "04_normalization", "01_preprocessing"
ROSTER = [  # Canvas's gradebook export: Student, ID, SIS User ID, SIS Login ID, Section, ...
    ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{A} (555)", "Quiz 1 (777)"],
    ["    Points Possible", "", "", "", "", "35", "10"],
    ["Doe, Jane", "4242", "S01", "jdoe", "Sec A", "", "8"],
    ["Roe, Eric", "4343", "S02", "eroe", "Sec B", "", "9"],
    ["Smith, Ann", "4444", "S03", "asmith", "Sec A", "", ""],
    ["Nobody, Ned", "4545", "S04", "nned", "Sec B", "", ""],
]


def run(*argv):
    """course.main(argv): (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = course.main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def points(name):
    """{grade_id: (points, cell type)} of the assignment's graded cells, from its source."""
    nb = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: (c.metadata["nbgrader"]["points"], c.cell_type)
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = course.copy_course(tmp_path_factory.mktemp("course"), [A, B])
    assert run("--root", root, "release")[0] == 0
    with open(root / "roster.csv", "w", newline="") as f:
        csv.writer(f).writerows(ROSTER)
    return root


def notebook_text(marker):
    nb = nbformat.read(ROOT / "exercises" / A / f"{A}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(marker))
    return nbformat.writes(nb)


def make_zip(path, files):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def stored(root, student):
    folder = root / "submitted" / student / A
    return (folder / f"{A}.ipynb").read_text(), (folder / "timestamp.txt").read_text()


# --------------------------------------------------------------------------- zip import


@pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning")
def test_canvas_zip_import(root, tmp_path):
    from nbgrader.utils import parse_utc

    files = {
        f"doejane_4242_9001_{A}.ipynb": notebook_text("jane 1"),
        "doejane_4242_9001_scratch.ipynb": notebook_text("jane's second notebook"),
        "roeric_LATE_4343_9002_my notebook-1.ipynb": notebook_text("eric"),
        "smithann_4444_9003_report.pdf": "%PDF-1.4",
        f"ghost_9999_9004_{A}.ipynb": notebook_text("not enrolled"),
        f"{A} (1).ipynb": notebook_text("a file renamed by hand"),
    }
    archive = make_zip(tmp_path / "submissions.zip", files)
    status, out, _ = run("--root", root, "collect", A, "--zip", archive,
                         "--roster", root / "roster.csv")
    assert status == 1, out  # skipped files need a look
    assert "6 files in submissions.zip: 2 new, 0 updated, 0 unchanged" in out
    assert "4 skipped" in out and "marked late by the LMS: eroe" in out
    for name, why in [(f"{A} (1).ipynb", "the name does not match the canvas pattern"),
                      (f"ghost_9999_9004_{A}.ipynb", "LMS id 9999 is not in the roster"),
                      ("smithann_4444_9003_report.pdf", "not a notebook"),
                      ("doejane_4242_9001_scratch.ipynb", "a second notebook of jdoe")]:
        assert f"SKIPPED {name}: {why}" in out
    assert sorted(p.name for p in (root / "submitted").iterdir()) == ["eroe", "jdoe"]
    jane, jane_stamp = stored(root, "jdoe")
    eric, _ = stored(root, "eroe")
    assert jane == files[f"doejane_4242_9001_{A}.ipynb"]
    assert eric == files["roeric_LATE_4343_9002_my notebook-1.ipynb"]  # under the release's name
    assert sorted(p.name for p in (root / "submitted" / "eroe" / A).iterdir()) == [
        f"{A}.ipynb", "timestamp.txt"]
    parse_utc(jane_stamp)

    # The same zip again changes nothing; a new version of one notebook replaces only it.
    status, out, _ = run("--root", root, "collect", A, "--zip", archive,
                         "--roster", root / "roster.csv")
    assert "0 new, 0 updated, 2 unchanged" in out
    assert stored(root, "jdoe") == (jane, jane_stamp)
    files[f"doejane_4242_9001_{A}.ipynb"] = notebook_text("jane 2")
    del files["doejane_4242_9001_scratch.ipynb"], files[f"{A} (1).ipynb"]
    del files[f"ghost_9999_9004_{A}.ipynb"], files["smithann_4444_9003_report.pdf"]
    status, out, _ = run("--root", root, "collect", A, "--zip",
                         make_zip(tmp_path / "again.zip", files), "--roster", root / "roster.csv")
    assert status == 0 and "0 new, 1 updated, 1 unchanged" in out and "0 skipped" in out
    new_jane, new_stamp = stored(root, "jdoe")
    assert "jane 2" in new_jane and parse_utc(new_stamp) > parse_utc(jane_stamp)
    assert stored(root, "eroe")[0] == eric


@pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning")
def test_moodle_pattern(root, tmp_path):
    with open(tmp_path / "moodle.csv", "w", newline="") as f:
        csv.writer(f).writerows([["participant", "username"], ["77", "mmoodle"]])
    archive = make_zip(tmp_path / "moodle.zip", {
        "Mia Moodle_77_assignsubmission_file_/whatever.ipynb": notebook_text("mia"),
        "Mia Moodle_77_assignsubmission_onlinetext_/onlinetext.html": "<p>hi</p>"})
    status, out, _ = run("--root", root, "collect", A, "--zip", archive, "--roster",
                         tmp_path / "moodle.csv", "--pattern", "moodle", "--lms-id-column",
                         "participant", "--student-column", "username")
    assert status == 1 and "1 new" in out and "1 skipped" in out
    assert "mia" in stored(root, "mmoodle")[0]
    shutil.rmtree(root / "submitted" / "mmoodle")


def test_bad_input_is_refused_before_anything_changes(root, tmp_path):
    (root / "submitted").mkdir(exist_ok=True)
    before = sorted(str(p) for p in (root / "submitted").rglob("*"))
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("this is not a zip")
    evil = make_zip(tmp_path / "evil.zip", {f"../doejane_4242_1_{A}.ipynb": "{}"})
    nested = make_zip(tmp_path / "nested.zip", {"inner.zip": "PK"})
    good = make_zip(tmp_path / "good.zip", {f"doejane_4242_1_{A}.ipynb": notebook_text("x")})
    no_column = tmp_path / "no_column.csv"
    no_column.write_text("Student,ID\nDoe,4242\n")
    twice = tmp_path / "twice.csv"
    twice.write_text("ID,SIS Login ID\n1,jdoe\n2,jdoe\n")
    roster = root / "roster.csv"
    cases = [
        ([not_zip, "--roster", roster], "is not a zip archive"),
        ([tmp_path / "missing.zip", "--roster", roster], "not found"),
        ([evil, "--roster", roster], "unsafe paths in the archive"),
        ([nested, "--roster", roster], "archives inside the archive"),
        ([good], "an LMS roster CSV is needed"),
        ([good, "--roster", no_column], "has no column 'SIS Login ID'"),
        ([good, "--roster", twice], "'SIS Login ID' repeats ['jdoe']"),
        ([good, "--roster", roster, "--pattern", "(?P<oops"], "is not a regular expression"),
        ([good, "--roster", roster, "--pattern", r"(?P<who>\w+)\.ipynb"], "(?P<lms_id>...)"),
    ]
    for args, message in cases:
        status, out, err = run("--root", root, "collect", A, "--zip", *args)
        assert status == 1 and message in err, (args, out, err)
    status, _, err = run("--root", root, "collect", "--zip", good, "--roster", roster)
    assert status == 1 and "name the one assignment the zip holds" in err
    status, _, err = run("--root", root, "collect", "99_nothing", "--zip", good, "--roster",
                         roster)
    assert status == 1 and "exercises/99_nothing/ should hold one notebook" in err
    assert sorted(str(p) for p in (root / "submitted").rglob("*")) == before


# ------------------------------------------------------------------------ grade export


def write_scores(root):
    """Gradebook entries: jdoe fully graded, eroe with the written answer pending, asmith
    only in B, and zed, who is not on the roster. Returns the expected autograded scores."""
    from nbgrader.api import Gradebook

    cells = points(A)
    code = {g: p for g, (p, kind) in cells.items() if kind == "code"}
    manual = {g: p for g, (p, kind) in cells.items() if kind == "markdown"}
    failed = sorted(code)[0]
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student, name in [("jdoe", A), ("eroe", A), ("asmith", B), ("zed", A)]:
            gb.update_or_create_student(student)
            gb.add_submission(name, student)
        for student in ("jdoe", "eroe", "zed"):
            for gid, pts in code.items():
                grade = gb.find_grade(gid, A, A, student)
                grade.auto_score = 0.0 if (student == "eroe" and gid == failed) else pts
                grade.needs_manual_grade = False
            for gid, pts in manual.items():
                grade = gb.find_grade(gid, A, A, student)
                if student != "eroe":  # graded by hand: one point short
                    grade.manual_score = pts - 1
                    grade.needs_manual_grade = False
        for gid, (pts, kind) in points(B).items():
            grade = gb.find_grade(gid, B, B, "asmith")
            grade.auto_score = pts / 2
            grade.manual_score = pts / 2 if kind == "markdown" else None
            grade.needs_manual_grade = False
        gb.db.commit()
    return code, manual, failed


@pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning")
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
def test_grades_and_canvas_export(root, tmp_path):
    code, manual, failed = write_scores(root)
    out = tmp_path / "grades"
    status, text, err = run("--root", root, "grades", "--out", out, "--roster",
                            root / "roster.csv")
    assert status == 1, (text, err)  # zed is not on the roster, eroe awaits manual grading
    assert "graded students are not in the roster" in text and "zed" in text
    assert f"1 scores left blank, manual grading pending (formgrader): eroe/{A}" in text

    # grades.csv: autograded, manual and pending points apart; pending is not zero.
    rows = {(r["student"], r["assignment"]): r for r in csv.DictReader(open(out / "grades.csv"))}
    auto_max, manual_max = sum(code.values()), sum(manual.values())
    jane, eric = rows[("jdoe", A)], rows[("eroe", A)]
    assert float(jane["autograded_score"]) == auto_max == float(jane["autograded_max"])
    assert float(jane["manual_score"]) == manual_max - 1
    assert float(jane["score"]) == auto_max + manual_max - 1
    assert float(jane["percent"]) == pytest.approx(
        100 * (auto_max + manual_max - 1) / (auto_max + manual_max), abs=0.01)
    assert jane["needs_manual_grade"] == "False" and float(jane["pending_manual"]) == 0
    assert float(eric["autograded_score"]) == auto_max - code[failed]
    assert float(eric["pending_manual"]) == manual_max and float(eric["manual_score"]) == 0
    assert eric["percent"] == "" and eric["needs_manual_grade"] == "True"
    png = (out / f"{A}_scores.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    # canvas_grades.csv, column by column.
    table = list(csv.reader(open(out / "canvas_grades.csv", newline="")))
    assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                        B, f"{A} (555)"]
    body = {row[3]: row for row in table[1:]}
    assert [row[3] for row in table[1:]] == ["jdoe", "eroe", "asmith", "nned"]  # roster order
    for row, roster_row in zip(table[1:], ROSTER[2:]):
        assert row[:5] == roster_row[:5]
    b_total = sum(p for p, _ in points(B).values())
    b_half = sum(p / 2 for p, _ in points(B).values())
    assert float(body["jdoe"][6]) == auto_max + manual_max - 1
    assert body["jdoe"][5] == ""  # no submission of B
    assert body["eroe"][6] == ""  # pending manual grading: blank, not zero
    assert float(body["asmith"][5]) == b_half < b_total and body["asmith"][6] == ""
    assert body["nned"][5:] == ["", ""]
    assert "zed" not in json.dumps(table)
