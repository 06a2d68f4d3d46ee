"""The graded exercises end to end: source notebooks, release, autograde, feedback, grades.

The fast tests run the trusted checks in-process (grader.trusted.run_tests, with plain
functions standing in for a student's): the solutions pass every test cell, the released
stubs fail every one, and every catalog mistake fails a test cell of its function with its
message. The slow test runs the instructor workflow (tools/course.py, i.e. the make
targets) with nbgrader and the sandbox in a throwaway course root and gradebook, with
honest, wrong and hostile submissions (tests/test_redteam.py has the determined cheats).
"""

import copy
import csv
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from grader import assignment as assignments
from grader import mutants, trusted
from grader.feedback import html_text, leaks, mark_pending, secret_lines
from grader.mutants import with_mutant
from normcore import grading

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402

ASSIGNMENTS = course.assignments_in(ROOT)
A = "04_normalization"  # the assignment the workflow test submits hostile notebooks to
SOURCE = ROOT / "solutions" / A / f"{A}.ipynb"
RELEASE = ROOT / "exercises" / A / f"{A}.ipynb"


def source_of(name):
    return ROOT / "solutions" / name / f"{name}.ipynb"


def release_of(name):
    return ROOT / "exercises" / name / f"{name}.ipynb"


# ----------------------------------------------------------------------------- helpers


def read(path):
    return nbformat.read(path, as_version=4)


def meta(cell):
    return cell.metadata.get("nbgrader", {})


def graded_functions(nb):
    return [meta(c)["grade_id"] for c in nb.cells if meta(c).get("solution")
            and c.cell_type == "code"]


def graded_cells(nb):
    return [(meta(c)["grade_id"], c.source) for c in nb.cells
            if meta(c).get("grade") and c.cell_type == "code"]


def functions_of(nb):
    """The functions that the setup and answer cells of ``nb`` define (run in-process)."""
    return mutants.functions_of(nb.cells)


def verdicts(name, functions):
    """{grade_id: None or message} of the trusted checks for these functions."""
    return trusted.run_tests(assignments.load(ROOT, name), trusted.functions_provider(functions))


# -------------------------------------------------------------------- source notebooks


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_notebook_is_built_from_its_text(name):
    built = course.build_notebook(ROOT / "solutions" / f"{name}.py")
    committed = (ROOT / "solutions" / name / f"{name}.ipynb").read_text()
    assert nbformat.writes(built) + "\n" == committed, (
        f"solutions/{name}/{name}.ipynb is stale: run `make release`")


GOOD = '''# %% [markdown]
# **Total: 2 points**

# %% nbgrader="answer" grade_id="f"
def f():
    ### BEGIN SOLUTION
    return 1
    ### END SOLUTION

# %% nbgrader="tests" grade_id="test_f" points=2
# 2 points: f.
assert f() == 1
'''


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s, None),
    (lambda s: s.replace("Total: 2", "Total: 3"), "state 3 points, the graded cells add up to 2"),
    (lambda s: s.replace("**Total: 2 points**", "Two points."), "no '\\*\\*Total: N points"),
    (lambda s: s.replace("    ### END SOLUTION\n", ""), "wraps its solution in"),
    (lambda s: s.replace(" points=2", ""), "needs points=N"),
    (lambda s: s.replace("# 2 points: f.", "# f."), "first line must state the points"),
    (lambda s: s.replace('grade_id="test_f"', 'grade_id="f"'), "duplicate grade_id"),
    (lambda s: s.replace("assert f() == 1", "### BEGIN HIDDEN TESTS\nassert f()"),
     "unbalanced hidden-test markers"),
    (lambda s: s.replace('nbgrader="answer"', 'nbgrader="solution"'), "expected one of"),
    (lambda s: s.replace('nbgrader="answer" ', ""), "grade_id/points given without"),
    (lambda s: s.replace('# %% nbgrader="answer"', '# %% [markdown]\n# ## 1. f (3 points)\n\n'
                                                    '# %% nbgrader="answer"'),
     r"section '1. f \(3 points\)' states 3 points, its graded cells add up to 2"),
])
def test_build_checks_the_template(tmp_path, edit, message):
    source = tmp_path / "99_example.py"
    source.write_text(edit(GOOD))
    if message is None:
        nb = course.build_notebook(source)
        assert [meta(c).get("points") for c in nb.cells] == [None, None, 2]
        assert meta(nb.cells[2])["locked"] and not meta(nb.cells[1])["locked"]
    else:
        with pytest.raises(course.CourseError, match=message):
            course.build_notebook(source)


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_has_no_solution_and_no_hidden_test(name):
    assert course.check_release(ROOT / "solutions" / f"{name}.py", release_of(name)) == []
    text = release_of(name).read_text()
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN" not in text
    stubs = [c for c in read(release_of(name)).cells if c.cell_type == "code"
             and "raise NotImplementedError()" in c.source]
    assert len(stubs) == len(graded_functions(read(source_of(name))))


def test_release_of_normalization_hides_known_secrets():
    text = RELEASE.read_text()
    for secret in ("running_var += momentum * var", "from normcore import normalization as _ref",
                   "default_rng(4041)"):
        assert secret not in text


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_notebook_holds_no_hidden_test(name):
    """The gradebook copies the test cells of the source notebook and the student's kernel
    runs them: only the visible tests may be there."""
    assert course.check_source_notebook(ROOT / "solutions" / f"{name}.py", source_of(name)) == []
    a = assignments.load(ROOT, name)
    assert a.hidden_lines and all(t.full.startswith(t.visible.split("\n")[0]) for t in a.tests)
    assert sum(t.full.count("\n") - t.visible.count("\n") for t in a.tests) > 20


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_solutions_pass_every_test_cell(name):
    assert verdicts(name, functions_of(read(source_of(name)))) == {
        gid: None for gid, _ in graded_cells(read(source_of(name)))}


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_released_stubs_fail_every_test_cell(name):
    for gid, message in verdicts(name, functions_of(read(release_of(name)))).items():
        assert message and "not implemented yet" in message, (gid, message)


def _mutants():
    found = []
    for name in ASSIGNMENTS:
        functions = graded_functions(read(source_of(name)))
        found += [(name, m, f) for m in grading.CATALOG for f in m.applies_to if f in functions]
    return found


@pytest.mark.parametrize(("name", "mistake", "function"), _mutants(),
                         ids=[f"{m.key}-{f}" for _, m, f in _mutants()])
def test_each_mutant_fails_a_test_cell_with_its_message(name, mistake, function):
    fns = with_mutant(functions_of(read(source_of(name))), mistake, function)
    stem = function.split("_backward")[0].split("_forward")[0]
    a = assignments.load(ROOT, name)
    cells = {t.grade_id for t in a.tests if stem in t.full}
    messages = trusted.run_tests(a, trusted.functions_provider(fns), grade_ids=cells)
    assert any(m and mistake.message in m for m in messages.values()), (
        f"no test cell of {function} names {mistake.key}: {messages}")


# ----------------------------------------------------------------- the whole workflow


def perfect_submission(name=A):
    """The released notebook with every answer cell filled in with the solution."""
    source, nb = read(source_of(name)), copy.deepcopy(read(release_of(name)))
    answers = {meta(c)["grade_id"]: c.source for c in source.cells if meta(c).get("solution")}
    for cell in nb.cells:
        if meta(cell).get("grade_id") in answers:
            cell.source = answers[meta(cell)["grade_id"]]
    return nb


def with_cell(nb, grade_id, source=None, *, delete=False, prepend=""):
    nb = copy.deepcopy(nb)
    index = next(i for i, c in enumerate(nb.cells) if meta(c).get("grade_id") == grade_id)
    if delete:
        del nb.cells[index]
    else:
        nb.cells[index].source = prepend + (nb.cells[index].source if source is None else source)
    return nb


#: Catalog mistakes written as a student would write them: (function, solution line, wrong
#: line). The worker cannot import the catalog, so these are plain code.
SOURCE_MUTANTS = {
    "bn_unbiased_batch_var": ("batch_norm_forward", "var = x.var(axis=axes)",
                              "var = x.var(axis=axes, ddof=1)"),
    "bn_backward_no_stat_terms": ("batch_norm_backward",
                                  "dx = dxhat * r + 2 / m * dvar * xc + dmu / m",
                                  "dx = dxhat * r"),
    "ln_over_batch_axis": ("layer_norm_forward",
                           "axes = tuple(range(x.ndim - gamma.ndim, x.ndim))", "axes = 0"),
    "gn_strided_groups": ("group_norm_forward", None, """
def group_norm_forward(x, num_groups, gamma, beta, *, eps=1e-5):
    n, c = x.shape[:2]
    strided = x.reshape(n, c // num_groups, num_groups, -1).transpose(0, 2, 1, 3)
    xg = strided.reshape(n, num_groups, -1)
    inv_std = 1 / np.sqrt(xg.var(axis=2, keepdims=True) + eps)
    xhat = ((xg - xg.mean(axis=2, keepdims=True)) * inv_std).reshape(strided.shape)
    xhat = xhat.transpose(0, 2, 1, 3).reshape(x.shape)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return gamma.reshape(shape) * xhat + beta.reshape(shape), (xhat, inv_std, gamma)
"""),
}


def mutated(nb, key):
    function, right, wrong = SOURCE_MUTANTS[key]
    cell = next(c for c in nb.cells if meta(c).get("grade_id") == function)
    if right is None:
        return with_cell(nb, function, wrong)
    assert right in cell.source, (key, right)
    return with_cell(nb, function, cell.source.replace(right, wrong))


def submissions():
    perfect = perfect_submission()
    noisy = copy.deepcopy(perfect)
    noisy.cells.insert(2, nbformat.v4.new_code_cell(
        'for _ in range(50_000):\n    print("spam " * 20)\nprint("x" * 3_000_000)'))
    return {
        "solution": perfect,
        "untouched": read(RELEASE),
        "infinite-loop": with_cell(perfect, "batch_norm_forward", prepend="while True:\n"
                                   "    pass\n"),
        "import-error": with_cell(perfect, "layer_norm_forward",
                                  prepend="import a_module_that_does_not_exist\n"),
        "noisy": noisy,
        "deleted-test": with_cell(mutated(perfect, "ln_over_batch_axis"),
                                  "test_layer_norm_forward", delete=True),
        "edited-test": with_cell(mutated(perfect, "gn_strided_groups"),
                                 "test_group_norm_forward", "# 3 points\npass"),
        "calls-reference": with_cell(perfect, "batch_norm_forward",
                                     "from normcore.normalization import batch_norm_forward"),
        "mutant-forward": mutated(perfect, "bn_unbiased_batch_var"),
        "mutant-backward": mutated(perfect, "bn_backward_no_stat_terms"),
    }


def test_source_mutants_are_the_catalog_mistakes():
    """The plain-code mutants of the workflow test make exactly their catalog mistake."""
    for key in SOURCE_MUTANTS:
        fns = functions_of(mutated(perfect_submission(), key))
        message = verdicts(A, fns)
        assert any(m and grading.get_mistake(key).message in m for m in message.values()), key


def source_points(name=A):
    """({test cell: points}, {written answer: points}) of ``name``, read from its source."""
    a = assignments.load(ROOT, name)
    manual = {gid: float(points) for kind, gid, points, _ in
              assignments.read_cells(ROOT / "solutions" / f"{name}.py") if kind == "manual"}
    return {t.grade_id: t.points for t in a.tests}, manual


def cells_and_points(points):
    return ", ".join(f"{gid} {p:g}" for gid, p in points.items())


def scores(root, name=A):
    """{student: {grade_id: score}} from the gradebook of the course root."""
    from nbgrader.api import Gradebook

    result = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for sub in gb.find_assignment(name).submissions:
            nb = sub.notebooks[0]
            result[sub.student.id] = {g.name: g.score for g in nb.grades}
    return result


def cell_error(root, student, grade_id):
    nb = read(root / "autograded" / student / A / f"{A}.ipynb")
    cell = next(c for c in nb.cells if meta(c).get("grade_id") == grade_id)
    return " ".join(f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error")


@pytest.fixture(scope="module")
def course_root(tmp_path_factory):
    root = course.copy_course(tmp_path_factory.mktemp("course"), ASSIGNMENTS, config=(
        "\nc.Execute.timeout = 10\nc.TrustedChecks.cell_time_limit = 10\n"))
    assert course.main(["--root", str(root), "release"]) == 0
    for student, nb in submissions().items():
        folder = root / "submitted" / student / A
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{A}.ipynb")
    # Every other assignment: the solution and the untouched release.
    for name in ASSIGNMENTS:
        if name != A:
            for student, nb in [("solution", perfect_submission(name)),
                                ("untouched", read(release_of(name)))]:
                folder = root / "submitted" / student / name
                folder.mkdir(parents=True)
                nbformat.write(nb, folder / f"{name}.ipynb")
    # A file nbgrader cannot read at all: reported, and the others are graded regardless.
    broken = root / "submitted" / "not-a-notebook" / A
    broken.mkdir(parents=True)
    (broken / f"{A}.ipynb").write_text("{ this is not a notebook")
    return root


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning")
def test_instructor_workflow(course_root, capsys):
    root = course_root
    for name in ASSIGNMENTS:
        fresh = read(root / "exercises" / name / f"{name}.ipynb")
        committed = read(release_of(name))
        assert [(c.cell_type, c.source, meta(c)) for c in fresh.cells] == [
            (c.cell_type, c.source, meta(c)) for c in committed.cells], (
            f"exercises/{name} differs from a fresh release: run `make release`")
        assert fresh.metadata == committed.metadata

    # Autograde every submission; a second run keeps everything.
    assert course.main(["--root", str(root), "autograde"]) == 1  # the unreadable file
    out = capsys.readouterr().out
    n_other = 2 * (len(ASSIGNMENTS) - 1)
    assert f"{11 + n_other} submissions: {10 + n_other} graded, 0 up to date, 1 failed" in out
    assert "autograde not-a-notebook/04_normalization: FAILED" in out
    first = scores(root)
    first.pop("not-a-notebook", None)
    points, manual = source_points(A)
    auto_total = sum(points.values())
    auto = {s: sum(v for g, v in grades.items() if g in points) for s, grades in first.items()}
    assert all(len(grades) == len(points) + len(manual) for grades in first.values())

    assert auto["solution"] == auto_total, (
        f"the solution of {A} should earn every test cell's points ({cells_and_points(points)}"
        f"; {auto_total:g} in all), it got: "
        + ", ".join(f"{g} {first['solution'].get(g)}" for g in points))
    assert auto["untouched"] <= 0.1 * (auto_total + sum(manual.values())), first["untouched"]
    assert auto["noisy"] == auto_total
    bn_forward_cells = ("test_batch_norm_forward", "test_batch_norm_running_stats",
                        "test_batch_norm_spatial")
    for student in ("infinite-loop", "calls-reference"):
        assert all(first[student][g] == 0 for g in bn_forward_cells), student
        assert first[student]["test_layer_norm_forward"] == points["test_layer_norm_forward"]
    assert "computes the graded operation for you" in cell_error(
        root, "calls-reference", "test_batch_norm_forward")
    assert re.search("CellTimeoutError|KeyboardInterrupt|TimeoutError",
                     " ".join(o.get("ename", "") for c in read(
                         root / "autograded" / "infinite-loop" / A / f"{A}.ipynb").cells
                         for o in c.get("outputs", [])))
    assert first["import-error"]["test_layer_norm_forward"] == 0
    assert first["import-error"]["test_batch_norm_forward"] == points["test_batch_norm_forward"]
    noisy_size = (root / "autograded" / "noisy" / A / f"{A}.ipynb").stat().st_size
    assert noisy_size < 500_000

    # Every assignment: the solution earns every automatic point, the release at most 10%.
    for name in ASSIGNMENTS:
        cells = {meta(c)["grade_id"]: meta(c)["points"] for c in read(source_of(name)).cells
                 if meta(c).get("grade") and c.cell_type == "code"}
        manual = sum(meta(c)["points"] for c in read(source_of(name)).cells
                     if meta(c).get("grade") and c.cell_type == "markdown")
        got = scores(root, name)
        earned = {s: sum(v for g, v in got[s].items() if g in cells) for s in
                  ("solution", "untouched")}
        assert earned["solution"] == sum(cells.values()), (name, got["solution"])
        assert earned["untouched"] <= 0.1 * (sum(cells.values()) + manual), name

    # Deleted and edited test cells come back from the gradebook and catch the mistake.
    for student, gid, key in [("deleted-test", "test_layer_norm_forward", "ln_over_batch_axis"),
                              ("edited-test", "test_group_norm_forward", "gn_strided_groups"),
                              ("mutant-forward", "test_batch_norm_forward",
                               "bn_unbiased_batch_var"),
                              ("mutant-backward", "test_batch_norm_backward",
                               "bn_backward_no_stat_terms")]:
        assert first[student][gid] == 0, student
        assert grading.get_mistake(key).message in cell_error(root, student, gid), (
            student, cell_error(root, student, gid))
        assert auto[student] < auto_total
    for student in ("deleted-test", "edited-test"):
        others = {g: v for g, v in first[student].items() if g in points and "group" not in g
                  and "layer" not in g}
        assert all(v == points[g] for g, v in others.items()), student

    assert course.main(["--root", str(root), "autograde"]) == 1
    out = capsys.readouterr().out
    assert out.count(": up to date, kept") == 10 + n_other
    assert f"{11 + n_other} submissions: 0 graded, {10 + n_other} up to date, 1 failed" in out
    assert {s: v for s, v in scores(root).items() if s in first} == first
    for student in ("solution", "edited-test", "untouched"):
        assert course.autograde(root, student=student, force=True) == 0
    assert {s: v for s, v in scores(root).items() if s in first} == first

    # Feedback: every failure message, no hidden test.
    assert course.main(["--root", str(root), "feedback"]) == 0
    secrets = secret_lines(root)
    assert len(secrets) > 300
    for student in first:
        page = (root / "feedback" / student / A / f"{A}.html").read_text()
        assert leaks(page, secrets, course._own_text(root, student, A)) == []
        assert (leaks(page, secrets) != []) == (student != "untouched"), student
        assert "default_rng(4041)" not in html_text(page)
    page = html_text((root / "feedback" / "mutant-forward" / A / f"{A}.html").read_text())
    assert grading.get_mistake("bn_unbiased_batch_var").message in " ".join(page.split())
    # The written answer is not graded yet: pending, not "Score: 0.0 / 4.0".
    page = " ".join(html_text((root / "feedback" / "solution" / A / f"{A}.html").read_text())
                    .split())
    assert "pending manual grading" in page and "Score: 0.0 / 4.0" not in page

    # Grades: a CSV row per submission and a histogram.
    assert course.main(["--root", str(root), "grades"]) == 0
    rows = (root / "grades" / "grades.csv").read_text().splitlines()
    assert rows[0].startswith("student,assignment,score,max_score,percent,needs_manual_grade,"
                              "autograded_score,autograded_max,manual_score,pending_manual,")
    assert len(rows) >= 11
    solution_row = next(r for r in csv.DictReader(rows) if r["student"] == "solution"
                        and r["assignment"] == A)
    assert float(solution_row["score"]) == auto_total, (
        f"grades.csv: the solution of {A} should score {auto_total:g}, the points of its test "
        f"cells ({cells_and_points(points)}) with {sum(manual.values()):g} points of written "
        f"answers pending; the row is {solution_row}")
    png = (root / "grades" / f"{A}_scores.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_nbgrader_validate_passes_the_solution_and_fails_the_release(tmp_path, name):
    """What a student's *Validate* button says (nbgrader validate's exit code says nothing)."""
    from nbgrader.validator import Validator

    solved, release = tmp_path / "solved" / f"{name}.ipynb", tmp_path / "release" / f"{name}.ipynb"
    for path, nb in [(solved, perfect_submission(name)), (release, read(release_of(name)))]:
        path.parent.mkdir()
        nbformat.write(nb, path)
    validator = Validator()
    validator.ignore_checksums = True
    assert "failed" not in validator.validate(str(solved))
    failed = validator.validate(str(release)).get("failed", [])
    assert len(failed) == len(graded_cells(read(source_of(name))))


# ------------------------------------------------- feedback that is right (each function alone)

sys.path.insert(0, str(ROOT / "bench"))
import coverage_report  # noqa: E402


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_visible_tests_catch_most_mistakes(name):
    """A student who passes the visible tests has fixed at least 80% of the catalog's mistakes
    (make coverage-report prints the table); all tests together catch every one."""
    row = coverage_report.coverage(name)
    assert row["visible"] >= coverage_report.THRESHOLD * row["mutants"], (
        f"{name}: the visible tests catch {row['visible']} of {row['mutants']} mistakes; "
        f"missed: {row['missed_visible']}")
    assert row["all"] == row["mutants"], row["missed_all"]


def _graded_name(test):
    return set(re.findall(r'name="(\w+)"', test.full))


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_each_mistake_costs_only_its_own_function_and_every_cause_named_is_its_own(name):
    """Each catalog mutant, alone among correct functions, fails only test cells that grade
    its function, or cells that by the instructions build on it when the message names it;
    every cause a failing cell names is a mistake of that function (no other, inert one)."""
    a = assignments.load(ROOT, name)
    functions = functions_of(read(source_of(name)))
    problems = []
    for mistake, function in coverage_report.mutants_of(name, functions):
        fns = with_mutant(functions, mistake, function)
        own = {m.message for m in grading.mistakes_for(function)} | {grading.DTYPE_MESSAGE}
        for gid, message in trusted.run_tests(a, trusted.functions_provider(fns)).items():
            if message is None:
                continue
            graded = _graded_name(a.test(gid))
            if function not in graded and function not in message:
                problems.append(f"{mistake.key}: {gid} fails without naming {function}: "
                                f"{message[:200]}")
            named = {m.message for m in grading.CATALOG if m.message in message}
            if named - own:
                problems.append(f"{mistake.key}: {gid} names causes of other functions: "
                                f"{[m.key for m in grading.CATALOG if m.message in named - own]}")
    assert not problems, "\n".join(problems)


def _with_source_edit(name, function, old, new):
    """The solution's functions with one line of ``function`` rewritten as a student might."""
    nb = perfect_submission(name)
    cell = next(c for c in nb.cells if meta(c).get("grade_id") == function)
    assert old in cell.source, old
    return functions_of(with_cell(nb, function, cell.source.replace(old, new)))


def test_a_wrong_staged_backward_costs_nothing_to_a_correct_closed_form():
    fns = _with_source_edit(A, "batch_norm_backward",
                            "dx = dxhat * r + 2 / m * dvar * xc + dmu / m", "dx = dxhat * r")
    result = verdicts(A, fns)
    assert result["test_batch_norm_backward_alt"] is None, result["test_batch_norm_backward_alt"]
    assert grading.get_mistake("bn_backward_no_stat_terms").message in (
        result["test_batch_norm_backward"])
    assert [g for g, m in result.items() if m] == ["test_batch_norm_backward"]


def test_a_forward_bug_costs_only_the_forward_cells():
    """sqrt(var) + eps in the forward (and so in its cache): the backward cells, correct code,
    keep their points; the forward's cells name the mistake."""
    fns = _with_source_edit(A, "batch_norm_forward", "inv_std = 1 / np.sqrt(var + eps)",
                            "inv_std = 1 / (np.sqrt(var) + eps)")
    result = verdicts(A, fns)
    failed = sorted(g for g, m in result.items() if m)
    assert failed == ["test_batch_norm_forward", "test_batch_norm_running_stats",
                      "test_batch_norm_spatial"], result
    eps_message = grading.get_mistake("bn_eps_outside_sqrt").message
    assert all(eps_message in result[g] for g in failed)


def test_a_backward_on_an_unimplemented_forward_names_the_forward():
    fns = functions_of(read(source_of(A)))
    fns["batch_norm_forward"] = functions_of(read(release_of(A)))["batch_norm_forward"]
    result = verdicts(A, fns)
    for gid in ("test_batch_norm_backward", "test_batch_norm_backward_alt"):
        assert "batch_norm_forward" in result[gid] and "not implemented" in result[gid], (
            result[gid])


def test_adam_that_never_writes_its_moments_back_is_told_so_and_nothing_false():
    """The reported case: four wrong causes (eps inside the root with eps = 0, decay on the
    update with weight_decay = 0, AMSGrad's max with amsgrad = False, w changed in place) and
    not the true one."""
    name = "05_optimizers"

    def adam(w, dw, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
             amsgrad=False):  # m and v computed from the state but never stored back
        beta1, beta2 = betas
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(w), exp_avg_sq=np.zeros_like(w))
        state["step"] += 1
        t = state["step"]
        g = dw + weight_decay * w
        m = beta1 * state["exp_avg"] + (1 - beta1) * g
        v = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
        return w - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)

    fns = {**functions_of(read(source_of(name))), "adam": adam}
    a = assignments.load(ROOT, name)
    message = trusted.run_tests(a, trusted.functions_provider(fns), {"test_adam"},
                                visible_only=True)["test_adam"]
    assert "never stores the new values back" in message, message
    for key in ("adam_eps_inside_sqrt", "adam_decay_on_update", "adam_amsgrad_max_of_corrected",
                "adam_in_place"):
        assert grading.get_mistake(key).message not in message, key


def test_feedback_shows_a_pending_written_answer_as_pending():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Exercise"),
        nbformat.v4.new_markdown_cell("my answer"), nbformat.v4.new_markdown_cell("graded")])
    for cell, gid in [(nb.cells[1], "written_answer"), (nb.cells[2], "other")]:
        cell.metadata["nbgrader"] = {"grade": True, "solution": True, "grade_id": gid,
                                     "points": 4}
    mark_pending(nb, {"written_answer": 4.0})
    assert "4 points pending manual grading" in nb.cells[0].source
    pending = nb.cells[2]
    assert not meta(pending)["grade"] and "pending manual grading (4 points)" in pending.source
    assert "my answer" in pending.source and meta(nb.cells[3])["grade"]
    before = copy.deepcopy(nb)
    mark_pending(nb, {})
    assert nb == before
