"""Step "execute": run one restored notebook in a sandboxed kernel, cell by cell.

``python -m labkit.grading.execute JOB.json`` is the worker process the grader starts for
each submission (a crash or a flood of output here cannot take the grader down). It drives
nbclient with a kernel started through :mod:`labkit.grading.sandbox`, over Unix sockets.

Cells run as the plan from :func:`labkit.grading.restore.plan` says:

- learner and instructor cells run as a notebook would run them;
- test cells go through the grader's agent (:mod:`labkit.grading.agent`), sent to each kernel
  before any learner code: first a check that nothing decides differently how cells run,
  errors are reported or modules are imported than when the kernel started (and that the
  lab's own helpers are still the lab's), then each visible and hidden segment of the test,
  outside the history, hidden segments in a copy of the namespace; a check after each segment
  also clears what IPython kept of it. Tampering found by a check zeroes that test and every
  later one, and is reported for review.

Every code cell ends with a recorded outcome. A cell that passes its wall-clock limit, or
kills its kernel (``os._exit``, a segfault, the memory limit), gets an error output naming
the reason; the kernel is then replaced (everything in the submission's cgroup killed first),
the cells that ran before it are replayed silently, except the culprit and the earlier cells
whose processes were still using the CPU when it timed out, and execution goes on, so each
later cell earns what it would have earned. Cells not reached before the notebook's limit get
an error output too, so no cell scores by never running. Output beyond the limit is cut with
a note; the bytes of output kept so far are counted as they arrive (linear in the number of
outputs).
"""

from __future__ import annotations

import ast
import asyncio
import base64
import contextlib
import copy
import json
import math
import os
import signal
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from traitlets import Unicode

from .fairshare import Group
from .pysource import parse_cell
from .sandbox import Policy, kill_marked, marked_pids

MAX_RESTARTS = 12
AGENT_MODULE = "_labkit_grading_agent"


@dataclass
class Job:
    """What the worker needs: where things are, the limits, and what each cell is."""

    notebook: str
    executed: str
    events: str
    policy: str
    cell_timeout: float = 300.0      # the defaults of pipeline.Limits
    notebook_timeout: float = 1200.0
    output_limit: int = 1_000_000
    startup_timeout: float = 60.0
    plan: list[dict] = field(default_factory=list)       # CellPlan.to_json() per cell
    agent: dict = field(default_factory=dict)            # the agent's configuration
    kernel_root: str = ""                                # where each kernel start gets a folder
    cgroup: list[str] = field(default_factory=list)      # the submission's cgroup folders
    cgroup_version: int = 0
    disk_mb: int = 0                                     # watched here when no tmpfs bounds it

    @classmethod
    def load(cls, path: Path) -> Job:
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class CellEvent:
    index: int
    outcome: str  # ok | error | timeout | kernel-died | not-run | replay-failed | replay-skipped
    detail: str = ""
    seconds: float = 0.0


# How long a kernel whose cells all ran gets to shut down on request before it is killed.
SHUTDOWN_GRACE_S = 20.0


@dataclass
class RunLog:
    events: list[CellEvent] = field(default_factory=list)
    restarts: int = 0
    leftovers_killed: int = 0
    leftover_names: list[str] = field(default_factory=list)  # what they were ("python3 server.py")
    notebook_timed_out: bool = False
    kernel_start_error: str = ""
    worker_error: str = ""
    tampered: list[dict] = field(default_factory=list)   # {"grade_id", "reasons"}: flagged for review
    review: list[str] = field(default_factory=list)      # notes for review that zero nothing
    disk_exceeded: bool = False
    checks: int = 0                                      # the agent's checks, and the time they took
    check_seconds: float = 0.0


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
    """nbclient with a cap on the bytes of output kept per cell, counted as outputs arrive."""

    output_limit = 1_000_000
    truncated: set[int]
    km: AsyncKernelManager | None
    kc: AsyncKernelClient | None

    def output(self, outs, msg, display_id, cell_index):
        counts = self.__dict__.setdefault("_kept", {})
        count, used = counts.get(id(outs), (0, 0))
        if count != len(outs):  # cleared (or a new list): count again
            count, used = len(outs), sum(len(json.dumps(o)) for o in outs)
        if used < self.output_limit:
            out = super().output(outs, msg, display_id, cell_index)
            if out is None or not outs or outs[-1] is not out:
                counts[id(outs)] = (len(outs), used if out is None else used + len(json.dumps(out)))
                return out
            size = len(json.dumps(out))
            if used + size <= self.output_limit:
                counts[id(outs)] = (len(outs), used + size)
                return out
            room = max(0, self.output_limit - used - 200)
            if out.get("output_type") == "stream" and room:
                out["text"] = out["text"][:room]
                used += room
            else:
                outs.pop()
        if cell_index not in self.truncated:
            self.truncated.add(cell_index)
            outs.append(nbformat.v4.new_output(
                "stream", name="stdout", text=f"\n[output cut by the grader: over {self.output_limit} bytes]\n"))
        counts[id(outs)] = (len(outs), self.output_limit)
        return None


def _reply_says_error(cell, cell_index, execute_reply) -> None:
    """Trust the kernel's reply over its outputs: an error reply always leaves an error output
    (a submission can silence IPython's traceback display, not the reply's status)."""
    content = (execute_reply or {}).get("content", {})
    if content.get("status") == "error" and not any(o.get("output_type") == "error" for o in cell.outputs):
        cell.outputs.append(_error_output(str(content.get("ename", "Error")), str(content.get("evalue", ""))))


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _test_outputs(outputs: list) -> list:
    """A test cell's outputs as kept: an ``execute_result`` there can only come from learner code
    (tests run as statements), so it is kept as a display, never read as partial credit."""
    kept = []
    for out in outputs:
        if out.get("output_type") == "execute_result":
            out = nbformat.v4.new_output("display_data", data=out.get("data", {}), metadata=out.get("metadata", {}))
        kept.append(out)
    return kept


def imported_modules(sources: list[str]) -> list[str]:
    """Absolute module names the code in ``sources`` imports (magics ignored)."""
    found: list[str] = []
    for source in sources:
        tree = parse_cell(source)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append(node.module)
    return list(dict.fromkeys(found))


class Guard:
    """The executor's side of the agent: bootstraps it, asks for checks, compares, keeps the
    baseline (in this process, where learner code cannot reach it)."""

    def __init__(self, runner: Runner, client: LimitedClient):
        self.runner, self.client = runner, client
        self.baseline: dict[str, str] = {}
        self.digest = ""
        self.helpers: dict[str, str] = {}
        self.audit: dict[str, int] = {}
        self.last_seconds = 0.0

    async def _request(self, code: str, expression: str = "", timeout: float = 30.0) -> str:
        kc, km = self.client.kc, self.client.km
        if kc is None or km is None:
            raise DeadKernelError("Kernel died")
        msg_id = kc.execute(code, silent=True, store_history=False,
                            user_expressions={"r": expression} if expression else None, allow_stdin=False)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the grader's check did not answer in time")
            try:
                reply = await kc.get_shell_msg(timeout=min(left, 1.0))
            except Empty:
                if not await km.is_alive():
                    raise DeadKernelError("Kernel died") from None
                continue
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            content = reply["content"]
            if content.get("status") != "ok":
                raise RuntimeError(f"{content.get('ename', 'Error')}")
            if not expression:
                return ""
            result = content.get("user_expressions", {}).get("r", {})
            if result.get("status") != "ok":
                raise RuntimeError(f"{result.get('ename', 'Error')}")
            return ast.literal_eval(result["data"]["text/plain"])

    def _call(self, function: str, *args) -> str:
        return f"__import__('sys').modules[{AGENT_MODULE!r}].{function}({', '.join(repr(a) for a in args)})"

    async def start(self, timeout: float) -> None:
        source = (Path(__file__).with_name("agent.py")).read_text()
        marker = f"labkit-agent-{uuid.uuid4().hex}"
        boot = (f"# {marker}\nexec(compile({source!r}, '<labkit grading agent>', 'exec'), "
                f"__import__('sys').modules.setdefault({AGENT_MODULE!r}, "
                f"__import__('types').ModuleType({AGENT_MODULE!r})).__dict__)\n"
                f"__import__('sys').modules[{AGENT_MODULE!r}].start({self.runner.job.agent!r})\n")
        await self._request(boot, timeout=timeout)
        report = await self._report(full=True, clean=marker, timeout=timeout)
        self.baseline, self.digest = report["entries"], report["digest"]
        self.audit = report["audit"]

    async def _report(self, full: bool = False, clean: str = "", helpers=(),
                      timeout: float = 30.0, detail: bool = False) -> dict:
        nonce = uuid.uuid4().hex
        text = await self._request("", self._call("check", nonce, list(helpers), full, clean, detail), timeout)
        report = json.loads(text)
        if report.get("nonce") != nonce:
            raise RuntimeError("the grader's check answered with someone else's report")
        return report

    async def record_helpers(self, names: list[str], timeout: float) -> None:
        """Remember the lab's helpers as an instructor cell just defined them."""
        if not names:
            return
        report = await self._report(helpers=names, timeout=timeout)
        self.helpers.update({n: t for n, t in report["helpers"].items() if t != "missing"})

    async def check(self, clean: str = "", timeout: float = 30.0) -> tuple[list[str], list[str]]:
        """(tampering found, review notes); the baseline learns entries that installed code added."""
        started = time.monotonic()
        try:
            report = await self._report(clean=clean, helpers=list(self.helpers), timeout=timeout)
        except (DeadKernelError, TimeoutError):
            raise
        except (RuntimeError, ValueError, SyntaxError, KeyError) as err:
            return [f"the grader's integrity check failed ({type(err).__name__}: {str(err)[:120]})"], []
        found, notes = [], []
        if report["digest"] != self.digest:
            full = await self._report(full=True, helpers=list(self.helpers), timeout=timeout, detail=True)
            found += self._compare(full["entries"])
            if not found:  # what installed code added since is part of the baseline now
                self.baseline = {k: v.rsplit("|", 1)[0] for k, v in full["entries"].items()}
                self.digest = full["digest"]
        if report["trace"]:
            found.append("a trace or profile function (sys.settrace/setprofile) was active")
        audit = report["audit"]
        if audit.get("trace_in_test", 0) > self.audit.get("trace_in_test", 0):
            found.append("a trace or profile function was set while a test ran")
        if audit.get("code", 0) > self.audit.get("code", 0):
            found.append("a function's code was replaced in place (__code__)")
        if any(audit.get(k, 0) < self.audit.get(k, 0) for k in audit):
            found.append("the grader's records inside the kernel were reset")
        for key, what in (("gc", "walked the interpreter's objects (gc.get_objects/get_referrers)"),
                          ("ctypes", "reached into the interpreter through ctypes"),
                          ("audit_hooks", "added an audit hook")):
            if audit.get(key, 0) > self.audit.get(key, 0):
                notes.append(f"the submission {what}")
        self.audit = audit
        if report["threads"]:
            found.append(f"{len(report['threads'])} thread(s) running the submission's own code while tests ran")
        for event in report["events"]:
            if event and event[0] == "shadowed":
                found.append("the submission redefines built-in name(s) a test uses: " + ", ".join(event[1]))
        for name, token in report["helpers"].items():
            if name in self.helpers and token != self.helpers[name]:
                found.append(f"the lab's helper {name!r} was redefined or changed by the submission")
        self.last_seconds = time.monotonic() - started
        return list(dict.fromkeys(found)), notes

    def _compare(self, detailed: dict[str, str]) -> list[str]:
        """What changed since the baseline (tokens only) in ``detailed`` (token|origin per entry)."""
        entries = {k: v.rsplit("|", 1)[0] for k, v in detailed.items()}
        changed = [k for k, v in self.baseline.items() if entries.get(k) is not None and entries[k] != v]
        removed = [k for k in self.baseline if k not in entries]
        new_modules = {k.split(" ", 1)[1] for k, v in detailed.items() if k.startswith("module ") and k not in
                       self.baseline and v.endswith("|installed")}

        def belongs_to_new_module(key: str) -> bool:
            return any(key == m or key.startswith(m + ".") for m in new_modules)

        added = [k for k, v in detailed.items() if k not in self.baseline and not v.endswith("|installed")
                 and not belongs_to_new_module(k)]
        keys = sorted(set(changed + removed + added))
        specific = [k for k in keys if not any(o != k and o.startswith(k + ".") for o in keys)]
        grouped: dict[str, list[str]] = {}
        for key in specific:
            name = key.split("[", 1)[0]
            short = ".".join(name.replace("module ", "").split(".")[-2:])
            grouped.setdefault(_category(key), []).append(short + (" (added by the submission)" if key in added
                                                                   else ""))
        return [f"{category} changed: {', '.join(dict.fromkeys(names[:6]))}" for category, names in grouped.items()]

    def run_code(self, kind: str, code: str, marker: str) -> str:
        payload = base64.b64encode(code.encode()).decode()
        return f"{self._call('run', kind, payload, marker)}  # {marker}\n"


def _category(key: str) -> str:
    if key.startswith(("IPython.", "ipykernel.", "jupyter_client.", "zmq.", "shell", "kernel", "transformers")):
        return "the kernel's cell execution or error reporting"
    if key.startswith(("importlib", "zipimport", "sys.meta_path", "sys.path_hooks", "builtins.__import__",
                       "module ", "sys.modules")):
        return "the import system"
    if key.startswith("builtins."):
        return "a built-in"
    if key.startswith("sys."):
        return "a sys hook"
    if key.startswith("agent"):
        return "the grader's agent"
    return "a module the tests use"


class Runner:
    """Executes the notebook with restarts and replay; fills ``log``."""

    def __init__(self, job: Job):
        self.job = job
        self.policy_path = Path(job.policy)
        self.policy = Policy.load(self.policy_path)
        self.nb = nbformat.read(job.notebook, as_version=4)
        self.plan = list(job.plan) or [{"role": "learner"} for _ in self.nb.cells]
        self.log = RunLog()
        self.truncated: set[int] = set()
        self.deadline = time.monotonic() + job.notebook_timeout
        self.group = Group([Path(p) for p in job.cgroup], job.cgroup_version) if job.cgroup else None
        self.starts = 0
        self.tampered = False
        self.left_running: dict[int, set[int]] = {}   # cell -> pids it started that outlived it
        self.core: set[int] = set()                     # supervisor, init and kernel of this start
        self.known: set[int] = set()
        self.skip: set[int] = set()                     # cells not to replay (their processes held the CPU)

    # ---- kernels ---------------------------------------------------------------------------

    def _new_kernel_dir(self) -> Path:
        """A fresh folder for each kernel start: nothing the previous kernel left is ever reused."""
        self.starts += 1
        folder = Path(self.job.kernel_root or Path(self.policy.kernel_dir).parent) / f"kernel-{self.starts}"
        folder.mkdir(mode=0o700)
        if self.policy.uid is not None and os.geteuid() == 0:
            os.chown(folder, self.policy.uid, self.policy.uid)
        self.policy.kernel_dir = str(folder)
        self.policy.save(self.policy_path)
        return folder

    def _client(self, nb: NotebookNode) -> LimitedClient:
        folder = self._new_kernel_dir()
        km = SandboxKernelManager(kernel_name="python3", transport="ipc", ip=str(folder / "zmq"),
                                  connection_file=str(folder / "connection.json"), client_factory=QuickReadyClient)
        km.policy_path = self.job.policy
        client = LimitedClient(nb, km=km, timeout=max(1, math.ceil(self.job.cell_timeout)), allow_errors=True,
                               interrupt_on_timeout=False, startup_timeout=int(self.job.startup_timeout),
                               kernel_name="python3", resources={"metadata": {"path": self.policy.scratch}},
                               record_timing=False,
                               # the cell's last outputs may follow its reply late on a loaded machine:
                               # nbclient's default (4 s) drops them with only a log line
                               iopub_timeout=max(1, math.ceil(self.job.cell_timeout)))
        client.output_limit = self.job.output_limit
        client.on_cell_executed = _reply_says_error
        client.truncated = self.truncated
        return client

    def _sandbox_pids(self) -> set[int]:
        if self.group is not None:
            return self.group.pids()
        return set(marked_pids(self.policy.token, self.policy.uid))

    async def _stop(self, client: LimitedClient, graceful: bool = False) -> None:
        """Take the sandbox down: SIGTERM to the launcher, whose init kills and counts every process
        the submission left; then the whole cgroup, jupyter_client's own shutdown and a last sweep
        by uid/marker. The count comes back through a file in the grader's private folder.

        ``graceful`` (every cell ran): first ask the kernel to shut down, as Jupyter does, and give it
        :data:`SHUTDOWN_GRACE_S` to exit: its exit handlers stop what the course's backend started for
        it (model servers, the zygote), so only what the submission itself left running is counted."""
        process = getattr(getattr(client.km, "provisioner", None), "process", None)
        if graceful and process is not None and process.poll() is None and client.kc is not None:
            with contextlib.suppress(Exception):
                client.kc.shutdown()
                deadline = time.monotonic() + SHUTDOWN_GRACE_S
                while process.poll() is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 8
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        killed = self.group.kill() if self.group is not None else set()
        try:
            if client.km is not None and await client.km.is_alive():
                await client.km.shutdown_kernel(now=True)
        except Exception:
            pass
        with contextlib.suppress(Exception):
            await client._async_cleanup_kernel()
        killed |= kill_marked(self.policy.token, self.policy.uid)
        names: list[str] = []
        with contextlib.suppress(OSError):
            path = Path(self.policy.leftovers_path)
            names = [line.strip() or "?" for line in path.read_text().splitlines()]
            path.write_text("")
        self.log.leftovers_killed += len(names) + len(killed - self.core)
        self.log.leftover_names += [n for n in names if n != "?"]

    # ---- the run ---------------------------------------------------------------------------

    async def run(self) -> None:
        code = [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code"]
        done: list[int] = []      # executed for real, kernel survived: replayed after a restart
        pending = list(code)
        try:
            while pending and self.log.restarts <= MAX_RESTARTS:
                work = copy.deepcopy(self.nb)
                client = self._client(work)
                watcher = None
                try:
                    try:
                        await client.async_start_new_kernel(cwd=self.policy.scratch)
                        await client.async_start_new_kernel_client()
                        guard = Guard(self, client)
                        await guard.start(self.job.startup_timeout)
                    except Exception as err:
                        self.log.kernel_start_error = f"{type(err).__name__}: {err}"
                        break
                    self.core = self._sandbox_pids()
                    self.known = set(self.core)
                    self.left_running = {}
                    if self.job.disk_mb:
                        watcher = asyncio.ensure_future(self._watch_disk(client))
                    if not await self._replay(client, guard, work, done):
                        continue
                    while pending:
                        index = pending[0]
                        outcome = await self._execute(client, guard, work, index)
                        pending.pop(0)
                        if outcome in ("timeout", "kernel-died"):
                            self.log.restarts += 1
                            break
                        done.append(index)
                finally:
                    if watcher is not None:
                        watcher.cancel()
                    await self._stop(client, graceful=not pending)
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

    async def _replay(self, client, guard: Guard, work: NotebookNode, done: list[int]) -> bool:
        """Re-run earlier surviving cells in a fresh kernel; False if one of them failed now. Cells
        whose processes held the CPU when a later cell timed out are not replayed."""
        for index in list(done):
            if index in self.skip:
                continue
            if self._remaining() <= 0:
                self.log.notebook_timed_out = True
                return True
            try:
                outcome, _ = await self._run_cell(client, guard, work, index, min(self.job.cell_timeout,
                                                                                    self._remaining()))
            except Exception as err:
                outcome = type(err).__name__
            if outcome in ("timeout", "kernel-died") or outcome not in ("ok", "error"):
                done.remove(index)
                self.log.events.append(CellEvent(index, "replay-failed", outcome))
                self.log.restarts += 1
                return False
            self._note_background(index)
        return True

    async def _execute(self, client, guard: Guard, work: NotebookNode, index: int) -> str:
        remaining = self._remaining()
        if remaining <= 0:
            self.log.notebook_timed_out = True
            not_run = "the notebook's time limit was reached before this cell ran"
            self.nb.cells[index].outputs = [_error_output("NotRun", not_run)]
            self.log.events.append(CellEvent(index, "not-run", not_run))
            return "not-run"
        limit = min(self.job.cell_timeout, remaining)
        started = time.monotonic()
        before = self._cpu_snapshot() if self.left_running else None
        outcome, detail = await self._run_cell(client, guard, work, index, limit)
        if outcome == "timeout" and before is not None:
            culprits = self._background_culprits(before, time.monotonic() - started)
            if culprits:
                self._skip_at_replay(culprits, index)
        if index in self.truncated:
            detail = (detail + "; " if detail else "") + "output cut: over the output limit"
        cell = work.cells[index]
        self.nb.cells[index].outputs = copy.deepcopy(cell.outputs)
        self.nb.cells[index].execution_count = cell.get("execution_count")
        if cell.get("metadata", {}).get("labkit"):
            self.nb.cells[index].metadata["labkit"] = copy.deepcopy(cell.metadata["labkit"])
        self.log.events.append(CellEvent(index, outcome, detail, round(time.monotonic() - started, 3)))
        if outcome in ("ok", "error"):
            self._note_background(index)
        return outcome

    async def _run_cell(self, client, guard: Guard, work: NotebookNode, index: int, limit: float) -> tuple[str, str]:
        plan: dict[str, Any] = self.plan[index] if index < len(self.plan) else {"role": "learner"}
        if plan.get("role") == "test":
            cell = work.cells[index]
            try:
                return await self._run_test(client, guard, work, index, plan, limit)
            finally:
                work.cells[index] = cell  # nbclient puts each segment's cell in its place
        outcome, detail = await self._request(client, work.cells[index], index, limit, store_history=True)
        if outcome in ("ok", "error") and plan.get("binds"):
            with contextlib.suppress(Exception):
                await guard.record_helpers(plan["binds"], min(limit, 30.0))
        return outcome, detail

    async def _request(self, client, cell, index: int, limit: float, store_history: bool) -> tuple[str, str]:
        """Run ``cell`` through nbclient within ``limit`` seconds; (outcome, detail)."""
        client.timeout = max(1, math.ceil(limit))  # nbclient takes whole seconds
        whose = "cell" if limit >= self.job.cell_timeout else "notebook"
        try:
            await client.async_execute_cell(cell, index, store_history=store_history)
            return ("error" if any(o.output_type == "error" for o in cell.outputs) else "ok"), ""
        except CellTimeoutError:
            if whose == "notebook":
                self.log.notebook_timed_out = True
            detail = (f"timed out: the cell ran longer than the {limit:.0f} s limit per cell" if whose == "cell"
                      else "timed out: the notebook's time limit was reached in this cell")
            cell.outputs.append(_error_output("TimeoutError", detail))
            return "timeout", detail
        except DeadKernelError:
            detail = ("the kernel died while running this cell (os._exit, a crash such as a segfault, "
                      "or the memory limit)")
            if self.log.disk_exceeded:
                detail = f"the submission wrote more than its {self.job.disk_mb} MB of disk: the kernel was stopped"
            cell.outputs.append(_error_output("KernelDied", detail))
            return "kernel-died", detail

    async def _run_test(self, client, guard: Guard, work: NotebookNode, index: int, plan: dict,
                        limit: float) -> tuple[str, str]:
        """Check, then each segment through the agent, checking after each (see the module docstring)."""
        cell, gid = work.cells[index], plan.get("grade_id", "")
        cell.outputs, cell.metadata["labkit"] = [], {}
        deadline = time.monotonic() + limit
        if self.tampered:
            cell.outputs = [_error_output("Tampered", "not run: the submission changed how the kernel runs tests "
                                                      "(flagged for review)")]
            cell.metadata["labkit"] = {"tampered": True}
            return "error", ""
        found, failure = await self._guarded_check(guard, cell, "before this test")
        if failure:
            return failure
        if found:
            return self._tamper(cell, gid, found)
        outputs: list = []
        marker = f"labkit-test-{uuid.uuid4().hex}"
        outcome, detail, failed_in = "ok", "", ""
        for hidden, code in plan.get("segments") or []:
            part = nbformat.v4.new_code_cell(guard.run_code("hidden" if hidden else "visible", code, marker))
            outcome, detail = await self._request(client, part, index, max(0.5, deadline - time.monotonic()),
                                                  store_history=False)
            outputs += part.outputs
            if outcome != "ok":
                failed_in = ("hidden" if hidden else "visible") if outcome == "error" else ""
                break
        cell.outputs = _test_outputs(outputs)
        # The segments ran outside the kernel's history (no count of theirs): the grader's own count
        # marks the cell as executed, so the pass rule does not read it as "not run".
        cell.execution_count = index + 1
        cell.metadata["labkit"] = {"failed_in": failed_in} if failed_in else {}
        if outcome in ("timeout", "kernel-died"):
            return outcome, detail
        found, failure = await self._guarded_check(guard, cell, "after this test", clean=marker)
        if failure:
            return failure
        if found:
            return self._tamper(cell, gid, found, keep=True)
        return outcome, detail

    async def _guarded_check(self, guard: Guard, cell, when: str, **kwargs) -> tuple[list[str], tuple | None]:
        """(tampering found, None), or ([], outcome) when the kernel died or did not answer."""
        try:
            found, notes = await guard.check(timeout=self._check_budget(), **kwargs)
        except DeadKernelError:
            detail = f"the kernel died {when}"
            cell.outputs.append(_error_output("KernelDied", detail))
            return [], ("kernel-died", detail)
        except TimeoutError:
            detail = f"the kernel did not answer the grader's check {when} (it was busy or stuck)"
            cell.outputs.append(_error_output("TimeoutError", detail))
            return [], ("timeout", detail)
        self._review(notes)
        self.log.check_seconds += guard.last_seconds
        self.log.checks += 1
        return found, None

    def _check_budget(self) -> float:
        """Seconds a check may take: its own budget, not the test's (bounded by the notebook's)."""
        return max(1.0, min(30.0, self._remaining()))

    def _tamper(self, cell, gid: str, found: list[str], keep: bool = False) -> tuple[str, str]:
        self.tampered = True
        self.log.tampered.append({"grade_id": gid, "reasons": found})
        note = _error_output("Tampered", "the submission changed how the kernel runs tests: "
                                         + "; ".join(found) + " (flagged for review)")
        cell.outputs = [*(cell.outputs if keep else []), note]
        cell.metadata["labkit"] = {"tampered": True}
        return "error", ""

    def _review(self, notes: list[str]) -> None:
        for note in notes:
            if note not in self.log.review:
                self.log.review.append(note)

    # ---- processes a cell leaves running (the replay rule) ---------------------------------

    def _note_background(self, index: int) -> None:
        """Remember which processes ``index`` started that are still running after it (not those an
        earlier cell's processes started since)."""
        alive = self._sandbox_pids()
        new = {pid for pid in alive - self.known if self._started_by(pid)[0] is None}
        if new:
            self.left_running[index] = new
        self.known = alive | self.core

    def _started_by(self, pid: int) -> tuple[int | None, int]:
        """(the earliest cell that left ``pid`` or one of its ancestors running, the last pid walked)."""
        owner = {p: cell for cell, pids in self.left_running.items() for p in pids}
        found, walk = None, pid
        for _ in range(64):
            if walk in owner:
                found = owner[walk] if found is None else min(found, owner[walk])
            if walk <= 1 or walk in self.core:
                break
            walk = _parent_of(walk)
        return found, walk

    def _cpu_snapshot(self) -> dict:
        times = {pid: _cpu_of(pid) for pid in self._sandbox_pids()}
        total = self.group.cpu_seconds() if self.group is not None else None
        return {"times": times, "total": total, "parents": {}}

    def _background_culprits(self, before: dict, wall: float) -> list[int]:
        """Earlier cells whose processes took most of the submission's CPU while ``wall`` seconds ran
        out (more than the kernel itself; a busy machine shrinks both alike)."""
        attributed: dict[int, float] = {}
        unattributed = kernel = alive_used = 0.0
        for pid in self._sandbox_pids():
            used = max(0.0, _cpu_of(pid) - before["times"].get(pid, 0.0))
            alive_used += used
            if pid in self.core:
                kernel += used
                continue
            cell, walk = self._started_by(pid)
            if cell is not None:
                attributed[cell] = attributed.get(cell, 0.0) + used
            elif walk in self.core:
                kernel += used  # started by the cell that timed out: its own work
            else:
                unattributed += used
        if self.group is not None and before["total"] is not None:
            total = self.group.cpu_seconds()
            if total is not None:  # processes that died meanwhile (a storm's churn)
                unattributed += max(0.0, (total - before["total"]) - alive_used)
        background = sum(attributed.values()) + unattributed
        if background < max(kernel, 0.05 * wall):
            return []
        culprits = [cell for cell, used in attributed.items() if used >= 0.25 * background]
        return sorted(culprits or self.left_running)

    def _skip_at_replay(self, culprits: list[int], index: int) -> None:
        for cell in culprits:
            self.log.events.append(CellEvent(cell, "replay-skipped", f"its processes were still using the CPU when "
                                                                     f"cell {index} timed out"))
        self.skip.update(culprits)

    async def _watch_disk(self, client) -> None:
        """Where no size-limited file system holds the submission's folders: stop the kernel when
        they grow past the quota (sizes read with lstat, nothing followed or opened)."""
        folder = Path(self.job.kernel_root or self.policy.scratch)
        limit = self.job.disk_mb * 1024 * 1024
        while True:
            await asyncio.sleep(1.0)
            if _disk_usage(folder, limit) > limit:
                self.log.disk_exceeded = True
                process = getattr(getattr(client.km, "provisioner", None), "process", None)
                with contextlib.suppress(OSError):
                    if process is not None:
                        process.send_signal(signal.SIGTERM)
                return


def _disk_usage(folder: Path, limit: int, max_entries: int = 200_000) -> int:
    total, seen, stack = 0, 0, [str(folder)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    seen += 1
                    if seen > max_entries:
                        return limit + 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
        if total > limit:
            return total
    return total


def _stat_fields(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _cpu_of(pid: int) -> float:
    """CPU seconds of ``pid`` and its reaped children."""
    fields = _stat_fields(pid)
    try:
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (ValueError, IndexError):
        return 0.0


def _parent_of(pid: int) -> int:
    fields = _stat_fields(pid)
    try:
        return int(fields[1])
    except (ValueError, IndexError):
        return 0


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
