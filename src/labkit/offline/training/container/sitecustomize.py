"""Container paths for a job's Python processes: ``/opt/ml/...`` means this host's root.

On SageMaker a script may write ``/opt/ml/model`` or read ``/opt/ml/processing/input``
literally. The real ``/opt/ml`` is not writable here, so every Python process of an
offline job starts with this module (on ``PYTHONPATH`` as ``sitecustomize``), which
maps ``/opt/ml`` to ``$LABKIT_CONTAINER_ROOT`` in Python's file functions (``open``,
``os.*``, hence ``pathlib``, ``shutil``, ``glob``, pandas/numpy/joblib/torch files).
Native libraries that open a path themselves (pyarrow, xgboost's ``save_model``) do
not see the mapping: give them the paths from the ``SM_*`` variables instead.
"""

from __future__ import annotations

import builtins
import io
import os

_ROOT = os.environ.get("LABKIT_CONTAINER_ROOT", "")
_PREFIX = "/opt/ml"


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
        return path
    if text == _PREFIX or text.startswith(_PREFIX + "/"):
        return _ROOT + text[len(_PREFIX):]
    return path


def _one(fn):
    def wrapped(path, *args, **kwargs):
        return fn(_map(path), *args, **kwargs)

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
        return fn(_map(path), *args, **kwargs)

    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    wrapped.__doc__ = fn.__doc__
    return wrapped


if _ROOT:
    builtins.open = io.open = _one(io.open)
    for _name in ("open", "stat", "lstat", "mkdir", "rmdir", "remove", "unlink", "chdir", "access", "utime",
                  "chmod", "truncate", "readlink", "statvfs"):
        if hasattr(os, _name):
            setattr(os, _name, _one(getattr(os, _name)))
    for _name in ("listdir", "scandir"):
        setattr(os, _name, _listing(getattr(os, _name)))
    for _name in ("rename", "replace", "link", "symlink"):
        setattr(os, _name, _two(getattr(os, _name)))
