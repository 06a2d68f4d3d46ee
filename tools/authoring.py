"""Authoring an assignment: a working scaffold (``new``) and the fast checks (``check``).

::

    python tools/course.py new NN_topic [--chapter book/XX_name.ipynb] [--title "..."]
    python tools/course.py check NN_topic

``new`` writes, from the templates in ``tools/templates/``, a complete minimal assignment
``solutions/NN_topic.py`` (instructions with the total, the setup cell, one answer cell, a
visible and hidden test, a written question), its catalog module ``grader/catalog/topic.py``
(reference, mistakes with mutants, the graded function), the entry in the *Exercises* part
of ``_toc.yml`` and, with ``--chapter``, a link from that chapter to the exercise. It checks
everything first and writes nothing when something is wrong.

``check`` runs, in seconds, what the test suite holds every assignment to: the source
builds, a release made in a scratch folder holds no solution or hidden test, the solutions
pass every test cell and the released stubs fail every one (in the trusted grader, as when
autograding), and every catalog mistake of the assignment's functions fails a test cell of
its function with its message, and ``_toc.yml`` lists the exercise. It warns about a graded
function without catalog entries and about an exercise that no chapter links to.
The catalog is that of the ``grader`` package this process imported: run ``course.py`` of
the course root being checked (as ``make check`` does).
"""

from __future__ import annotations

import hashlib
import json
import keyword
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import course
from course import CourseError

TEMPLATES = Path(__file__).resolve().parent / "templates"
_TOC_ENTRY = re.compile(r"^(\s*)-\s+file:\s*(\S+)\s*$")


# ------------------------------------------------------------------------------------ new


def template_names(name: str) -> dict:
    """The names a new assignment ``name`` gets: topic, catalog module, template function."""
    if not course._NAME.match(name):
        raise CourseError(f"bad assignment name {name!r}: expected two digits, an underscore "
                          f"and a topic in lower case, e.g. 07_whitening")
    topic = name[3:]
    if not topic[0].isalpha() or not topic.isidentifier() or keyword.iskeyword(topic):
        raise CourseError(f"bad assignment name {name!r}: the topic {topic!r} names the catalog "
                          f"module grader/catalog/{topic}.py, so it must start with a letter "
                          f"and be a Python identifier")
    return {"topic": topic, "function": f"{topic}_center", "number": str(int(name[:2])),
            "catalog": f"grader/catalog/{topic}.py"}


def _fill(template: str, values: dict) -> str:
    text = (TEMPLATES / template).read_text()
    for key, value in values.items():
        text = text.replace(f"__{key.upper()}__", value)
    return text


def toc_with(toc_text: str, name: str) -> str:
    """``_toc.yml``'s text with ``exercises/<name>/<name>`` in its Exercises part, in order."""
    import yaml

    entry = f"exercises/{name}/{name}"
    lines = toc_text.split("\n")
    start = next((i for i, ln in enumerate(lines)
                  if re.match(r"^\s*-\s+caption:\s*Exercises\s*$", ln)), None)
    if start is None:
        raise CourseError("_toc.yml has no part with 'caption: Exercises'")
    part_indent = len(lines[start]) - len(lines[start].lstrip())
    chapters, entries, end = None, [], len(lines)
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if line.strip() and len(line) - len(line.lstrip()) <= part_indent:
            end = i
            break
        if re.match(r"^\s*chapters:\s*$", line):
            chapters = i
        found = _TOC_ENTRY.match(line)
        if found and chapters is not None:
            entries.append((i, found.group(1), found.group(2)))
    if chapters is None:
        raise CourseError("_toc.yml: the Exercises part has no 'chapters:' list")
    if any(e[2].removesuffix(".ipynb") == entry for e in entries):
        return toc_text
    if entries:
        indent = entries[0][1]
        after = [e for e in entries if e[2] < entry]
        at = (after[-1][0] + 1) if after else entries[0][0]
    else:
        chapters_indent = len(lines[chapters]) - len(lines[chapters].lstrip())
        indent, at = " " * (chapters_indent + 2), min(chapters + 1, end)
    lines.insert(at, f"{indent}- file: {entry}")
    text = "\n".join(lines)
    parts = {p.get("caption"): [c.get("file") for c in p.get("chapters", [])]
             for p in yaml.safe_load(text).get("parts", [])}
    if entry not in parts.get("Exercises", []):
        raise CourseError(f"_toc.yml: could not add {entry} to the Exercises part")
    return text


def chapter_with_link(chapter: Path, name: str, title: str, number: str) -> str:
    """The chapter notebook's JSON text with a markdown cell linking to the exercise."""
    try:
        nb = json.loads(chapter.read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CourseError(f"{chapter}: not a notebook ({exc})") from None
    link = f"../exercises/{name}/{name}.ipynb"
    if any(link in "".join(c.get("source", "")) for c in cells):
        raise CourseError(f"{chapter.name} already links to {link}")
    text = (f"## Exercise\n\n[Assignment {number}: {title}]({link}), in the Exercises part of "
            f"this book, is graded. Open it in Colab or Binder from the launch button at the "
            f"top of its page, run the visible tests as you go, and submit the notebook; hidden "
            f"tests then compare every function with a reference on random shapes and edge "
            f"cases.")
    cell = {"cell_type": "markdown",
            "id": hashlib.sha1(f"{name}\n{text}".encode()).hexdigest()[:8],
            "metadata": {}, "source": text.splitlines(keepends=True)}
    cells.append(cell)
    import nbformat

    nbformat.validate(nbformat.from_dict(nb))
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def new(root: Path, name: str, *, chapter: Path | None = None, title: str | None = None,
        out=sys.stdout) -> list[Path]:
    """Write the scaffold of assignment ``name`` (see the module's docs); return the files.

    Raises CourseError, having written nothing, for a bad name, an existing assignment or
    catalog module, or a chapter that is not there.
    """
    root = Path(root)
    names = template_names(name)
    title = (title or names["topic"].replace("_", " ").capitalize()).strip()
    if not title or "\n" in title:
        raise CourseError(f"bad title {title!r}: one line of text")
    for existing in (root / "solutions" / f"{name}.py", root / "solutions" / name,
                     root / "exercises" / name):
        if existing.exists():
            raise CourseError(f"assignment {name} exists already: {existing.relative_to(root)}")
    catalog = root / names["catalog"]
    if catalog.exists():
        raise CourseError(f"{names['catalog']} exists already (another assignment's catalog): "
                          f"choose another topic")
    quoted = re.compile(rf"[\"']{re.escape(names['function'])}[\"']")
    for module in sorted((root / "grader" / "catalog").glob("*.py")):
        if quoted.search(module.read_text()):
            raise CourseError(f"the template function {names['function']} is already graded in "
                              f"{module.relative_to(root)}: choose another topic")
    toc = root / "_toc.yml"
    for needed in (toc, root / "grader" / "catalog"):
        if not needed.exists():
            raise CourseError(f"{needed} not found: is {root} a course root?")
    writes = {}
    if chapter is not None:
        chapter = chapter if chapter.is_absolute() else root / chapter
        if chapter.suffix != ".ipynb" or not chapter.is_file():
            raise CourseError(f"chapter {chapter} not found (expected a notebook such as "
                              f"book/01_preprocessing.ipynb)")
        writes[chapter] = chapter_with_link(chapter, name, title, names["number"])
    values = {**names, "name": name, "title": title,
              "seed": str(1000 * int(name[:2]) + 1)}
    writes[root / "solutions" / f"{name}.py"] = _fill("assignment.py.tmpl", values)
    writes[catalog] = _fill("catalog.py.tmpl", values)
    writes[toc] = toc_with(toc.read_text(), name)
    for path, text in writes.items():
        if path.suffix == ".py":
            compile(text, str(path), "exec")
    for path, text in writes.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"new      {path.relative_to(root)}", file=out)
    print(f"new      {name}: a working assignment (one function, {names['function']}); edit "
          f"solutions/{name}.py and {names['catalog']}, then\n"
          f"         python tools/course.py check {name}\n"
          f"         make release ASSIGNMENT={name}", file=out)
    return list(writes)


# ---------------------------------------------------------------------------------- check


def uncatalogued(root: Path, name: str) -> list[str]:
    """The graded functions (answer cells) of ``name`` with no mistake in the catalog."""
    import grader.catalog  # noqa: F401  (registers the catalog with normcore.grading)
    from grader import assignment as assignments
    from normcore import grading

    if not (Path(root) / "solutions" / f"{name}.py").is_file():
        return []
    return [f for f in assignments.load(root, name).answers if not grading.mistakes_for(f)]


def scratch_release(root: Path, name: str, source_nb):
    """The student version nbgrader makes of ``source_nb``, made in a scratch folder (the
    gradebook, ``solutions/`` and ``exercises/`` are left alone)."""
    import contextlib
    import io

    import nbformat
    from nbgrader.utils import temp_attrs

    scratch = Path(tempfile.mkdtemp(prefix="course-check-"))
    try:
        source = scratch / "source" / name / f"{name}.ipynb"
        source.parent.mkdir(parents=True)
        nbformat.write(source_nb, source)
        with contextlib.redirect_stdout(io.StringIO()):
            api = course._api(root, db=scratch / "gradebook.db")
        with temp_attrs(api.coursedir, source_directory=str(scratch / "source"),
                        release_directory=str(scratch / "release")):
            course._generate(api, name)
        return nbformat.read(scratch / "release" / name / f"{name}.ipynb", as_version=4)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _Report:
    def __init__(self, out):
        self.out, self.failed, self.warned, self.passed = out, 0, 0, 0

    def ok(self, text):
        self.passed += 1
        print(f"ok    {text}", file=self.out)

    def fail(self, text):
        self.failed += 1
        print(f"FAIL  {text}", file=self.out)

    def warn(self, text):
        self.warned += 1
        print(f"warn  {text}", file=self.out)


def _short(message: str | None, limit: int = 300) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def check(root: Path, name: str, out=sys.stdout) -> int:
    """The fast checks of assignment ``name``; print each, return the number that failed."""
    import grader
    from grader import assignment as assignments
    from grader import trusted
    from grader.mutants import functions_of, with_mutant
    from normcore import grading

    start = time.perf_counter()
    root = Path(root).resolve()
    course.assignments_in(root, [name])
    report = _Report(out)
    package = Path(grader.__file__).resolve().parent
    if package != root / "grader":
        report.warn(f"the catalog comes from {package}, not from {root / 'grader'}: run the "
                    f"tools/course.py of the course root being checked")

    # 1. The source follows the template's rules.
    source = root / "solutions" / f"{name}.py"
    try:
        nb = course.build_notebook(source)
    except CourseError as exc:
        report.fail(f"the source builds: {exc}")
        return report.failed
    a = assignments.load(root, name)
    auto = sum(t.points for t in a.tests)
    manual = sum(c.metadata["nbgrader"].get("points", 0) for c in nb.cells
                 if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade"))
    report.ok(f"the source builds: {len(nb.cells)} cells, {len(a.answers)} graded functions, "
              f"{len(a.tests)} test cells ({auto:g} points) and {manual:g} points graded by hand")

    # 2. The student version holds no solution and no hidden test.
    try:
        release = scratch_release(root, name, nb)
    except CourseError as exc:
        report.fail(f"nbgrader makes the student version: {exc}")
        return report.failed
    text = "\n".join(c.source for c in release.cells)
    lines = {ln.strip() for ln in text.split("\n")}
    leaks = [m for m in (assignments.BEGIN_SOLUTION, assignments.BEGIN_HIDDEN) if m in text]
    leaks += sorted(ln for ln in (a.solution_lines | a.hidden_lines) - a.visible_lines
                    if len(ln) >= 20 and ln in lines)
    source_text = "\n".join(c.source for c in nb.cells)
    leaks += [ln for ln in sorted(a.hidden_lines - a.visible_lines)
              if len(ln) >= 20 and ln in {s.strip() for s in source_text.split("\n")}]
    if leaks:
        report.fail(f"the student version holds solution or hidden-test lines: {leaks[:5]}")
    else:
        report.ok("the student version holds no solution and no hidden test")

    # 3. The solutions pass every test cell, the stubs fail every one (trusted grader).
    solutions = functions_of(nb.cells)
    missing = [f for f in a.answers if f not in solutions]
    if missing:
        report.fail(f"answer cells whose grade_id names no function they define: {missing} "
                    f"(the grade_id of an answer cell is its function's name)")
    verdicts = trusted.run_tests(a, trusted.functions_provider(solutions))
    failing = {g: m for g, m in verdicts.items() if m is not None}
    for gid, message in failing.items():
        report.fail(f"the solution fails {gid} ({a.test(gid).points:g} points): "
                    f"{_short(message)}")
    if not failing:
        report.ok(f"the solutions pass all {len(verdicts)} test cells")
    stubs = trusted.run_tests(a, trusted.functions_provider(functions_of(release.cells)))
    passing = [g for g, m in stubs.items() if m is None]
    if passing:
        report.fail(f"the released stubs pass {passing}: a test cell that an unanswered "
                    f"notebook passes gives away its points")
    else:
        report.ok(f"the released stubs fail all {len(stubs)} test cells")

    # 4. Every catalog mistake of the assignment's functions fails a cell of its function.
    caught = 0
    for function in a.answers:
        mistakes = grading.mistakes_for(function)
        if function not in grading.GRADED or not mistakes:
            report.warn(f"{function} has no catalog entry (grader/catalog/): failures of "
                        f"{function} will be reported without a likely cause")
        if function not in solutions:
            continue
        stem = function.split("_backward")[0].split("_forward")[0]
        cells = {t.grade_id for t in a.tests if stem in t.full}
        for mistake in mistakes:
            fns = with_mutant(solutions, mistake, function)
            messages = trusted.run_tests(a, trusted.functions_provider(fns), grade_ids=cells)
            if any(m and mistake.message in m for m in messages.values()):
                caught += 1
                continue
            wrong = {g: _short(m, 160) for g, m in messages.items() if m}
            report.fail(f"mistake {mistake.key} ({function}) "
                        + (f"fails {sorted(wrong)} without its message: {wrong}" if wrong else
                           f"passes every test cell of {function}: {sorted(cells) or 'none'}"))
    n_mistakes = sum(len(grading.mistakes_for(f)) for f in a.answers)
    if caught == n_mistakes and n_mistakes:
        report.ok(f"all {n_mistakes} catalog mistakes of {', '.join(a.answers)} fail a test "
                  f"cell of their function with their message")

    # 5. The book shows the exercise: in the toc's Exercises part, linked from a chapter.
    entry = f"exercises/{name}/{name}"
    toc = root / "_toc.yml"
    if toc.is_file():
        if toc_with(toc.read_text(), name) == toc.read_text():
            report.ok(f"_toc.yml lists {entry} in its Exercises part")
        else:
            report.fail(f"_toc.yml does not list {entry} in its Exercises part (the book "
                        f"would not show the exercise)")
    link = f"../{entry}.ipynb"
    if not any(link in path.read_text(encoding="utf-8", errors="replace")
               for path in sorted((root / "book").glob("*.ipynb"))):
        report.warn(f"no chapter in book/ links to {link}")

    seconds = time.perf_counter() - start
    print(f"check    {name}: {report.passed} passed, {report.failed} failed, "
          f"{report.warned} warnings ({seconds:.1f} s)", file=out)
    return report.failed
