"""The shared backend's account on disk: what a stop saves and the next start restores.

``labkit backend stop`` (or SIGTERM, or the idle timeout) ends the backend process, but
not the account: before its jobs and model servers stop, :func:`save` writes what the
account holds to ``$LABKIT_HOME/account.pickle``, and the next backend restores the
records (:func:`restore`) before it serves its first request, then what ran (:func:`resume`).
``labkit backend reset`` deletes it.

What is kept:

- moto's records of every service (S3 objects, models, endpoints, jobs, IAM, logs...),
  each service pickled on its own, so that one that cannot be saved is named in the log
  and the others are kept;
- what an engine keeps beside moto, when it registers it with :func:`keep` (the meter's
  usage events, Bedrock's knowledge bases and guardrails, OpenSearch Serverless's indexes...).

What ran cannot be pickled: an engine registers an :func:`on_restore` hook that brings it
back or says what became of it. An endpoint that was ``InService`` starts its model
servers again; a job that was running is marked ``Failed`` with a reason. A usage interval
still open at the stop (an endpoint up) is closed at the moment of the stop: a stopped
backend bills nothing, and a restarted endpoint opens a new interval.

The file is written by the backend and read by the next one only; it holds the
execution role's session keys, so it is private to the user (mode 0600), like
``backend.json``. A backend that is killed (not stopped) comes back as of its last stop.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = "account.pickle"
FORMAT = 1
# Why a job that ran when the backend stopped is Failed (its processes ended with the backend).
INTERRUPTED = ("The offline backend stopped while this job ran (`labkit backend stop`, the machine shut down, "
               "or a kernel of another labkit version restarted it) and its processes ended with it. "
               "Run the job again.")


@dataclass
class _Part:
    save: Callable[[], Any]
    restore: Callable[[Any], None]


_parts: dict[str, _Part] = {}
# The shared backend's saved account (set by :func:`labkit.offline.shared.serve`); None: nothing is kept.
location: Path | None = None
_restore_hooks: list[Callable[[float], None]] = []


def keep(name: str, save: Callable[[], Any], restore: Callable[[Any], None]) -> None:
    """Keep an engine's own state across a stop: ``save()`` returns it (picklable), ``restore(it)`` puts it back."""
    _parts[name] = _Part(save, restore)


def keep_contents(name: str, *containers: dict[Any, Any] | list[Any] | set[Any]) -> None:
    """Keep what these module-level dicts, lists or sets hold; the restore refills them in place."""

    def restore(saved: tuple[Any, ...]) -> None:
        for container, contents in zip(containers, saved, strict=True):
            container.clear()
            if isinstance(container, list):
                container.extend(contents)
            else:
                container.update(contents)

    keep(name, lambda: tuple(c.copy() for c in containers), restore)


def on_restore(hook: Callable[[float], None]) -> Callable[[float], None]:
    """Run ``hook(stopped_at)`` after a restore: bring back what ran, or mark it (a job is Failed)."""
    _restore_hooks.append(hook)
    return hook


def _moto_backends() -> dict[tuple[str, str], Any]:
    """moto's loaded backends: ``{(module, attribute): BackendDict}``, each once."""
    from moto.core.base_backend import BackendDict

    found: dict[tuple[str, str], Any] = {}
    seen: set[int] = set()
    for module_name, module in sorted(sys.modules.items()):
        if not module_name.startswith("moto.") or not module_name.endswith(".models") or module is None:
            continue
        for attribute, value in sorted(vars(module).items()):
            if isinstance(value, BackendDict) and id(value) not in seen and len(value):
                seen.add(id(value))
                found[(module_name, attribute)] = value
    return found


_LOCKS = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}


class _Pickler(pickle.Pickler):
    """A pickler that saves a lock as a new, unlocked one (the engines' records hold their locks)."""

    def reducer_override(self, obj: Any) -> Any:
        make = _LOCKS.get(type(obj))
        return (make, ()) if make is not None else NotImplemented


def _dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def _pickled(what: Callable[[], Any]) -> bytes:
    """The pickle of ``what()``, taken again if a background thread changed a record meanwhile."""
    for attempt in range(5):
        try:
            return _dumps(what())
        except RuntimeError:  # "dictionary changed size during iteration"
            if attempt == 4:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def save(path: Path, meta: dict[str, Any]) -> list[str]:
    """Write the account to ``path`` (atomically, mode 0600); the problems (parts not saved), for the log."""
    problems: list[str] = []
    moto: dict[tuple[str, str], bytes] = {}
    for key, backends in _moto_backends().items():
        try:
            moto[key] = _pickled(functools.partial(dict, backends))
        except Exception as err:  # noqa: BLE001 - one service's records must not cost the others'
            problems.append(f"moto {key[0]}: {type(err).__name__}: {err}")
    engines: dict[str, bytes] = {}
    for name, part in _parts.items():
        try:
            engines[name] = _pickled(part.save)
        except Exception as err:  # noqa: BLE001
            problems.append(f"{name}: {type(err).__name__}: {err}")
    snapshot = {"format": FORMAT, "saved_at": time.time(), "meta": meta, "moto": moto, "engines": engines}
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        pickle.dump(snapshot, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return problems


def load(path: Path) -> dict[str, Any] | None:
    """The snapshot at ``path`` (None when there is none, or it is of another format or unreadable)."""
    try:
        with open(path, "rb") as f:
            snapshot = pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a damaged file: start empty, and the caller says so
        return {"format": None}
    return snapshot if isinstance(snapshot, dict) else {"format": None}


def restore(snapshot: dict[str, Any]) -> list[str]:
    """Put a loaded snapshot's records back into this freshly seeded backend (then :func:`resume`);
    the problems, for the log."""
    import importlib

    problems: list[str] = []
    for (module_name, attribute), data in snapshot["moto"].items():
        try:
            target = getattr(importlib.import_module(module_name), attribute)
            saved = pickle.loads(data)
            target.clear()
            target.update(saved)
        except Exception as err:  # noqa: BLE001
            problems.append(f"moto {module_name}: {type(err).__name__}: {err}")
    for name, data in snapshot["engines"].items():
        part = _parts.get(name)
        if part is None:
            problems.append(f"{name}: no engine of that name is loaded")
            continue
        try:
            part.restore(pickle.loads(data))
        except Exception as err:  # noqa: BLE001
            problems.append(f"{name}: {type(err).__name__}: {err}")
    return problems


def resume(snapshot: dict[str, Any]) -> list[str]:
    """Run the :func:`on_restore` hooks, once the restored backend serves (a model server started
    again must find the endpoint); the problems, for the log."""
    problems: list[str] = []
    for hook in _restore_hooks:
        try:
            hook(float(snapshot["saved_at"]))
        except Exception as err:  # noqa: BLE001
            problems.append(f"{getattr(hook, '__module__', hook)}: {type(err).__name__}: {err}")
    return problems


def forget() -> None:
    """Delete the saved account (a reset: the next start must not bring back what was emptied)."""
    if location is not None:
        with contextlib.suppress(FileNotFoundError):
            location.unlink()
