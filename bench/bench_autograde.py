"""Time autograding one student's full set of notebooks (every assignment in solutions/).

A throwaway course root receives the configuration, the tools and the assignment sources;
every assignment is released, one student submits the solution of each, and each
submission is autograded as ``make autograde`` does it: sanitize, execute every cell in a
fresh sandboxed kernel, decide every test cell in the trusted grader (the student's functions
in a sandboxed worker), save the grades. Prints the seconds per notebook and the total, against the
budget of 60 s for the six assignments of the course::

    .venv/bin/python bench/bench_autograde.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402

BUDGET_S, COURSE_SIZE = 60.0, 6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="autograde runs per notebook")
    args = parser.parse_args(argv)
    names = course.assignments_in(ROOT)
    with tempfile.TemporaryDirectory(prefix="bench-course-") as tmp:
        root = course.copy_course(Path(tmp), names)
        with contextlib.redirect_stdout(io.StringIO()):
            course.release(root, names)
        for name in names:
            folder = root / "submitted" / "bench" / name
            folder.mkdir(parents=True)
            shutil.copy(root / "solutions" / name / f"{name}.ipynb", folder)
        api = course._api(root)
        times = {}
        for name in names:
            runs = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                result = api.autograde(name, "bench", force=True, create=True)
                runs.append(time.perf_counter() - start)
                if not result["success"]:
                    print(f"{name}: autograde failed\n{course._fail(result)}")
                    return 1
            times[name] = statistics.median(runs)
            print(f"{name:20s} {times[name]:6.2f} s   score {course._score(api, 'bench', name)}")
    per_notebook = statistics.mean(times.values())
    total = sum(times.values())
    print(f"{len(names)} notebook(s): {total:.2f} s in all, {per_notebook:.2f} s per notebook "
          f"(median of {args.repeat} run(s) each)")
    estimate = per_notebook * COURSE_SIZE
    print(f"{COURSE_SIZE} notebooks at this rate: {estimate:.1f} s "
          f"(budget {BUDGET_S:.0f} s: {'within' if estimate < BUDGET_S else 'OVER'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
