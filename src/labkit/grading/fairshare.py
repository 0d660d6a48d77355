"""Fair share between submissions: one control group per submission, where the machine allows.

Each submission's kernel, and everything it starts, runs in a cgroup of its own under one
cgroup per grading run: the CPU is shared between the groups, not between processes, so a
process storm in one submission slows only that submission; ``pids.max`` caps how many
processes it may have; and the grader kills the whole group at once when a kernel is replaced
or the submission ends. Both cgroup layouts are handled:

- v2 (unified): used where the grader's own cgroup already delegates ``cpu`` and ``pids`` to
  its children (``cgroup.subtree_control``), or is the root of the hierarchy. Killing is
  ``cgroup.kill``.
- v1 (one hierarchy per controller, or the hybrid layout): the ``cpu`` and ``pids``
  hierarchies, under the grader's own group in each. Killing is SIGKILL to every member
  until none is left (``pids.max`` bounds how many can appear meanwhile).

Creating cgroups needs root (or a delegated subtree). Where none can be made the grader
falls back to a lower priority and a tighter ``RLIMIT_NPROC`` per submission (see
:mod:`labkit.grading.sandbox`) and says so in the report.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

V1_CONTROLLERS = ("cpu", "pids")
V1_OPTIONAL = ("cpuacct",)  # CPU time used, for the report and the replay rule


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, options) of the cgroup file systems."""
    found: list[tuple[str, str, set[str]]] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        found.append((fields[4].replace("\\040", " "), tail[0], set(tail[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """{controller or "": path} of this process's cgroups, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            paths[controller] = parts[2]
    return paths


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@dataclass
class Group:
    """One submission's cgroup: a folder per hierarchy (one for v2)."""

    folders: list[Path]
    version: int

    def procs_files(self) -> list[str]:
        """The files a process writes its pid to, to join the group (the sandbox launcher does)."""
        return [str(folder / "cgroup.procs") for folder in self.folders]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in self.folders:
            with contextlib.suppress(OSError, ValueError):
                found |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
        return found

    def cpu_seconds(self) -> float | None:
        """CPU time used by the group so far (all its processes, the dead included)."""
        for folder in self.folders:
            with contextlib.suppress(OSError, ValueError):
                if self.version == 2:
                    for line in (folder / "cpu.stat").read_text().splitlines():
                        if line.startswith("usage_usec "):
                            return int(line.split()[1]) / 1e6
                elif (folder / "cpuacct.usage").exists():
                    return int((folder / "cpuacct.usage").read_text()) / 1e9
        return None

    def kill(self, rounds: int = 200) -> set[int]:
        """SIGKILL every process of the group until it is empty; which were killed."""
        killed: set[int] = set()
        if self.version == 2:
            with contextlib.suppress(OSError):
                killed |= self.pids()
                _write(self.folders[0] / "cgroup.kill", "1")
        for _ in range(rounds):
            members = self.pids()
            if not members:
                break
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            killed |= members
            time.sleep(0.01)
        return killed

    def remove(self) -> None:
        self.kill()
        for folder in self.folders:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


@dataclass
class Tree:
    """The grading run's cgroup(s), parent of one :class:`Group` per submission."""

    folders: list[Path]
    version: int
    groups: list[Group] = field(default_factory=list)

    def group(self, name: str, pids_max: int) -> Group:
        folders = []
        for parent in self.folders:
            folder = parent / name
            folder.mkdir(mode=0o755)
            folders.append(folder)
            if self.version == 2 or (folder / "pids.max").exists():
                with contextlib.suppress(OSError):
                    _write(folder / "pids.max", str(pids_max))
        made = Group(folders, self.version)
        self.groups.append(made)
        return made

    def remove(self) -> None:
        for group in self.groups:
            group.remove()
        for folder in self.folders:
            with contextlib.suppress(OSError):
                folder.rmdir()


RUN_NAME = re.compile(r"labkit-grading-(\d+)-[0-9a-f]{6}")


def sweep_stale(parents: list[Path]) -> list[Path]:
    """Remove the empty cgroups that grading runs which no longer exist left under ``parents`` (a
    run killed with SIGKILL cannot remove its own); which were removed. A group that still holds
    a process is left as it is (the kernel refuses to remove it, and it may belong to a run in
    another PID namespace)."""
    removed = []
    for parent in parents:
        with contextlib.suppress(OSError):
            for folder in parent.iterdir():
                match = RUN_NAME.fullmatch(folder.name)
                if not match or not folder.is_dir() or Path(f"/proc/{match.group(1)}").exists():
                    continue
                with contextlib.suppress(OSError):
                    for child in sorted((c for c in folder.iterdir() if c.is_dir()), reverse=True):
                        child.rmdir()
                    folder.rmdir()
                    removed.append(folder)
    return removed


def create_tree() -> tuple[Tree | None, str]:
    """The run's cgroup, or None and why none could be made (the report says it); the empty
    cgroups of runs that were killed are removed first (:func:`sweep_stale`)."""
    if not os.path.isdir("/sys/fs/cgroup"):
        return None, "no cgroup file system"
    name = f"labkit-grading-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    own = _own_paths()
    mounts = _mounts()
    v1 = {}
    for point, kind, options in mounts:
        if kind == "cgroup":
            for controller in V1_CONTROLLERS + V1_OPTIONAL:
                if controller in options:
                    v1[controller] = Path(point) / own.get(controller, "/").lstrip("/")
    if all(c in v1 for c in V1_CONTROLLERS):
        sweep_stale(list(dict.fromkeys(v1.values())))
        made: list[Path] = []
        try:
            for folder in dict.fromkeys(v1[c] / name for c in V1_CONTROLLERS + V1_OPTIONAL if c in v1):
                folder.mkdir(mode=0o755)
                made.append(folder)
            return Tree(made, 1), ""
        except OSError as err:
            for folder in made:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            return None, f"cgroup v1 not writable ({err.strerror})"
    unified = next((Path(point) for point, kind, _ in mounts if kind == "cgroup2"), None)
    if unified is None:
        return None, "no cpu and pids cgroup controllers"
    base = unified / own.get("", "/").lstrip("/")
    try:
        available = set((base / "cgroup.controllers").read_text().split())
        delegated = set((base / "cgroup.subtree_control").read_text().split())
        if not {"cpu", "pids"} <= available:
            return None, "cgroup v2 without the cpu and pids controllers here"
        if not {"cpu", "pids"} <= delegated:
            if base != unified:
                return None, ("cgroup v2: the grader's cgroup does not delegate cpu and pids to its children "
                              "(run it in a delegated scope, e.g. systemd-run --scope -p Delegate=yes)")
            _write(base / "cgroup.subtree_control", "+cpu +pids")
        sweep_stale([base])
        folder = base / name
        folder.mkdir(mode=0o755)
        try:
            _write(folder / "cgroup.subtree_control", "+cpu +pids")
        except OSError:
            folder.rmdir()
            raise
        return Tree([folder], 2), ""
    except OSError as err:
        return None, f"cgroup v2 not writable ({err.strerror})"
