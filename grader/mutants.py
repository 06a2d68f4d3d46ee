"""Correct and mistaken stand-ins for a student, for the instructor's checks and tests.

:func:`functions_of` runs an assignment notebook's setup and answer cells in-process and
returns the functions they define (the solutions, or the release's stubs);
:func:`with_mutant` swaps one of them for a catalog mistake's mutant. Both are used by
``course.py check``, ``make coverage-report`` and the tests, with
:func:`grader.trusted.run_tests` and :func:`grader.trusted.functions_provider`.
"""

from __future__ import annotations

import copy


def functions_of(cells) -> dict:
    """The functions defined by the setup cell and the answer cells of an nbgrader notebook."""
    namespace = {"__name__": "__main__"}

    def meta(cell):
        return cell.metadata.get("nbgrader", {})

    for cell in cells:
        if cell.cell_type == "code" and meta(cell).get("grade_id") == "setup":
            exec(compile(cell.source, "setup", "exec"), namespace)
    setup = set(namespace)
    for cell in cells:
        if cell.cell_type == "code" and meta(cell).get("solution"):
            exec(compile(cell.source, meta(cell)["grade_id"], "exec"), namespace)
    return {k: v for k, v in namespace.items() if k not in setup and callable(v)}


def with_mutant(functions: dict, mistake, function: str) -> dict:
    """``functions`` with ``function`` making ``mistake`` (its catalog mutant).

    A forward keeps the solution's cache, so that only the forward's tests see the mistake;
    a backward gets its forward's inputs recorded in the cache, since a backward mutant takes
    ``(dout, *forward_args, **forward_kwargs)``.
    """
    fns, mutant = dict(functions), mistake.mutant
    forward = function.split("_backward")[0] + "_forward"
    if "_backward" in function and forward in fns:
        solution_forward = fns[forward]

        class Recorded(tuple):
            pass

        def recording_forward(*args, **kwargs):
            inputs = (copy.deepcopy(args), copy.deepcopy(kwargs))
            out, cache = solution_forward(*args, **kwargs)
            cache = Recorded(cache)
            cache.inputs = inputs
            return out, cache

        def mutant_backward(dout, cache):
            return mutant(dout, *cache.inputs[0], **cache.inputs[1])

        recording_forward.__name__, mutant_backward.__name__ = forward, function
        fns[forward], fns[function] = recording_forward, mutant_backward
    elif function.endswith("_forward"):
        solution = fns[function]

        def mutant_forward(*args, **kwargs):
            _, cache = solution(*copy.deepcopy(args), **copy.deepcopy(kwargs))
            return mutant(*args, **kwargs)[0], cache

        mutant_forward.__name__ = function  # as the student's function is named
        fns[function] = mutant_forward
    else:
        fns[function] = mutant
    return fns
