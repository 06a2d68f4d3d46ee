"""The course's side of nbgrader's exchange: publish, collect, return feedback, due dates.

Students use nbgrader's own commands (or the *Assignments* tab of Jupyter), which read the
same two settings from their nbgrader configuration::

    nbgrader fetch_assignment 04_normalization
    nbgrader submit 04_normalization
    nbgrader fetch_feedback 04_normalization

The instructor runs these through ``tools/course.py`` (the make targets)::

    python tools/course.py publish [ASSIGNMENT ...]  exercises/<a>/ -> exchange (release_assignment)
    python tools/course.py collect [ASSIGNMENT ...]  exchange -> submitted/ (latest counts)
    python tools/course.py return  [ASSIGNMENT ...]  feedback/ -> exchange (release_feedback)
    python tools/course.py due ASSIGNMENT "2026-12-10 23:59 Europe/Berlin"   (or "none")

The exchange is configured in ``nbgrader_config.py`` (``Exchange.root`` and
``CourseDirectory.course_id``, from the environment variables ``NBGRADER_EXCHANGE`` and
``NBGRADER_COURSE_ID``). Without a course id nothing is published and ``publish`` says so.
Every command prints what it did; the exit status is 1 when something needs the
instructor's attention (a failed transfer, a submission owned by someone other than the
student it names, feedback older than the submission it answers).
"""

from __future__ import annotations

import filecmp
import logging
import shutil
import tempfile
from pathlib import Path

import course
from course import CourseError

__all__ = ["collect", "configured", "publish", "return_feedback", "set_due"]


def configured(api) -> bool:
    """Whether nbgrader_config.py names a course, i.e. an exchange is in use."""
    return bool(api.coursedir.course_id)


def released_assignments(root: Path, wanted=()) -> list[str]:
    """Assignments with a release ``exercises/<a>/``, or the wanted ones (checked)."""
    found = sorted(p.name for p in (root / "exercises").glob("*") if p.is_dir()
                   and any(p.glob("*.ipynb")))
    for name in wanted:
        if name not in found:
            raise CourseError(f"no release of {name!r} in exercises/ (run `make release` first; "
                              f"released: {', '.join(found) or 'none'})")
    return list(wanted) or found


def _run(api, app) -> dict:
    """Run an nbgrader exchange app; the result dict with its log at INFO level."""
    from nbgrader.utils import capture_log

    level = api.log.level
    api.log.setLevel(logging.INFO)
    try:
        return capture_log(app)
    finally:
        api.log.setLevel(level)


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def _not_configured(command: str) -> None:
    print(f"{command}: no exchange configured (NBGRADER_COURSE_ID and NBGRADER_EXCHANGE are "
          f"not set; see solutions/DEPLOY.md)")


# --------------------------------------------------------------------------------- publish


def publish(root: Path, wanted=()) -> int:
    """``release_assignment`` for every released assignment whose exchange copy differs.

    Returns the number of assignments that could not be published.
    """
    from nbgrader.utils import temp_attrs

    api = course._api(root)
    if not configured(api):
        _not_configured("publish")
        print("publish: nothing was published; students get exercises/ from the book or "
              "the repository")
        return 0
    cd, problems = api.coursedir, 0
    for name in released_assignments(root, wanted):
        outbound = Path(api.exchange_root or "/nonexistent") / cd.course_id / "outbound" / name
        where = f"{cd.course_id}/outbound/{name}"
        if outbound.is_dir() and _same_tree(root / "exercises" / name, outbound):
            print(f"publish  {name}: {where} is up to date, unchanged")
            continue
        existed = outbound.is_dir()
        with temp_attrs(cd, assignment_id=name):
            app = api.exchange.ReleaseAssignment(coursedir=cd, authenticator=api.authenticator,
                                                 parent=api)
            app.force = True
            result = _run(api, app)
        if not result["success"]:
            problems += 1
            print(f"publish  {name}: FAILED\n      {course._fail(result)}")
            continue
        note = (" (replaced the previous version; students who fetched it keep their copy)"
                if existed else "")
        print(f"publish  {name}: exercises/{name}/ -> {where}{note}; students run "
              f"`nbgrader fetch_assignment {name}` or use the Assignments tab")
    return problems


# --------------------------------------------------------------------------------- collect


def _timestamps(root: Path, name: str) -> dict[str, str]:
    """{student: timestamp text} of the submissions in ``submitted/<student>/<name>/``."""
    found = {}
    for folder in sorted((root / "submitted").glob(f"*/{name}")):
        stamp = folder / "timestamp.txt"
        found[folder.parent.name] = stamp.read_text().strip() if stamp.exists() else ""
    return found


def _duedate(api, name: str):
    from nbgrader.api import MissingEntry

    with course._gradebook(api) as gb:
        try:
            return gb.find_assignment(name).duedate
        except MissingEntry:
            return None


def collect(root: Path, wanted=(), before_duedate=False) -> int:
    """``collect --update`` for each assignment: the latest submission of every student
    replaces an older one in ``submitted/``. Returns the number of problems."""
    from nbgrader.utils import parse_utc, temp_attrs

    api = course._api(root)
    if not configured(api):
        _not_configured("collect")
        print("collect: put submissions in submitted/<student>/<assignment>/ by hand, or "
              "import an LMS zip: make collect ZIP=submissions.zip ROSTER=roster.csv")
        return 1
    cd, problems = api.coursedir, 0
    for name in released_assignments(root, wanted):
        before = _timestamps(root, name)
        with temp_attrs(cd, assignment_id=name):
            app = _genuine(api.exchange.collect)(coursedir=cd, authenticator=api.authenticator,
                                                 parent=api)  # (.collect: the class)
            app.update = True
            app.before_duedate = before_duedate
            result = _run(api, app)
        for filename, why in getattr(app, "forged", []):
            problems += 1
            print(f"collect  {name}: SKIPPED {filename!r}: {why}; left in the exchange "
                  f"(delete it once you have looked)")
        if not result["success"]:
            problems += 1
            print(f"collect  {name}: FAILED\n      {course._fail(result)}")
            continue
        after = _timestamps(root, name)
        new = sorted(set(after) - set(before))
        updated = sorted(s for s in before if s in after and after[s] != before[s])
        kept = len(after) - len(new) - len(updated)
        due = _duedate(api, name)
        late = []
        if due is not None:
            late = sorted(s for s, t in after.items() if t and parse_utc(t) > due)
        for sid in new + updated:  # nbgrader keeps the exchange's world-writable mode
            (root / "submitted" / sid / name).chmod(0o755)
        print(f"collect  {name}: {len(new)} new, {len(updated)} updated, "
              f"{kept} unchanged -> submitted/<student>/{name}/"
              + (f"; {len(late)} after the due date: {', '.join(late)}" if late else ""))
    return problems


def _odd_file(path: str) -> str | None:
    """A symbolic link or special file in a submission folder of the exchange, or None.

    ``nbgrader submit`` copies regular files only; such an entry was put there by hand, and
    collect, which runs as the instructor, would follow a link to the instructor's files.
    """
    import os

    if os.path.islink(path):
        return "it is a symbolic link"
    for folder, dirs, files in os.walk(path):
        for entry in dirs + files:
            full = os.path.join(folder, entry)
            if os.path.islink(full):
                return f"it contains a symbolic link ({os.path.relpath(full, path)})"
            if not (os.path.isfile(full) or os.path.isdir(full)):
                return f"it contains a special file ({os.path.relpath(full, path)})"
    return None


def _genuine(collect_class):
    """nbgrader's collect for the directory exchange, except that a submission owned by
    another user than the student its name gives, or holding a symbolic link or special
    file, is skipped and reported, not collected.

    The inbound folder is writable by every student, and nbgrader's own collect only warns
    about such a submission while it replaces the named student's work. The owner check is
    off with ``c.ExchangeCollect.check_owner = False`` (an exchange where every student has
    the same uid, which cannot keep students apart anyway); other exchanges are used as
    they are.
    """
    import glob
    import os
    import pwd

    from nbgrader.exchange.default.collect import ExchangeCollect, groupby

    if not issubclass(collect_class, ExchangeCollect):
        return collect_class

    class GenuineCollect(collect_class):
        forged: list

        def init_src(self):
            super().init_src()
            self.forged = []
            student = self.coursedir.student_id or "*"
            pattern = os.path.join(self.inbound_path,
                                   f"{student}+{self.coursedir.assignment_id}+*")
            records = []
            for path in sorted(glob.glob(pattern)):
                record = self._path_to_record(path)
                uid = os.lstat(path).st_uid
                try:
                    owner = pwd.getpwuid(uid).pw_name
                except KeyError:
                    owner = f"uid {uid}"
                if self.check_owner and owner != record["username"]:
                    self.forged.append((record["filename"], f"it names another student than "
                                                            f"its owner, {owner}"))
                elif (odd := _odd_file(path)) is not None:
                    self.forged.append((record["filename"], odd))
                else:
                    records.append(record)
            chosen = []
            for group in groupby(records, lambda r: r["username"]).values():
                ordered = self._sort_by_timestamp(group)
                if self.before_duedate and self.duedate is not None:
                    early = [r for r in ordered if r["timestamp"] <= self.duedate]
                    ordered = early or ordered
                chosen.append(ordered[0])
            self.src_records = chosen

    return GenuineCollect


# ---------------------------------------------------------------------------------- return


def return_feedback(root: Path, wanted=(), student=None) -> int:
    """``release_feedback`` for every feedback page that answers the collected submission.

    nbgrader finds a student's page by a hash of the submission's secret, which a
    submission through the exchange carries (``submitted/<s>/<a>/submission_secret.txt``);
    the pages are staged with it and the submission's timestamp, and released from there.
    Feedback of a submission that did not come through the exchange (an LMS zip) stays in
    ``feedback/``; stale feedback (the student submitted again since, or the submission was
    graded again after the page was made) is not released. Returns the number of problems.
    """
    from nbgrader.coursedir import CourseDirectory

    api = course._api(root)
    if not configured(api):
        _not_configured("return")
        print("return: nothing was returned; hand out feedback/<student>/<assignment>/*.html "
              "through your LMS")
        return 1
    pairs = course.submissions(root, "feedback", wanted, student)
    if not pairs:
        print("return: no feedback yet (run `make autograde` and `make feedback` first)")
        return 1 if (wanted or student) else 0
    problems = 0
    for name in sorted({a for _, a in pairs}):
        staging = Path(tempfile.mkdtemp(prefix="nbgrader-return-"))
        try:
            ready, lms = [], []
            for sid in [s for s, a in pairs if a == name]:
                why = _stale(root, sid, name)
                if why == "lms":
                    lms.append(sid)
                    continue
                if why:
                    problems += 1
                    print(f"return   {sid}/{name}: NOT released, {why}")
                    continue
                folder = staging / sid / name
                folder.mkdir(parents=True)
                submitted = root / "submitted" / sid / name
                for page in (root / "feedback" / sid / name).glob("*.html"):
                    shutil.copy(page, folder / page.name)
                for meta in ("timestamp.txt", "submission_secret.txt"):
                    shutil.copy(submitted / meta, folder / meta)
                ready.append(sid)
            if ready:
                coursedir = CourseDirectory(config=api.config, root=str(root))
                app = api.exchange.ReleaseFeedback(coursedir=coursedir,
                                                   authenticator=api.authenticator, parent=api)
                coursedir.feedback_directory = str(staging)
                coursedir.assignment_id, coursedir.student_id = name, "*"
                result = _run(api, app)
                if not result["success"]:
                    problems += 1
                    print(f"return   {name}: FAILED\n      {course._fail(result)}")
                    ready = []
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if ready:
            print(f"return   {name}: feedback of {len(ready)} submissions released to "
                  f"{api.coursedir.course_id}/feedback/; students run "
                  f"`nbgrader fetch_feedback {name}`")
        if lms:
            print(f"return   {name}: {len(lms)} submissions did not come through the exchange "
                  f"(an LMS zip); their pages stay in feedback/<student>/{name}/ for the LMS: "
                  f"{', '.join(lms)}")
    return problems


def _stale(root: Path, sid: str, name: str) -> str:
    """Why the feedback of ``sid/name`` cannot be released ("lms" when it did not come
    through the exchange), or "" when it can."""
    submitted = root / "submitted" / sid / name
    autograded = root / "autograded" / sid / name
    pages = sorted((root / "feedback" / sid / name).glob("*.html"))
    if not pages:
        return f"no feedback page in feedback/{sid}/{name}/ (run `make feedback`)"
    if not (submitted / "submission_secret.txt").exists():
        return "lms"
    stamp = (submitted / "timestamp.txt")
    graded = (autograded / "timestamp.txt")
    if not stamp.exists() or not graded.exists() or (
            stamp.read_text().strip() != graded.read_text().strip()):
        return ("the feedback answers an older submission (run `make autograde` and "
                "`make feedback` first)")
    newest = max(p.stat().st_mtime for p in autograded.glob("*.ipynb"))
    if min(p.stat().st_mtime for p in pages) < newest:
        return "the submission was graded again after its feedback was made (`make feedback`)"
    return ""


# -------------------------------------------------------------------------------- due date


def set_due(root: Path, name: str, when: str) -> None:
    """Record the due date of an assignment in the gradebook ("none" removes it)."""
    from nbgrader.api import MissingEntry
    from nbgrader.utils import parse_utc

    api = course._api(root)
    if when.strip().lower() == "none":
        duedate = None
    else:
        try:
            duedate = parse_utc(when)
        except (ValueError, OverflowError) as exc:
            raise CourseError(f"due date {when!r} is not a date: {exc} (write e.g. "
                              f"'2026-12-10 23:59:00 Europe/Berlin')") from None
    with course._gradebook(api) as gb:
        try:
            gb.find_assignment(name)
        except MissingEntry:
            raise CourseError(f"{name!r} is not in the gradebook (run `make release` "
                              f"first)") from None
        gb.update_or_create_assignment(name, duedate=duedate)
    shown = ("none (no submission is late)" if duedate is None
             else f"{duedate:%Y-%m-%d %H:%M:%S} UTC")
    print(f"due      {name}: {shown}")

