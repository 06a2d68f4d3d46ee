"""nbgrader's formgrader (the manual-grading UI) on a course root of this repository.

A throwaway course root gets one autograded submission (``tools/course.py autograde``) with a
written answer; Jupyter Server with the formgrader extension serves it, and headless
Chromium loads the manual-grading page of that submission and, through the DevTools
protocol, types a score into the written question's score box as a grader would. The test
keeps a screenshot of the box (under pytest's tmp path, and under ``$TEST_ARTIFACTS`` when
set), checks the rendered DOM (the student's answer and the score box are on the page), and
checks that the score reached the gradebook.
"""

import base64
import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course as course_tools  # noqa: E402

A = "04_normalization"
STUDENT = "ada"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--hide-scrollbars"]


def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI (run `make browser` first)")
        pytest.skip("Debian's chromium is not installed (`make browser` installs it)")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def course(tmp_path):
    """A course root with one autograded submission; returns (root, the manual cell's id,
    its points, the student's answer)."""
    root = course_tools.copy_course(tmp_path / "course", [A])
    env = dict(os.environ, MPLBACKEND="Agg",
               PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    for step in ("release", "autograde"):
        if step == "autograde":
            source = nbformat.read(root / "solutions" / A / f"{A}.ipynb", as_version=4)
            nb = copy.deepcopy(nbformat.read(root / "exercises" / A / f"{A}.ipynb",
                                             as_version=4))
            answers = {c.metadata["nbgrader"]["grade_id"]: c for c in source.cells
                       if c.metadata.get("nbgrader", {}).get("solution")}
            written = next(gid for gid, c in answers.items() if c.cell_type == "markdown")
            answer = (f"Batch statistics depend on the other examples in the batch "
                      f"(answer {uuid.uuid4().hex[:8]}).")
            for cell in nb.cells:
                gid = cell.metadata.get("nbgrader", {}).get("grade_id")
                if gid in answers:
                    cell.source = answer if gid == written else answers[gid].source
            folder = root / "submitted" / STUDENT / A
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{A}.ipynb")
        done = subprocess.run([sys.executable, "tools/course.py", "--root", str(root), step],
                              cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (step, done.stdout, done.stderr)
    return root, written, answers[written].metadata["nbgrader"]["points"], answer


class DevTools:
    """The Chrome DevTools protocol over a websocket, one call at a time."""

    def __init__(self, ws):
        self.ws, self.count = ws, 0

    def call(self, method, **params):
        self.count += 1
        self.ws.send(json.dumps({"id": self.count, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.count:
                assert "error" not in message, (method, message["error"])
                return message["result"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression, what, timeout=60):
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.25)


def grade_in_browser(browser, tmp_path, url, token, grade_id, score, screenshot, is_saved):
    """Open the manual-grading page in headless Chromium, wait for the formgrader's scripts,
    type ``score`` into the score box of ``grade_id`` as a grader would, wait until
    ``is_saved()``, and take a screenshot around the box. Returns the rendered DOM and
    facts about the score box."""
    import websocket

    profile = tmp_path / "chromium-profile"  # a fresh profile
    proc = subprocess.Popen([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                             "--remote-debugging-port=0", "--window-size=1280,1000",
                             "about:blank"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=60,
                                         suppress_origin=True)
        try:
            tools = DevTools(ws)
            tools.call("Page.enable")
            # The page's own requests (grades, saving a score) carry the token as well.
            tools.call("Network.enable")
            tools.call("Network.setExtraHTTPHeaders",
                       headers={"Authorization": f"token {token}"})
            tools.call("Page.navigate", url=url)
            tools.wait_for("document.readyState === 'complete' && [...document.querySelectorAll("
                           "'input.score')].some(e => e.placeholder !== '')",
                           "the formgrader to load the grades")
            box = json.dumps(grade_id)
            facts = tools.evaluate(f"""(() => {{
                const e = document.getElementById({box});
                e.scrollIntoView({{block: "center"}});
                const r = e.getBoundingClientRect();
                return {{visible: r.width > 0 && r.top >= 0 && r.bottom <= innerHeight,
                         text: e.parentElement.textContent.replace(/\\s+/g, " ").trim()}};
            }})()""")
            tools.evaluate(f"""(() => {{
                const e = document.getElementById({box});
                e.focus();
                e.value = "{score:g}";
                e.dispatchEvent(new Event("change", {{bubbles: true}}));
                return true;
            }})()""")
            deadline = time.monotonic() + 30
            while not is_saved():
                assert time.monotonic() < deadline, "the score typed in was never saved"
                time.sleep(0.25)
            time.sleep(0.5)  # the saved mark appears
            shot = tools.call("Page.captureScreenshot", format="png")["data"]
            screenshot.write_bytes(base64.b64decode(shot))
            dom = tools.evaluate("document.documentElement.outerHTML")
        finally:
            ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return dom, facts


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning")
def test_manual_grading_page(tmp_path):
    from nbgrader.api import Gradebook

    browser = chromium()
    root, written, points, answer = course(tmp_path)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        submission = gb.find_submission_notebook(A, A, STUDENT)
        submission_id = submission.id
        assert submission.needs_manual_grade  # the written answer waits for a grader

    port, token = free_port(), uuid.uuid4().hex
    jupyter = tmp_path / "jupyter"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(jupyter / "config"),
               JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"), JUPYTER_DATA_DIR=str(jupyter / "data"),
               PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1",
         "--no-browser", "--allow-root", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}",
         "--ServerApp.jpserver_extensions={'nbgrader.server_extensions.formgrader': True}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.5)
        assert server.poll() is None, (tmp_path / "server.log").read_text()
        url = f"{base}/formgrader/submissions/{submission_id}/?token={token}"
        with urllib.request.urlopen(url, timeout=60) as page:  # served by the formgrader
            served = page.read().decode()
        assert answer in served, served[:2000]

        screenshot = tmp_path / "formgrader_manual_grading.png"

        def saved():  # what the formgrader stored in the gradebook
            with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
                grade = gb.find_grade(written, A, A, STUDENT)
                return grade.manual_score, grade.needs_manual_grade

        dom, score_box = grade_in_browser(browser, tmp_path, url, token, written, points - 1,
                                          screenshot, lambda: saved()[0] is not None)
        saved = saved()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    if os.environ.get("TEST_ARTIFACTS"):
        folder = Path(os.environ["TEST_ARTIFACTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, folder / screenshot.name)

    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one
    assert answer in dom
    assert f'id="{written}"' in dom and 'class="score tabbable"' in dom  # the score box
    assert score_box["visible"] and f"/ {float(points)}" in score_box["text"], score_box
    assert saved == (points - 1, False)  # typed into the score box, stored in the gradebook
    assert f"{written}-comment" in dom  # and the comment box
    assert "Formgrader" in dom or "formgrader" in dom
