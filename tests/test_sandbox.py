"""The sandbox and the wire format of the grading worker, piece by piece.

The red-team suite (tests/test_redteam.py) attacks the whole workflow; these tests pin down
each property on its own: what a sandboxed process can see and do, that only data crosses
back (no pickle, bounded sizes, plain dtypes), and that autograding refuses to run student
code without a sandbox unless the instructor says so.
"""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader import sandbox, worker
from grader.student import Submission, WorkerFailure, stage_once

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def staged():
    try:
        sandbox.preflight()
    except sandbox.SandboxUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no sandbox here: {exc}")
    return stage_once()


def run_sandboxed(staged, code, **kwargs):
    argv, options = sandbox.command([sys.executable, "-c", code], home=sandbox.HOME,
                                    lib=staged["worker"], blocked=sandbox.BLOCKED_PACKAGES,
                                    limits=sandbox.WORKER_LIMITS, **kwargs)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **options)


# ----------------------------------------------------------------------------- the sandbox


def test_sandboxed_code_sees_no_course_and_no_network(staged):
    code = (
        "import os, socket\n"
        f"print(os.path.exists({str(ROOT / 'solutions')!r}), "
        f"os.path.exists({str(ROOT / 'grader')!r}), os.path.exists({str(ROOT / 'tools')!r}))\n"
        "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=2); print('net')\n"
        "except OSError:\n    print('no net')\n"
        "print(os.getcwd(), len([d for d in os.listdir('/proc') if d.isdigit()]) < 10)\n"
        f"open({str(ROOT / '.venv' / 'pwned')!r}, 'w')\n")
    done = run_sandboxed(staged, code)
    lines = done.stdout.splitlines()
    assert lines[0] == "False False False"
    assert lines[1] == "no net"
    assert lines[2] == f"{sandbox.HOME} True"  # its own PID namespace: a handful of processes
    assert "Read-only file system" in done.stderr and not (ROOT / ".venv" / "pwned").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the nobody user is used when grading as root")
def test_student_code_runs_as_nobody_without_privileges(staged):
    done = run_sandboxed(staged, "import os; print(os.getuid(), os.getgid(), os.getgroups());"
                                 "print(open('/proc/self/status').read())")
    first, status = done.stdout.split("\n", 1)
    assert first == f"{sandbox.SANDBOX_UID} {sandbox.SANDBOX_GID} []"
    assert "CapEff:\t0000000000000000" in status and "NoNewPrivs:\t1" in status


def test_disk_and_file_size_are_limited(staged):
    code = ("import os\nn = 0\ntry:\n    with open('big', 'wb') as f:\n"
            "        for _ in range(400):\n            f.write(b'x' * (1 << 20)); n += 1\n"
            "except OSError as exc:\n    print('stopped', n)\n")
    done = run_sandboxed(staged, code)
    stopped = int(done.stdout.split()[-1]) if "stopped" in done.stdout else None
    assert done.returncode != 0 or stopped is not None
    assert stopped is None or stopped <= sandbox.WORKER_LIMITS.file_bytes >> 20


def test_reference_modules_and_torch_are_absent_for_graded_code(staged):
    code = ("import importlib\n"
            "for name in ['torch', 'sklearn', 'normcore.normalization']:\n"
            "    try:\n        m = importlib.import_module(name); m.batch_norm_forward\n"
            "        print(name, 'reachable')\n"
            "    except ImportError as exc:\n        print(name, 'absent')\n"
            "from normcore.preprocessing import Standardization\n"
            "print(Standardization(1, 2, 3).eps)\n")
    done = run_sandboxed(staged, code)
    assert done.stdout.split("\n")[:4] == ["torch absent", "sklearn absent",
                                           "normcore.normalization absent", "3"]


def test_stand_ins_keep_every_result_class_with_its_fields():
    """The worker's stand-in modules are written from the source without importing it: each
    keeps exactly the public dataclasses of the real module (name, fields, frozen)."""
    import dataclasses
    import importlib
    import pkgutil

    import normcore

    source = Path(normcore.__file__).parent
    checked = 0
    for mod in pkgutil.iter_modules([str(source)]):
        if mod.name in sandbox.PUBLIC_TO_WORKER:
            continue
        module = importlib.import_module(f"normcore.{mod.name}")
        real = sorted((name, obj.__dataclass_params__.frozen,
                       [f.name for f in dataclasses.fields(obj)])
                      for name, obj in vars(module).items()
                      if isinstance(obj, type) and dataclasses.is_dataclass(obj)
                      and obj.__module__ == module.__name__ and not name.startswith("_"))
        path = source / mod.name / "__init__.py" if mod.ispkg else source / f"{mod.name}.py"
        stub = sorted((name, frozen, [f for f, _ in fields]) for name, frozen, fields
                      in sandbox._result_classes(path.read_text()))
        assert stub == real, mod.name
        checked += len(real)
    assert checked >= 5


def test_preflight_refuses_without_bubblewrap(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap .* not installed.*"
                                                         "unsafe-no-sandbox"):
        sandbox.preflight()
    assert "WARNING" in sandbox.preflight(unsafe=True)


def test_autograde_refuses_without_a_sandbox(monkeypatch, tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import course

    def unavailable(unsafe=False):
        raise sandbox.SandboxUnavailable("user namespaces are disabled")

    monkeypatch.setattr(sandbox, "preflight", unavailable)
    with pytest.raises(course.CourseError, match="refusing to run student code: user namespaces"):
        course.autograde(tmp_path)


# ----------------------------------------------------------------------------- wire format


def roundtrip(value, **decode_options):
    buffers = []
    header = {"v": worker.encode(value, buffers)}
    stream = io.BytesIO()
    worker.write_message(stream, header, buffers)
    stream.seek(0)
    got, arrays = worker.read_message(stream)
    return worker.decode(got["v"], arrays, **decode_options)


def raw_message(head: bytes, layout: bytes, body: bytes) -> io.BytesIO:
    """A message written by hand, as a hostile worker could write it."""
    sizes = b"".join(len(part).to_bytes(8, "little") for part in (head, layout, body))
    return io.BytesIO(sizes + head + layout + body)


def test_data_crosses_exactly():
    rng = np.random.default_rng(3)
    value = (np.arange(6.0).reshape(2, 3), np.float32(2.5), {"m": np.ones(2, np.float32),
                                                            "t": 3}, [None, True, "s"],
             np.float32, rng)
    got = roundtrip(value)
    assert np.array_equal(got[0], value[0]) and got[0].dtype == np.float64
    assert got[1] == np.float32(2.5) and type(got[1]) is np.float32
    assert got[2]["m"].dtype == np.float32 and got[2]["t"] == 3
    assert got[3] == [None, True, "s"] and got[4] is np.float32
    assert got[5].standard_normal() == np.random.default_rng(3).standard_normal()


def test_objects_are_not_data():
    with pytest.raises(TypeError, match="cannot cross"):
        roundtrip(object())
    with pytest.raises(TypeError, match="cannot cross"):
        roundtrip(np.array([object()]))


def test_no_pickle_and_no_unknown_tags():
    stream = io.BytesIO()
    worker.write_message(stream, {"v": {"$": "pickle", "data": "gASV"}})
    stream.seek(0)
    header, arrays = worker.read_message(stream)
    with pytest.raises(worker.ProtocolError, match="unknown tag"):
        worker.decode(header["v"], arrays)
    # An object dtype never crosses: the layout names only plain numeric dtypes.
    with pytest.raises(worker.ProtocolError, match="malformed array"):
        worker.read_message(raw_message(b"{}", b'[["|O", [1]]]', b"\0" * 8))


def test_sizes_are_bounded():
    stream = io.BytesIO()
    worker.write_message(stream, {}, [np.zeros(1000)])
    stream.seek(0)
    with pytest.raises(worker.ProtocolError, match="exceeds the limit"):
        worker.read_message(stream, limit=1000)
    with pytest.raises(worker.ProtocolError, match="shorter than their shapes"):
        worker.read_message(raw_message(b"{}", b'[["<f8", [1000]]]', b"\0" * 8))


def test_records_only_for_known_classes():
    from normcore.preprocessing import Standardization

    record = {"$": "record", "cls": "normcore.preprocessing.Standardization",
              "f": {"mean": 1, "var": 2, "eps": 0.5}}
    known = {"normcore.preprocessing.Standardization": Standardization}
    assert worker.decode(record, [], records=known.get) == Standardization(1, 2, 0.5)
    unknown = dict(record, cls="os.system")
    assert isinstance(worker.decode(unknown, [], records=known.get), worker.Handle)


# ------------------------------------------------------------------------------ the worker


def test_worker_calls_report_exceptions_and_survive_crashes(staged):
    cells = [{"label": "setup", "source": "import numpy as np", "baseline": True},
             {"label": "f", "source": "def f(x, m):\n    m += 1\n    return x * 2\n"},
             {"label": "g", "source": "def g():\n    raise ValueError('bad input')\n"},
             {"label": "h", "source": "import os\ndef h():\n    os._exit(3)\n"},
             {"label": "k", "source": "def k():\n    while True:\n        pass\n"}]
    with Submission(cells, staged) as sub:
        sub.start()
        assert set(sub.functions) == {"f", "g", "h", "k"}
        m = np.zeros(2)
        assert np.array_equal(sub.function("f")(np.ones(2), m), [2.0, 2.0])
        assert np.array_equal(m, [1.0, 1.0])  # the in-place update came back
        with pytest.raises(ValueError, match="bad input"):
            sub.function("g")()
        with pytest.raises(WorkerFailure, match="ended the Python process"):
            sub.function("h")()
        sub.function("f")(np.ones(1), np.zeros(1))  # a fresh worker after the crash
        start = sub.starts
        with pytest.raises(WorkerFailure, match="did not finish"):
            sub.call("k", (), {}, timeout=1.0)
        assert sub.proc is None and sub.starts == start
