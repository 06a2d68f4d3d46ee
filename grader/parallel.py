"""Autograding N submissions at once, with the gradebook written by one process only.

nbgrader grades one notebook after another, and its gradebook is a SQLite file that several
writers would lock each other out of. :func:`grade_in_scratch` therefore does the expensive
part of a submission (the sandboxed kernel and the trusted checks) in a worker process,
against a private copy of the gradebook and a private output folder. The parent then runs
nbgrader's own autograde for that submission with :class:`Precomputed` in place of the
execution steps: it takes the outputs and verdicts the worker produced, and every other step
(restoring test cells, scoring, late penalties, writing the gradebook) is nbgrader's, in the
parent, one submission at a time. The scores are therefore those of a serial run.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode


class Precomputed(NbGraderPreprocessor):
    """nbgrader autograde step: the outputs a worker process computed for this notebook."""

    directory = Unicode("", help="Where workers wrote their autograded notebooks").tag(
        config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        path = (Path(self.directory) / info["student"] / info["assignment"]
                / f"{info['notebook']}.ipynb")
        done = nbformat.read(path, as_version=4)
        if [c.cell_type for c in done.cells] != [c.cell_type for c in nb.cells]:
            raise ValueError(f"{path}: the worker's notebook does not match the submission")
        for cell, result in zip(nb.cells, done.cells):
            if cell.cell_type == "code":
                cell.outputs = result.get("outputs", [])
                cell.execution_count = result.get("execution_count")
        return nb, resources
