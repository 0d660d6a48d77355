"""Work another library does at import, deferred to its first use (installed by ``import labkit``).

jsonschema checks the ``iri`` and ``iri-reference`` formats with ``rfc3987_syntax``, whose
import compiles a dozen Earley parsers of RFC 3987's grammar: 0.85 s of CPU in every process
that imports jsonschema, and nbformat (so nbclient and papermill) and the SageMaker SDK do: the
grader's workers and warm processes, every kernel that uses the SDK, each ``labkit`` command.
Almost none of them ever checks an IRI. :func:`defer_rfc3987_syntax` puts a stand-in module
under that name: its ``is_valid_syntax`` (all jsonschema takes) and any other name load the
real module on first use, so every check gives the answer it gave before, only later.

This is the one change labkit makes to another library outside :mod:`labkit.offline.patches`,
because it must be in place before anything imports jsonschema, and it holds whatever the backend.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_NAME = "rfc3987_syntax"
_lock = threading.Lock()
_real: list[types.ModuleType] = []


def _load() -> types.ModuleType:
    """The real ``rfc3987_syntax`` (imported on the first call; the stand-in steps aside for it)."""
    with _lock:
        if not _real:
            stand_in = sys.modules.pop(_NAME, None)
            try:
                _real.append(importlib.import_module(_NAME))
            except BaseException:
                if stand_in is not None:
                    sys.modules[_NAME] = stand_in
                raise
        return _real[0]


def is_valid_syntax(term: str, value: str) -> bool:
    """``rfc3987_syntax.is_valid_syntax``, from the real module."""
    return _load().is_valid_syntax(term, value)


def _getattr(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_load(), name)


def defer_rfc3987_syntax() -> None:
    """Put the stand-in in place, unless the real module is imported already or not installed."""
    if _NAME in sys.modules or importlib.util.find_spec(_NAME) is None:
        return
    stand_in = types.ModuleType(_NAME, "rfc3987_syntax, loaded on first use (labkit.deferred)")
    stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    stand_in.__getattr__ = _getattr  # type: ignore[method-assign]
    sys.modules[_NAME] = stand_in
