"""Authoring an assignment: ``course.py new`` scaffolds a working one, ``course.py check`` runs
its fast checks (tools/authoring.py).

The scaffold is made in a throwaway course root. Its catalog module is imported by the
``grader`` package of that root, so everything that grades runs the root's own
``tools/course.py`` in a subprocess, as an instructor does.
"""

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import authoring  # noqa: E402
import course  # noqa: E402

NAME = "07_whitening"
CHAPTER = "book/03_regularization.ipynb"


def make_root(root: Path, *, grading: bool = False) -> Path:
    """A throwaway course root: the toc, a chapter, the assignments' sources and the grader."""
    (root / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_toc.yml", root)
    shutil.copy(ROOT / CHAPTER, root / "book")
    (root / "solutions").mkdir()
    for source in sorted((ROOT / "solutions").glob("*.py")):
        shutil.copy(source, root / "solutions")
    folders = ("grader", "tools") if grading else ("grader",)
    for folder in folders:
        shutil.copytree(ROOT / folder, root / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    if grading:
        config = (ROOT / "nbgrader_config.py").read_text() + (
            "\nc.Execute.timeout = 10\nc.TrustedChecks.cell_time_limit = 10\n")
        (root / "nbgrader_config.py").write_text(config)
    return root


def snapshot(root: Path) -> dict:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_course(root: Path, *args, timeout=300):
    """The root's own tools/course.py (so its grader/catalog is the one imported)."""
    return subprocess.run([sys.executable, str(root / "tools" / "course.py"), *args],
                          cwd=root, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------ new


def test_new_writes_a_complete_assignment(tmp_path):
    root = make_root(tmp_path / "course")
    before = snapshot(root)
    written = authoring.new(root, NAME, chapter=Path(CHAPTER), title="Whitening")
    assert sorted(p.relative_to(root).as_posix() for p in written) == sorted(
        [CHAPTER, f"solutions/{NAME}.py", "grader/catalog/whitening.py", "_toc.yml"])
    changed = {p for p, data in snapshot(root).items() if before.get(p) != data}
    assert {p.as_posix() for p in changed} == {p.relative_to(root).as_posix() for p in written}

    # The source follows the template's rules: a stated total, points, hidden tests.
    nb = course.build_notebook(root / "solutions" / f"{NAME}.py")
    kinds = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    assert [k.get("grade_id") for k in kinds if k.get("solution") and not k.get("grade")] == [
        "whitening_center"]
    assert sum(k.get("points", 0) for k in kinds) == 6
    text = (root / "solutions" / f"{NAME}.py").read_text()
    assert "# # Assignment 7: Whitening" in text and "**Total: 6 points**" in text
    assert 'grading.check_graded("whitening_center", whitening_center, (_x,))' in text
    assert text.count('nbgrader="manual"') == 1

    # The catalog module registers the function and its mistakes (read, not imported here:
    # importing it would add to this process's catalog).
    catalog = (root / "grader" / "catalog" / "whitening.py").read_text()
    assert '_graded("whitening_center", _reference,' in catalog
    assert catalog.count("_register(") == 2

    # The toc lists the exercise last in the Exercises part; the chapter links to it.
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    parts = {p["caption"]: [c["file"] for c in p["chapters"]] for p in toc["parts"]}
    assert parts["Exercises"][-1] == f"exercises/{NAME}/{NAME}"
    assert parts["Exercises"] == sorted(parts["Exercises"])
    assert (root / "_toc.yml").read_text().startswith("# Table of contents")  # comments kept
    chapter = nbformat.read(root / CHAPTER, as_version=4)
    assert f"](../exercises/{NAME}/{NAME}.ipynb)" in chapter.cells[-1].source
    assert chapter.cells[:-1] == nbformat.read(ROOT / CHAPTER, as_version=4).cells


def test_new_puts_the_toc_entry_in_order(tmp_path):
    root = make_root(tmp_path / "course")
    authoring.new(root, "03_weight_noise")
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    exercises = next(p for p in toc["parts"] if p["caption"] == "Exercises")["chapters"]
    files = [c["file"] for c in exercises]
    assert files.index("exercises/03_weight_noise/03_weight_noise") == 3
    assert files == sorted(files)
    assert "# # Assignment 3: Weight noise" in (root / "solutions/03_weight_noise.py").read_text()


@pytest.mark.parametrize(("name", "options", "message"), [
    ("7_whitening", {}, "bad assignment name '7_whitening'"),
    ("07_Whitening", {}, "bad assignment name"),
    ("07-whitening", {}, "bad assignment name"),
    ("07_3d", {}, "must start with a letter"),
    ("03_regularization", {}, "assignment 03_regularization exists already"),
    ("08_regularization", {}, "grader/catalog/regularization.py exists already"),
    (NAME, {"chapter": Path("book/99_missing.ipynb")}, "chapter .*99_missing.ipynb not found"),
    (NAME, {"chapter": Path("_toc.yml")}, "not found"),
    (NAME, {"title": "two\nlines"}, "bad title"),
])
def test_new_refuses_bad_input_and_writes_nothing(tmp_path, name, options, message):
    root = make_root(tmp_path / "course")
    before = snapshot(root)
    with pytest.raises(course.CourseError, match=message):
        authoring.new(root, name, **options)
    assert snapshot(root) == before


def test_new_refuses_a_chapter_that_already_links_to_it(tmp_path):
    root = make_root(tmp_path / "course")
    authoring.new(root, NAME, chapter=Path(CHAPTER))
    (root / "solutions" / f"{NAME}.py").unlink()
    (root / "grader" / "catalog" / "whitening.py").unlink()
    before = snapshot(root)
    with pytest.raises(course.CourseError, match="already links to"):
        authoring.new(root, NAME, chapter=Path(CHAPTER))
    assert snapshot(root) == before


def test_the_command_line_reports_a_refusal(tmp_path, capsys):
    root = make_root(tmp_path / "course")
    before = snapshot(root)
    assert course.main(["--root", str(root), "new", "7_whitening"]) == 1
    assert "course new: error: bad assignment name '7_whitening'" in capsys.readouterr().err
    assert snapshot(root) == before


def test_toc_without_an_exercises_part_is_refused():
    with pytest.raises(course.CourseError, match="no part with 'caption: Exercises'"):
        authoring.toc_with("format: jb-book\nroot: intro\n", NAME)


def test_uncatalogued_names_the_answer_cells_without_mistakes(tmp_path):
    (tmp_path / "solutions").mkdir()
    source = (ROOT / "solutions" / "03_regularization.py").read_text()
    (tmp_path / "solutions" / "03_regularization.py").write_text(source.replace(
        'grade_id="l2_penalty"', 'grade_id="l2_penalty_of_mine"'))
    assert authoring.uncatalogued(tmp_path, "03_regularization") == ["l2_penalty_of_mine"]
    assert authoring.uncatalogued(ROOT, "03_regularization") == []


# ----------------------------------------------------------------------- check, grade


def solved(release, source):
    """The release with every answer cell filled in from the source notebook."""
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in answers:
            cell.source = answers[cell.metadata["nbgrader"]["grade_id"]]
    return nb


@pytest.mark.slow
def test_scaffold_checks_releases_and_grades(tmp_path):
    from nbgrader.api import Gradebook

    from grader import assignment as assignments

    root = make_root(tmp_path / "course", grading=True)
    result = run_course(root, "new", NAME, "--chapter", CHAPTER, "--title", "Whitening")
    assert result.returncode == 0, result.stderr

    result = run_course(root, "check", NAME)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for line in ("ok    the source builds", "ok    the student version holds no solution",
                 "ok    the solutions pass all 1 test cells",
                 "ok    the released stubs fail all 1 test cells",
                 "ok    all 4 catalog mistakes of whitening_center fail a test cell",
                 "ok    _toc.yml lists exercises/07_whitening/07_whitening"):
        assert line in out, out
    assert "FAIL  " not in out and "warn  " not in out and "0 failed, 0 warnings" in out
    assert not (root / "exercises").exists() and not (root / "gradebook.db").exists()

    result = run_course(root, "release", NAME)
    assert result.returncode == 0, result.stdout + result.stderr
    release = nbformat.read(root / "exercises" / NAME / f"{NAME}.ipynb", as_version=4)
    source = nbformat.read(root / "solutions" / NAME / f"{NAME}.ipynb", as_version=4)
    for student, nb in [("solution", solved(release, source)), ("blank", release)]:
        folder = root / "submitted" / student / NAME
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{NAME}.ipynb")
    result = run_course(root, "autograde", NAME)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stdout

    a = assignments.load(root, NAME)
    points = {t.grade_id: t.points for t in a.tests}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        total = gb.find_assignment(NAME).max_score
        earned = {sub.student.id: sum(g.score for g in sub.notebooks[0].grades
                                      if g.name in points)
                  for sub in gb.find_assignment(NAME).submissions}
    assert earned["solution"] == sum(points.values()), (earned, points)
    assert earned["blank"] <= 0.1 * total, earned

    # Without its catalog module, autograde warns that the function's failures go undiagnosed.
    catalog = root / "grader" / "catalog" / "whitening.py"
    catalog.rename(tmp_path / "whitening.py")
    result = run_course(root, "autograde", NAME, "--force")
    assert ("autograde: warning: 07_whitening: whitening_center has no entry in the catalog "
            "(grader/catalog/), so failures of whitening_center will be reported without a "
            "likely cause") in result.stdout, result.stdout
    (tmp_path / "whitening.py").rename(catalog)

    # A test cell that catches no catalog mistake, a function without catalog entries, an
    # exercise missing from the toc: check fails and says which.
    path = root / "solutions" / f"{NAME}.py"
    text = path.read_text()
    start = text.index("grading.check_example(whitening_center")
    end = text.index("### END HIDDEN TESTS\n") + len("### END HIDDEN TESTS\n")
    text = text[:start] + "assert whitening_center(x).shape == x.shape\n" + text[end:]
    path.write_text(text + '\n\n# %% nbgrader="answer" grade_id="helper"\ndef helper(x):\n'
                    "    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n")
    shutil.copy(ROOT / "_toc.yml", root / "_toc.yml")  # without the exercise
    result = run_course(root, "check", NAME)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  _toc.yml does not list exercises/07_whitening/07_whitening" in result.stdout
    assert "FAIL  mistake whitening_center_global_mean (whitening_center) passes every " \
           "test cell" in result.stdout, result.stdout
    assert "warn  helper has no catalog entry" in result.stdout
    assert "failures of helper will be reported without a likely cause" in result.stdout


def test_check_of_a_missing_assignment_is_an_error(tmp_path, capsys):
    root = make_root(tmp_path / "course")
    assert course.main(["--root", str(root), "check", "09_missing"]) == 1
    assert "course check: error: no assignment '09_missing'" in capsys.readouterr().err
