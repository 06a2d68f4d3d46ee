"""Feedback built from sanitized results, and the leak check every page must pass.

:class:`SanitizeFeedback` (the first step of nbgrader's ``generate_feedback``) rebuilds the
notebook from the release: the instructions as released, the student's answer cells with
their text outputs, each test cell's visible code with its trusted verdict, and the written
answers as plain text. Cells the student added are left out, and so are rich outputs
(HTML, scripts, images): only text crosses, cut to a bounded length, and nbconvert escapes it.

:func:`leaks` then checks a finished page against the secret lines of every assignment
(solutions, model answers and hidden tests), after normalizing whitespace and case; lines the
student wrote themselves do not count. ``tools/course.py feedback`` publishes no page that
fails it.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from . import assignment as assignments
from . import catalog  # noqa: F401  (the catalog's messages are public text)

MAX_TEXT = 5000
MAX_TRACEBACK_LINES = 30
MIN_SECRET = 20
MARKERS = (assignments.BEGIN_SOLUTION, assignments.BEGIN_HIDDEN, assignments.END_HIDDEN)


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    text = str(text)
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... ({len(text) - limit} more characters not shown) ...\n"


def sanitize_outputs(outputs) -> list:
    """Text outputs only, each cut short; rich outputs replaced by a one-line note."""
    kept, dropped = [], 0
    for out in outputs or []:
        kind = out.get("output_type")
        if kind == "stream":
            kept.append(nbformat.v4.new_output("stream", name="stdout",
                                               text=_cut(out.get("text", ""))))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {}) or {}
            if "text/plain" in data and len(data) == 1:
                kept.append(nbformat.v4.new_output(
                    "stream", name="stdout", text=_cut(data["text/plain"]) + "\n"))
            else:
                dropped += 1
        elif kind == "error":
            ename = _cut(out.get("ename", "Error"), 200)
            evalue = _cut(out.get("evalue", ""))
            trace = [_cut(line, 500) for line in out.get("traceback", [])][
                -MAX_TRACEBACK_LINES:] or [f"{ename}: {evalue}"]
            kept.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                               traceback=trace))
    if dropped:
        kept.append(nbformat.v4.new_output(
            "stream", name="stdout",
            text=f"[{dropped} figure(s) or rich output(s) not shown in the feedback]\n"))
    return kept


def _written(cell_source: str):
    """A student's written answer as escaped text (no HTML or script survives)."""
    text = html.escape(_cut(cell_source, 20_000))
    return "<pre style='white-space: pre-wrap'>" + text + "</pre>"


class SanitizeFeedback(NbGraderPreprocessor):
    """Rebuild the autograded notebook from the release for the feedback page."""

    course_root = Unicode("", help="Course root (holds exercises/<assignment>/)").tag(
        config=True)
    release_directory = Unicode("exercises").tag(config=True)

    def preprocess(self, nb, resources):
        name = resources["nbgrader"]["assignment"]
        notebook = resources["nbgrader"]["notebook"]
        release = Path(self.course_root) / self.release_directory / name / f"{notebook}.ipynb"
        released = nbformat.read(release, as_version=4)
        by_id = {}
        for cell in nb.cells:
            grade_id = _meta(cell).get("grade_id")
            if grade_id and grade_id not in by_id:
                by_id[grade_id] = cell
        plain = {c.source.strip(): c for c in nb.cells if not _meta(c) and c.cell_type == "code"}
        known = {id(c) for c in by_id.values()} | {id(c) for c in plain.values()}
        added = sum(1 for c in nb.cells if id(c) not in known and c.cell_type == "code"
                    and c.source.strip() and not any(c.source.strip() == r.source.strip()
                                                     for r in released.cells))
        cells = []
        for ref in released.cells:
            meta = _meta(ref)
            mine = by_id.get(meta.get("grade_id")) if meta else None
            if ref.cell_type == "markdown":
                if meta.get("solution") and mine is not None:
                    new = nbformat.v4.new_markdown_cell(_written(mine.source))
                else:
                    new = nbformat.v4.new_markdown_cell(ref.source)
            else:
                source = mine.source if (mine is not None and meta.get("solution")) else ref.source
                new = nbformat.v4.new_code_cell(source)
                origin = mine if meta else plain.get(ref.source.strip())
                if origin is not None:
                    new.outputs = sanitize_outputs(origin.get("outputs"))
                    new.execution_count = None
            if meta:
                new.metadata["nbgrader"] = dict(meta)
            cells.append(new)
        if added:
            cells.append(nbformat.v4.new_markdown_cell(
                f"*{added} code cell(s) you added are not shown in this feedback.*"))
        nb.cells = cells
        mark_pending(nb, pending_manual(resources, nb))
        return nb, resources


PENDING = "pending manual grading"


def pending_manual(resources, nb) -> dict[str, float]:
    """``{grade_id: points}`` of the written answers not graded by hand yet (gradebook)."""
    info = resources.get("nbgrader", {})
    manual = [c for c in nb.cells if c.cell_type == "markdown" and _meta(c).get("grade")]
    if not manual or not info.get("db_url") or not info.get("student"):
        return {}
    from nbgrader.api import Gradebook, MissingEntry

    pending = {}
    with Gradebook(info["db_url"]) as gb:
        for cell in manual:
            meta = _meta(cell)
            try:
                grade = gb.find_grade(meta["grade_id"], info["notebook"], info["assignment"],
                                      info["student"])
            except MissingEntry:
                continue
            # (grade.score reads 0.0 when nothing is graded, hence the explicit test)
            if grade.needs_manual_grade or (grade.manual_score is None
                                            and grade.auto_score is None):
                pending[meta["grade_id"]] = float(grade.max_score or meta.get("points") or 0)
    return pending


def mark_pending(nb, pending: dict[str, float]) -> None:
    """Show written answers awaiting manual grading as pending, not as "Score: 0.0 / N".

    nbgrader's feedback template prints a score for every graded cell (an ungraded one as
    0.0); a pending answer is therefore shown as a plain cell that says it is pending, and a
    note at the top says that the total does not count it yet.
    """
    if not pending:
        return
    for cell in nb.cells:
        meta = _meta(cell)
        if cell.cell_type == "markdown" and meta.get("grade_id") in pending:
            points = pending[meta["grade_id"]]
            meta = {**meta, "grade": False, "pending_manual": True}
            cell.metadata["nbgrader"] = meta
            cell.source = (f"**Written answer: {PENDING} ({points:g} points).** Not graded "
                           f"yet; the score above does not count it.\n\n" + cell.source)
    total = sum(pending.values())
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(
        f"**{total:g} points {PENDING}**: the written answers are graded by hand later; the "
        f"score above counts the automatically graded tests only (pending is not zero)."))


# ---------------------------------------------------------------------------- leak check


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def html_text(page: str) -> str:
    """The text of an HTML page: tags removed, entities decoded."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def secret_lines(root: Path) -> set[str]:
    """Normalized solution, model-answer and hidden-test lines of every assignment that no
    student sees in any release (long enough to be distinctive)."""
    secret, visible = set(), []
    for name in assignments.names(root):
        a = assignments.load(root, name)
        secret |= {normalize(ln) for ln in a.solution_lines | a.hidden_lines}
        visible += [normalize(ln) for ln in a.visible_lines]
    # A line that students see anyway, alone or inside a longer line, is no secret: the
    # releases, and the catalog's messages (which quote code to explain a mistake).
    from normcore.grading import CATALOG

    visible += [normalize(m.message) for m in CATALOG]
    public = "\n".join(visible)
    return {ln for ln in secret if len(ln) >= MIN_SECRET and ln not in public}


def leaks(page: str, secrets: set[str], own_text: str = "") -> list[str]:
    """Secret lines (and nbgrader markers) found in a page, ignoring the student's own text."""
    text = normalize(html_text(page))
    own = normalize(own_text)
    found = sorted(s for s in secrets if s in text and s not in own)
    found += [m for m in MARKERS if m.lower() in text and m.lower() not in own]
    return found
