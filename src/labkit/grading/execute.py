"""Step "execute": run one restored notebook in a sandboxed kernel, cell by cell.

``python -m labkit.grading.execute JOB.json`` is the worker process the grader starts for
each submission (a crash or a flood of output here cannot take the grader down). It drives
nbclient with a kernel started through :mod:`labkit.grading.sandbox`, over Unix sockets.

Every code cell ends with a recorded outcome. A cell that passes its wall-clock limit, or
kills its kernel (``os._exit``, a segfault, the memory limit), gets an error output naming
the reason; the kernel is then replaced, the cells that ran before it are replayed silently
(not the culprit), and execution goes on, so each later cell earns what it would have
earned. Cells not reached before the notebook's limit get an error output too, so no cell
scores by never running. Output beyond the limit is cut with a note.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from traitlets import Unicode

from .sandbox import Policy, kill_marked

MAX_RESTARTS = 12


@dataclass
class Job:
    """What the worker needs: where things are and the limits."""

    notebook: str
    executed: str
    events: str
    policy: str
    cell_timeout: float = 60.0
    notebook_timeout: float = 600.0
    output_limit: int = 1_000_000
    startup_timeout: float = 60.0

    @classmethod
    def load(cls, path: Path) -> Job:
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class CellEvent:
    index: int
    outcome: str  # ok | error | timeout | kernel-died | not-run | truncated-ok | truncated-error
    detail: str = ""
    seconds: float = 0.0


@dataclass
class RunLog:
    events: list[CellEvent] = field(default_factory=list)
    restarts: int = 0
    leftovers_killed: int = 0
    notebook_timed_out: bool = False
    kernel_start_error: str = ""
    worker_error: str = ""


class QuickReadyClient(AsyncKernelClient):
    """jupyter_client's kernel client, except that the wait for a ready kernel ends once IOPub is
    drained, instead of after a fixed 0.2 s of silence (nbclient ignores stale IOPub messages: it
    keeps only those whose parent is the cell's own request). Same checks otherwise."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.time() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                msg = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                pass
            else:
                if msg["msg_type"] == "kernel_info_reply":
                    try:  # IOPub connected too? (otherwise ask again)
                        await self.iopub_channel.get_msg(timeout=0.2)
                    except Empty:
                        pass
                    else:
                        self._handle_kernel_info_reply(msg)
                        break
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.time() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
        while True:
            try:
                await self.iopub_channel.get_msg(timeout=0.01)
            except Empty:
                return


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel command goes through the sandbox launcher."""

    policy_path = Unicode("")

    def format_kernel_cmd(self, extra_arguments=None):
        command = super().format_kernel_cmd(extra_arguments)
        if command and Path(command[0]).name.startswith("python"):
            command[0] = sys.executable
        return [sys.executable, "-m", "labkit.grading.sandbox", self.policy_path, "--", *command]


class LimitedClient(NotebookClient):
    """nbclient with a cap on the bytes of output kept per cell."""

    output_limit = 1_000_000
    truncated: set[int]
    km: AsyncKernelManager | None

    def output(self, outs, msg, display_id, cell_index):
        used = sum(len(json.dumps(o)) for o in outs)
        if used < self.output_limit:
            out = super().output(outs, msg, display_id, cell_index)
            if out is None or out not in outs:
                return out
            size = len(json.dumps(out))
            if used + size <= self.output_limit:
                return out
            room = max(0, self.output_limit - used - 200)
            if out.get("output_type") == "stream" and room:
                out["text"] = out["text"][:room]
            else:
                outs.remove(out)
        if cell_index not in self.truncated:
            self.truncated.add(cell_index)
            outs.append(nbformat.v4.new_output(
                "stream", name="stdout", text=f"\n[output cut by the grader: over {self.output_limit} bytes]\n"))
        return None


def _reply_says_error(cell, cell_index, execute_reply) -> None:
    """Trust the kernel's reply over its outputs: an error reply always leaves an error output
    (a submission can silence IPython's traceback display, not the reply's status)."""
    content = (execute_reply or {}).get("content", {})
    if content.get("status") == "error" and not any(o.get("output_type") == "error" for o in cell.outputs):
        cell.outputs.append(_error_output(str(content.get("ename", "Error")), str(content.get("evalue", ""))))


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class Runner:
    """Executes the notebook with restarts and replay; fills ``log``."""

    def __init__(self, job: Job):
        self.job = job
        self.policy = Policy.load(Path(job.policy))
        self.nb = nbformat.read(job.notebook, as_version=4)
        self.log = RunLog()
        self.truncated: set[int] = set()
        self.deadline = time.monotonic() + job.notebook_timeout

    def _client(self, nb: NotebookNode) -> LimitedClient:
        km = SandboxKernelManager(kernel_name="python3", transport="ipc",
                                  ip=str(Path(self.policy.kernel_dir) / "zmq"),
                                  connection_file=str(Path(self.policy.kernel_dir) / "connection.json"),
                                  client_factory=QuickReadyClient)
        km.policy_path = self.job.policy
        client = LimitedClient(nb, km=km, timeout=max(1, math.ceil(self.job.cell_timeout)), allow_errors=True,
                               interrupt_on_timeout=False, startup_timeout=int(self.job.startup_timeout),
                               kernel_name="python3", resources={"metadata": {"path": self.policy.scratch}},
                               record_timing=False)
        client.output_limit = self.job.output_limit
        client.on_cell_executed = _reply_says_error
        client.truncated = self.truncated
        return client

    async def _stop(self, client: LimitedClient) -> None:
        """Take the sandbox down: SIGTERM to the launcher, whose init kills and counts every process
        the submission left; then jupyter_client's own shutdown and a last sweep by uid/marker."""
        process = getattr(getattr(client.km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 8
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        try:
            if client.km is not None and await client.km.is_alive():
                await client.km.shutdown_kernel(now=True)
        except Exception:
            pass
        with contextlib.suppress(Exception):
            await client._async_cleanup_kernel()
        kill_marked(self.policy.token, self.policy.uid)
        leftovers = Path(self.policy.kernel_dir) / "leftovers"
        with contextlib.suppress(OSError, ValueError):
            self.log.leftovers_killed += sum(int(n) for n in leftovers.read_text().split())
            leftovers.unlink()

    async def run(self) -> None:
        code = [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code"]
        done: list[int] = []      # executed for real, kernel survived: replayed after a restart
        pending = list(code)
        try:
            while pending and self.log.restarts <= MAX_RESTARTS:
                work = copy.deepcopy(self.nb)
                client = self._client(work)
                try:
                    await client.async_start_new_kernel(cwd=self.policy.scratch)
                    await client.async_start_new_kernel_client()
                except Exception as err:
                    self.log.kernel_start_error = f"{type(err).__name__}: {err}"
                    await self._stop(client)
                    break
                try:
                    if not await self._replay(client, work, done):
                        continue
                    while pending:
                        index = pending[0]
                        outcome = await self._execute(client, work, index)
                        pending.pop(0)
                        if outcome in ("timeout", "kernel-died"):
                            self.log.restarts += 1
                            break
                        done.append(index)
                finally:
                    await self._stop(client)
        except Exception as err:  # a fault of the grader itself: no cell may pass by not running
            self.log.worker_error = f"the grader failed while executing: {type(err).__name__}: {err}"
        for index in pending:
            reason = ("the notebook's time limit was reached before this cell ran"
                      if time.monotonic() >= self.deadline or self.log.notebook_timed_out
                      else self.log.worker_error or self.log.kernel_start_error or "the kernel could not be restarted")
            self.nb.cells[index].outputs = [_error_output("NotRun", reason)]
            self.log.events.append(CellEvent(index, "not-run", reason))

    def _remaining(self) -> float:
        return self.deadline - time.monotonic()

    async def _replay(self, client: LimitedClient, work: NotebookNode, done: list[int]) -> bool:
        """Re-run earlier surviving cells in a fresh kernel; False if one of them failed now."""
        for index in list(done):
            if self._remaining() <= 0:
                self.log.notebook_timed_out = True
                return True
            client.timeout = max(1, math.ceil(min(self.job.cell_timeout, self._remaining())))
            try:
                await client.async_execute_cell(work.cells[index], index)
            except (CellTimeoutError, DeadKernelError, Exception) as err:
                done.remove(index)
                self.log.events.append(CellEvent(index, "replay-failed", f"{type(err).__name__}"))
                self.log.restarts += 1
                return False
        return True

    async def _execute(self, client: LimitedClient, work: NotebookNode, index: int) -> str:
        remaining = self._remaining()
        if remaining <= 0:
            self.log.notebook_timed_out = True
            raise_not_run = "the notebook's time limit was reached before this cell ran"
            self.nb.cells[index].outputs = [_error_output("NotRun", raise_not_run)]
            self.log.events.append(CellEvent(index, "not-run", raise_not_run))
            return "not-run"
        limit = min(self.job.cell_timeout, remaining)
        client.timeout = max(1, math.ceil(limit))  # nbclient takes whole seconds
        started = time.monotonic()
        cell = work.cells[index]
        try:
            cell = await client.async_execute_cell(cell, index)
            reply_error = any(o.output_type == "error" for o in cell.outputs)
            outcome, detail = ("error" if reply_error else "ok"), ""
        except CellTimeoutError:
            whose = "cell" if limit >= self.job.cell_timeout else "notebook"
            if whose == "notebook":
                self.log.notebook_timed_out = True
            detail = (f"timed out: the cell ran longer than the {limit:.0f} s limit per cell"
                      if whose == "cell" else "timed out: the notebook's time limit was reached in this cell")
            cell.outputs.append(_error_output("TimeoutError", detail))
            outcome = "timeout"
        except DeadKernelError:
            detail = ("the kernel died while running this cell (os._exit, a crash such as a segfault, "
                      "or the memory limit)")
            cell.outputs.append(_error_output("KernelDied", detail))
            outcome = "kernel-died"
        if index in self.truncated:
            detail = (detail + "; " if detail else "") + "output cut: over the output limit"
        self.nb.cells[index].outputs = copy.deepcopy(cell.outputs)
        self.nb.cells[index].execution_count = cell.get("execution_count")
        self.log.events.append(CellEvent(index, outcome, detail, round(time.monotonic() - started, 3)))
        return outcome


def run_job(path: Path) -> None:
    """Execute one job; the executed notebook and the events are written whatever happens."""
    job = Job.load(path)
    runner = Runner(job)
    try:
        asyncio.run(runner.run())
    finally:
        nbformat.write(runner.nb, job.executed)
        Path(job.events).write_text(json.dumps(asdict(runner.log), indent=1))


def serve() -> int:
    """``--serve``: a worker that stays up and runs one job per line of stdin ("JOB.json"),
    answering "done JOB.json" (or "failed JOB.json: why") on what was stdout. Kernels and their
    launchers write to stderr, never to the answer channel."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        try:
            run_job(Path(path))
            answers.write(f"done {path}\n")
        except Exception as err:  # the grader records it for this submission and goes on
            answers.write(f"failed {path}: {type(err).__name__}: {err}\n".replace("\n", " ").rstrip() + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--serve"]:
        return serve()
    run_job(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
