"""Checks of the built HTML book, and of how a real browser shows it.

The book is built into ``_build/html`` by ``make book``. When that output is missing or older
than the book's sources, the ``built_book`` fixture builds it first (with the execution cache,
under a file lock so that parallel pytest workers build it once), so these tests also work on
a fresh clone with ``make test`` alone.

Static checks read the HTML: every page of ``_toc.yml`` exists; every lecture chapter has
figures, math, launch and download buttons, hidden answers and no placeholder text; nothing
of the nbgrader solutions or hidden tests reaches any built file.

Browser checks serve the HTML on 127.0.0.1 and open it in headless Chromium (Debian's
package, installed by ``make browser``): MathJax, served from the book itself, must typeset
every formula without a network, and a screenshot must show a page rather than a blank.
Outside CI they are skipped when Chromium is missing; in CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from bs4 import BeautifulSoup
from filelock import FileLock
from PIL import Image

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
HTML = BUILD / "html"
BUILT_STAMP = HTML / ".book-built"
BROWSER_OUT = BUILD / "browser-check"

#: Files and folders whose change means the HTML must be rebuilt.
BOOK_SOURCES = ("_config.yml", "_toc.yml", "references.bib", "book", "exercises")
#: Lecture chapters are the toc entries named like ``book/00_why_normalize``.
CHAPTER_RE = re.compile(r"^book/\d\d_[\w-]+$")
#: What nbgrader uses to delimit what students must not see.
SOLUTION_MARKERS = (
    "BEGIN SOLUTION",
    "END SOLUTION",
    "BEGIN HIDDEN TESTS",
    "END HIDDEN TESTS",
)
PLACEHOLDER_RE = re.compile(r"\bTODO\b|\bFIXME\b|\bTBD\b|placeholder|lorem ipsum", re.I)
#: Built files that are read as text when looking for leaked solutions.
TEXT_SUFFIXES = {".html", ".htm", ".txt", ".js", ".json", ".ipynb", ".md", ".py", ".css"}


# ----------------------------------------------------------------------------- toc


def _toc_files(node) -> list[str]:
    """All ``file`` entries of a ``_toc.yml`` (root, parts, chapters, sections), in order."""
    found = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                found.append(str(node[key]))
        for value in node.values():
            if isinstance(value, (dict, list)):
                found.extend(_toc_files(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_toc_files(item))
    return found


def _strip_suffix(docname: str) -> str:
    return re.sub(r"\.(md|ipynb|rst)$", "", docname)


TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
PAGES = [_strip_suffix(f) for f in _toc_files(TOC)]
CHAPTERS = [p for p in PAGES if CHAPTER_RE.match(p)]


def _html_path(docname: str) -> Path:
    return HTML / f"{docname}.html"


def _source_path(docname: str) -> Path | None:
    for suffix in (".ipynb", ".md", ".rst"):
        candidate = ROOT / f"{docname}{suffix}"
        if candidate.exists():
            return candidate
    return None


# ----------------------------------------------------------------------------- building


def _newest_source_mtime() -> float:
    newest = 0.0
    for name in BOOK_SOURCES:
        path = ROOT / name
        if path.is_file():
            newest = max(newest, path.stat().st_mtime)
        elif path.is_dir():
            for file in path.rglob("*"):
                if file.is_file() and ".ipynb_checkpoints" not in file.parts:
                    newest = max(newest, file.stat().st_mtime)
    return newest


def _book_is_fresh() -> bool:
    return (
        BUILT_STAMP.exists()
        and (HTML / "index.html").exists()
        and BUILT_STAMP.stat().st_mtime >= _newest_source_mtime()
    )


def _jupyter_book() -> str:
    local = Path(sys.executable).with_name("jupyter-book")
    if local.exists():
        return str(local)
    found = shutil.which("jupyter-book")
    if found is None:
        pytest.fail("jupyter-book is not installed; run `make install`")
    return found


@pytest.fixture(scope="session")
def built_book() -> Path:
    """The HTML book, built now if it is missing or older than its sources."""
    BUILD.mkdir(exist_ok=True)
    with FileLock(str(BUILD / ".book-build.lock"), timeout=3600):
        if not _book_is_fresh():
            cmd = [_jupyter_book(), "build", str(ROOT), "-W", "-n", "--keep-going"]
            # The kernels must draw with matplotlib's inline backend: an inherited
            # MPLBACKEND (Agg, say) would silently drop every figure from the pages.
            env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
            run = subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000
            )
            if run.returncode != 0:
                pytest.fail(
                    "the book does not build without warnings (`make book`):\n"
                    + (run.stdout + run.stderr)[-6000:]
                )
            BUILT_STAMP.touch()
    return HTML


def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _article(soup: BeautifulSoup):
    """The chapter's own content, without the theme's navigation and buttons."""
    article = soup.find("article") or soup.find("main")
    assert article is not None, "no <article>/<main> element: has the HTML theme changed?"
    return article


def _prose_text(article) -> str:
    """Text of the article outside code cells, code blocks and cell outputs."""
    article = BeautifulSoup(str(article), "html.parser")
    for element in article.select("pre, code, .cell_input, .cell_output, .highlight"):
        element.decompose()
    return article.get_text(" ")


def _resolve(page: Path, src: str) -> Path:
    src = src.split("#", 1)[0].split("?", 1)[0]
    return (page.parent / src).resolve()


# ----------------------------------------------------------------------------- static checks


def test_toc_lists_the_first_chapter():
    assert "book/00_why_normalize" in CHAPTERS


@pytest.mark.parametrize("docname", PAGES)
def test_every_toc_page_is_built(built_book, docname):
    page = _html_path(docname)
    assert page.exists(), f"{docname} is in _toc.yml but {page} was not built"
    title = _soup(page).find("h1")
    assert title is not None and title.get_text(strip=True), f"{page} has no title"


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_source_is_a_notebook_without_outputs(docname):
    source = ROOT / f"{docname}.ipynb"
    assert source.exists(), f"chapters are committed as notebooks: {source} is missing"
    notebook = json.loads(source.read_text(encoding="utf-8"))
    assert notebook["metadata"].get("kernelspec", {}).get("name") == "python3"
    with_outputs = [
        i
        for i, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not with_outputs, f"{source}: cells {with_outputs} are committed with outputs"


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_has_figures(built_book, docname):
    page = _html_path(docname)
    images = []
    for img in _article(_soup(page)).find_all("img"):
        src = img.get("src", "")
        if src.startswith("data:image/png;base64,"):
            images.append(len(src) - len("data:image/png;base64,"))
        elif src.endswith(".png") and "_static/" not in src:
            file = _resolve(page, src)
            assert file.exists(), f"{page}: figure {src} is missing from the build"
            images.append(file.stat().st_size)
    assert len(images) >= 3, f"{page}: expected at least 3 figures, found {len(images)}"
    assert all(size > 1000 for size in images), f"{page}: empty figure among {images}"


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_math_is_marked_up_for_the_local_mathjax(built_book, docname):
    page = _html_path(docname)
    soup = _soup(page)
    scripts = [s.get("src", "") for s in soup.find_all("script") if s.get("src")]
    mathjax = [s for s in scripts if "mathjax" in s.lower()]
    assert mathjax, f"{page}: no MathJax script"
    assert all(not s.startswith(("http:", "https:", "//")) for s in mathjax), (
        f"{page}: MathJax is loaded from the network ({mathjax}); the book must work offline"
    )
    assert all(_resolve(page, s).stat().st_size > 100_000 for s in mathjax)
    inline = soup.select("span.math")
    display = soup.select("div.math")
    assert display, f"{page}: no display math"
    assert inline, f"{page}: no inline math"
    assert all(el.get_text().lstrip().startswith("\\(") for el in inline)
    assert all(el.get_text().lstrip().startswith("\\[") for el in display)
    prose = _prose_text(_article(soup))
    assert "$$" not in prose, f"{page}: unconverted $$ in the text"


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_has_launch_and_download_buttons(built_book, docname):
    page = _html_path(docname)
    soup = _soup(page)
    hrefs = [a.get("href", "") for a in soup.find_all("a")]
    notebook = f"{docname}.ipynb"
    binder = [h for h in hrefs if "mybinder.org/v2/" in h and notebook in h]
    colab = [h for h in hrefs if "colab.research.google.com/github/" in h and notebook in h]
    assert binder, f"{page}: no Binder launch button for {notebook}"
    assert colab, f"{page}: no Colab launch button for {notebook}"
    downloads = [a.get("href", "") for a in soup.select("a.btn-download-source-button")]
    assert downloads, f"{page}: no download button for the source notebook"
    assert all(_resolve(page, h).exists() for h in downloads), f"{page}: broken {downloads}"
    assert any(h.endswith(".ipynb") for h in downloads)


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_has_objectives_hidden_answers_and_citations(built_book, docname):
    page = _html_path(docname)
    article = _article(_soup(page))
    text = article.get_text(" ")
    assert re.search(r"learning objectives", text, re.I), f"{page}: no learning objectives"
    hidden = article.select(".dropdown, .toggle, details")
    assert hidden, f"{page}: no check-your-understanding answers hidden in a dropdown"
    assert article.select(".bibtex-citation"), f"{page}: cites nothing from references.bib"


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_has_no_placeholder_text(built_book, docname):
    page = _html_path(docname)
    text = _article(_soup(page)).get_text(" ")
    found = sorted({m.group(0) for m in PLACEHOLDER_RE.finditer(text)})
    assert not found, f"{page}: placeholder text {found}"


# ----------------------------------------------------------------------------- exercises

#: Graded assignments: one ``solutions/<NN>_<topic>.py`` each, released to ``exercises/``.
ASSIGNMENTS = sorted(p.stem for p in (ROOT / "solutions").glob("*.py")
                     if re.fullmatch(r"\d\d_\w+", p.stem))
EXERCISES = [p for p in PAGES if p.startswith("exercises/")]


#: The graded assignment each lecture chapter links to, by the chapter's two-digit prefix. The
#: chapters and the assignments are numbered independently: the two normalization chapters
#: (04 batch normalization, 05 the family) share assignment 04, and the later chapters follow
#: one number behind. Chapter 00 has no assignment.
CHAPTER_EXERCISES = {
    "01": "01_preprocessing",
    "02": "02_initialization",
    "03": "03_regularization",
    "04": "04_normalization",
    "05": "04_normalization",
    "06": "05_optimizers",
    "07": "06_analysis",
}


def _exercise_of(chapter: str) -> str | None:
    assignment = CHAPTER_EXERCISES.get(chapter.split("/")[-1][:2])
    return f"exercises/{assignment}/{assignment}" if assignment else None


def test_chapter_exercise_map_matches_the_toc_and_the_assignments():
    numbers = {c.split("/")[-1][:2] for c in CHAPTERS}
    assert set(CHAPTER_EXERCISES) <= numbers, (
        f"CHAPTER_EXERCISES names chapters not in _toc.yml: {set(CHAPTER_EXERCISES) - numbers}")
    assert set(CHAPTER_EXERCISES.values()) == set(ASSIGNMENTS), (
        "every assignment must be linked from a chapter, and every linked one must exist: "
        f"{sorted(set(CHAPTER_EXERCISES.values()) ^ set(ASSIGNMENTS))}")


def test_every_assignment_is_in_the_exercises_part():
    assert ASSIGNMENTS, "no assignment in solutions/"
    assert EXERCISES == [f"exercises/{a}/{a}" for a in ASSIGNMENTS]
    parts = {part.get("caption"): _toc_files(part) for part in TOC.get("parts", [])}
    assert [_strip_suffix(f) for f in parts.get("Exercises", [])] == EXERCISES


@pytest.mark.parametrize("docname", EXERCISES)
def test_exercise_page_shows_the_unexecuted_release_with_launch_buttons(built_book, docname):
    page = _html_path(docname)
    soup = _soup(page)
    article = _article(soup)
    assert not article.select(".cell_output"), f"{page}: the exercise was executed"
    assert "raise NotImplementedError()" in article.get_text(), f"{page}: no stubs shown"
    hrefs = [a.get("href", "") for a in soup.find_all("a")]
    notebook = f"{docname}.ipynb"
    assert any("colab.research.google.com/github/" in h and notebook in h for h in hrefs), (
        f"{page}: no Colab launch button for {notebook}")
    assert any("mybinder.org/v2/" in h and notebook in h for h in hrefs)
    assert re.search(r"Total: \d+ points", article.get_text(" ")), f"{page}: no stated total"


@pytest.mark.parametrize("docname", [c for c in CHAPTERS if _exercise_of(c)])
def test_chapter_links_to_its_exercise(built_book, docname):
    page = _html_path(docname)
    target = HTML / f"{_exercise_of(docname)}.html"
    links = [_resolve(page, a["href"]) for a in _article(_soup(page)).find_all("a", href=True)
             if not a["href"].startswith(("http:", "https:", "#", "mailto:"))]
    assert target.resolve() in links, f"{page}: no link to its exercise {target.name}"


# ----------------------------------------------------------------------------- no solutions


def _notebook_lines(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    lines = []
    for cell in cells:
        source = cell.get("source", "")
        lines.extend(("".join(source) if isinstance(source, list) else source).splitlines())
    return lines


def _normalize(line: str) -> str:
    return " ".join(line.split())


def _hidden_lines() -> set[str]:
    """Distinctive lines inside solution and hidden-test blocks of solutions/ notebooks.

    Lines that also occur, alone or inside a longer line, in the book's own chapters or in the
    released exercises (where students see them anyway) are left out, as are comments and
    short lines.
    """
    hidden = set()
    for notebook in sorted((ROOT / "solutions").rglob("*.ipynb")):
        inside = False
        for line in _notebook_lines(notebook):
            if re.search(r"BEGIN (SOLUTION|HIDDEN TESTS)", line):
                inside = True
            elif re.search(r"END (SOLUTION|HIDDEN TESTS)", line):
                inside = False
            elif inside:
                text = _normalize(line)
                if len(text) >= 25 and not text.startswith("#"):
                    hidden.add(text)
    public = set()
    for folder in ("book", "exercises"):
        for file in (ROOT / folder).rglob("*"):
            if file.suffix == ".ipynb":
                public.update(_normalize(line) for line in _notebook_lines(file))
            elif file.suffix in {".md", ".py"}:
                public.update(_normalize(line) for line in file.read_text("utf-8").splitlines())
    # A line students see inside a longer one (an instruction quoting the expected code, a
    # visible test calling the same helper) is public too.
    public_text = "\n".join(public)
    return {line for line in hidden - public if line not in public_text}


def _built_text(path: Path) -> str:
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix in {".html", ".htm"}:
        return BeautifulSoup(raw, "html.parser").get_text("\n")
    if path.suffix == ".ipynb":
        try:
            return "\n".join(_notebook_lines(path))
        except ValueError:
            return raw
    return raw


def test_no_solution_or_hidden_test_text_in_the_build(built_book):
    files = [
        f
        for f in built_book.rglob("*")
        if f.is_file() and f.suffix in TEXT_SUFFIXES and "_static" not in f.parts
    ]
    assert files
    leaks = []
    for file in files:
        raw = file.read_text(encoding="utf-8", errors="replace")
        leaks += [f"{file}: {m}" for m in SOLUTION_MARKERS if m in raw]
    assert not leaks, "nbgrader markers in the built book:\n" + "\n".join(leaks)

    hidden = _hidden_lines()
    if not hidden:
        return
    # Every distinctive solution line is looked for, whitespace-normalized.
    for file in files:
        text = "\n".join(_normalize(line) for line in _built_text(file).splitlines())
        leaks += [f"{file}: {line}" for line in hidden if line in text]
    assert not leaks, "solution code in the built book:\n" + "\n".join(leaks[:20])


# ----------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        reason = "headless Chromium is not installed (run `make browser`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must run the browser checks")
        pytest.skip(reason)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def server(built_book):
    """The built book served over HTTP on 127.0.0.1 (a free port)."""
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _run_chromium(chromium: str, url: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            *args,
            url,
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, f"chromium failed on {url}:\n{run.stderr[-3000:]}"
    return run


BROWSER_PAGES = ["index", *CHAPTERS[:1]]


@pytest.mark.parametrize("docname", BROWSER_PAGES)
def test_browser_typesets_all_math_offline(chromium, server, built_book, docname):
    num_math = len(_soup(_html_path(docname)).select("span.math, div.math"))
    dom = _run_chromium(chromium, f"{server}/{docname}.html", "--dump-dom").stdout
    soup = BeautifulSoup(dom, "html.parser")
    assert soup.find("h1") is not None, f"{docname}: the browser shows no page title"
    containers = soup.find_all("mjx-container")
    errors = soup.find_all("mjx-merror")
    assert not errors, f"{docname}: MathJax errors: {[e.get_text() for e in errors][:5]}"
    assert len(containers) >= num_math, (
        f"{docname}: MathJax typeset {len(containers)} of {num_math} formulas"
    )
    if docname != "index":
        assert num_math > 0
        assert "$$" not in _prose_text(_article(soup))


@pytest.mark.parametrize("docname", BROWSER_PAGES)
def test_browser_screenshot_is_not_blank(chromium, server, docname):
    BROWSER_OUT.mkdir(parents=True, exist_ok=True)
    shot = BROWSER_OUT / f"{docname.replace('/', '_')}.png"
    shot.unlink(missing_ok=True)
    _run_chromium(
        chromium,
        f"{server}/{docname}.html",
        "--window-size=1280,2400",
        "--hide-scrollbars",
        f"--screenshot={shot}",
    )
    assert shot.exists() and shot.stat().st_size > 0, f"no screenshot of {docname}"
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1280)
    inked = np.mean(pixels < 200)
    assert pixels.std() > 10, f"{shot} is blank (pixel std {pixels.std():.2f})"
    assert inked > 0.01, f"{shot} is almost empty ({inked:.2%} dark pixels)"
