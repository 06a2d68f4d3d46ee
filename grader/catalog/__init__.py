"""The catalog of common mistakes and the graded functions, one module per lecture topic.

Each module defines, for the functions its exercise notebook grades, mutant factories
(an implementation with one isolated flaw, or none), registers every mistake with
:func:`normcore.grading._register` (key, graded functions, message to the student, mutant)
and every graded function with :func:`normcore.grading._graded` (reference, flawless
implementation, inputs on which each of its mistakes shows). Importing
:mod:`grader.trusted` imports every module of this package (instructor side only: student
code never sees the catalog, whose flawless implementations are correct solutions);
``tests/test_grading.py`` holds every entry to its word.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

from . import _generic  # noqa: E402  (mistakes of every graded function, once all are known)

_generic.register()
