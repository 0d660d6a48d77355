"""Parse the Python in a notebook cell, safely from several grading threads at once.

CPython 3.11 keeps the AST constructor's recursion counter in per-interpreter
state, so two threads parsing at the same moment can corrupt it and one of them
fails with ``SystemError: AST constructor recursion depth mismatch``
(python/cpython#106905; the grader parses in one thread per submission). Every
parse the grader makes goes through :func:`parse_cell`, which holds one lock and
tries once more if another thread still raced it.
"""

from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()


def code_of(source: str) -> str:
    """``source`` with IPython magics and shell lines (``%``, ``!``) blanked, line numbers kept."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def parse_cell(source: str) -> ast.Module | None:
    """The syntax tree of a cell's code, or ``None`` when it is not valid Python."""
    text = code_of(source)
    with _LOCK:
        for attempt in (1, 2):
            try:
                return ast.parse(text)
            except SyntaxError:
                return None
            except SystemError as error:  # the CPython race above, from a parse outside this lock
                if attempt == 2 or "recursion depth mismatch" not in str(error):
                    raise
    return None


def parse_expression(text: str) -> ast.Expression | None:
    """The syntax tree of one Python expression (a repr a message shows), or ``None``."""
    with _LOCK:
        for attempt in (1, 2):
            try:
                return ast.parse(text, mode="eval")
            except (SyntaxError, ValueError, MemoryError, RecursionError):
                return None
            except SystemError as error:  # the CPython race above, from a parse outside this lock
                if attempt == 2 or "recursion depth mismatch" not in str(error):
                    raise
    return None
