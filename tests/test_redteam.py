"""Hostile submissions through the real instructor workflow: every cheat scores nothing.

A throwaway course root is released, then a class of determined cheats submits
``04_normalization`` beside an honest student, and the instructor runs ``autograde``,
``feedback`` and ``grades`` exactly as ``make`` does. Each attack is one submission; the
attacker knows the layout of the course (the root's absolute path is written into the code).
Afterwards: the cheated cells score 0, the honest student keeps every point, the instructor's
files and the environment are byte-for-byte unchanged, the gradebook holds only what the
trusted grader wrote, no process of the sandbox user survives, and no solution or hidden-test
line reaches any feedback page or file.
"""

import copy
import hashlib
import os
import site
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from grader import assignment as assignments
from grader.feedback import html_text, leaks, normalize, secret_lines
from grader.sandbox import SANDBOX_UID, SandboxUnavailable, preflight

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402

A = "04_normalization"
pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning")]


def _meta(cell):
    return cell.metadata.get("nbgrader", {})


def _read(path):
    return nbformat.read(path, as_version=4)


def _release():
    return _read(ROOT / "exercises" / A / f"{A}.ipynb")


def _perfect():
    """The release with the solution's code in every answer cell (without its markers, as a
    student would write it) and an answer to the written question."""
    source, nb = _read(ROOT / "solutions" / A / f"{A}.ipynb"), copy.deepcopy(_release())
    answers = {_meta(c)["grade_id"]: assignments.unmark(c.source) for c in source.cells
               if _meta(c).get("solution") and c.cell_type == "code"}
    for cell in nb.cells:
        if _meta(cell).get("grade_id") in answers:
            cell.source = answers[_meta(cell)["grade_id"]]
    return nb


def _set(nb, grade_id, source):
    nb = copy.deepcopy(nb)
    next(c for c in nb.cells if _meta(c).get("grade_id") == grade_id).source = source
    return nb


def _prepend(nb, grade_id, code):
    cell = next(c for c in nb.cells if _meta(c).get("grade_id") == grade_id)
    return _set(nb, grade_id, textwrap.dedent(code) + "\n" + cell.source)


def _add_cell(nb, code, at=2):
    nb = copy.deepcopy(nb)
    nb.cells.insert(at, nbformat.v4.new_code_cell(textwrap.dedent(code)))
    return nb


BN_SIGNATURE = ("def batch_norm_forward(x, gamma, beta, running_mean=None, running_var=None, *,"
                " training=True, momentum=0.1, eps=1e-5):\n")


def attacks(root: Path, venv_site: str) -> dict:
    """{student: (notebook, extra files {relative path: bytes or None for a symlink})}."""
    blank, perfect = _release(), _perfect()
    first = "batch_norm_forward"
    bn = lambda body: BN_SIGNATURE + textwrap.indent(textwrap.dedent(body), "    ")  # noqa: E731
    out = {
        # The checks replaced by no-ops before any test runs.
        "patch-grading": (_prepend(blank, first, """
            from normcore import grading as _g
            for _n in ("check_example", "check_against_reference", "check_gradient",
                       "check_optimizer", "assert_close"):
                setattr(_g, _n, lambda *a, **k: None)
            """), {}),
        # Every cell that starts like a test cell becomes `pass`.
        "input-transformer": (_prepend(blank, first, """
            def _neuter(lines):
                if lines and "point" in lines[0] and lines[0].startswith("#"):
                    return ["pass\\n"]
                return lines
            get_ipython().input_transformers_cleanup.append(_neuter)
            """), {}),
        # A normcore package with do-nothing checks next to the notebook.
        "shadow-normcore": (blank, {
            "normcore/__init__.py": b"",
            "normcore/grading.py": b"def __getattr__(name):\n    return lambda *a, **k: None\n"}),
        # The catalog's correct implementations.
        "flawless": (_set(perfect, first, "from normcore import grading\n"
                          "batch_norm_forward = grading.GRADED['batch_norm_forward'].flawless\n"),
                     {}),
        # The reference, with the profiler switched off and from a thread.
        "thread-reference": (_set(perfect, first, "import sys, threading\n"
                                  "from normcore import normalization as _n\n" + bn("""
            sys.setprofile(None)
            box = {}
            t = threading.Thread(target=lambda: box.update(
                r=_n.batch_norm_forward(x, gamma, beta, running_mean, running_var,
                                        training=training, momentum=momentum, eps=eps)))
            t.start(); t.join()
            return box["r"]
            """)), {}),
        # The reference's source, run under another name.
        "exec-source": (_set(perfect, first, """
import inspect
import normcore.normalization as _m
_ns = {"__name__": "not_normcore"}
exec(inspect.getsource(_m), _ns)
batch_norm_forward = _ns["batch_norm_forward"]
"""), {}),
        # The expected values read from the grader's stack frames.
        "frame-peek": (_set(perfect, first, "import sys\n" + bn("""
            f = sys._getframe(1)
            while f is not None:
                for key in ("expected", "ref_parts", "want"):
                    if key in f.f_locals:
                        found = f.f_locals[key]
                        return found.get("out", found), None
                f = f.f_back
            return x, None
            """)), {}),
        # torch's kernel by its op name.
        "aten": (_set(perfect, first, "import torch\n" + bn("""
            t = torch.ops.aten.native_batch_norm.default(
                torch.from_numpy(x), torch.from_numpy(gamma), torch.from_numpy(beta),
                None, None, True, momentum, eps)
            return t[0].numpy(), None
            """)), {}),
        # Read the solutions and hidden tests, print them encoded, write them to a file.
        "reader": (_add_cell(perfect, f"""
            import base64, glob, os
            found = []
            for pattern in ["../../../solutions/*.py", "{root}/solutions/*.py",
                            "{root}/solutions/*/*.ipynb", "/**/solutions/*.py"]:
                for path in glob.glob(pattern, recursive=True):
                    try:
                        found.append(open(path).read())
                    except OSError as exc:
                        print("no", path, exc)
            text = "\\n".join(found) + "\\n".join(str(x) for x in globals().get("_ih", []))
            print(base64.b64encode(text.encode()).decode()[:2000])
            print("\\n".join("> " + line for line in text.splitlines()))
            open("stolen.txt", "w").write(text)
            """, at=len(perfect.cells)), {}),
        # Raise its own grade and zero a classmate's, poison the stored tests.
        "gradebook-writer": (_prepend(blank, first, f"""
            import sqlite3
            for path in ["../../../gradebook.db", "{root}/gradebook.db"]:
                try:
                    db = sqlite3.connect(path)
                    db.execute("UPDATE grade SET auto_score = 100")
                    db.execute("UPDATE source_cell SET source = 'pass'")
                    db.commit()
                    print("wrote", path)
                except Exception as exc:
                    print("no", path, exc)
            """), {}),
        # The instructor's code, the environment, a classmate's submission.
        "course-writer": (_prepend(blank, first, f"""
            targets = ["{root}/tools/course.py", "{root}/grader/trusted.py",
                       "{ROOT}/normcore/grading.py", "{venv_site}/evil.pth",
                       "{root}/submitted/honest/{A}/{A}.ipynb"]
            for path in targets:
                try:
                    with open(path, "a") as f:
                        f.write("\\nimport os; os.system('touch /tmp/pwned')\\n")
                    print("wrote", path)
                except OSError as exc:
                    print("no", path, exc)
            """), {}),
        # Processes that try to outlive the run and edit the gradebook later.
        "detached": (_prepend(perfect, first, f"""
            import os, subprocess, sys
            code = ("import time, sqlite3\\ntime.sleep(20)\\n"
                    "db = sqlite3.connect('{root}/gradebook.db')\\n"
                    "db.execute('UPDATE grade SET auto_score = 100'); db.commit()")
            subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    import time
                    time.sleep(30)
                os._exit(0)
            """), {}),
        # Symbolic links out of the submission.
        "symlink": (perfect, {"leak.py": Path(root / "solutions" / f"{A}.py"),
                              "gradebook.db": Path(root / "gradebook.db")}),
        # A file too large to copy, and a cell that fills the disk.
        "huge": (_add_cell(perfect, """
            try:
                with open("fill.bin", "wb") as f:
                    for _ in range(1000):
                        f.write(b"x" * (1 << 20))
            except OSError as exc:
                print("stopped:", exc)
            """), {"big.bin": b"x" * (30 << 20)}),
        # A crash from ctypes inside the graded function.
        "ctypes": (_set(perfect, first, "import ctypes\n" + bn("""
            ctypes.string_at(0)
            """)), {}),
        # Signals tampered with, then a loop that never ends.
        "signals": (_set(perfect, first, "import signal\n" + bn("""
            for s in (signal.SIGALRM, signal.SIGINT, signal.SIGTERM):
                signal.signal(s, signal.SIG_IGN)
            signal.setitimer(signal.ITIMER_REAL, 0)
            while True:
                pass
            """)), {}),
        # A result that claims to equal anything.
        "eq-object": (_set(perfect, first, "import numpy as np\n" + bn("""
            class Anything(np.ndarray):
                def __eq__(self, other):
                    return True
                def __array_finalize__(self, obj):
                    pass
            return np.zeros(0).view(Anything), None
            """)), {}),
        # Script in every output and in the written answer, aimed at whoever opens feedback.
        "xss": (_add_cell(_set(perfect, "written_answer",
                               "<script>alert('answer')</script> <img src=x onerror=alert(1)>"),
                          """
            from IPython.display import HTML, Javascript, display
            display(HTML("<script>alert('html')</script>"))
            display(Javascript("alert('js')"))
            print("<script>alert('print')</script>")
            raise ValueError("<script>alert('error')</script>")
            """), {}),
        # NumPy's comparisons and the builtins patched.
        "patched-numpy": (_prepend(blank, first, """
            import builtins
            import numpy as np
            np.allclose = lambda *a, **k: True
            np.testing.assert_allclose = lambda *a, **k: None
            builtins.isinstance = lambda *a: True
            """), {}),
    }
    return out


def _digest(paths) -> str:
    h = hashlib.sha256()
    for base in paths:
        base = Path(base)
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*")
                                                      if p.is_file() and "__pycache__" not in
                                                      p.parts)
        for path in files:
            h.update(str(path).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _venv_state(venv_site: str) -> str:
    """The environment's import hooks and installed packages (a full hash would take minutes)."""
    site_dir = Path(venv_site)
    names = sorted(p.name for p in site_dir.iterdir())
    hooks = sorted(site_dir.glob("*.pth")) + sorted(site_dir.glob("__editable__*"))
    return hashlib.sha256("\n".join(names).encode()).hexdigest() + _digest(hooks)


def _sandbox_processes() -> list[str]:
    """Processes of the sandbox user started by this process's grading: they all inherit the
    environment of a sandbox of ours, which names our staging folder. (Other tests may be
    grading at the same time, in their own sandboxes.)"""
    from grader.student import stage_once

    ours = str(Path(stage_once()["worker"]).parent).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if proc.stat().st_uid == SANDBOX_UID and ours in (proc / "environ").read_bytes():
                    found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return found


def _scores(root, student):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_submission(A, student).notebooks[0]
        return {g.name: (g.auto_score, g.manual_score) for g in nb.grades}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    try:
        preflight()
    except SandboxUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no sandbox here: {exc}")
    root = course.copy_course(tmp_path_factory.mktemp("redteam"), [A], config=(
        "\nc.Execute.timeout = 10\nc.TrustedChecks.cell_time_limit = 10\n"))
    os.chmod(root, 0o755)
    assert course.main(["--root", str(root), "release"]) == 0
    venv_site = next(p for p in site.getsitepackages() if p.startswith(sys.prefix))

    def submit(student, nb, files=None):
        folder = root / "submitted" / student / A
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{A}.ipynb")
        for rel, content in (files or {}).items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                target.symlink_to(content)
            else:
                target.write_bytes(content)

    # The honest student is graded first; the attackers come afterwards.
    submit("honest", _perfect())
    assert course.main(["--root", str(root), "autograde"]) == 0
    honest_before = _scores(root, "honest")
    protected = [root / "tools", root / "grader", root / "solutions", root / "exercises",
                 root / "nbgrader_config.py", root / "submitted" / "honest"]
    before = ({str(p): _digest([p]) for p in protected}, _venv_state(venv_site))
    plan = attacks(root, venv_site)
    for student, (nb, files) in plan.items():
        submit(student, nb, files)
    started = time.monotonic()
    status = course.main(["--root", str(root), "autograde"])
    seconds = time.monotonic() - started
    survivors = _sandbox_processes()
    feedback_status = course.main(["--root", str(root), "feedback"])
    grades_status = course.main(["--root", str(root), "grades"])
    time.sleep(1)
    return {"root": root, "plan": plan, "status": status, "seconds": seconds,
            "before": before,
            "after": ({str(p): _digest([p]) for p in protected}, _venv_state(venv_site)),
            "honest_before": honest_before, "survivors": survivors,
            "feedback_status": feedback_status, "grades_status": grades_status,
            "venv_site": venv_site}


def _auto(scores, only=None):
    return sum(a or 0 for g, (a, _) in scores.items() if only is None or g in only)


BN_FORWARD_CELLS = ("test_batch_norm_forward", "test_batch_norm_running_stats",
                    "test_batch_norm_spatial")
BLANK_BASED = ("patch-grading", "input-transformer", "shadow-normcore", "gradebook-writer",
               "course-writer", "patched-numpy")
BN_CHEATS = ("flawless", "thread-reference", "exec-source", "frame-peek", "aten", "ctypes",
             "signals", "eq-object")


def test_blank_cheats_score_nothing(attacked):
    for student in BLANK_BASED:
        assert _auto(_scores(attacked["root"], student)) == 0, student


def test_cheated_functions_score_nothing_and_the_rest_is_graded(attacked):
    root = attacked["root"]
    honest = _scores(root, "honest")
    for student in BN_CHEATS:
        scores = _scores(root, student)
        assert _auto(scores, BN_FORWARD_CELLS) == 0, (student, scores)
        # Functions that do not build on the cheated one keep their points.
        for cell in ("test_layer_norm_forward", "test_group_norm_forward"):
            assert scores[cell] == honest[cell], (student, cell)


def test_honest_student_is_untouched(attacked):
    root = attacked["root"]
    a = assignments.load(ROOT, A)
    assert _auto(attacked["honest_before"]) == sum(t.points for t in a.tests)
    assert _scores(root, "honest") == attacked["honest_before"]
    for student in ("reader", "detached", "huge", "xss"):  # perfect code, hostile extras
        assert _auto(_scores(root, student)) == sum(t.points for t in a.tests), student


def test_instructor_files_and_environment_unchanged(attacked):
    (files_before, venv_before), (files_after, venv_after) = attacked["before"], attacked["after"]
    assert [p for p in files_before if files_before[p] != files_after[p]] == []
    assert venv_after == venv_before
    assert not Path("/tmp/pwned").exists()
    assert "pwned" not in (ROOT / "normcore" / "grading.py").read_text()
    assert not list(Path(attacked["venv_site"]).glob("evil*"))


def test_nothing_survives_the_run(attacked):
    assert attacked["survivors"] == []
    time.sleep(2)
    assert _sandbox_processes() == []


def test_symlinked_submission_is_refused_not_followed(attacked):
    root = attacked["root"]
    assert attacked["status"] == 1  # the instructor is told
    assert not (root / "autograded" / "symlink").exists()
    assert not (root / "feedback" / "symlink").exists()


def test_no_secret_reaches_any_feedback_file(attacked):
    root = attacked["root"]
    secrets = secret_lines(root)
    hidden = {normalize(ln) for ln in assignments.load(root, A).hidden_lines} & secrets
    assert len(secrets) > 100
    pages = 0
    for folder in sorted((root / "feedback").glob(f"*/{A}")):
        student = folder.parent.name
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert [p.suffix for p in files] == [".html"], (student, files)
        page = files[0].read_text()
        assert leaks(page, secrets, course._own_text(root, student, A)) == [], student
        assert "<script>alert" not in page and "<img src=x" not in page, student
        pages += 1
    assert pages == len(attacked["plan"])  # every graded student has a page (not symlink)
    # Hidden tests never ran in a student's kernel: not in any autograded notebook either.
    for nb_path in (root / "autograded").glob(f"*/{A}/{A}.ipynb"):
        text = normalize(nb_path.read_text())
        assert not [h for h in hidden if len(h) >= 20 and h in text], nb_path
        assert "default_rng(4041)" not in nb_path.read_text()


def test_reader_found_nothing(attacked):
    page = html_text((attacked["root"] / "feedback" / "reader" / A / f"{A}.html").read_text())
    assert "BEGIN HIDDEN" not in page and "BEGIN SOLUTION" not in page
    assert "_ref.batch_norm_forward" not in page


def test_gradebook_was_written_by_the_grader_only(attacked):
    root = attacked["root"]
    time.sleep(1)
    assert _auto(_scores(root, "detached")) <= sum(
        t.points for t in assignments.load(ROOT, A).tests)
    rows = (root / "grades" / "grades.csv").read_text().splitlines()
    assert any(r.startswith(f"gradebook-writer,{A},0") for r in rows), rows[:3]
    # The stored test cells are the grader's: a new autograde still catches a blank.
    assert course.autograde(root, student="patch-grading", force=True) == 0
    assert _auto(_scores(root, "patch-grading")) == 0


def test_feedback_and_grades_complete(attacked):
    assert attacked["feedback_status"] == 0
    assert attacked["grades_status"] == 0
