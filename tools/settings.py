"""The course's own settings, kept in one place: ``_config.yml``.

An instructor who adopts the course sets two values there:

* ``repository.url``: the course's repository (your fork). The book's repository button
  uses it, and so does the line that installs ``normcore`` on Colab, at the top of every
  chapter and in every exercise's setup cell.
* ``launch_buttons.jupyterhub_url``: your JupyterHub (remove the key if there is none).

``python tools/course.py configure`` then writes the repository into every install line
(book chapters and ``solutions/*.py``; run ``make release`` afterwards for the exercises).
While a value is still the shipped placeholder, the book build prints a loud warning
(``_ext/course_settings.py``) and ``configure`` says so.
"""

from __future__ import annotations

import re
from pathlib import Path

#: The values the course ships with: they point nowhere real.
PLACEHOLDERS = {
    "repository": "https://github.com/normcore-course/normalization-course",
    "jupyterhub": "https://hub.example.org",
}
#: ``normcore @ git+<url>`` in an install line.
INSTALL_URL = re.compile(r"normcore @ git\+(https://[^\"'\\\s]+)")


def read(root: Path) -> dict[str, str | None]:
    """``{"repository": url, "jupyterhub": url or None}`` from ``_config.yml``."""
    import yaml

    config = yaml.safe_load((Path(root) / "_config.yml").read_text()) or {}
    repository = (config.get("repository") or {}).get("url")
    if not repository:
        raise ValueError(f"{Path(root) / '_config.yml'}: repository.url is not set")
    hub = (config.get("launch_buttons") or {}).get("jupyterhub_url")
    return {"repository": str(repository).rstrip("/"), "jupyterhub": hub}


def placeholder_messages(settings: dict) -> list[str]:
    """One line per setting still at its shipped placeholder."""
    out = []
    if settings.get("repository") == PLACEHOLDERS["repository"]:
        out.append(f"repository.url in _config.yml is the placeholder {PLACEHOLDERS['repository']}"
                   f": set it to your course's repository, then run "
                   f"`python tools/course.py configure` and `make release`")
    if settings.get("jupyterhub") == PLACEHOLDERS["jupyterhub"]:
        out.append(f"launch_buttons.jupyterhub_url in _config.yml is the placeholder "
                   f"{PLACEHOLDERS['jupyterhub']}: set it to your JupyterHub, or remove it")
    return out


def install_files(root: Path) -> list[Path]:
    root = Path(root)
    return sorted(root.glob("book/*.ipynb")) + sorted(root.glob("solutions/[0-9][0-9]_*.py"))


def install_urls(root: Path) -> dict[Path, list[str]]:
    """The repository URLs of the install lines, per file."""
    return {path: INSTALL_URL.findall(path.read_text()) for path in install_files(root)}


def configure(root: Path) -> list[Path]:
    """Write ``repository.url`` into every install line; return the files changed."""
    url = read(root)["repository"]
    changed = []
    for path in install_files(root):
        text = path.read_text()
        new = INSTALL_URL.sub(lambda m: f"normcore @ git+{url}", text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed
