"""Where student code runs: a bubblewrap sandbox per process, as an unprivileged user.

Every process that runs a submission's code (the notebook's kernel and the grading worker)
is started through :func:`command`. It sees a read-only view of the system, of the Python
environment and of a staged copy of the public ``normcore`` (:func:`stage`), a private
writable home on a size-limited tmpfs holding a copy of that one submission, and nothing
else: not the course root (``solutions/``, ``grader/``, the gradebook, other submissions),
not the network. It runs in its own PID namespace, so the whole process tree dies with it
(``--die-with-parent``; nothing can outlive the run), with limits on CPU time, memory,
processes, open files and file size.

When the grader runs as root, bubblewrap sets up the mounts and ``setpriv`` then drops to
``nobody`` (uid 65534) with no capabilities and ``no_new_privs``, so the student's
processes are unprivileged outside the sandbox too. Run by another user, bubblewrap uses an
unprivileged user namespace and the processes keep that user's uid outside, confined by the
same mount, PID and network namespaces.

:func:`preflight` checks that this works and raises :class:`SandboxUnavailable` with the
reason and the fix otherwise. ``unsafe=True`` (the instructor's explicit
``--unsafe-no-sandbox``) runs the same commands without bubblewrap.
"""

from __future__ import annotations

import dataclasses
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: The working directory of sandboxed processes (a fresh tmpfs each time).
HOME = "/home/student"
#: The uid and gid of the student's processes when the grader runs as root.
SANDBOX_UID = SANDBOX_GID = 65534
#: normcore modules a graded function may import (validation, numerical gradients, checks).
PUBLIC_TO_WORKER = ("_checks", "gradcheck", "grading", "book")
#: Top-level packages that are not there for graded code at all.
BLOCKED_PACKAGES = ("torch", "functorch", "torchgen", "sklearn")


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot start here; the message says why and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed process tree."""

    cpu_seconds: int = 300
    memory_bytes: int = 6 << 30
    processes: int = 512
    open_files: int = 1024
    file_bytes: int = 64 << 20
    disk_bytes: int = 256 << 20


KERNEL_LIMITS = Limits()
WORKER_LIMITS = Limits(cpu_seconds=240, memory_bytes=4 << 30)


# --------------------------------------------------------------------------------- staging


def _result_classes(source: str) -> list[tuple[str, bool, list[tuple[str, str]]]]:
    """``(name, frozen, [(field, default)])`` of the public dataclasses defined in a module's
    source, read without importing it (some modules import torch, which is slow to load)."""
    import ast

    found = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
            continue
        for deco in node.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            if ast.unparse(target) not in ("dataclass", "dataclasses.dataclass"):
                continue
            frozen = any(k.arg == "frozen" and isinstance(k.value, ast.Constant)
                         and k.value.value is True
                         for k in (deco.keywords if isinstance(deco, ast.Call) else []))
            fields = []
            for stmt in node.body:
                if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                        and "ClassVar" not in ast.unparse(stmt.annotation)):
                    default = ""
                    if isinstance(stmt.value, ast.Constant) and isinstance(
                            stmt.value.value, int | float | str | bool | type(None)):
                        default = f" = {stmt.value.value!r}"
                    fields.append((stmt.target.id, default))
            found.append((node.name, frozen, fields))
    return found


def _stub_source(module_name: str, source: str) -> str:
    """A stand-in for a normcore reference module inside the worker.

    It keeps the module's result classes (dataclasses, same fields, no methods), so that a
    graded function can build and read them; any other name raises an ImportError that says
    the reference is not available to graded code.
    """
    lines = [
        f'"""Stand-in for {module_name} while graded functions run: the references are',
        'not available here; write the computation yourself with NumPy."""',
        "import dataclasses as _dc",
        "import typing as _t",
        "",
        "",
        "class _Unavailable(ImportError):",
        "    pass",
        "",
    ]
    for name, frozen, fields in sorted(_result_classes(source)):
        lines += ["", f"@_dc.dataclass(frozen={frozen})", f"class {name}:"]
        if not fields:
            lines.append("    pass")
        for field, default in fields:
            lines.append(f"    {field}: _t.Any{default}")
    lines += [
        "",
        "",
        "def __getattr__(name):",
        "    if name.startswith('__'):",
        "        raise AttributeError(name)",
        f"    error = _Unavailable({module_name!r} + '.' + name + ' is not available to "
        "graded functions: calling the course library\\'s reference earns no points; write "
        "the computation yourself with NumPy')",
        f"    error.normcore_unavailable = {module_name!r} + '.' + name",
        "    raise error",
        "",
    ]
    return "\n".join(lines)


def _blocked_package_source(name: str) -> str:
    return (
        f'"""{name} is not available to graded functions."""\n'
        f"error = ImportError({name!r} + ' is not available to graded functions: use NumPy "
        "only; torch and scikit-learn compute the graded operations for you')\n"
        f"error.normcore_unavailable = {name!r}\n"
        "raise error\n"
    )


def stage(dest: Path) -> dict[str, Path]:
    """Stage what sandboxed code may import into ``dest`` (world-readable, read-only later).

    Returns ``{"kernel": path, "worker": path, "worker_script": path}``: the kernel's library
    folder holds the whole public ``normcore`` (students have it anyway); the worker's holds
    only :data:`PUBLIC_TO_WORKER` and stand-ins for the reference modules (:func:`_stub_source`)
    and for :data:`BLOCKED_PACKAGES`.
    """
    import normcore

    source = Path(normcore.__file__).parent
    kernel = dest / "kernel-lib"
    worker = dest / "worker-lib"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(source, kernel / "normcore", ignore=ignore)
    (worker / "normcore").mkdir(parents=True)
    for mod in pkgutil.iter_modules([str(source)]):
        target = worker / "normcore" / f"{mod.name}.py"
        if mod.name in PUBLIC_TO_WORKER:
            shutil.copy(source / f"{mod.name}.py", target)
        else:
            path = source / mod.name / "__init__.py" if mod.ispkg else source / f"{mod.name}.py"
            target.write_text(_stub_source(f"normcore.{mod.name}", path.read_text()))
    shutil.copy(source / "__init__.py", worker / "normcore" / "__init__.py")
    for name in BLOCKED_PACKAGES:
        (worker / name).mkdir()
        (worker / name / "__init__.py").write_text(_blocked_package_source(name))
    script = worker / "_grading_worker.py"
    shutil.copy(Path(__file__).with_name("worker.py"), script)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return {"kernel": kernel, "worker": worker, "worker_script": script}


# -------------------------------------------------------------------------------- commands


def _site_packages() -> list[str]:
    import site

    return [p for p in site.getsitepackages() if os.path.isdir(p)]


def _dirs_for(path: str) -> list[str]:
    """``--dir`` arguments (mode 0755) for every parent of ``path`` below ``/``."""
    args, parts = [], Path(path).parts[1:-1]
    for i in range(len(parts)):
        args += ["--perms", "0755", "--dir", "/" + "/".join(parts[: i + 1])]
    return args


def _system_binds() -> list[str]:
    args = []
    for top in ("/usr", "/etc", "/opt"):
        if os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for link in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    return args


def is_root() -> bool:
    return os.geteuid() == 0


def command(argv: list[str], *, home: str, lib: Path, copy_from: str | None = None,
            binds: tuple[str, ...] = (), blocked: tuple[str, ...] = (),
            limits: Limits = KERNEL_LIMITS, env: dict | None = None,
            unsafe: bool = False) -> tuple[list[str], dict]:
    """The command line and ``subprocess.Popen`` options that run ``argv`` in a sandbox.

    Parameters
    ----------
    argv : list of str
        The program, usually the environment's Python and its arguments.
    home : str
        The working directory inside: a fresh tmpfs of ``limits.disk_bytes``.
    lib : Path
        Staged library folder, first on ``PYTHONPATH`` (read-only).
    copy_from : str, optional
        A folder whose files are copied into ``home`` before ``argv`` starts (the
        submission); bound read-only.
    binds : tuple of str
        Folders bound read-write at the same path (the kernel's connection folder).
    blocked : tuple of str
        Top-level packages of the environment to hide (an empty folder over them).
    """
    environment = {
        "HOME": home, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(lib), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp", "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LANG": "C.UTF-8",
        "IPYTHONDIR": f"{home}/.ipython",
    }
    environment.update(env or {})
    if copy_from is not None:
        argv = ["/bin/sh", "-c", 'cp -R "$0"/. . 2>/dev/null; exec "$@"', copy_from, *argv]
    options = {"start_new_session": True, "close_fds": True}
    if unsafe:
        os.makedirs(home, exist_ok=True)
        if copy_from is not None:
            shutil.copytree(copy_from, home, dirs_exist_ok=True)
            argv = argv[4:]
        return prlimit(limits) + argv, {**options, "cwd": home,
                                        "env": {**os.environ, **environment}}
    prefixes = sorted({sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix)})
    args = ["bwrap", *_system_binds()]
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    for path in [*prefixes, str(lib), *binds, *([copy_from] if copy_from else [])]:
        args += _dirs_for(path)
    for prefix in prefixes:
        args += ["--ro-bind", prefix, prefix]
    for site_dir in _site_packages():
        for name in blocked:
            if os.path.isdir(os.path.join(site_dir, name)):
                args += ["--tmpfs", os.path.join(site_dir, name)]
    args += ["--ro-bind", str(lib), str(lib)]
    args += _dirs_for(home) + ["--perms", "0777", "--size", str(limits.disk_bytes),
                               "--tmpfs", home]
    if copy_from:
        args += ["--ro-bind", copy_from, copy_from]
    for path in binds:
        args += ["--bind", path, path]
    args += ["--chdir", home, "--die-with-parent", "--new-session", "--hostname", "sandbox",
             "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
             "--unshare-cgroup-try", "--clearenv"]
    for key, value in environment.items():
        args += ["--setenv", key, value]
    if is_root():
        args += ["--", "setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}",
                 "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
                 "--", *argv]
    else:
        args[1:1] = ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
        args += ["--", *argv]
    return prlimit(limits) + args, options


def prlimit(limits: Limits) -> list[str]:
    """``prlimit`` arguments that apply ``limits`` to the command after them (and its tree)."""
    return ["prlimit", f"--cpu={limits.cpu_seconds}", f"--as={limits.memory_bytes}",
            f"--nproc={limits.processes}", f"--nofile={limits.open_files}",
            f"--fsize={limits.file_bytes}", "--core=0", "--"]


def preflight(unsafe: bool = False) -> str:
    """Check that sandboxed processes can start here; return a one-line description.

    Raises :class:`SandboxUnavailable` naming the reason and the fix. With ``unsafe`` the
    check is skipped and the returned line is a loud warning.
    """
    if unsafe:
        return ("WARNING: --unsafe-no-sandbox: student code runs WITHOUT the sandbox, as "
                f"{'root' if is_root() else 'you'}, with the course folder in reach. Use "
                "this only for code you trust.")
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so student code cannot be sandboxed. "
            "Install it (Debian/Ubuntu: `apt-get install bubblewrap`; `make install` does "
            "this when run as root), or pass --unsafe-no-sandbox to grade without a sandbox.")
    for tool in ("setpriv", "prlimit") if is_root() else ("prlimit",):
        if shutil.which(tool) is None:
            raise SandboxUnavailable(f"{tool} (util-linux) is missing: install util-linux.")
    with tempfile.TemporaryDirectory(prefix="grader-preflight-") as tmp:
        lib = Path(tmp) / "lib"
        lib.mkdir()
        os.chmod(tmp, 0o755)
        os.chmod(lib, 0o755)
        argv, options = command([sys.executable, "-c", "import numpy, os; print(os.getuid())"],
                                home=f"{tmp}/home", lib=lib, limits=WORKER_LIMITS)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, **options)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bubblewrap could not start: {exc}") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        hint = ("unprivileged user namespaces are probably disabled: enable them "
                "(`sysctl kernel.unprivileged_userns_clone=1`, or on Ubuntu 24.04 "
                "`sysctl kernel.apparmor_restrict_unprivileged_userns=0`), or run the "
                "grader as root" if not is_root() else
                "bubblewrap needs mount and PID namespaces (in a container, run it with "
                "--privileged or seccomp/apparmor unconfined)")
        raise SandboxUnavailable(f"the sandbox does not start here ({reason}); {hint}. "
                                 f"Or pass --unsafe-no-sandbox to grade without a sandbox.")
    uid = done.stdout.strip()
    who = f"uid {uid}" + (" (nobody)" if uid == str(SANDBOX_UID) else "")
    return f"sandbox: bubblewrap, student code runs as {who}, no network, private /tmp"
