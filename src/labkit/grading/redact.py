"""What of a failing test a learner may read: only text the instructor wrote, never a hidden test.

- Next to a hidden test: the name of a built-in exception and, only when it is one of the
  test's own string literals, the message the instructor wrote. Nothing the learner's code
  produced is shown there.
- Next to a visible test: the exception's message, unless it holds any line of any hidden test
  of the lab in a form a learner could choose (plain, reversed, case or spacing changed,
  zero-width or look-alike characters, rot13, base64, hex, unicode or URL escapes); then
  "(details hidden)".
- Exception classes: only the names of Python's built-in exceptions (and the grader's own
  outcomes) are shown; a class the submission defined is never named.
"""

from __future__ import annotations

import ast
import base64
import binascii
import builtins
import codecs
import contextlib
import re
import unicodedata
from urllib.parse import unquote

from .pysource import parse_cell

BUILTIN_EXCEPTIONS = frozenset(name for name, value in vars(builtins).items()
                               if isinstance(value, type) and issubclass(value, BaseException))
GRADER_OUTCOMES = frozenset({"TimeoutError", "KernelDied", "NotRun", "Tampered"})
HIDDEN = "(details hidden)"
_WINDOW = 16  # characters of a hidden line (letters and digits only) that count as a leak
_BASE64 = re.compile(r"[A-Za-z0-9+/=_-]{12,}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}[\s:]?){8,}")
_ESCAPES = re.compile(r"(?:\\[uU][0-9a-fA-F]{4,8}|\\x[0-9a-fA-F]{2}|\\[0-7]{3})")


def shown_exception(ename: str) -> str:
    """``ename`` when it is a built-in exception or a grader outcome; never a learner's class."""
    return ename if ename in BUILTIN_EXCEPTIONS or ename in GRADER_OUTCOMES else "an exception the submission defined"


def _letters(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Mn", "Cc", "Zs", "Zl", "Zp"))
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _decodings(text: str) -> list[str]:
    """``text`` and what it says under the encodings a learner could use to smuggle a line out."""
    found = [text, text[::-1], codecs.encode(text, "rot13")]
    with_escapes = _ESCAPES.sub(lambda m: _unescape(m.group(0)), text)
    found += [with_escapes, unquote(text)]
    for run in _BASE64.findall(text):
        for candidate in (run, run + "=" * (-len(run) % 4)):
            for decode in (base64.b64decode, base64.urlsafe_b64decode, base64.b32decode):
                try:
                    found.append(decode(candidate).decode("utf-8", "ignore"))
                except (binascii.Error, ValueError):
                    continue
    for run in _HEX.findall(text):
        digits = re.sub(r"[\s:]", "", run)
        with contextlib.suppress(ValueError):
            found.append(bytes.fromhex(digits[: len(digits) // 2 * 2]).decode("utf-8", "ignore"))
    more = []
    for item in found:
        more += [item[::-1], codecs.encode(item, "rot13")]
    return found + more


def _unescape(escape: str) -> str:
    try:
        return escape.encode("latin-1").decode("unicode_escape")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return escape


class Secrets:
    """What no learner-facing text may contain: the hidden lines of the lab's tests, as letters and
    digits, less what the learner's own copy of the lab shows anyway."""

    def __init__(self, test_sources: list[str], visible_sources: list[str]):
        from .restore import segments

        hidden = []
        for source in test_sources:
            for is_hidden, code in segments(source):
                if is_hidden:
                    hidden += [_letters(line) for line in code.splitlines()]
        visible = "\n".join(_letters(line) for source in visible_sources for line in source.splitlines())
        self.short = frozenset(line for line in hidden if 8 <= len(line) <= _WINDOW and line not in visible)
        self.windows = frozenset(w for line in hidden if len(line) > _WINDOW
                                 for w in (line[i:i + _WINDOW] for i in range(len(line) - _WINDOW + 1))
                                 if w not in visible)

    def leaked_by(self, text: str) -> bool:
        """Whether ``text`` holds a hidden line (or 16 characters of one) in any of the encodings above."""
        if not text or not (self.short or self.windows):
            return False
        for decoded in _decodings(text):
            flat = _letters(decoded)
            if any(line in flat for line in self.short) or any(
                    flat[i:i + _WINDOW] in self.windows for i in range(max(0, len(flat) - _WINDOW + 1))):
                return True
        return False

    def learner_text(self, text: str, limit: int = 500) -> str:
        """``text`` cut to ``limit`` characters, or :data:`HIDDEN` when it holds a hidden line."""
        text = text[:limit]
        return HIDDEN if self.leaked_by(text) else text


def literals(source: str) -> set[str]:
    """The string literals ``source`` itself contains (the messages an instructor wrote)."""
    tree = parse_cell(source)
    if tree is None:
        return set()
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
