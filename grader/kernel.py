"""The notebook's kernel in the sandbox: nbgrader's execution, with the kernel in bubblewrap.

:class:`SandboxedExecute` replaces nbgrader's ``Execute`` in the autograde steps. It runs the
notebook exactly as nbgrader does (so students see their cells' outputs in the feedback),
but its kernel is started by :class:`SandboxedKernelManager` inside the sandbox of
:mod:`grader.sandbox`: a private copy of the submission folder as its home, no network, no
view of the course. The kernel talks to nbgrader over Unix sockets in a folder shared with the
sandbox (``transport="ipc"``), since TCP on the host's loopback is not in the sandbox's
network namespace. The notebook as a whole has a time limit and a bound on the output kept.

Test cells still run in this kernel (the visible tests, for the student's benefit); their
outputs are replaced afterwards by the trusted verdicts (:mod:`grader.trusted`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer

from . import sandbox
from .student import stage_once


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel inside the sandbox, connected over Unix sockets."""

    unsafe = Bool(False, help="Start the kernel without the sandbox").tag(config=True)

    async def _async_pre_start_kernel(self, **kw):
        copy_from = kw.pop("cwd", None)
        # A signal would reach bubblewrap, not the kernel: interrupt over the control channel.
        self.kernel_spec.interrupt_mode = "message"
        self._io = tempfile.mkdtemp(prefix="grader-kernel-")
        if sandbox.is_root():
            os.chown(self._io, sandbox.SANDBOX_UID, sandbox.SANDBOX_GID)
        os.chmod(self._io, 0o755)
        self.transport = "ipc"
        self.ip = os.path.join(self._io, "kernel")
        self.connection_file = os.path.join(self._io, "connection.json")
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        os.chmod(self.connection_file, 0o644)
        home = os.path.join(self._io, "home") if self.unsafe else sandbox.HOME
        args, options = sandbox.command(cmd, home=home, lib=stage_once()["kernel"],
                                        copy_from=copy_from, binds=(self._io,),
                                        limits=sandbox.KERNEL_LIMITS, unsafe=self.unsafe)
        kw["cwd"] = options.get("cwd", self._io)
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL  # the kernel's own chatter
        if "env" in options:
            kw["env"] = {**kw.get("env", {}), **options["env"]}
        return args, kw

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and getattr(self, "_io", None):
            shutil.rmtree(self._io, ignore_errors=True)


class SandboxedExecute(Execute):
    """nbgrader's Execute with a sandboxed kernel, a notebook time limit and an output cap."""

    notebook_time_limit = Integer(300, help="Seconds the whole notebook may run").tag(
        config=True)
    max_output_chars = Integer(200_000, help="Characters of output kept per notebook").tag(
        config=True)

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = SandboxedKernelManager
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = time.monotonic() + self.notebook_time_limit
        self._chars = 0
        self._cut = False
        self._stopped = None
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, self.resources
        if self._stopped is None and time.monotonic() > self._deadline:
            self._stopped = f"the notebook used its {self.notebook_time_limit} s"
        if self._stopped is not None:
            cell.outputs = [_error("NotRun", f"not run: {self._stopped}")]
            return cell, self.resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except (CellTimeoutError, DeadKernelError) as exc:
            # A cell that ignores the interrupt, or a kernel that died: stop the kernel
            # (its whole sandbox goes with it) and run nothing more in it.
            self._stopped = ("an earlier cell did not stop" if isinstance(exc, CellTimeoutError)
                             else "the kernel died")
            cell.outputs.append(_error(type(exc).__name__, str(exc).split("\n")[0][:300]))
            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            except Exception:  # noqa: BLE001 - it is going anyway
                pass
            return cell, self.resources

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = (len(str(content.get("text", ""))) + len(str(content.get("traceback", "")))
                + sum(len(str(v)) for v in dict(content.get("data", {}) or {}).values()))
        self._chars += size
        if self._chars > self.max_output_chars and msg.get("msg_type") != "error":
            if not self._cut:
                self._cut = True
                outs.append(nbformat.v4.new_output(
                    "stream", name="stdout",
                    text=f"\n... output cut: the notebook printed more than "
                         f"{self.max_output_chars} characters ...\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)


def _error(name: str, message: str):
    return nbformat.v4.new_output("error", ename=name, evalue=message,
                                  traceback=[f"{name}: {message}"])
