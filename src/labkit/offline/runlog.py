"""What a course run keeps of the offline backend: every job's and endpoint's log, and each failure.

``labkit run`` and ``labkit check`` set ``LABKIT_LOG_DIR`` for the kernel of each notebook.
Then every line written to a job's or endpoint's CloudWatch log stream is also appended,
as it is written, to ``$LABKIT_LOG_DIR/<log group>/<log stream>.log`` (so the files
survive a kernel that dies or times out), and each job, endpoint or pipeline execution that
fails adds its ``FailureReason`` to ``$LABKIT_LOG_DIR/failures.jsonl``, which the run's
summary prints. Without the variable (a learner's own kernel, grading, tests) nothing is written.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import IO

LOG_DIR_VARIABLE = "LABKIT_LOG_DIR"
FAILURES_FILE = "failures.jsonl"

_lock = threading.Lock()
_files: dict[Path, IO[str]] = {}
_UNSAFE = re.compile(r"[^A-Za-z0-9._=@+-]")


def log_dir() -> Path | None:
    folder = os.environ.get(LOG_DIR_VARIABLE)
    return Path(folder) if folder else None


def stream_path(folder: Path, group: str, stream: str) -> Path:
    """``/aws/sagemaker/TrainingJobs`` + ``job/algo-1-17...`` -> ``<folder>/TrainingJobs/job/algo-1-17....log``."""
    parts = [p for p in group.removeprefix("/aws/sagemaker/").split("/") + stream.split("/") if p]
    safe = [_UNSAFE.sub("_", p).lstrip(".") or "_" for p in parts]
    return folder.joinpath(*safe).with_name(safe[-1] + ".log")


def mirror(group: str, stream: str, message: str) -> None:
    """Append one log line to the stream's file, when a course run asked for the logs."""
    folder = log_dir()
    if folder is None:
        return
    path = stream_path(folder, group, stream)
    with _lock:
        handle = _files.get(path)
        if handle is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = _files[path] = open(path, "a", buffering=1, errors="replace")  # noqa: SIM115
        handle.write(message + "\n")


def failed(kind: str, name: str, reason: str) -> None:
    """Record that ``kind`` ``name`` (TrainingJob, Endpoint, ...) failed with ``reason``."""
    folder = log_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"kind": kind, "name": name, "reason": reason, "time": time.time()}
    with _lock, open(folder / FAILURES_FILE, "a") as out:
        out.write(json.dumps(entry) + "\n")


def read_failures(folder: Path) -> list[dict]:
    """The failures a run recorded in ``folder`` (oldest first)."""
    path = folder / FAILURES_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


@atexit.register
def close() -> None:
    with _lock:
        for handle in _files.values():
            with contextlib.suppress(OSError):
                handle.close()
        _files.clear()
