"""The trusted side of a grading worker: start it in the sandbox, call the student's functions.

:class:`Submission` runs one notebook's code in a sandboxed worker (:mod:`grader.worker`)
and gives the trusted grader a :class:`StudentFunction` for every function it defines. A
StudentFunction is called like the student's function: its arguments cross to the worker
as data, the result (and the arguments as the function left them, so that in-place updates
show) come back as data, and the exception the function raised comes back as an exception
of the same name. Nothing that crosses is ever a verdict: the checks that compare these
values with the references run here, where the student's code cannot reach.

A call that runs past its time limit, or a worker that dies (``os._exit``, a crash, the
memory limit), fails that call; the next call starts a fresh worker.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import inspect
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import sandbox
from .worker import MAX_MESSAGE, Handle, ProtocolError, decode, encode, read_message, write_message

__all__ = ["Submission", "StudentFunction", "StudentError", "WorkerFailure"]


class StudentError(Exception):
    """Raised in place of an exception of the student's function that has no builtin class."""


class WorkerFailure(AssertionError):
    """The student's code ended the worker, ran out of time, or broke the protocol."""


@functools.lru_cache(maxsize=256)
def record_class(name: str) -> type | None:
    """The normcore result class a record names (a dataclass defined in a public top-level
    module), or None: the record then stays an opaque Handle. Modules are imported only when
    a record names them."""
    import importlib

    module_name, _, cls = name.rpartition(".")
    package, _, module = module_name.partition(".")
    if (package != "normcore" or not module.isidentifier() or module in ("nn", "book")
            or module.startswith("_") or not cls.isidentifier()):
        return None
    try:
        found = getattr(importlib.import_module(module_name), cls, None)
    except ImportError:
        return None
    if (isinstance(found, type) and dataclasses.is_dataclass(found)
            and found.__module__ == module_name):
        return found
    return None


class _Reader:
    """Reads from a pipe with a deadline (``read`` raises TimeoutError when it passes)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.deadline = None

    def read(self, n: int) -> bytes:
        wait = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            raise TimeoutError()
        return os.read(self.fd, min(n, 1 << 20))


class Submission:
    """One submission's code, running in a sandboxed worker.

    Parameters
    ----------
    cells : list of dict
        ``{"label", "source", "baseline"}`` in order; ``baseline=True`` marks the setup
        cells (names they define are not the student's functions).
    staged : dict
        From :func:`grader.sandbox.stage`.
    unsafe : bool
        Run without the sandbox (the instructor's explicit choice).
    """

    def __init__(self, cells, staged, *, unsafe=False, startup_limit=60.0, cell_limit=30.0,
                 limits=sandbox.WORKER_LIMITS):
        self.cells = list(cells)
        self.staged = staged
        self.unsafe = unsafe
        self.startup_limit = startup_limit
        self.cell_limit = cell_limit
        self.limits = limits
        self.proc = None
        self.ready = False
        self.calls = 0
        self.failure: str | None = None
        self.functions: dict[str, list] = {}
        self.cell_report: list[dict] = []
        self.starts = 0

    # -------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the worker and wait until it ran the notebook's code."""
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start the worker process and send it the cells (returns at once).

        Call it from the thread that lives as long as the worker should: the sandbox dies
        with the thread that started it (``--die-with-parent`` follows the parent thread).
        """
        self.close()
        self.starts += 1
        self.calls = 0
        self.scratch = tempfile.mkdtemp(prefix="grader-worker-")
        os.chmod(self.scratch, 0o755)
        home = os.path.join(self.scratch, "home") if self.unsafe else sandbox.HOME
        argv = [sys.executable, "-I", "-c",
                f"import sys; sys.path.insert(0, {str(self.staged['worker'])!r}); "
                f"import runpy; runpy.run_path({str(self.staged['worker_script'])!r}, "
                f"run_name='__main__')"]
        args, options = sandbox.command(argv, home=home, lib=self.staged["worker"],
                                        blocked=sandbox.BLOCKED_PACKAGES, limits=self.limits,
                                        unsafe=self.unsafe)
        # GRADER_DEBUG=1 shows the worker's own errors (never the student's prints).
        errors = None if os.environ.get("GRADER_DEBUG") else subprocess.DEVNULL
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=errors, **options)
        self.reader = _Reader(self.proc.stdout.fileno())
        self.generation = self.starts
        self.ready = False
        try:
            write_message(self.proc.stdin, {"cells": self.cells,
                                            "cell_time_limit": self.cell_limit})
        except OSError:
            pass  # reported by wait_ready

    def wait_ready(self) -> None:
        """Wait for the worker's report on the cells; WorkerFailure if it never comes."""
        try:
            header, _ = self._receive(self.startup_limit)
            if not header.get("ready"):
                raise ProtocolError("no ready message")
        except BaseException as exc:
            self.kill()
            if not isinstance(exc, Exception):
                raise  # an interrupt or the caller's time limit: not the student's fault
            why = ("did not finish within "
                   f"{self.startup_limit:g} s" if isinstance(exc, TimeoutError)
                   else "ended before it was ready")
            self.failure = (f"Running your notebook's code for grading failed: it {why}. "
                            f"Does a cell run forever, or end the Python process?")
            raise WorkerFailure(self.failure) from None
        self.functions = {str(k): v for k, v in dict(header.get("functions", {})).items()}
        self.cell_report = list(header.get("cells", []))
        self.failure = None
        self.ready = True

    def _receive(self, timeout: float):
        self.reader.deadline = time.monotonic() + timeout
        try:
            return read_message(self.reader, limit=MAX_MESSAGE)
        except (RecursionError, ValueError) as exc:
            raise ProtocolError(str(exc)[:200]) from None
        finally:
            self.reader.deadline = None

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.proc = None
        shutil.rmtree(getattr(self, "scratch", ""), ignore_errors=True)

    close = kill

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------------- calls

    def ensure(self) -> None:
        if self.proc is None or self.proc.poll() is not None or not self.ready:
            self.start()

    def call(self, name: str, args: tuple, kwargs: dict, timeout: float = 30.0):
        """Call the student's ``name``; returns (result, args after, kwargs after, printed)."""
        self.ensure()
        buffers: list = []
        self.calls += 1
        header = {"op": "call", "id": self.calls, "name": name,
                  "args": encode(tuple(args), buffers, store=self._foreign),
                  "kwargs": encode(dict(kwargs), buffers, store=self._foreign)}
        try:
            write_message(self.proc.stdin, header, buffers)
            reply, arrays = self._receive(timeout)
            if reply.get("id") != self.calls:  # never a reply to another request
                raise ProtocolError("a reply out of turn")
        except BaseException as exc:
            self.kill()
            if isinstance(exc, TimeoutError):
                raise WorkerFailure(f"{name} did not finish within {timeout:g} s: is there "
                                    f"an infinite loop?") from None
            if isinstance(exc, OSError | EOFError):
                raise WorkerFailure(f"{name} ended the Python process that ran it (os._exit, "
                                    f"a crash, or the memory limit).") from None
            if isinstance(exc, ProtocolError):
                raise WorkerFailure(f"{name}: the grader could not read what it returned "
                                    f"({exc}).") from None
            raise
        printed = str(reply.get("printed", ""))[:4000]
        if not reply.get("ok"):
            raise self._exception(name, reply.get("error") or {}, printed)
        try:
            result = self._decode(reply.get("result"), arrays)
            after = reply.get("after") or {}
            args_after = self._decode_list(after.get("args"), arrays)
            kwargs_after = {str(k): self._decode(v, arrays)
                            for k, v in dict(after.get("kwargs") or {}).items()}
        except ProtocolError as exc:
            self.kill()
            raise WorkerFailure(f"{name}: the grader could not read what it returned "
                                f"({exc}).") from None
        return result, args_after, kwargs_after, printed

    def _foreign(self, obj):
        if isinstance(obj, Handle):
            return obj
        raise TypeError(f"a {type(obj).__name__} cannot be passed to the student's code")

    def _decode(self, spec, arrays):
        value = decode(spec, arrays, records=record_class)
        return self._tag(value)

    def _decode_list(self, specs, arrays):
        if not isinstance(specs, list):
            return []
        return [None if s is None else self._decode(s, arrays) for s in specs]

    def _tag(self, value):
        """Mark handles with this worker's generation, so a restart makes them stale."""
        if isinstance(value, Handle):
            if not value.id.startswith("g"):
                value.id = f"g{self.generation}:{value.id}"
            return value
        if isinstance(value, tuple | list):
            return type(value)(self._tag(v) for v in value)
        if isinstance(value, dict):
            return {k: self._tag(v) for k, v in value.items()}
        return value

    @staticmethod
    def _exception(name: str, error: dict, printed: str) -> BaseException:
        kind = str(error.get("type", "Exception"))[:80]
        message = str(error.get("message", ""))[:2000]
        if error.get("not_implemented"):
            exc = NotImplementedError(message)
        else:
            cls = getattr(builtins, kind, None)
            if (isinstance(cls, type) and issubclass(cls, Exception)
                    and not issubclass(cls, AssertionError)):
                try:
                    exc = cls(message)
                except Exception:
                    exc = StudentError(f"{kind}: {message}")
            else:
                exc = StudentError(f"{kind}: {message}")
        if error.get("unavailable"):
            exc.delegated = str(error["unavailable"])[:200]
        exc.printed = printed
        return exc

    def function(self, name: str) -> StudentFunction:
        return StudentFunction(self, name, self.functions.get(name))


class StudentFunction:
    """Calls the student's function ``name`` in the worker, like the function itself."""

    def __init__(self, submission: Submission, name: str, params=None):
        self._submission = submission
        self.__name__ = self.__qualname__ = name
        self.__module__ = "__student__"
        if params:
            self.__signature__ = _signature(params)

    def __call__(self, *args, **kwargs):
        # Handles of a stale worker cannot be resolved there: fail clearly.
        sub = self._submission
        if any(isinstance(a, Handle) and not a.id.startswith(f"g{sub.generation}:")
               for a in _flat(args, kwargs)) and sub.proc is not None:
            raise WorkerFailure(f"{self.__name__}: the grader had to restart your code after "
                                f"an earlier failure, so this call could not be checked.")
        sent_args = tuple(_untag(a) for a in args)
        sent_kwargs = {k: _untag(v) for k, v in kwargs.items()}
        result, args_after, kwargs_after, printed = sub.call(self.__name__, sent_args,
                                                             sent_kwargs)
        if printed:
            print(printed, end="")
        for original, after in zip(args, args_after):
            _write_back(original, after)
        for key, after in kwargs_after.items():
            if key in kwargs:
                _write_back(kwargs[key], after)
        return sub._tag(result)

    def __repr__(self):
        return f"<student function {self.__name__}>"


def _flat(args, kwargs):
    stack = [*args, *kwargs.values()]
    while stack:
        value = stack.pop()
        if isinstance(value, tuple | list):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        else:
            yield value


def _untag(value):
    if isinstance(value, Handle):
        return Handle(value.id.split(":", 1)[-1], value.type_name)
    if isinstance(value, tuple | list):
        return type(value)(_untag(v) for v in value)
    if isinstance(value, dict):
        return {k: _untag(v) for k, v in value.items()}
    return value


def _write_back(original, after) -> None:
    """Apply an in-place change the student's function made to an argument."""
    if isinstance(original, np.ndarray) and isinstance(after, np.ndarray):
        if original.shape == after.shape and original.flags.writeable:
            np.copyto(original, after, casting="unsafe")
    elif isinstance(original, np.random.Generator) and isinstance(after, np.random.Generator):
        original.bit_generator.state = after.bit_generator.state
    elif isinstance(original, dict) and isinstance(after, dict):
        original.clear()
        original.update(after)
    elif isinstance(original, list) and isinstance(after, list):
        original[:] = after


def _signature(params) -> inspect.Signature | None:
    out = []
    try:
        for name, kind, has_default in params:
            out.append(inspect.Parameter(
                str(name), inspect._ParameterKind(int(kind)),
                default=None if has_default else inspect.Parameter.empty))
        return inspect.Signature(out)
    except (TypeError, ValueError):
        return None


def stage_once() -> dict:
    """Stage the sandbox's library folders once per process (a private temporary folder)."""
    global _STAGED
    if _STAGED is None or not Path(_STAGED["worker_script"]).exists():
        root = Path(tempfile.mkdtemp(prefix="grader-stage-"))
        _STAGED = sandbox.stage(root)
    return _STAGED


_STAGED = None
