"""A learning management system (Canvas, Moodle) in place of nbgrader's exchange.

Import the zip of submissions the LMS lets you download, with nbgrader's ``zip_collect``::

    python tools/course.py collect 04_normalization --zip submissions.zip --roster roster.csv

and export the scores as a CSV that Canvas's gradebook imports (*Grades > Import*)::

    python tools/course.py grades --roster roster.csv     grades/canvas_grades.csv

The roster is the CSV that Canvas's gradebook exports (*Grades > Export*): the columns
``Student, ID, SIS User ID, SIS Login ID, Section`` and one per assignment. ``ID`` is the
Canvas user id that the zip's file names carry; ``SIS Login ID`` (``--student-column``) is
the nbgrader student id, i.e. the JupyterHub user name. Any CSV with the two columns works
(name them with ``--lms-id-column`` and ``--student-column``), e.g. for Moodle.

File names in the zip (``--pattern``), matched against each file's path inside the zip:

* ``canvas``: ``<login>[_LATE]_<userid>_<submissionid>_<filename>[-<n>].ipynb``, e.g.
  ``doejane_LATE_4242_98765_04_normalization-1.ipynb`` (Canvas adds ``-<n>`` to a file a
  student uploaded again);
* ``moodle``: ``<full name>_<participant id>_assignsubmission_file_[/]<filename>.ipynb``;
* any regular expression with the named groups ``lms_id`` and optionally ``file_id``.

An assignment has one notebook, so whatever the student called the file, it is stored
under the released notebook's name. A file whose name does not match, whose id is not in
the roster, or that is a second notebook of the same student is reported and skipped; the
others are imported. A student's submission in ``submitted/`` is replaced only when the
notebook differs (then with a new ``timestamp.txt``, the import time, so ``make autograde``
regrades it); importing the same zip again changes nothing.
"""

from __future__ import annotations

import csv
import datetime
import filecmp
import re
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import course
from course import CourseError

__all__ = ["PATTERNS", "export_canvas", "import_zip", "read_roster"]

PATTERNS = {
    "canvas": (r"(?P<login>[^_/]+)(?P<late>_LATE)?_(?P<lms_id>\d+)_(?P<submission_id>\d+)_"
               r"(?P<file_id>[^/]+?)(?:-\d+)?\.ipynb"),
    "moodle": r"(?P<name>[^/]+?)_(?P<lms_id>\d+)_assignsubmission_file_/?(?P<file_id>[^/]+)\.ipynb",
}
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MAX_UNZIPPED = 2 * 1024**3  # bytes; a larger archive is refused before anything is written
_CANVAS_HEADER = re.compile(r"^(?P<name>.*\S)\s+\((?P<id>\d+)\)$")


# ---------------------------------------------------------------------------------- roster


def read_roster(path: Path, student_column="SIS Login ID", lms_id_column="ID"):
    """Rows of the roster CSV (Canvas's 'Points Possible' row skipped) and its header.

    Raises CourseError when the file or a needed column is missing, or an id repeats.
    """
    if path is None:
        raise CourseError("an LMS roster CSV is needed (--roster / ROSTER=roster.csv): "
                          "the gradebook export of Canvas, or any CSV with an LMS id column "
                          "and a student id column")
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"roster {path} not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CourseError(f"roster {path} is not a readable CSV: {exc}") from None
    for column in (lms_id_column, student_column):
        if column not in header:
            raise CourseError(f"roster {path} has no column {column!r} (columns: "
                              f"{', '.join(header) or 'none'})")
    students = []
    for row in rows:
        if (row.get("Student") or "").strip() in ("Points Possible", "Student, Test"):
            continue
        if not (row.get(lms_id_column) or "").strip():
            continue
        students.append({k: (v or "").strip() for k, v in row.items() if k is not None})
    for column in (lms_id_column, student_column):
        seen, repeated = set(), set()
        for row in students:
            value = row[column]
            if value and value in seen:
                repeated.add(value)
            seen.add(value)
        if repeated:
            raise CourseError(f"roster {path}: {column!r} repeats {sorted(repeated)[:5]}")
    return students, header


# ------------------------------------------------------------------------------ zip import


def _lms_collector(settings: dict):
    """A zip_collect collector plugin class that knows the roster and the pattern."""
    from nbgrader.plugins import FileNameCollectorPlugin

    class LmsCollector(FileNameCollectorPlugin):
        def collect(self, submitted_file):
            rel = Path(submitted_file).relative_to(settings["extracted"]).as_posix()
            rel = rel.split("/", 1)[1] if "/" in rel else rel  # zip_collect's own folder
            skipped = settings["skipped"]
            if not rel.endswith(".ipynb"):
                skipped.append((rel, "not a notebook"))
                return None
            match = settings["pattern"].fullmatch(rel)
            if match is None:
                skipped.append((rel, f"the name does not match the {settings['name']} "
                                     f"pattern"))
                return None
            groups = match.groupdict()
            student = settings["students"].get(groups["lms_id"])
            if not student:
                skipped.append((rel, f"LMS id {groups['lms_id']} is not in the roster (or "
                                     f"has no student id there)"))
                return None
            if student in settings["seen"]:
                skipped.append((rel, f"a second notebook of {student} (kept "
                                     f"{settings['seen'][student]})"))
                return None
            settings["seen"][student] = rel
            if groups.get("late"):
                settings["late"].append(student)
            return {"student_id": student, "file_id": settings["notebook"]}

    return LmsCollector


def _check_zip(path: Path) -> list[str]:
    if not path.is_file():
        raise CourseError(f"zip {path} not found")
    if not zipfile.is_zipfile(path):
        raise CourseError(f"{path} is not a zip archive")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
        raise CourseError(f"{path} cannot be read: {exc}") from None
    if bad is not None:
        raise CourseError(f"{path}: {bad} is corrupt")
    names = [i.filename for i in infos]
    unsafe = [n for n in names if n.startswith("/") or ".." in PurePosixPath(n).parts]
    if unsafe:
        raise CourseError(f"{path}: unsafe paths in the archive: {unsafe[:3]}")
    if sum(i.file_size for i in infos) > MAX_UNZIPPED:
        raise CourseError(f"{path}: more than {MAX_UNZIPPED / 1024**3:g} GiB when unpacked")
    nested = [n for n in names if n.endswith((".zip", ".gz"))]
    if nested:
        raise CourseError(f"{path}: archives inside the archive are not imported: "
                          f"{nested[:3]}")
    return names


def _same_submission(new: Path, old: Path) -> bool:
    if not old.is_dir():
        return False
    files = sorted(p.name for p in new.iterdir() if p.name != "timestamp.txt")
    if files != sorted(p.name for p in old.iterdir()
                       if p.name not in ("timestamp.txt", "submission_secret.txt")):
        return False
    _, mismatch, errors = filecmp.cmpfiles(new, old, files, shallow=False)
    return not mismatch and not errors


def _replace(new: Path, target: Path, stamp: str) -> None:
    """Put the staged submission ``new`` at ``target`` (the old one goes only at the end)."""
    (new / "timestamp.txt").write_text(stamp)
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = target.parent / f".{target.name}.incoming"
    outgoing = target.parent / f".{target.name}.outgoing"
    for leftover in (incoming, outgoing):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(new, incoming)
    for path in incoming.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    incoming.chmod(0o755)
    if target.exists():
        target.rename(outgoing)
    incoming.rename(target)
    shutil.rmtree(outgoing, ignore_errors=True)


def import_zip(root: Path, archive: Path, roster: Path, wanted=(), pattern="canvas",
               student_column="SIS Login ID", lms_id_column="ID") -> int:
    """Import an LMS zip of one assignment into ``submitted/``; the number of skipped files.

    Raises CourseError, before anything is written, when the zip, the roster, the pattern
    or the assignment is unusable.
    """
    from nbgrader.apps.zipcollectapp import ZipCollectApp
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    if len(wanted) != 1:
        raise CourseError("name the one assignment the zip holds, e.g. "
                          "make collect ZIP=submissions.zip ASSIGNMENT=04_normalization")
    name = wanted[0]
    release = root / "exercises" / name
    notebooks = sorted(p.name for p in release.glob("*.ipynb"))
    if len(notebooks) != 1:
        raise CourseError(f"exercises/{name}/ should hold one notebook, found "
                          f"{notebooks or 'none'} (run `make release` first)")
    try:
        regex = re.compile(PATTERNS.get(pattern, pattern))
    except re.error as exc:
        raise CourseError(f"pattern {pattern!r} is not a regular expression: {exc}") from None
    if "lms_id" not in regex.groupindex:
        raise CourseError(f"pattern {pattern!r} needs a named group (?P<lms_id>...)")
    archive = Path(archive)
    entries = _check_zip(archive)
    rows, _ = read_roster(roster, student_column, lms_id_column)
    students = {r[lms_id_column]: r[student_column] for r in rows if r[student_column]}
    bad_ids = sorted(s for s in students.values() if not re.fullmatch(r"[^/\\+*\s]+", s))
    if bad_ids:
        raise CourseError(f"roster: student ids must be one word without / \\ + *: "
                          f"{bad_ids[:5]}")

    api = course._api(root)
    staging = Path(tempfile.mkdtemp(prefix="lms-import-"))
    try:
        inbox = staging / name / "archive"
        inbox.mkdir(parents=True)
        shutil.copy(archive, inbox / "submissions.zip")
        settings = {"pattern": regex, "name": pattern if pattern in PATTERNS else "given",
                    "students": students, "notebook": notebooks[0], "skipped": [],
                    "seen": {}, "late": [],
                    "extracted": staging / name / "extracted"}
        coursedir = CourseDirectory(config=api.config, root=str(root))
        app = ZipCollectApp(coursedir=coursedir, parent=api)
        # After the app is made (making it reloads the configuration into coursedir):
        # everything goes to the staging folder first.
        coursedir.assignment_id = name
        coursedir.submitted_directory = str(staging / "submitted")
        app.collect_directory_structure = str(staging / "{assignment_id}" / "{collect_step}")
        app.collector_plugin = _lms_collector(settings)
        app.force = True
        app.log.handlers.clear()
        app.log.propagate = False
        result = capture_log(app)
        if not result["success"]:
            raise CourseError(f"nbgrader zip_collect {name} failed (nothing was "
                              f"changed):\n      {course._fail(result)}")
        stamp = datetime.datetime.now(datetime.UTC).strftime(
            "%Y-%m-%d %H:%M:%S.%f UTC")
        counts = {"new": 0, "updated": 0, "unchanged": 0}
        for folder in sorted((staging / "submitted").glob(f"*/{name}")):
            target = root / "submitted" / folder.parent.name / name
            if _same_submission(folder, target):
                counts["unchanged"] += 1
                continue
            counts["updated" if target.exists() else "new"] += 1
            _replace(folder, target, stamp)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    skipped = settings["skipped"]
    print(f"import   {name}: {len(entries)} files in {archive.name}: {counts['new']} new, "
          f"{counts['updated']} updated, {counts['unchanged']} unchanged -> "
          f"submitted/<student>/{name}/{notebooks[0]}; {len(skipped)} skipped"
          + (f"; marked late by the LMS: {', '.join(sorted(settings['late']))}"
             if settings["late"] else ""))
    for rel, why in skipped:
        print(f"import   {name}: SKIPPED {rel}: {why}")
    return len(skipped)


# ------------------------------------------------------------------------ Canvas gradebook


def export_canvas(root: Path, roster: Path, out: Path, student_column="SIS Login ID") -> int:
    """Write ``canvas_grades.csv`` for Canvas's gradebook import; the number of problems.

    One row per roster student: ``Student, ID, SIS User ID, SIS Login ID, Section``, then
    one column per assignment, named ``<name> (<canvas id>)`` when the roster (a Canvas
    export) has that assignment, else ``<name>`` (Canvas then creates the assignment). A
    score is left blank, i.e. unchanged in Canvas, while manual grading is pending or when
    there is no submission.
    """
    rows, header = read_roster(roster, student_column, "ID")
    api = course._api(root)
    grades = course.grade_rows(api)
    names = sorted({g["assignment"] for g in grades} | set(course.assignments_in(root)))
    canvas_ids = {}
    for column in header:
        found = _CANVAS_HEADER.match(column)
        if found and found.group("name") in names:
            canvas_ids[found.group("name")] = found.group("id")
    columns = [f"{n} ({canvas_ids[n]})" if n in canvas_ids else n for n in names]
    by_student = {(g["student"], g["assignment"]): g for g in grades}
    on_roster = {r[student_column] for r in rows}
    pending, missing = [], 0
    out.mkdir(parents=True, exist_ok=True)
    path = out / "canvas_grades.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CANVAS_COLUMNS + columns)
        for row in rows:
            line = [row.get(c, "") for c in CANVAS_COLUMNS]
            for name in names:
                grade = by_student.get((row[student_column], name))
                if grade is None:
                    missing += 1
                    line.append("")
                elif grade["needs_manual_grade"]:
                    pending.append(f"{grade['student']}/{name}")
                    line.append("")
                else:
                    line.append(f"{grade['score']:g}")
            writer.writerow(line)
    strangers = sorted({g["student"] for g in grades} - on_roster)
    print(f"canvas   {path}: {len(rows)} students x {len(names)} assignments "
          f"({', '.join(columns)}); {missing} without a submission left blank")
    new = [n for n in names if n not in canvas_ids]
    if new:
        print(f"canvas   not in the roster's columns, Canvas creates them on import: "
              f"{', '.join(new)}")
    if pending:
        print(f"canvas   {len(pending)} scores left blank, manual grading pending (formgrader): "
              f"{', '.join(pending[:10])}{' ...' if len(pending) > 10 else ''}")
    if strangers:
        print(f"canvas   {len(strangers)} graded students are not in the roster "
              f"({student_column!r}), their scores are not exported: {', '.join(strangers)}")
    return len(strangers) + (1 if pending else 0)
