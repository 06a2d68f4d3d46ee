"""The verdict: every graded test cell decided in the instructor's process.

For one submitted notebook, :func:`grade_notebook` starts a sandboxed worker with the
student's code (:class:`grader.student.Submission`), then runs each test cell of the
assignment's source, visible and hidden tests together, here, in a fresh namespace that
holds the setup cell's imports and a :class:`~grader.student.StudentFunction` for each of the
student's functions. The checks of :mod:`normcore.grading` make the inputs, call the
references, compare and diagnose with the catalog (:mod:`grader.catalog`); the student's code
only ever receives inputs and returns values.

:class:`TrustedChecks` is the nbgrader preprocessor that puts these verdicts into the
autograded notebook: each test cell's outputs are replaced by the trusted result (nothing,
or one error naming what is wrong), so nbgrader's own scoring (a cell with an error output
scores 0) counts exactly the cells the trusted checks passed, whatever the student's kernel
printed.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Float, Unicode

from . import assignment as assignments
from . import catalog  # noqa: F401  (registers the mistakes with normcore.grading)
from .student import Submission, WorkerFailure, stage_once

MAX_MESSAGE = 3000


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def worker_cells(nb, assignment: assignments.Assignment) -> list[dict]:
    """The code that the worker runs for a submitted notebook.

    The setup cells come from the source (a student cannot change the imports the tests rely
    on); then, in notebook order, the student's answer cells (by grade_id, first occurrence)
    and the code cells the student added (helpers). Test cells and the release's other cells
    (demonstrations) are not run.
    """
    cells = [{"label": "setup", "source": src, "baseline": True} for src in assignment.setup]
    answers, tests = set(assignment.answers), {t.grade_id for t in assignment.tests}
    plain = {src.strip() for src in assignment.plain} | {s.strip() for s in assignment.setup}
    seen = set()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        grade_id = _meta(cell).get("grade_id")
        if grade_id in answers and grade_id not in seen:
            seen.add(grade_id)
            cells.append({"label": grade_id, "source": cell.source})
        elif grade_id in tests or grade_id in answers:
            continue
        elif not _meta(cell) and cell.source.strip() and cell.source.strip() not in plain:
            cells.append({"label": f"cell {index + 1}", "source": cell.source})
    return cells


def _message(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
    text = text.strip() or type(exc).__name__
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " ..."


def run_tests(assignment: assignments.Assignment, provide: Callable[[dict, set], None],
              grade_ids=None, *, visible_only: bool = False) -> dict[str, str | None]:
    """Run the assignment's test cells here; ``{grade_id: None if passed, else message}``.

    ``provide(namespace, setup_names)`` puts the student's functions into each cell's fresh
    namespace (after the setup cells ran in it). ``visible_only`` runs only the visible part
    of each cell (what a student's own kernel runs), e.g. to measure what it catches.
    """
    import normcore.grading

    verdicts = {}
    for test in assignment.tests:
        if grade_ids is not None and test.grade_id not in grade_ids:
            continue
        namespace = {"__name__": "__grader__"}
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                for source in assignment.setup:
                    exec(compile(source, "<setup>", "exec"), namespace)
                namespace["grading"] = normcore.grading
                provide(namespace, set(namespace))
                source = test.visible if visible_only else test.full
                exec(compile(source, f"<{test.grade_id}>", "exec"), namespace)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure of the cell is a verdict
            verdicts[test.grade_id] = _message(exc)
        else:
            verdicts[test.grade_id] = None
    return verdicts


def functions_provider(functions: dict[str, Callable]):
    """A ``provide`` for :func:`run_tests` from plain callables (tests, instructor checks)."""

    def provide(namespace, setup_names):
        for name, fn in functions.items():
            if name not in setup_names:
                namespace[name] = fn

    return provide


class Started:
    """A submission's worker, started in a background thread (while the kernel runs)."""

    def __init__(self, nb, assignment: assignments.Assignment, *, unsafe=False, staged=None,
                 startup_limit=60.0, cell_limit=30.0):
        import threading

        self.submission = Submission(worker_cells(nb, assignment), staged or stage_once(),
                                     unsafe=unsafe, startup_limit=startup_limit,
                                     cell_limit=cell_limit)
        self.failure: str | None = None
        # The process is started here, in the grading thread (the sandbox dies with the
        # thread that started it); only the wait for its report runs in the background.
        try:
            self.submission.spawn()
        except Exception as exc:  # noqa: BLE001
            self.failure = f"the grader could not start your code: {exc}"
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self):
        if self.failure is not None:
            return
        try:
            self.submission.wait_ready()
        except WorkerFailure as exc:
            self.failure = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported as this submission's failure
            self.failure = f"the grader could not start your code: {exc}"

    def result(self) -> Submission:
        self.thread.join()
        return self.submission


def grade_notebook(nb, assignment: assignments.Assignment, *, unsafe: bool = False,
                   staged=None, startup_limit: float = 60.0, cell_limit: float = 30.0,
                   started: Started | None = None) -> dict[str, str | None]:
    """Verdicts for a submitted notebook, its code run in a sandboxed worker (``started``:
    a worker already started for it)."""
    started = started or Started(nb, assignment, unsafe=unsafe, staged=staged,
                                 startup_limit=startup_limit, cell_limit=cell_limit)
    with started.result() as sub:
        if started.failure is not None:
            return {t.grade_id: started.failure for t in assignment.tests}

        broken = {str(c.get("label")): c for c in sub.cell_report if c.get("error")}

        def provide(namespace, setup_names):
            for name in sub.functions:
                if name not in setup_names:
                    namespace[name] = sub.function(name)
            for name in assignment.answers:
                if name not in sub.functions and name in broken and name not in setup_names:
                    namespace[name] = _undefined(name, broken[name])

        # Delegation cannot happen in the worker (the references are not there), so the
        # trusted process need not profile its own calls for it.
        import normcore.grading

        with normcore.grading.calls_unwatched():
            return run_tests(assignment, provide)


def _undefined(name: str, report: dict):
    """Stands in for a function whose cell failed when the grader ran it: says why."""
    if report.get("unavailable"):
        why = (f"{name} is not defined when graded: its cell uses "
               f"{str(report['unavailable'])[:120]}, which computes the graded operation for "
               f"you. Write the computation yourself with NumPy; calling normcore's reference, "
               f"torch or scikit-learn earns no points.")
    else:
        why = (f"{name} is not defined when graded: running its cell raised "
               f"{str(report.get('error'))[:300]}.")

    def undefined(*args, **kwargs):
        raise AssertionError(why)

    undefined.__name__ = name
    return undefined


def error_output(message: str) -> dict:
    return nbformat.v4.new_output("error", ename="AssertionError", evalue=message,
                                  traceback=[f"AssertionError: {message}"])


def apply_verdicts(nb, assignment: assignments.Assignment, verdicts: dict) -> int:
    """Replace every graded code cell's outputs by its verdict; return the cells failed."""
    failed = 0
    for cell in nb.cells:
        meta = _meta(cell)
        if cell.cell_type != "code" or not meta.get("grade"):
            continue
        grade_id = meta.get("grade_id")
        if grade_id not in verdicts:
            message = (f"test cell {grade_id!r} is not one of this assignment's tests, so "
                       f"it was not graded")
        else:
            message = verdicts[grade_id]
        cell.outputs = [] if message is None else [error_output(message)]
        failed += message is not None
    return failed


class TrustedChecks(NbGraderPreprocessor):
    """nbgrader autograde step: the trusted verdict of every test cell (see module docs)."""

    course_root = Unicode("", help="The course root holding solutions/<assignment>.py").tag(
        config=True)
    unsafe = Bool(False, help="Run student code without the sandbox (never by default)").tag(
        config=True)
    startup_limit = Float(60.0, help="Seconds the worker may take to run the notebook's "
                                     "code").tag(config=True)
    cell_time_limit = Float(30.0, help="Seconds each of the notebook's cells may run in the "
                                       "worker").tag(config=True)

    def _assignment(self, resources):
        if not self.course_root:
            raise ValueError("TrustedChecks.course_root is not configured")
        return assignments.load(self.course_root, resources["nbgrader"]["assignment"])

    def start(self, nb, resources) -> Started:
        return Started(nb, self._assignment(resources), unsafe=self.unsafe,
                       startup_limit=self.startup_limit, cell_limit=self.cell_time_limit)

    def preprocess(self, nb, resources):
        assignment = self._assignment(resources)
        started = resources.pop(_STARTED, None) or self.start(nb, resources)
        verdicts = grade_notebook(nb, assignment, started=started)
        apply_verdicts(nb, assignment, verdicts)
        return nb, resources


_STARTED = "grader_started_worker"


class StartWorker(TrustedChecks):
    """nbgrader autograde step before the kernel runs: start the worker for the trusted checks
    in the background, so that the two sandboxes run at the same time (same settings as
    TrustedChecks, which picks the worker up)."""

    def preprocess(self, nb, resources):
        resources[_STARTED] = self.start(nb, resources)
        return nb, resources
