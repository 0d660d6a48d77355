"""Container paths for a job's Python processes: ``/opt/ml/...`` means this host's root.

On SageMaker a script may write ``/opt/ml/model`` or read ``/opt/ml/processing/input``
literally. The real ``/opt/ml`` is not writable here, so every Python process of an
offline job starts with this module (on ``PYTHONPATH`` as ``sitecustomize``), which
maps ``/opt/ml`` to ``$LABKIT_CONTAINER_ROOT`` in Python's file functions (``open``,
``os.*``, hence ``pathlib``, ``shutil``, ``glob``, pandas/numpy/joblib/torch files).
Native libraries that open a path themselves (pyarrow, xgboost's ``save_model``) do
not see the mapping: give them the paths from the ``SM_*`` variables instead. The one
such writer that training scripts use on container paths all the time, ``torch.save``
(its zip writer opens the file in C++; checkpoints go to ``/opt/ml/checkpoints``), is
mapped as well, by patching ``torch.serialization`` as soon as it is imported.

Model servers map ``/opt/ml`` too (the SDK's TorchServe handler opens
``/opt/ml/model/code/serve.pkl``): they are forked from a warm process that imported this
module without a root, so they call :func:`map_container_root` themselves. They also lay
a folder of their own over the container's ``/lib`` (:func:`overlay`), where the same
handler copies the model's ``shared_libs`` (the container runs as root; a learner here is
not, and must never write the machine's ``/lib``): a path there means the server's folder
when it exists there or nowhere else, else the machine's (reading a system library still
works). The dynamic loader does not search the overlay: load such a library by its path.

A job's processes also die with the process that started them (the notebook kernel),
even when it is SIGKILLed and no clean-up runs: a watchdog thread checks
``$LABKIT_PARENT_PID`` twice a second and, once it is gone, kills its own process group
(torchrun's workers, the script's children, the host's shell driver with them).
"""

from __future__ import annotations

import builtins
import importlib.abc
import importlib.machinery
import io
import os
import signal
import sys
import threading
import time

_ROOT = os.environ.get("LABKIT_CONTAINER_ROOT", "")
_PREFIX = "/opt/ml"
_OVERLAYS: list[tuple[str, str]] = []  # (container folder, this process's folder laid over it)
_lstat = os.lstat  # the machine's, before the mapping wraps it


def _exists(path: str) -> bool:
    try:
        _lstat(path)
    except OSError:
        return False
    return True


def _overlaid(text: str) -> str:
    for prefix, folder in _OVERLAYS:
        if text == prefix or text.startswith(prefix + "/"):
            mine = folder + text[len(prefix):]
            return mine if _exists(mine) or not _exists(text) else text
    return text


def _map(path):
    if isinstance(path, int):
        return path
    try:
        text = os.fspath(path)
    except TypeError:
        return path
    if isinstance(text, bytes):
        if text == b"/opt/ml" or text.startswith(b"/opt/ml/"):
            return os.fsencode(_ROOT) + text[len(_PREFIX):]
        mapped = _overlaid(os.fsdecode(text)) if _OVERLAYS else None
        return os.fsencode(mapped) if mapped and mapped != os.fsdecode(text) else path
    if text == _PREFIX or text.startswith(_PREFIX + "/"):
        return _ROOT + text[len(_PREFIX):]
    if _OVERLAYS:
        mapped = _overlaid(text)
        return mapped if mapped != text else path
    return path


def _as_given(err, mapped, path):
    """An error names the path the script gave (``/opt/ml/...``), as in the container, not the host's."""
    if getattr(err, "filename", None) == mapped and mapped is not path:
        err.filename = path
    return err


def _one(fn):
    def wrapped(path, *args, **kwargs):
        mapped = _map(path)
        try:
            return fn(mapped, *args, **kwargs)
        except OSError as err:
            raise _as_given(err, mapped, path) from None

    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    wrapped.__doc__ = fn.__doc__
    return wrapped


def _two(fn):
    def wrapped(src, dst, *args, **kwargs):
        return fn(_map(src), _map(dst), *args, **kwargs)

    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    wrapped.__doc__ = fn.__doc__
    return wrapped


def _listing(fn):
    def wrapped(path=".", *args, **kwargs):
        mapped = _map(path)
        try:
            return fn(mapped, *args, **kwargs)
        except OSError as err:
            raise _as_given(err, mapped, path) from None

    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    wrapped.__doc__ = fn.__doc__
    return wrapped


def _map_file_functions() -> None:
    builtins.open = io.open = _one(io.open)
    for name in ("open", "stat", "lstat", "mkdir", "rmdir", "remove", "unlink", "chdir", "access", "utime",
                 "chmod", "truncate", "readlink", "statvfs"):
        if hasattr(os, name):
            setattr(os, name, _one(getattr(os, name)))
    for name in ("listdir", "scandir"):
        setattr(os, name, _listing(getattr(os, name)))
    for name in ("rename", "replace", "link", "symlink"):
        setattr(os, name, _two(getattr(os, name)))


def _patch_torch_serialization(module) -> None:
    """``torch.save(obj, "/opt/ml/...")``: map the name before the C++ zip writer opens it."""
    cls = getattr(module, "_open_zipfile_writer_file", None)
    if cls is None:
        return
    init = cls.__init__

    def __init__(self, name, *args, **kwargs):
        init(self, _map(name), *args, **kwargs)

    cls.__init__ = __init__


_AFTER_IMPORT = {"torch.serialization": _patch_torch_serialization}


def _start_debugger_hook(module) -> None:
    """SageMaker Debugger's tensor collection, started as AWS's PyTorch containers start smdebug's
    hook when the job has a DebugHookConfig (the collector: ``labkit/offline/debugger/hook.py``)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "debugger", "hook.py")
    spec = importlib.util.spec_from_file_location("labkit_debugger_hook", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    hook.install(module)


if _ROOT and os.path.exists(_map("/opt/ml/input/config/debughookconfig.json")):
    _AFTER_IMPORT["torch"] = _start_debugger_hook


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Runs ``_AFTER_IMPORT[name](module)`` once the module has been executed."""

    def find_spec(self, fullname, path, target=None):
        patch = _AFTER_IMPORT.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        execute = loader.exec_module

        def exec_module(module):
            execute(module)
            patch(module)

        loader.exec_module = exec_module
        return spec


_mapped: list[str] = []


def map_container_root(root: str) -> None:
    """From now on ``/opt/ml/...`` in this process means ``root/...`` (once per process)."""
    global _ROOT
    if _mapped or not root:
        return
    _ROOT = root
    _mapped.append(root)
    _map_file_functions()
    sys.meta_path.insert(0, _PatchAfterImport())
    torch_serialization = sys.modules.get("torch.serialization")
    if torch_serialization is not None:
        _patch_torch_serialization(torch_serialization)


def overlay(prefix: str, folder: str) -> None:
    """Lay ``folder`` over the container's ``prefix`` (``/lib``) in this mapped process (see the module doc)."""
    os.makedirs(folder, exist_ok=True)
    _OVERLAYS.append((prefix.rstrip("/"), folder.rstrip("/")))


map_container_root(_ROOT)


def _watch_parent(pid: int) -> None:
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            try:
                os.killpg(os.getpgrp(), signal.SIGKILL)
            finally:
                os._exit(137)
        except PermissionError:  # alive, and another user's (cannot happen for our own parent)
            pass


if os.environ.get("LABKIT_PARENT_PID", "").isdigit():
    threading.Thread(target=_watch_parent, args=(int(os.environ["LABKIT_PARENT_PID"]),), daemon=True,
                     name="labkit-parent-watch").start()
