"""nbgrader configuration of the course (instructor side).

The course root is the directory of this file: ``solutions/`` holds the nbgrader source
notebooks (generated from ``solutions/<assignment>.py``), ``exercises/`` the released
student versions (committed), and ``submitted/``, ``autograded/``, ``feedback/`` and
``gradebook.db`` the grading state (git-ignored). Use ``make release``, ``make autograde``,
``make feedback`` and ``make grades`` (``tools/course.py``) rather than nbgrader directly;
they run with this configuration. See ``solutions/README.md``.
"""

import os
import sys

_ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_ROOT, "tools"))
sys.path.insert(0, _ROOT)

from course import LimitOutputSize  # noqa: E402
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.converters import Autograde  # noqa: E402
from nbgrader.preprocessors import Execute, GetGrades, LimitOutput  # noqa: E402

from grader.feedback import SanitizeFeedback  # noqa: E402
from grader.kernel import SandboxedExecute  # noqa: E402
from grader.trusted import StartWorker, TrustedChecks  # noqa: E402

c = get_config()  # noqa: F821

# Layout.
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"

# Student version: a solution region becomes a stub that fails loudly.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograding: the course kernel, a time limit per cell, bounded output, and test cells a
# student deleted are put back (their source comes from the gradebook).
c.Execute.kernel_name = "python3"
c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--IPKernelApp.log_level=ERROR"]
c.Execute.timeout = 30
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 60
c.OverwriteCells.add_missing_cells = True
# Student code runs only in the sandbox: the kernel (SandboxedExecute) and the worker that
# the trusted checks call (TrustedChecks decides every test cell in this process; see grader/).
_steps = list(Autograde.autograde_preprocessors.make_dynamic_default())
_steps[_steps.index(Execute)] = SandboxedExecute
_steps.insert(_steps.index(SandboxedExecute) + 1, TrustedChecks)
_steps.insert(_steps.index(SandboxedExecute), StartWorker)  # runs beside the kernel
_steps.insert(_steps.index(LimitOutput) + 1, LimitOutputSize)
c.Autograde.autograde_preprocessors = _steps
c.TrustedChecks.course_root = _ROOT
c.SandboxedExecute.notebook_time_limit = 300

# Feedback is rebuilt from the release and sanitized results (no added cells, text only).
c.SanitizeFeedback.course_root = _ROOT
c.GenerateFeedback.preprocessors = [SanitizeFeedback, GetGrades, CSSHTMLHeaderPreprocessor]

# Exchange (off by default): with NBGRADER_COURSE_ID set, `make release` also publishes to
# nbgrader's exchange, and `make collect` / `make return` use it. NBGRADER_EXCHANGE is its
# shared directory; students' nbgrader configuration names the same two. solutions/DEPLOY.md.
if os.environ.get("NBGRADER_COURSE_ID"):
    c.CourseDirectory.course_id = os.environ["NBGRADER_COURSE_ID"]
    c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", "/srv/nbgrader/exchange")
