"""The student side of grading: runs one submission's code and answers calls, nothing more.

This file runs inside the sandbox (see :mod:`grader.sandbox`), as ``python worker.py``, with
only NumPy, the standard library and the public part of ``normcore`` in reach. It is also
imported by the trusted grader for the wire format (:func:`write_message`,
:func:`read_message`, :func:`encode`, :func:`decode`), so it imports nothing from the grader.

Protocol (over the worker's stdin and stdout, taken over before any student code runs):

1. The grader sends ``{"cells": [{"label": ..., "source": ...}, ...], "cell_time_limit": s}``.
   The worker runs the cells in order in one namespace (a cell that fails is reported and the
   next one runs) and answers ``{"ready": true, "functions": {name: [[param, kind, has_default],
   ...]}, "cells": [{"label", "error"}]}``.
2. Then any number of ``{"op": "call", "name": ..., "args": ..., "kwargs": ...}``, each
   answered with the result and the arguments as they are after the call, or with the
   exception the function raised: ``{"ok": true, "result": ..., "after": {...}, "printed":
   ...}`` or ``{"ok": false, "error": {"type", "message", "not_implemented", "unavailable"},
   "printed": ...}``.

What crosses is data only: a JSON header and raw array buffers of plain numeric dtypes,
never a pickle. Objects that are not data (a cache object, say) stay here and cross as
opaque handles that a later call can pass back. What a function prints is captured and
cut short; nothing the student writes to the real stdout reaches the grader.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import signal
import struct
import sys

import numpy as np

#: Largest message either side accepts (header plus buffers), in bytes.
MAX_MESSAGE = 256 << 20
MAX_HEADER = 8 << 20
MAX_DEPTH = 32
MAX_NODES = 200_000
MAX_PRINTED = 4000
#: Array dtypes that may cross (no objects, no strings, no structured dtypes).
DTYPES = {np.dtype(t).str for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
    np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128)}


BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class ProtocolError(Exception):
    """A message that does not follow the wire format (too large, malformed, unknown tag)."""


# ------------------------------------------------------------------------------ wire format


def write_message(stream, header: dict, buffers: list[np.ndarray] = ()) -> None:
    """Write one message: sizes, the JSON header, then the raw array buffers."""
    head = json.dumps(header, allow_nan=True, separators=(",", ":")).encode()
    layout = [[a.dtype.str, list(a.shape)] for a in buffers]
    meta = json.dumps(layout, separators=(",", ":")).encode()
    body = b"".join(np.ascontiguousarray(a).tobytes() for a in buffers)
    stream.write(struct.pack("<QQQ", len(head), len(meta), len(body)) + head + meta + body)
    stream.flush()


def _read_exact(stream, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(stream, limit: int = MAX_MESSAGE) -> tuple[dict, list[np.ndarray]]:
    """Read one message written by :func:`write_message`, enforcing the size limits."""
    n_head, n_meta, n_body = struct.unpack("<QQQ", _read_exact(stream, 24))
    if n_head > MAX_HEADER or n_meta > MAX_HEADER or n_head + n_meta + n_body > limit:
        raise ProtocolError(f"message of {n_head + n_meta + n_body} bytes exceeds the limit "
                            f"of {limit} bytes")
    header = json.loads(_read_exact(stream, n_head))
    layout = json.loads(_read_exact(stream, n_meta))
    body = _read_exact(stream, n_body)
    if not isinstance(header, dict) or not isinstance(layout, list):
        raise ProtocolError("malformed message")
    buffers, offset = [], 0
    for entry in layout:
        if (not isinstance(entry, list) or len(entry) != 2 or entry[0] not in DTYPES
                or not isinstance(entry[1], list)
                or not all(isinstance(s, int) and 0 <= s for s in entry[1])):
            raise ProtocolError(f"malformed array entry {str(entry)[:80]}")
        dtype, shape = np.dtype(entry[0]), tuple(entry[1])
        size = math.prod(shape) * dtype.itemsize
        if offset + size > len(body):
            raise ProtocolError("array buffers shorter than their shapes")
        buffers.append(np.frombuffer(body, dtype=dtype, count=math.prod(shape),
                                     offset=offset).reshape(shape).copy())
        offset += size
    if offset != len(body):
        raise ProtocolError("array buffers longer than their shapes")
    return header, buffers


# ------------------------------------------------------------------------- values as data


class Handle:
    """An object that stays on the worker's side; only its id and type name cross."""

    __slots__ = ("id", "type_name")

    def __init__(self, id_: str, type_name: str):
        self.id, self.type_name = id_, type_name

    def __repr__(self):
        return f"<{self.type_name} object>"

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def encode(value, buffers: list, *, store=None, depth: int = 0):
    """A JSON-able description of ``value``; arrays are appended to ``buffers``.

    ``store(obj) -> Handle`` keeps objects that are not data (on the worker's side);
    without it such objects raise ``TypeError``.
    """
    if depth > MAX_DEPTH:
        raise ValueError("structure nested too deeply")
    if value is None or isinstance(value, bool | str):
        return value
    if type(value) is int:
        return value if abs(value) < 2**62 else {"$": "bigint", "v": str(value)}
    if type(value) is float:
        return value
    if isinstance(value, np.ndarray) and value.dtype.str in DTYPES:
        buffers.append(np.asarray(value))
        return {"$": "array", "i": len(buffers) - 1}
    if isinstance(value, np.generic) and np.dtype(type(value)).str in DTYPES:
        buffers.append(np.asarray(value))
        return {"$": "scalar", "i": len(buffers) - 1}
    if isinstance(value, Handle):
        return {"$": "handle", "id": value.id, "type": value.type_name}
    if isinstance(value, type) and issubclass(value, np.generic) and \
            np.dtype(value).str in DTYPES:
        return {"$": "dtype", "v": np.dtype(value).str, "type": True}
    if isinstance(value, np.dtype) and value.str in DTYPES:
        return {"$": "dtype", "v": value.str, "type": False}
    if type(value) is np.random.Generator:
        bits = value.bit_generator
        return {"$": "rng", "state": encode(bits.state, buffers, depth=depth + 1)}
    if type(value) in (tuple, list):
        tag = "tuple" if type(value) is tuple else "list"
        return {"$": tag, "v": [encode(v, buffers, store=store, depth=depth + 1)
                                for v in value]}
    if type(value) is dict:
        return {"$": "dict",
                "k": [encode(k, buffers, store=store, depth=depth + 1) for k in value],
                "v": [encode(v, buffers, store=store, depth=depth + 1)
                      for v in value.values()]}
    cls = type(value)
    if dataclasses.is_dataclass(value) and cls.__module__.startswith("normcore."):
        fields = {f.name: encode(getattr(value, f.name), buffers, store=store, depth=depth + 1)
                  for f in dataclasses.fields(value)}
        return {"$": "record", "cls": f"{cls.__module__}.{cls.__qualname__}", "f": fields}
    if store is None:
        raise TypeError(f"a {cls.__name__} cannot cross as data")
    return encode(store(value), buffers)


def decode(spec, buffers: list, *, records=None, handles=None, _count=None):
    """The value described by ``spec`` (inverse of :func:`encode`).

    ``records(name) -> class or None`` resolves a record's class (None: keep a Handle);
    ``handles(id) -> object`` resolves a handle (None: keep the Handle).
    """
    count = _count if _count is not None else [0]
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ProtocolError("too many values in one message")
    if spec is None or isinstance(spec, bool | int | float | str):
        return spec
    if isinstance(spec, list):  # never produced by encode
        raise ProtocolError("bare list in a message")
    if not isinstance(spec, dict):
        raise ProtocolError(f"unexpected {type(spec).__name__} in a message")
    tag = spec.get("$")

    def sub(s):
        return decode(s, buffers, records=records, handles=handles, _count=count)

    if tag in ("array", "scalar"):
        i = spec.get("i")
        if not isinstance(i, int) or not 0 <= i < len(buffers):
            raise ProtocolError("array index out of range")
        return buffers[i].copy() if tag == "array" else buffers[i][()]
    if tag == "dtype":
        if spec.get("v") not in DTYPES:
            raise ProtocolError("unknown dtype")
        dtype = np.dtype(spec["v"])
        return dtype.type if spec.get("type") else dtype
    if tag == "rng":
        state = sub(spec.get("state"))
        name = state.get("bit_generator") if isinstance(state, dict) else None
        if name not in BIT_GENERATORS:
            raise ProtocolError("unknown random generator")
        bits = getattr(np.random, name)()
        try:
            bits.state = state
        except (TypeError, ValueError, KeyError) as exc:
            raise ProtocolError(f"bad random generator state: {exc}") from None
        return np.random.Generator(bits)
    if tag == "bigint":
        return int(str(spec.get("v"))[:400])
    if tag in ("tuple", "list"):
        items = [sub(v) for v in _list(spec.get("v"))]
        return tuple(items) if tag == "tuple" else items
    if tag == "dict":
        keys, values = _list(spec.get("k")), _list(spec.get("v"))
        if len(keys) != len(values):
            raise ProtocolError("dict with unequal keys and values")
        out = {}
        for k, v in zip(keys, values):
            key = sub(k)
            if not isinstance(key, str | int | float | bool | tuple) and key is not None:
                raise ProtocolError("unhashable dict key")
            out[key] = sub(v)
        return out
    if tag == "handle":
        handle = Handle(str(spec.get("id"))[:64], str(spec.get("type"))[:80])
        return handles(handle.id) if handles is not None else handle
    if tag == "record":
        name = str(spec.get("cls"))[:200]
        fields = spec.get("f")
        if not isinstance(fields, dict):
            raise ProtocolError("record without fields")
        values = {str(k): sub(v) for k, v in fields.items()}
        cls = records(name) if records is not None else None
        if cls is None:
            return Handle(f"record:{name}", name.rsplit(".", 1)[-1])
        try:
            return cls(**values)
        except Exception as exc:  # a record whose fields do not fit the real class
            raise ProtocolError(f"{name}: {exc}") from None
    raise ProtocolError(f"unknown tag {str(tag)[:40]!r}")


def _list(value) -> list:
    if not isinstance(value, list):
        raise ProtocolError("expected a list")
    return value


# ---------------------------------------------------------------------------- the worker


class _CellTimeout(BaseException):
    pass


class _Printed(io.TextIOBase):
    """Keeps the first characters written to it and counts the rest."""

    def __init__(self):
        self.parts, self.kept, self.total = [], 0, 0

    def writable(self):
        return True

    def write(self, s):
        s = str(s)
        self.total += len(s)
        if self.kept < MAX_PRINTED:
            piece = s[: MAX_PRINTED - self.kept]
            self.parts.append(piece)
            self.kept += len(piece)
        return len(s)

    def text(self) -> str:
        return "".join(self.parts)


class _Shell:
    """Stands in for IPython's ``get_ipython()``: magics and shell escapes do nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _unavailable(exc) -> str | None:
    """The module a blocked import named, when ``exc`` (or its context) is one."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if getattr(exc, "normcore_unavailable", None):
            return str(exc.normcore_unavailable)
        if isinstance(exc, ImportError) and exc.name:
            root = exc.name.split(".")[0]
            if root in ("torch", "sklearn", "functorch", "torchgen") or (
                    exc.name.startswith("normcore.")):
                return exc.name
        exc = exc.__cause__ or exc.__context__
    return None


_MUTABLE = (np.ndarray, dict, list, np.random.Generator)


def _params(fn) -> list:
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return [["args", int(inspect.Parameter.VAR_POSITIONAL), False],
                ["kwargs", int(inspect.Parameter.VAR_KEYWORD), False]]
    return [[p.name, int(p.kind), p.default is not p.empty] for p in sig.parameters.values()]


class Worker:
    def __init__(self, inbox, outbox):
        self.inbox, self.outbox = inbox, outbox
        self.namespace = {"__name__": "__main__", "__builtins__": __builtins__,
                          "get_ipython": _Shell}
        self.objects: dict[str, object] = {}
        self.baseline: set[str] = set()

    def store(self, obj) -> Handle:
        key = f"h{len(self.objects)}"
        self.objects[key] = obj
        return Handle(key, type(obj).__name__)

    def resolve(self, key):
        if key not in self.objects:
            raise ProtocolError("unknown handle")
        return self.objects[key]

    @staticmethod
    def record_class(name: str):
        module, _, cls = name.rpartition(".")
        if not module.startswith("normcore."):
            return None
        try:
            import importlib

            return getattr(importlib.import_module(module), cls, None)
        except Exception:
            return None

    def run_cells(self, cells, limit: float) -> list[dict]:
        from IPython.core.inputtransformer2 import TransformerManager

        transform = TransformerManager().transform_cell
        report = []
        for i, cell in enumerate(cells):
            label = str(cell.get("label", f"cell {i + 1}"))
            error = unavailable = None
            timed_out = False
            printed = _Printed()
            try:
                code = compile(transform(str(cell.get("source", ""))), f"<{label}>", "exec")
                with _redirect(printed), _alarm(limit):
                    exec(code, self.namespace)
            except _CellTimeout:
                error, timed_out = f"did not finish within {limit:g} s", True
            except BaseException as exc:  # noqa: BLE001 - a student's cell may raise anything
                error = f"{type(exc).__name__}: {str(exc)[:300]}"
                unavailable = _unavailable(exc)
            report.append({"label": label, "error": error, "unavailable": unavailable})
            if cell.get("baseline") and not timed_out:
                self.baseline = set(self.namespace)
        return report

    def functions(self) -> dict:
        found = {}
        for name, value in list(self.namespace.items()):
            if name.startswith("__") or name in self.baseline or isinstance(value, type(sys)):
                continue
            if callable(value):
                found[name] = _params(value)
        return found

    def call(self, request: dict, buffers: list) -> tuple[dict, list]:
        name = str(request.get("name"))
        fn = self.namespace.get(name)
        if not callable(fn):
            return {"ok": False, "error": {"type": "NameError", "message":
                                           f"name {name!r} is not defined"}}, []
        args = decode(request.get("args"), buffers, records=self.record_class,
                      handles=self.resolve)
        kwargs = decode(request.get("kwargs"), buffers, records=self.record_class,
                        handles=self.resolve)
        printed = _Printed()
        try:
            with _redirect(printed):
                result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001
            return {"ok": False, "printed": printed.text(), "printed_total": printed.total,
                    "error": {"type": type(exc).__name__, "message": str(exc)[:2000],
                              "not_implemented": isinstance(exc, NotImplementedError),
                              "unavailable": _unavailable(exc)}}, []
        out: list = []
        try:
            header = {
                "ok": True, "printed": printed.text(), "printed_total": printed.total,
                "result": encode(result, out, store=self.store),
                "after": {"args": [encode(a, out, store=self.store)
                                   if isinstance(a, _MUTABLE) else None for a in args],
                          "kwargs": {k: encode(v, out, store=self.store)
                                     for k, v in kwargs.items() if isinstance(v, _MUTABLE)}},
            }
        except (TypeError, ValueError) as exc:
            return {"ok": False, "error": {"type": "TypeError", "message": str(exc)}}, []
        return header, out

    def serve(self) -> None:
        request, buffers = read_message(self.inbox)
        cells = request.get("cells", [])
        limit = float(request.get("cell_time_limit", 30))
        report = self.run_cells(cells, limit)
        write_message(self.outbox, {"ready": True, "cells": report,
                                    "functions": self.functions()})
        while True:
            try:
                request, buffers = read_message(self.inbox)
            except EOFError:
                return
            if request.get("op") != "call":
                write_message(self.outbox, {"ok": False, "error": {
                    "type": "ProtocolError", "message": "unknown request"}})
                continue
            try:
                header, out = self.call(request, buffers)
            except ProtocolError as exc:
                header, out = {"ok": False, "error": {"type": "ProtocolError",
                                                      "message": str(exc)}}, []
            header["id"] = request.get("id")
            write_message(self.outbox, header, out)


class _redirect:
    def __init__(self, target):
        self.target = target

    def __enter__(self):
        self.saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = self.target

    def __exit__(self, *exc):
        sys.stdout, sys.stderr = self.saved


class _alarm:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        def ring(signum, frame):
            raise _CellTimeout()

        self.old = signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old)


def main() -> None:
    # Take the channel over before any student code exists: the grader talks on the original
    # stdin/stdout; fds 0-2 then point at /dev/null, so stray writes go nowhere.
    inbox = os.fdopen(os.dup(0), "rb", buffering=0)
    outbox = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.stdin = open(os.devnull)  # noqa: SIM115
    sys.stdout = sys.stderr = _Printed()
    Worker(inbox, outbox).serve()


if __name__ == "__main__":
    main()
