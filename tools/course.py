#!/usr/bin/env python
"""Instructor command line of the course: build, release, autograde, feedback, grades.

Each assignment is written as a text file ``solutions/<assignment>.py`` (jupytext percent
format, see ``solutions/README.md``), from which ``build`` makes the nbgrader source
notebook ``solutions/<assignment>/<assignment>.ipynb``. The other commands wrap nbgrader
(configured by ``nbgrader_config.py``) so that each is one non-interactive step::

    python tools/course.py build     [ASSIGNMENT ...]   source text -> source notebook
    python tools/course.py release   [ASSIGNMENT ...]   build, then exercises/<a>/ (student version)
    python tools/course.py autograde [ASSIGNMENT ...] [--student ID] [--force]
    python tools/course.py feedback  [ASSIGNMENT ...] [--student ID]
    python tools/course.py grades    [--out DIR]        grades.csv, a histogram per assignment
                                     [--roster CSV]     ... and canvas_grades.csv (tools/lms.py)
    python tools/course.py publish   [ASSIGNMENT ...]   exercises/<a>/ -> nbgrader's exchange
    python tools/course.py collect   [ASSIGNMENT ...]   exchange -> submitted/ (tools/exchange.py)
    python tools/course.py collect   ASSIGNMENT --zip ZIP --roster CSV   an LMS zip -> submitted/
    python tools/course.py return    [ASSIGNMENT ...]   feedback/ -> exchange
    python tools/course.py due       ASSIGNMENT WHEN    due date in the gradebook ('none': none)
    python tools/course.py new       ASSIGNMENT [--chapter NB] [--title T]   a new assignment
    python tools/course.py check     ASSIGNMENT         its fast checks (tools/authoring.py)

Without ASSIGNMENT every assignment is processed. ``--root`` selects another course root (a
directory holding ``nbgrader_config.py``, ``tools/`` and ``solutions/``). Every command
prints what it did; the exit status is 1 when something needs the instructor's attention
(a submission nbgrader could not process, a leak of hidden tests), after all the other work
is done. A student notebook that fails its tests, loops or crashes is not such an error: it
is graded like any other.

This module also defines the nbgrader preprocessors that ``nbgrader_config.py`` installs:
:class:`LimitOutputSize` (autograde). The trusted grader (sandbox, verdicts, feedback
sanitizing) lives in the instructor-only package ``grader/``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader import assignment as assignments  # noqa: E402
from grader.assignment import (  # noqa: E402
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    strip_region,
)

KINDS = ("readonly", "answer", "tests", "manual")
_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
_TOTAL = re.compile(r"\*\*Total: (\d+(?:\.\d+)?) points\*\*")


class CourseError(Exception):
    """A problem the instructor must fix; the message says what and where."""


# ------------------------------------------------------------------ nbgrader preprocessors


class LimitOutputSize(NbGraderPreprocessor):
    """Truncate long text outputs (nbgrader's LimitOutput counts lines, not characters)."""

    max_chars = 20_000

    def _cut(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        return (text[: self.max_chars]
                + f"\n... output truncated ({len(text)} characters in all) ...\n")

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = self._cut(output.get("text", ""))
            elif "data" in output and "text/plain" in output["data"]:
                output["data"]["text/plain"] = self._cut(output["data"]["text/plain"])
                for key in [k for k in output["data"] if k != "text/plain"]:
                    if len(str(output["data"][key])) > 50 * self.max_chars:
                        del output["data"][key]
        return cell, resources


# -------------------------------------------------------------------------------- build


def _cell_id(cell, used: set) -> str:
    base = cell.metadata.get("nbgrader", {}).get("grade_id")
    if not base:
        digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        base = f"{cell.cell_type[:2]}-{digest}"
    cid, k = base, 1
    while cid in used:
        k += 1
        cid = f"{base}-{k}"
    used.add(cid)
    return cid


_HEADING = re.compile(r"^(#{1,6})\s+(.+)$", re.MULTILINE)
_SECTION_POINTS = re.compile(r"\((\d+(?:\.\d+)?) points?\)\s*$")


def _check_section(source: Path, section: list) -> None:
    """A heading that states its points must head graded cells worth exactly that."""
    _, title, stated_points, found = section
    if stated_points != found:
        raise CourseError(f"{source.name}: section '{title}' states {stated_points:g} points, "
                          f"its graded cells add up to {found:g}")


def build_notebook(source: Path) -> nbformat.NotebookNode:
    """Read ``solutions/<a>.py`` and return the nbgrader source notebook, after checks.

    Raises CourseError naming the cell when the source breaks a rule of the template.
    """
    import jupytext

    nb = jupytext.read(source, fmt="py:percent")
    cells, ids, total = [], set(), 0.0
    stated = None
    sections: list[list] = []  # [heading level, title, stated points, points of its cells]
    for i, cell in enumerate(nb.cells):
        meta = dict(cell.metadata)
        kind = meta.pop("nbgrader", None)
        grade_id = meta.pop("grade_id", None)
        points = meta.pop("points", None)
        where = f"{source.name}, cell {i + 1} ({grade_id or cell.cell_type})"
        text = cell.source
        if kind == "tests":
            # Hidden tests stay in the source text: the notebook nbgrader stores (and runs in
            # the student's kernel) has only the visible ones; grader/ runs the rest.
            text = strip_region(text, BEGIN_HIDDEN, END_HIDDEN).rstrip("\n")
        if cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(text)
            found = _TOTAL.search(text)
            if found:
                stated = float(found.group(1))
            for heading in _HEADING.finditer(text):
                level, title = len(heading.group(1)), heading.group(2).strip()
                while sections and sections[-1][0] >= level and len(sections[-1]) == 4:
                    _check_section(source, sections.pop())
                points_stated = _SECTION_POINTS.search(title)
                if points_stated:
                    sections.append([level, title, float(points_stated.group(1)), 0.0])
        else:
            new = nbformat.v4.new_code_cell(text)
        if kind is None:
            if grade_id is not None or points is not None:
                raise CourseError(f"{where}: grade_id/points given without nbgrader=...")
            if any(m in text for m in (BEGIN_SOLUTION, BEGIN_HIDDEN)):
                raise CourseError(f"{where}: solution or hidden-test markers outside an "
                                  f"answer/tests cell")
        else:
            if kind not in KINDS:
                raise CourseError(f"{where}: nbgrader={kind!r}, expected one of {KINDS}")
            if not grade_id or not re.fullmatch(r"[A-Za-z0-9_-]+", grade_id):
                raise CourseError(f"{where}: needs grade_id=\"...\" (letters, digits, _ or -)")
            if grade_id in ids:
                raise CourseError(f"{where}: duplicate grade_id {grade_id!r}")
            ids.add(grade_id)
            _check_cell(where, kind, cell.cell_type, cell.source, points)
            graded = kind in ("tests", "manual")
            new.metadata["nbgrader"] = {
                "grade": graded,
                "grade_id": grade_id,
                "locked": kind in ("readonly", "tests"),
                "schema_version": 3,
                "solution": kind in ("answer", "manual"),
                "task": False,
            }
            if graded:
                new.metadata["nbgrader"]["points"] = points
                total += float(points)
                if sections:
                    sections[-1][3] += float(points)
        if kind in ("readonly", "tests"):
            new.metadata.update({"deletable": False, "editable": False})
        new["id"] = ""
        cells.append(new)
    while sections:
        _check_section(source, sections.pop())
    used_ids: set[str] = set()
    for cell in cells:
        cell["id"] = _cell_id(cell, used_ids)
    if stated is None:
        raise CourseError(f"{source.name}: no '**Total: N points**' in the instructions")
    if stated != total:
        raise CourseError(f"{source.name}: the instructions state {stated:g} points, the "
                          f"graded cells add up to {total:g}")
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python", "file_extension": ".py",
                          "mimetype": "text/x-python"},
    }
    nbformat.validate(out)
    return out


def _check_cell(where, kind, cell_type, text, points):
    code_kinds = ("readonly", "answer", "tests")
    if (kind in code_kinds) != (cell_type == "code"):
        raise CourseError(f"{where}: nbgrader={kind!r} needs a "
                          f"{'code' if kind in code_kinds else 'markdown'} cell")
    if kind in ("tests", "manual"):
        if not isinstance(points, int | float) or points <= 0:
            raise CourseError(f"{where}: needs points=N with N > 0, got {points!r}")
    elif points is not None:
        raise CourseError(f"{where}: points only go on tests and manual cells")
    has_solution = BEGIN_SOLUTION in text or END_SOLUTION in text
    has_hidden = BEGIN_HIDDEN in text or END_HIDDEN in text
    if kind == "answer" and not (BEGIN_SOLUTION in text and END_SOLUTION in text):
        raise CourseError(f"{where}: an answer cell wraps its solution in "
                          f"{BEGIN_SOLUTION} / {END_SOLUTION}")
    if kind != "answer" and has_solution:
        raise CourseError(f"{where}: solution markers only go in answer cells")
    if kind != "tests" and has_hidden:
        raise CourseError(f"{where}: hidden-test markers only go in tests cells")
    if has_hidden and text.count(BEGIN_HIDDEN) != text.count(END_HIDDEN):
        raise CourseError(f"{where}: unbalanced hidden-test markers")
    if kind == "tests":
        first = text.split("\n", 1)[0]
        if not first.startswith(f"# {points:g} point"):
            raise CourseError(f"{where}: the first line must state the points, "
                              f"'# {points:g} point(s): ...', got {first!r}")


def copy_course(dest: Path, names=None, *, config: str = "", source: Path = ROOT) -> Path:
    """A throwaway course root at ``dest`` (created if missing): the nbgrader configuration
    with ``config`` appended, ``tools/``, ``grader/`` and the sources ``solutions/<name>.py``
    of ``names`` (every assignment by default). Nothing is released yet.

    Tests and benchmarks grade there, never in the course itself (``generate_assignment
    --force`` after submissions can delete a release)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "nbgrader_config.py").write_text((source / "nbgrader_config.py").read_text() + config)
    for folder in ("tools", "grader"):
        shutil.copytree(source / folder, dest / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "solutions").mkdir(exist_ok=True)
    for name in assignments_in(source) if names is None else names:
        shutil.copy(source / "solutions" / f"{name}.py", dest / "solutions")
    return dest


def assignments_in(root: Path, wanted=()) -> list[str]:
    """Assignment names with a source text ``solutions/<name>.py``, or the wanted ones."""
    found = sorted(p.stem for p in (root / "solutions").glob("*.py") if _NAME.match(p.stem))
    for name in wanted:
        if name not in found:
            raise CourseError(f"no assignment {name!r}: expected solutions/{name}.py "
                              f"(have: {', '.join(found) or 'none'})")
    return list(wanted) or found


def build(root: Path, wanted=()) -> list[str]:
    """Write ``solutions/<a>/<a>.ipynb`` from ``solutions/<a>.py``; return the names."""
    names = assignments_in(root, wanted)
    for name in names:
        nb = build_notebook(root / "solutions" / f"{name}.py")
        target = root / "solutions" / name / f"{name}.ipynb"
        target.parent.mkdir(exist_ok=True)
        text = nbformat.writes(nb) + "\n"
        changed = not target.exists() or target.read_text() != text
        if changed:
            target.write_text(text)
        n_points = sum(c.metadata.get("nbgrader", {}).get("points", 0) for c in nb.cells)
        print(f"build    {name}: {len(nb.cells)} cells, {n_points:g} points -> "
              f"{target.relative_to(root)}{'' if changed else ' (unchanged)'}")
    return names


# ----------------------------------------------------------------------- nbgrader access


def _environment() -> None:
    """nbgrader runs alembic and the kernel from this interpreter's environment."""
    import warnings

    from nbformat.warnings import MissingIDFieldWarning
    from sqlalchemy.exc import SAWarning

    # nbgrader's gradebook triggers SQLAlchemy autoflush warnings, and the cells it restores
    # have no id; neither means anything here.
    warnings.filterwarnings("ignore", category=SAWarning)
    warnings.filterwarnings("ignore", category=MissingIDFieldWarning)
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("MPLBACKEND", "Agg")


def _api(root: Path, unsafe: bool = False, *, db: Path | None = None,
         autograded: Path | None = None, precomputed: Path | None = None):
    """An NbGraderAPI for the course root, configured by its nbgrader_config.py.

    ``db`` and ``autograded`` redirect the gradebook and the autograded folder (a worker of a
    parallel autograde); ``precomputed`` makes autograde take the outputs workers wrote there
    instead of running anything (grader.parallel)."""
    import logging

    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    _environment()
    config_file = root / "nbgrader_config.py"
    if not config_file.exists():
        raise CourseError(f"{config_file} not found: is {root} a course root?")
    config = PyFileConfigLoader(config_file.name, path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    config.TrustedChecks.course_root = str(root)
    config.SanitizeFeedback.course_root = str(root)
    if unsafe:
        config.TrustedChecks.unsafe = True
        config.SandboxedKernelManager.unsafe = True
    if db is not None:
        config.CourseDirectory.db_url = f"sqlite:///{db}"
    if autograded is not None:
        config.CourseDirectory.autograded_directory = str(autograded)
    if precomputed is not None:
        from grader.kernel import SandboxedExecute
        from grader.parallel import Precomputed
        from grader.trusted import StartWorker, TrustedChecks

        steps = [s for s in config.Autograde.autograde_preprocessors
                 if s not in (TrustedChecks, StartWorker)]
        config.Autograde.autograde_preprocessors = [
            Precomputed if s is SandboxedExecute else s for s in steps]
        config.Precomputed.directory = str(precomputed)
    coursedir = CourseDirectory(config=config)
    quiet = logging.getLogger("traitlets")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL + 1)  # the API probes the (unused) exchange and complains
    try:
        api = NbGraderAPI(coursedir=coursedir, config=config)
    finally:
        quiet.setLevel(level)
    api.log.setLevel(logging.ERROR)
    return api


def _gradebook(api):
    from nbgrader.api import Gradebook

    return Gradebook(api.coursedir.db_url)


def _fail(result: dict) -> str:
    text = (result.get("error") or "") + (result.get("log") or "")
    errors = [ln for ln in text.splitlines() if "[ERROR]" in ln or "Error" in ln]
    return "\n      ".join((errors or text.splitlines() or ["unknown error"])[-8:])


@contextlib.contextmanager
def _temporary_release(api):
    """Point nbgrader's release directory at a scratch folder for the duration."""
    from nbgrader.utils import temp_attrs

    scratch = Path(tempfile.mkdtemp(prefix="nbgrader-release-"))
    try:
        with temp_attrs(api.coursedir, release_directory=str(scratch)):
            yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _generate(api, name: str) -> None:
    """Run generate_assignment (inside ``_temporary_release``); CourseError if it fails."""
    result = api.generate_assignment(name, force=True, create=True)
    if not result["success"]:
        raise CourseError(f"nbgrader generate_assignment {name} failed:\n      {_fail(result)}")


def _found_in(notebook: Path, markers, secret) -> list[str]:
    """The ``markers`` and the distinctive ``secret`` lines that appear in ``notebook``."""
    nb = nbformat.read(notebook, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    lines = {ln.strip() for ln in text.split("\n")}
    return ([m for m in markers if m in text]
            + sorted(ln for ln in secret if len(ln) >= 20 and ln in lines))


def check_release(source: Path, notebook: Path) -> list[str]:
    """Solution, model-answer and hidden-test lines of ``source`` (``solutions/<a>.py``) that
    appear in ``notebook`` (a release, or the nbgrader source notebook for hidden tests)."""
    a = assignments.load(source.parents[1], source.stem)
    return _found_in(notebook, (BEGIN_SOLUTION, BEGIN_HIDDEN),
                     (a.solution_lines | a.hidden_lines) - a.visible_lines)


def check_source_notebook(source: Path, notebook: Path) -> list[str]:
    """Hidden-test lines in the nbgrader source notebook (the gradebook's copy of the tests
    must not hold them)."""
    a = assignments.load(source.parents[1], source.stem)
    return _found_in(notebook, (BEGIN_HIDDEN,), a.hidden_lines - a.visible_lines)


def release(root: Path, wanted=()) -> None:
    """Build, generate the student version in a scratch folder, check it, then replace
    ``exercises/<a>/``; the gradebook learns the assignment's cells and points."""
    names = build(root, wanted)
    api = _api(root)
    for name in names:
        start = time.perf_counter()
        with _temporary_release(api) as scratch:
            _generate(api, name)
            made = scratch / name
            source = root / "solutions" / f"{name}.py"
            leaks = check_release(source, made / f"{name}.ipynb")
            leaks += check_source_notebook(source, root / "solutions" / name / f"{name}.ipynb")
            if leaks:
                raise CourseError(f"release {name}: the student version contains solution "
                                  f"or hidden-test text: {leaks[:5]}")
            target = root / "exercises" / name
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(exist_ok=True)
            shutil.copytree(made, target)
            for path in target.rglob("*"):
                if path.is_file():
                    path.chmod(0o644)
        with _gradebook(api) as gb:
            max_score = gb.find_assignment(name).max_score
        print(f"release  {name}: exercises/{name}/ ({max_score:g} points in the gradebook, "
              f"no solution or hidden test in the release, {time.perf_counter() - start:.1f} s)")


# ----------------------------------------------------------------------------- autograde


def submissions(root: Path, directory: str, wanted=(), student=None) -> list[tuple[str, str]]:
    """(student, assignment) pairs found as ``<directory>/<student>/<assignment>/``."""
    base = root / directory
    pairs = sorted((p.parent.name, p.name) for p in base.glob("*/*") if p.is_dir())
    return [(s, a) for s, a in pairs
            if (not wanted or a in wanted) and (student is None or s == student)]


def _ensure_in_gradebook(api, name: str) -> None:
    from nbgrader.api import MissingEntry

    with _gradebook(api) as gb:
        try:
            gb.find_assignment(name)
            return
        except MissingEntry:
            pass
    if not (Path(api.coursedir.root) / "solutions" / name).is_dir():
        raise CourseError(f"submissions for {name!r}, but no solutions/{name}/")
    with _temporary_release(api):
        _generate(api, name)
    print(f"gradebook: registered {name} from solutions/{name}/")


def _score(api, student: str, name: str) -> str:
    with _gradebook(api) as gb:
        sub = gb.find_submission(name, student)
        manual = " (+ manual grading pending)" if sub.needs_manual_grade else ""
        return f"{sub.score:g} / {sub.max_score:g}{manual}"


def _up_to_date(api, student: str, name: str) -> bool:
    """Whether the autograded copy exists and is not older than the submission (nbgrader's
    own rule, from the submissions' timestamp.txt files)."""
    cd = api.coursedir
    source = cd.format_path(cd.submitted_directory, student, name)
    dest = cd.format_path(cd.autograded_directory, student, name)
    if not os.path.isdir(dest):
        return False
    new, old = cd.get_existing_timestamp(source), cd.get_existing_timestamp(dest)
    return new is None or old is None or new <= old


#: The most a submission folder may hold; a larger one is not graded (the instructor is told).
MAX_SUBMISSION_BYTES = 100 << 20


def inspect_submission(folder: Path) -> str | None:
    """Why a submission folder must not be graded, or None.

    nbgrader copies a submission's files as the instructor before any sandbox exists, so a
    symbolic link (to the gradebook, to solutions/) or a special file would be followed
    there. Such submissions, and oversized ones, are refused and reported, never altered.
    """
    total = 0
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            return f"it contains a symbolic link ({path.relative_to(folder)})"
        if not (path.is_file() or path.is_dir()):
            return f"it contains a special file ({path.relative_to(folder)})"
        if path.is_file():
            total += path.stat().st_size
    if total > MAX_SUBMISSION_BYTES:
        return (f"it holds {total / 2**20:.0f} MiB, more than "
                f"{MAX_SUBMISSION_BYTES / 2**20:.0f} MiB")
    return None


def _grade_in_scratch(root: str, name: str, sid: str, unsafe: bool, scratch: str,
                     snapshot: str) -> tuple[bool, str, float]:
    """A parallel worker: grade one submission against a private copy of the gradebook,
    writing its autograded notebook under ``scratch``; the parent imports the result."""
    import contextlib
    import io

    own_db = Path(scratch) / ".gradebooks" / f"{sid}--{name}.db"
    own_db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(snapshot, own_db)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        api = _api(Path(root), unsafe, db=own_db, autograded=Path(scratch))
        result = api.autograde(name, sid, force=True, create=True)
    own_db.unlink(missing_ok=True)
    return bool(result["success"]), "" if result["success"] else _fail(result), (
        time.perf_counter() - start)


def _autograde_parallel(root: Path, api, todo, jobs: int, unsafe: bool) -> int:
    """Grade ``todo`` [(student, assignment)] with ``jobs`` workers; the gradebook is written
    here only, one submission at a time, by nbgrader (grader.parallel)."""
    import multiprocessing
    import sqlite3
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    failed, importing = 0, 0.0
    scratch = Path(tempfile.mkdtemp(prefix="autograde-parallel-"))
    snapshot = scratch / "gradebook-snapshot.db"
    try:
        # A consistent copy of the gradebook (assignments, cells, points) for the workers.
        source = sqlite3.connect(api.coursedir.db_url.removeprefix("sqlite:///"))
        target = sqlite3.connect(snapshot)
        source.backup(target)
        source.close()
        target.close()
        importer = _api(root, unsafe, precomputed=scratch)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool, tqdm(
                total=len(todo), unit="notebook", desc="autograde", file=sys.stderr,
                dynamic_ncols=True) as bar:
            futures = {pool.submit(_grade_in_scratch, str(root), name, sid, unsafe,
                                   str(scratch), str(snapshot)): (sid, name)
                       for sid, name in todo}
            for future in as_completed(futures):
                sid, name = futures[future]
                bar.update(1)
                try:
                    ok, why, seconds = future.result()
                except Exception as exc:  # a worker process died: this submission only
                    ok, why, seconds = False, f"the grading process failed: {exc}", 0.0
                # nbgrader records the submission in the gradebook even when it fails, as a
                # serial run would: import whatever the worker left.
                began = time.perf_counter()
                result = importer.autograde(name, sid, force=True, create=True)
                importing += time.perf_counter() - began
                if not result["success"]:
                    ok, why = False, why or _fail(result)
                if not ok:
                    failed += 1
                    tqdm.write(f"autograde {sid}/{name}: FAILED ({seconds:.1f} s)\n      {why}")
                    continue
                tqdm.write(f"autograde {sid}/{name}: {_score(api, sid, name)} "
                           f"({seconds:.1f} s)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"autograde: {jobs} jobs; recording the results in the gradebook took "
          f"{importing:.1f} s in this process ({importing / max(1, len(todo)):.2f} s per "
          f"notebook, the serial part)")
    return failed


def autograde(root: Path, wanted=(), student=None, force=False, unsafe=False,
              jobs: int = 1) -> int:
    """Autograde every submission in ``submitted/`` (or the selected ones); failures of one
    submission do not stop the others. Returns the number of submissions nbgrader could not
    process.

    Student code runs only in the sandbox (grader.sandbox): the notebook's kernel and the
    worker that the trusted checks call. Without a working sandbox this raises CourseError,
    unless ``unsafe`` (``--unsafe-no-sandbox``), which is logged loudly.
    """
    from grader.sandbox import SandboxUnavailable, preflight

    try:
        line = preflight(unsafe)
    except SandboxUnavailable as exc:
        raise CourseError(f"refusing to run student code: {exc}") from None
    print(f"autograde: {line}", file=sys.stderr if unsafe else sys.stdout)
    api = _api(root, unsafe=unsafe)
    pairs = submissions(root, "submitted", wanted, student)
    if not pairs:
        print("autograde: no submissions found in submitted/<student>/<assignment>/")
        return 0
    from authoring import uncatalogued

    for name in sorted({a for _, a in pairs}):
        _ensure_in_gradebook(api, name)
        for function in uncatalogued(root, name):
            print(f"autograde: warning: {name}: {function} has no entry in the catalog "
                  f"(grader/catalog/), so failures of {function} will be reported without a "
                  f"likely cause")
    failed = kept = 0
    todo = []
    for sid, name in pairs:
        if not force and _up_to_date(api, sid, name):
            kept += 1
            print(f"autograde {sid}/{name}: up to date, kept {_score(api, sid, name)} "
                  f"(--force to regrade)")
            continue
        problem = inspect_submission(root / "submitted" / sid / name)
        if problem is not None:
            failed += 1
            print(f"autograde {sid}/{name}: FAILED, not graded: {problem}; ask the student "
                  f"to resubmit without it")
            continue
        todo.append((sid, name))
    if jobs > 1 and len(todo) > 1:
        failed += _autograde_parallel(root, api, todo, jobs, unsafe)
        todo = []
    for sid, name in todo:
        start = time.perf_counter()
        result = api.autograde(name, sid, force=True, create=True)
        seconds = time.perf_counter() - start
        if not result["success"]:
            failed += 1
            print(f"autograde {sid}/{name}: FAILED ({seconds:.1f} s)\n      {_fail(result)}")
            continue
        print(f"autograde {sid}/{name}: {_score(api, sid, name)} ({seconds:.1f} s)")
    print(f"autograde: {len(pairs)} submissions: {len(pairs) - kept - failed} graded, "
          f"{kept} up to date, {failed} failed")
    return failed


# ------------------------------------------------------------------------------ feedback


def _own_text(root: Path, student: str, name: str) -> str:
    """Everything the student submitted for ``name`` (their own words never count as a leak)."""
    folder = root / "submitted" / student / name
    parts = []
    for path in sorted(folder.glob("*.ipynb")) if folder.is_dir() else []:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:
            continue
        parts += [c.source for c in nb.cells]
    return "\n".join(parts)


def feedback(root: Path, wanted=(), student=None) -> int:
    """HTML feedback for every autograded submission, rebuilt from sanitized results
    (grader.feedback), each page checked for every assignment's solutions and hidden tests
    before it is kept; nothing else the submission wrote is published."""
    from grader.feedback import leaks, secret_lines

    api = _api(root)
    pairs = submissions(root, "autograded", wanted, student)
    if not pairs:
        print("feedback: nothing autograded yet (run autograde first)")
        return 0
    problems = 0
    secrets = secret_lines(root)
    for name in sorted({a for _, a in pairs}):
        start = time.perf_counter()
        result = api.generate_feedback(name, student, force=True)
        if not result["success"]:
            problems += 1
            print(f"feedback {name}: FAILED\n      {_fail(result)}")
            continue
        done = [s for s, a in pairs if a == name]
        for sid in done:
            folder = root / "feedback" / sid / name
            for path in sorted(folder.rglob("*"), reverse=True) if folder.is_dir() else []:
                if path.is_symlink() or (path.is_file() and path.suffix != ".html"):
                    path.unlink()
                elif path.is_dir() and path != folder:
                    shutil.rmtree(path, ignore_errors=True)
            pages = sorted(folder.glob("*.html"))
            own = _own_text(root, sid, name)
            leaked = {p.name: leaks(p.read_text(errors="replace"), secrets, own) for p in pages}
            leaked = {k: v for k, v in leaked.items() if v}
            if not pages or leaked:
                problems += 1
                for page in leaked:
                    (folder / page).unlink()
                why = (f"it showed solution or hidden-test lines: {leaked}" if leaked
                       else "no page was written")
                print(f"feedback {sid}/{name}: FAILED, {why}")
        print(f"feedback {name}: {len(done)} submissions -> feedback/<student>/{name}/ "
              f"({time.perf_counter() - start:.1f} s, no solution or hidden test in any page)")
    return problems


# -------------------------------------------------------------------------------- grades


GRADE_COLUMNS = ["student", "assignment", "score", "max_score", "percent", "needs_manual_grade",
                 "autograded_score", "autograded_max", "manual_score", "pending_manual",
                 "late_penalty", "timestamp"]


def grade_rows(api) -> list[dict]:
    """One row per submission in the gradebook.

    ``score`` is what nbgrader counts (a manual grade where given, else the autograder's,
    minus any late penalty) out of ``max_score``. ``autograded_score`` is the autograder's
    verdict on the test cells (out of ``autograded_max``), ``manual_score`` the points given
    by hand so far, and ``pending_manual`` the points still to be graded by hand. While any
    are pending, ``percent`` is empty: the final score is not known, and pending is not zero.
    """
    rows = []
    with _gradebook(api) as gb:
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            for sub in sorted(assignment.submissions, key=lambda s: s.student.id):
                auto = auto_max = manual = pending = 0.0
                for nb in sub.notebooks:
                    for grade in nb.grades:
                        if grade.cell_type == "code":
                            auto += grade.auto_score or 0.0
                            auto_max += grade.max_score
                        if grade.manual_score is not None:
                            manual += grade.manual_score + (grade.extra_credit or 0.0)
                        if grade.needs_manual_grade:
                            pending += grade.max_score
                penalty = sub.late_submission_penalty or 0.0
                score = sub.score - penalty
                done = not sub.needs_manual_grade
                rows.append({
                    "student": sub.student.id,
                    "assignment": assignment.name,
                    "score": round(score, 4),
                    "max_score": round(sub.max_score, 4),
                    "percent": (round(100 * score / sub.max_score, 2) if sub.max_score else 0)
                    if done else "",
                    "needs_manual_grade": not done,
                    "autograded_score": round(auto, 4),
                    "autograded_max": round(auto_max, 4),
                    "manual_score": round(manual, 4),
                    "pending_manual": round(pending, 4),
                    "late_penalty": round(penalty, 4),
                    "timestamp": f"{sub.timestamp:%Y-%m-%d %H:%M:%S}" if sub.timestamp else "",
                })
    return rows


def grades(root: Path, out: Path) -> None:
    """Write ``grades.csv`` and one histogram PNG per assignment into ``out``.

    The histogram shows the autograded score, the one score every submission has; those
    still waiting for manual grading are stacked in a separate, hatched colour.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    api = _api(root)
    rows = grade_rows(api)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "grades.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=GRADE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    waiting = [r for r in rows if r["needs_manual_grade"]]
    print(f"grades   {out / 'grades.csv'}: {len(rows)} submissions"
          + (f", {len(waiting)} with manual grading pending (percent left empty)"
             if waiting else ""))
    for name in sorted({r["assignment"] for r in rows}):
        mine = [r for r in rows if r["assignment"] == name]
        auto = {k: [100 * r["autograded_score"] / r["autograded_max"] if r["autograded_max"]
                    else 0.0 for r in mine if r["needs_manual_grade"] == k]
                for k in (False, True)}
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist([auto[False], auto[True]], bins=range(0, 101, 10), stacked=True,
                color=["tab:blue", "tab:orange"], edgecolor="white",
                hatch=None, label=["fully graded", "manual grading pending"])
        for patch in ax.patches[len(ax.patches) // 2:]:
            patch.set_hatch("//")
        scores = auto[False] + auto[True]
        mean = sum(scores) / len(scores)
        ax.set(xlabel="autograded score (% of the autograded points)", ylabel="submissions",
               xlim=(0, 100),
               title=f"{name}: {len(scores)} submissions, mean autograded {mean:.0f}%")
        if auto[True]:
            ax.legend(loc="upper left", fontsize="small")
        ax.yaxis.get_major_locator().set_params(integer=True)
        fig.tight_layout()
        path = out / f"{name}_scores.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        print(f"grades   {path}: histogram of {len(scores)} autograded scores (mean "
              f"{mean:.1f}%, {len(auto[True])} awaiting manual grading)")


# ---------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="course", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="course root directory")
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in ("build", "release", "autograde", "feedback"):
        p = sub.add_parser(cmd)
        p.add_argument("assignments", nargs="*")
        if cmd in ("autograde", "feedback"):
            p.add_argument("--student")
        if cmd == "autograde":
            p.add_argument("--force", action="store_true",
                           help="regrade submissions that are already autograded")
            p.add_argument("--unsafe-no-sandbox", action="store_true",
                           help="run student code WITHOUT the sandbox (only for trusted code)")
            p.add_argument("--jobs", "-j", type=int, default=1,
                           help="grade this many submissions at once (each in its sandbox)")
    sub.add_parser("configure", help="write _config.yml's repository.url into every "
                                     "install line (chapters and solutions)")
    p = sub.add_parser("grades")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: grades/)")
    p.add_argument("--roster", type=Path, help="LMS roster CSV: also write canvas_grades.csv")
    p.add_argument("--student-column", default="SIS Login ID",
                   help="roster column holding the nbgrader student id")
    # The exchange and the LMS (tools/exchange.py, tools/lms.py).
    for cmd in ("publish", "collect", "return"):
        p = sub.add_parser(cmd)
        p.add_argument("assignments", nargs="*")
    sub.choices["return"].add_argument("--student")
    p = sub.choices["collect"]
    p.add_argument("--before-duedate", action="store_true",
                   help="take each student's latest submission before the due date")
    p.add_argument("--zip", type=Path, help="import an LMS zip of submissions instead")
    p.add_argument("--roster", type=Path, help="LMS roster CSV mapping LMS ids to students")
    p.add_argument("--pattern", default="canvas",
                   help="file names in the zip: canvas, moodle or a regular expression")
    p.add_argument("--student-column", default="SIS Login ID")
    p.add_argument("--lms-id-column", default="ID")
    p = sub.add_parser("new", help="scaffold a new assignment (tools/authoring.py)")
    p.add_argument("assignment", help="NN_topic, e.g. 07_whitening")
    p.add_argument("--chapter", type=Path, help="chapter notebook to link to the exercise")
    p.add_argument("--title", help="the assignment's title")
    p = sub.add_parser("check", help="the fast checks of one assignment")
    p.add_argument("assignment")
    p = sub.add_parser("due")
    p.add_argument("assignment")
    p.add_argument("when", help="'2026-12-10 23:59:00 Europe/Berlin', or 'none'")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.command == "build":
            build(root, args.assignments)
        elif args.command == "release":
            release(root, args.assignments)
        elif args.command == "autograde":
            if args.jobs < 1:
                raise CourseError(f"--jobs must be at least 1, got {args.jobs}")
            return 1 if autograde(root, args.assignments, args.student, args.force,
                                  args.unsafe_no_sandbox, args.jobs) else 0
        elif args.command == "feedback":
            return 1 if feedback(root, args.assignments, args.student) else 0
        elif args.command == "configure":
            import settings

            changed = settings.configure(root)
            for path in changed:
                print(f"configure: {path.relative_to(root)}")
            print(f"configure: {len(changed)} file(s) now install normcore from "
                  f"{settings.read(root)['repository']}"
                  + ("; run `make release` for the exercises" if changed else ""))
            for message in settings.placeholder_messages(settings.read(root)):
                print(f"configure: WARNING: {message}", file=sys.stderr)
        elif args.command == "grades":
            grades(root, args.out or root / "grades")
            if args.roster:
                import lms

                return 1 if lms.export_canvas(root, args.roster, args.out or root / "grades",
                                              student_column=args.student_column) else 0
        elif args.command in ("new", "check"):
            import authoring

            if args.command == "check":
                return 1 if authoring.check(root, args.assignment) else 0
            authoring.new(root, args.assignment, chapter=args.chapter, title=args.title)
        elif args.command in ("publish", "collect", "return", "due"):
            import exchange
            import lms

            if args.command == "publish":
                return 1 if exchange.publish(root, args.assignments) else 0
            if args.command == "return":
                return 1 if exchange.return_feedback(root, args.assignments, args.student) else 0
            if args.command == "due":
                exchange.set_due(root, args.assignment, args.when)
            elif args.zip:
                return 1 if lms.import_zip(root, args.zip, args.roster, args.assignments,
                                           pattern=args.pattern,
                                           student_column=args.student_column,
                                           lms_id_column=args.lms_id_column) else 0
            else:
                return 1 if exchange.collect(root, args.assignments, args.before_duedate) else 0
    except CourseError as exc:
        print(f"course {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.modules.setdefault("course", sys.modules["__main__"])  # one module for tools/exchange.py
    sys.exit(main())
