"""nbgrader's exchange end to end, with real Unix accounts for the students.

The instructor runs the course's commands (``tools/course.py``: release and publish, due,
collect, autograde, feedback, return) on a throwaway course root and exchange; four student
accounts, created for the test and removed afterwards, run nbgrader's own
``fetch_assignment``, ``submit`` and ``fetch_feedback`` as themselves. One submits twice
(the latest counts), one after the due date (a late penalty applies), one the blank
release. The exchange's permissions keep students out of each other's submissions and
feedback; a submission one student writes in another's name, or one holding a symbolic
link, is not collected.

Needs root (to create the accounts), as in CI; skipped otherwise.
"""

import copy
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402

A = "04_normalization"
COURSE = "normcourse"

needs_accounts = [
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                       reason="creates Unix accounts for the students: needs root (CI has it)"),
    pytest.mark.skipif(shutil.which("useradd") is None or shutil.which("runuser") is None,
                       reason="needs useradd and runuser (Debian's passwd and util-linux)"),
]

# Runs as a student: nbgrader's command line ("nbgrader", args...) or Python code ("python",
# code). Started by root, it drops to the student's uid, gid and groups after importing
# nbgrader; that way it works even where the interpreter's prefix is private to root (e.g.
# pyenv under /root). Started by runuser, it is the student already.
AS_STUDENT = r"""
import os, pwd, sys
import base64, glob, json, secrets, shutil, encodings.idna  # noqa: F401
import nbgrader.exchange.default  # noqa: F401
from nbgrader.apps.nbgraderapp import NbGraderApp
user, mode, *rest = sys.argv[1:]
pw = pwd.getpwnam(user)
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
assert (os.getuid(), os.geteuid(), os.getgid()) == (pw.pw_uid, pw.pw_uid, pw.pw_gid)
assert set(os.getgroups()) <= {pw.pw_gid}, "the student has other groups"
os.environ.update(HOME=pw.pw_dir, USER=user, LOGNAME=user)
os.chdir(pw.pw_dir)
if mode == "nbgrader":
    sys.argv = ["nbgrader", *rest]
    NbGraderApp.launch_instance()
else:
    exec(rest[0])
"""


def read(path):
    return nbformat.read(path, as_version=4)


def solved(release_nb, source_nb):
    """The release with every answer cell filled in from the source notebook."""
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source_nb.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


class Students:
    """Unix accounts made for the test; ``run`` executes as one of them."""

    def __init__(self, exchange: Path):
        self.exchange, self.names, self._direct = exchange, [], None
        self.env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                    "LANG": "C.UTF-8", "MPLBACKEND": "Agg"}

    def add(self, label: str) -> str:
        name = f"nbx{uuid.uuid4().hex[:8]}{label}"[:32]
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
        self.names.append(name)
        Path(pwd.getpwnam(name).pw_dir).chmod(0o700)
        return name

    def remove_all(self):
        for name in self.names:
            subprocess.run(["userdel", "--remove", name], capture_output=True)

    def home(self, name) -> Path:
        return Path(pwd.getpwnam(name).pw_dir)

    def run(self, name, mode, *args, check=True):
        if self._direct is None:  # can the student start this interpreter?
            probe = subprocess.run([shutil.which("runuser"), "-u", name, "--", sys.executable,
                                    "-c", "1"], capture_output=True, env=self.env, cwd="/")
            self._direct = probe.returncode == 0
        command = [sys.executable, "-c", AS_STUDENT, name, mode, *args]
        if self._direct:
            command = [shutil.which("runuser"), "-u", name, "--"] + command
        result = subprocess.run(command, capture_output=True, text=True, env=self.env,
                                cwd="/", timeout=300)
        if check:
            assert result.returncode == 0, (name, args, result.stdout, result.stderr)
        return result

    def nbgrader(self, name, *args):
        return self.run(name, "nbgrader", *args, "--course", COURSE,
                        f"--Exchange.root={self.exchange}")

    def python(self, name, code):
        return self.run(name, "python", code).stdout

    def give(self, name, nb, path: Path):
        """Put a notebook into the student's fetched assignment, owned by the student."""
        nbformat.write(nb, path)
        pw = pwd.getpwnam(name)
        os.chown(path, pw.pw_uid, pw.pw_gid)


@pytest.fixture
def setting(tmp_path):
    public = Path(tempfile.mkdtemp(prefix="nbgrader-exchange-test-"))
    public.chmod(0o755)  # the students reach the exchange through it
    students = Students(public / "exchange")
    try:
        yield tmp_path, students
    finally:
        students.remove_all()
        shutil.rmtree(public, ignore_errors=True)


def instructor(root, students, *args, expect=0):
    """``python tools/course.py --root ROOT ARGS`` with the exchange of ``students`` (None:
    no exchange configured); its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBGRADER_")}
    env["MPLBACKEND"] = "Agg"
    if students is not None:
        env.update(NBGRADER_COURSE_ID=COURSE, NBGRADER_EXCHANGE=str(students.exchange))
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    result = subprocess.run([sys.executable, "tools/course.py", "--root", str(root), *args],
                            cwd=root, env=env, capture_output=True, text=True, timeout=580)
    assert result.returncode == expect, (args, result.stdout, result.stderr)
    return result.stdout


def course_root(tmp_path) -> Path:
    # A late submission scores 0.
    return course.copy_course(tmp_path / "course", [A],
                              config='\nc.LateSubmissionPlugin.penalty_method = "zero"\n')


def submission_stamps(students, name):
    cache = students.home(name) / ".local/share/jupyter/nbgrader_cache" / COURSE
    return sorted((p / "timestamp.txt").read_text() for p in cache.glob(f"*+{A}+*"))


@pytest.mark.slow
@needs_accounts[0]
@needs_accounts[1]
@pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning")
def test_release_submit_collect_grade_return(setting):
    from nbgrader.api import Gradebook

    tmp_path, students = setting
    root = course_root(tmp_path)
    out = instructor(root, students, "release")
    out += instructor(root, students, "publish")
    assert f"publish  {A}: exercises/{A}/ -> {COURSE}/outbound/{A}" in out
    release_nb = read(root / "exercises" / A / f"{A}.ipynb")
    perfect = solved(release_nb, read(root / "solutions" / A / f"{A}.ipynb"))
    inbound = students.exchange / COURSE / "inbound"

    alice, bob, carol, dave = (students.add(x) for x in ("alice", "bob", "carol", "dave"))
    for name in (alice, bob, carol, dave):
        students.nbgrader(name, "fetch_assignment", A)
        fetched = students.home(name) / A / f"{A}.ipynb"
        assert read(fetched).cells == release_nb.cells
        assert fetched.stat().st_uid == pwd.getpwnam(name).pw_uid

    # alice: the solution; bob: the blank release, then the solution; dave: the blank.
    students.give(alice, perfect, students.home(alice) / A / f"{A}.ipynb")
    students.nbgrader(alice, "submit", A)
    students.nbgrader(bob, "submit", A)
    time.sleep(1.1)
    students.give(bob, perfect, students.home(bob) / A / f"{A}.ipynb")
    students.nbgrader(bob, "submit", A)
    students.nbgrader(dave, "submit", A)
    time.sleep(1.1)
    due = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    assert f"due      {A}: {due}" in instructor(root, students, "due", A, due)
    time.sleep(1.1)
    students.give(carol, perfect, students.home(carol) / A / f"{A}.ipynb")  # too late
    students.nbgrader(carol, "submit", A)
    assert len(submission_stamps(students, bob)) == 2

    # A student sees no one's submission: the inbound folder cannot be listed.
    seen = students.python(carol, (
        "import os\n"
        f"try:\n    print(os.listdir({str(inbound)!r}))\n"
        "except PermissionError:\n    print('PermissionError')\n"))
    assert seen.strip() == "PermissionError"
    owners = sorted(pwd.getpwuid(p.stat().st_uid).pw_name for p in inbound.iterdir())
    assert owners == sorted([alice, bob, bob, carol, dave])

    # Collect: the latest submission of each student, timestamps kept; carol is late.
    out = instructor(root, students, "collect")
    assert f"collect  {A}: 4 new, 0 updated" in out
    assert f"1 after the due date: {carol}" in out
    stamp = (root / "submitted" / bob / A / "timestamp.txt").read_text()
    assert stamp == submission_stamps(students, bob)[-1]
    assert read(root / "submitted" / bob / A / f"{A}.ipynb").cells == perfect.cells
    assert "0 new, 0 updated, 4 unchanged" in instructor(root, students, "collect")

    instructor(root, students, "autograde")
    auto_points = sum(c.metadata["nbgrader"]["points"] for c in perfect.cells
                      if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code")
    total = sum(c.metadata["nbgrader"]["points"] for c in perfect.cells
                if c.metadata.get("nbgrader", {}).get("grade"))
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        subs = {s.student.id: s for s in gb.find_assignment(A).submissions}
        auto = {name: sum(g.auto_score or 0 for nb in sub.notebooks for g in nb.grades
                          if g.cell_type == "code") for name, sub in subs.items()}
        late = {name: (sub.total_seconds_late, sub.late_submission_penalty or 0)
                for name, sub in subs.items()}
        score = {name: sub.score for name, sub in subs.items()}
    assert auto[alice] == auto[bob] == auto[carol] == auto_points
    assert auto[dave] <= 0.1 * total
    assert late[carol][0] > 0 and late[carol][1] == score[carol] > 0  # penalty "zero"
    assert all(late[name] == (0, 0) for name in (alice, bob, dave))

    # Feedback goes back through the exchange; each student gets their own page only.
    instructor(root, students, "feedback")
    out = instructor(root, students, "return")
    assert f"return   {A}: feedback of 4 submissions released to {COURSE}/feedback/" in out
    for name in (alice, bob, carol, dave):
        students.nbgrader(name, "fetch_feedback", A)
        pages = sorted((students.home(name) / A / "feedback").rglob("*.html"))
        mine = (root / "feedback" / name / A / f"{A}.html").read_bytes()
        assert [p.read_bytes() for p in pages] == [mine], name
        stamp = (root / "submitted" / name / A / "timestamp.txt").read_text()
        assert pages[0].parent.name == stamp  # the feedback of the submission that counted
    pages = {name: (root / "feedback" / name / A / f"{A}.html").read_bytes()
             for name in (alice, dave)}
    assert pages[alice] != pages[dave]
    seen = students.python(dave, (
        "import os\n"
        f"try:\n    print(os.listdir({str(students.exchange / COURSE / 'feedback')!r}))\n"
        "except PermissionError:\n    print('PermissionError')\n"))
    assert seen.strip() == "PermissionError"

    # A resubmission after the feedback: its stale feedback is not released again.
    students.nbgrader(dave, "submit", A)
    assert "1 updated" in instructor(root, students, "collect")
    out = instructor(root, students, "return", expect=1)
    assert f"return   {dave}/{A}: NOT released, the feedback answers an older submission" in out

    # carol drops a "submission" of alice's into the writable inbound folder: not collected.
    alice_before = (root / "submitted" / alice / A / f"{A}.ipynb").read_bytes()
    forged = f"{alice}+{A}+2099-01-01 00:00:00.000000 UTC+forged"
    students.python(carol, (
        "import os, shutil\n"
        f"d = os.path.join({str(inbound)!r}, {forged!r})\n"
        "os.mkdir(d)\n"
        f"shutil.copy({str(students.home(carol) / A / f'{A}.ipynb')!r}, d)\n"
        "open(os.path.join(d, 'timestamp.txt'), 'w').write('2099-01-01 00:00:00.000000 UTC')\n"))
    # ... and one of her own holding a link to the instructor's solutions: not collected.
    linked = f"{carol}+{A}+2099-01-02 00:00:00.000000 UTC+linked"
    students.python(carol, (
        "import os, shutil\n"
        f"d = os.path.join({str(inbound)!r}, {linked!r})\n"
        "os.mkdir(d)\n"
        f"shutil.copy({str(students.home(carol) / A / f'{A}.ipynb')!r}, d)\n"
        f"os.symlink({str(root / 'solutions' / f'{A}.py')!r}, os.path.join(d, 'notes.txt'))\n"
        "open(os.path.join(d, 'timestamp.txt'), 'w').write('2099-01-02 00:00:00.000000 UTC')\n"))
    out = instructor(root, students, "collect", expect=1)
    assert f"SKIPPED {forged!r}: it names another student than its owner, {carol}" in out
    assert f"SKIPPED {linked!r}: it contains a symbolic link (notes.txt)" in out
    assert "0 new, 0 updated, 4 unchanged" in out
    assert (root / "submitted" / alice / A / f"{A}.ipynb").read_bytes() == alice_before
    assert not (root / "submitted" / carol / A / "notes.txt").exists()


# ------------------------------------------------------------ without an exchange, due dates


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    root = course_root(tmp_path_factory.mktemp("no-exchange"))
    instructor(root, None, "release")
    return root


def test_without_an_exchange_nothing_is_published(released):
    out = instructor(released, None, "publish")
    assert "no exchange configured" in out and "nothing was published" in out
    assert "make collect ZIP=" in instructor(released, None, "collect", expect=1)
    assert "nothing was returned" in instructor(released, None, "return", expect=1)
    assert not (released / "submitted").exists()


def test_due_dates(released):
    from nbgrader.api import Gradebook

    def due():
        with Gradebook(f"sqlite:///{released / 'gradebook.db'}") as gb:
            return gb.find_assignment(A).duedate

    out = instructor(released, None, "due", A, "2026-12-10 23:59:00 Europe/Berlin")
    assert f"due      {A}: 2026-12-10 22:59:00 UTC" in out  # CET is UTC+1 in December
    assert str(due()) == "2026-12-10 22:59:00"
    for args, message in [((A, "next friday-ish"), "is not a date"),
                          (("99_nothing", "2026-12-10"), "is not in the gradebook")]:
        result = subprocess.run([sys.executable, "tools/course.py", "--root", str(released),
                                 "due", *args], cwd=released, capture_output=True, text=True)
        assert result.returncode == 1 and message in result.stderr, result.stderr
    assert str(due()) == "2026-12-10 22:59:00"  # unchanged by the bad input
    assert "none (no submission is late)" in instructor(released, None, "due", A, "none")
    assert due() is None
