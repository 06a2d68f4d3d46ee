"""Sphinx extension of the course book: a loud warning while a course setting is a placeholder.

The warning goes to the build's output, not through Sphinx's warnings, so that a book built
with the shipped settings (``-W``) still builds; see ``tools/settings.py``.
"""

import sys
from pathlib import Path


def check(srcdir) -> list[str]:
    root = Path(srcdir)
    sys.path.insert(0, str(root / "tools"))
    try:
        import settings
    finally:
        sys.path.pop(0)
    messages = settings.placeholder_messages(settings.read(root))
    for message in messages:
        print(f"\nWARNING: COURSE SETTING PLACEHOLDER: {message}\n", file=sys.stderr, flush=True)
    return messages


def _on_builder_inited(app):
    check(app.srcdir)


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
