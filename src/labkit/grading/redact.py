"""What of a failing test a learner may read: only text the instructor wrote, never a hidden test.

- Next to a hidden test: the name of a built-in exception and, only when it is one of the
  test's own string literals, the message the instructor wrote. Nothing the learner's code
  produced is shown there.
- Next to a visible test: the exception's message, unless it holds a stretch of any hidden line
  of the lab that the learner's own copy does not (see :class:`Secrets`), in a form a learner
  could choose (plain, reversed, case or spacing changed, zero-width or look-alike characters,
  rot13, base64, hex, unicode or URL escapes); then "(details hidden)".
- Exception classes: only the names of Python's built-in exceptions (and the grader's own
  outcomes) are shown; a class the submission defined is never named.

Words a learner can read anyway are no secret: the released notebook of the lab, the ``labkit``
package (whose offline backend writes the AWS error messages) and the error texts of botocore and
moto (:func:`shipped_text`). So an AWS error that a learner's call raised is shown even when a
hidden check quotes the same words, while a hidden test's own messages, values and logic stay
hidden, whoever raises them.
"""

from __future__ import annotations

import ast
import base64
import binascii
import builtins
import codecs
import contextlib
import functools
import importlib.util
import json
import re
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from .pysource import parse_cell, parse_expression

BUILTIN_EXCEPTIONS = frozenset(name for name, value in vars(builtins).items()
                               if isinstance(value, type) and issubclass(value, BaseException))
GRADER_OUTCOMES = frozenset({"TimeoutError", "KernelDied", "NotRun", "Tampered"})
HIDDEN = "(details hidden)"
_WINDOW = 16  # characters of a hidden line (letters and digits only) that count as a leak
_BASE64 = re.compile(r"[A-Za-z0-9+/=_-]{12,}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}[\s:]?){8,}")
_ESCAPES = re.compile(r"(?:\\[uU][0-9a-fA-F]{4,8}|\\x[0-9a-fA-F]{2}|\\[0-7]{3})")
_NOT_ALNUM = re.compile(r"[\W_]+")
_TEXT_SUFFIXES = (".py", ".ipynb", ".md", ".txt", ".json", ".jsonl", ".yaml", ".yml", ".csv", ".sh", ".toml", ".cfg")
_HASH_BASE = np.uint64(1_000_003)
_MAX_FILE = 4_000_000  # bytes: bigger files (data sets) are read no further


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


class PublicText:
    """Text a learner's copy holds, as letters and digits, with a fast test of which 16-letter
    windows of hidden lines it contains (a rolling hash of every window, computed once)."""

    def __init__(self, texts: Iterable[str]):
        # NFKC, casefolded, alphanumerics only: what _letters keeps, at C speed for megabytes of text.
        self.letters = "\n".join(_NOT_ALNUM.sub("", unicodedata.normalize("NFKC", t).casefold()) for t in texts)
        self._sorted: np.ndarray | None = None

    def __contains__(self, piece: str) -> bool:
        return piece in self.letters

    def windows_in(self, windows: list[str]) -> set[str]:
        """The ones of ``windows`` (each ``_WINDOW`` letters) that occur in this text."""
        if not windows or len(self.letters) < _WINDOW:
            return set()
        if self._sorted is None:
            codes = _codes(self.letters)
            count = len(codes) - _WINDOW + 1
            self._sorted = np.sort(_fold([codes[k:k + count] for k in range(_WINDOW)]))
        probes = _fold(list(_codes("".join(windows)).reshape(len(windows), _WINDOW).T))
        at = np.searchsorted(self._sorted, probes)
        at[at == len(self._sorted)] = 0
        hits = np.flatnonzero(self._sorted[at] == probes)
        return {windows[i] for i in hits if windows[i] in self.letters}  # a hash collision is no proof


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def _fold(columns: list[np.ndarray]) -> np.ndarray:
    """A polynomial hash (modulo 2**64) of the rows whose k-th characters are ``columns[k]``."""
    out = np.zeros(len(columns[0]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in columns:
            out = out * _HASH_BASE + column
    return out


def file_text(path: Path) -> str:
    """What a learner reads in ``path``: a notebook's cell sources, a text file's text ('' otherwise)."""
    if path.suffix not in _TEXT_SUFFIXES or not path.is_file() or path.is_symlink():
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(_MAX_FILE)
    except OSError:
        return ""
    if path.suffix == ".ipynb":
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            return "\n".join(_source(cell) for cell in json.loads(text).get("cells", []))
    return text


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


@functools.cache
def shipped_text() -> PublicText:
    """What every learner's environment holds, whatever the lab: the ``labkit`` package's files
    (its offline backend raises the AWS errors a learner sees) and the AWS error texts of botocore
    and moto (their exception modules). Read once per process."""
    files = sorted(_package_dir("labkit").rglob("*"))
    files += [_package_dir("botocore") / "exceptions.py"]
    files += sorted(_package_dir("moto").rglob("exceptions.py"))
    return PublicText(file_text(path) for path in files if "__pycache__" not in path.parts)


def aws_words(code: Iterable[str]) -> PublicText:
    """The names of the AWS APIs that ``code`` makes clients for (any quoted botocore service name):
    operations, shapes, members and enum values, the words an API's responses and errors are made of."""
    services = _botocore_services()
    named = sorted({m.group(1) for text in code for m in _QUOTED_NAME.finditer(text)} & services)
    return PublicText(name for service in named for name in _api_names(service))


_QUOTED_NAME = re.compile(r"""["']([a-z0-9-]{2,40})["']""")


@functools.cache
def _botocore_services() -> frozenset[str]:
    import botocore.session

    return frozenset(botocore.session.get_session().get_available_services())


@functools.cache
def _api_names(service: str) -> tuple[str, ...]:
    import botocore.loaders

    model = botocore.loaders.Loader().load_service_model(service, "service-2")
    names = set(model.get("operations", {}))
    for shape_name, shape in model.get("shapes", {}).items():
        names |= {shape_name, *shape.get("members", {}), *map(str, shape.get("enum", []))}
    return tuple(sorted(names))


def _package_dir(name: str) -> Path:
    """Where package ``name`` is installed, without importing it (moto takes a second to import)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the grader needs the package {name!r} installed")
    return Path(next(iter(spec.submodule_search_locations)))


class Secrets:
    """What no learner-facing text may contain: any stretch of a hidden line of the lab's tests, as
    letters and digits, that the learner's own copy (``public``) does not hold as it stands.

    A window (16 letters) of a hidden line that appears nowhere public is secret wherever it is
    shown. A window that appears in public text may be shown, but not pieced together: where the
    text runs on along one hidden line through several public windows, the stretch it shows must
    be one the public text holds whole (so a hidden line cannot be spelled out from public pieces).
    """

    def __init__(self, test_sources: list[str], public: Iterable[PublicText | str] = ()):
        from .restore import segments

        parts = [p if isinstance(p, PublicText) else PublicText([p]) for p in public]
        hidden: set[str] = set()
        for source in test_sources:
            for is_hidden, code in segments(source):
                if is_hidden:
                    hidden |= {_letters(line) for line in code.splitlines()}
        self.short = frozenset(line for line in hidden
                               if 8 <= len(line) <= _WINDOW and not any(line in p for p in parts))
        self._lines = sorted(line for line in hidden if len(line) > _WINDOW)
        places: dict[str, list[tuple[int, int]]] = {}
        for number, line in enumerate(self._lines):
            for i in range(len(line) - _WINDOW + 1):
                places.setdefault(line[i:i + _WINDOW], []).append((number, i))
        shown = set().union(*(p.windows_in(list(places)) for p in parts))
        self.windows = frozenset(w for w in places if w not in shown)
        self._public_places = {w: places[w] for w in shown}
        self._parts = parts

    def own_windows(self, learner_sources: Iterable[str]) -> frozenset[str]:
        """The secret windows the learner's own submission holds (its cells' sources as handed in):
        what a learner wrote is no secret to them, so a message echoing it back is shown
        ("perUnitStorageThroughput: 250 is not of type 'string'" when they wrote 250)."""
        found: set[str] = set()
        for source in learner_sources:
            flat = _letters(source)
            found |= {flat[i:i + _WINDOW] for i in range(max(0, len(flat) - _WINDOW + 1))} & self.windows
        return frozenset(found)

    def leaked_by(self, text: str, own: frozenset[str] = frozenset()) -> bool:
        """Whether ``text`` holds a hidden line (or 16 characters of one) in any of the encodings above
        (``own``: the windows the learner's submission holds itself, :meth:`own_windows`)."""
        if not text or not (self.short or self._lines):
            return False
        for decoded in _decodings(text):
            flat = _letters(decoded)
            if any(line in flat for line in self.short):
                return True
            # Public windows joined where the text runs on along the hidden line (same diagonal: text
            # position minus line offset), so two public phrases that share a word but stand apart
            # in the text ("AccuracyThreshold 0.95: ... threshold parameter") are not one stretch.
            pieces: dict[tuple[int, int], set[int]] = {}
            for i in range(max(0, len(flat) - _WINDOW + 1)):
                window = flat[i:i + _WINDOW]
                if window in self.windows and window not in own:
                    return True
                for number, offset in self._public_places.get(window, ()):
                    pieces.setdefault((number, i - offset), set()).add(offset)
            if any(self._pieced_together(number, offsets) for (number, _), offsets in pieces.items()):
                return True
        return False

    def _pieced_together(self, number: int, offsets: set[int]) -> bool:
        """Whether windows at ``offsets`` of hidden line ``number`` overlap into a stretch no public text holds."""
        line, start, end = self._lines[number], -1, -1
        for offset in [*sorted(offsets), None]:
            if offset is not None and offset < end:  # overlaps the stretch so far
                end = offset + _WINDOW
                continue
            if end - start > _WINDOW and not any(line[start:end] in p for p in self._parts):
                return True
            if offset is not None:
                start, end = offset, offset + _WINDOW
        return False

    def learner_text(self, text: str, limit: int = 500, templates: Iterable[Template] = (),
                     own: frozenset[str] = frozenset()) -> str:
        """``text`` cut to ``limit`` characters, or :data:`HIDDEN` when it holds a hidden line.

        Text is checked string by string, as it was made: when it is a message template filled in
        (one of ``templates``, the messages a visible test writes, or one of the package's and
        botocore's, :func:`shipped_templates`), the template's words are public (the learner's
        copy holds them) and each value filled in is checked on its own; a value that is a Python
        literal (the repr of a dict or list) is checked string by string. So "stop reason 'length'"
        or an AWS error naming the learner's bucket is shown although a hidden line reads
        ``"stop_reason": "length"``, while hidden text echoed through any one string is not.
        """
        text = text[:limit]
        return text if self._shown(text, (*templates, *shipped_templates()), 0, own) else HIDDEN

    def _shown(self, text: str, templates: tuple[Template, ...], depth: int,
               own: frozenset[str] = frozenset()) -> bool:
        if not _letters(text):
            return True
        if depth < _DEPTH:
            tried = 0
            for template in templates:
                fits = [spans for spans in (template.values_in(text), template.values_in(text, from_right=True))
                        if spans is not None]
                if not fits:
                    continue
                if any(all(self._shown(text[a:b], templates, depth + 1, own) for a, b in spans) for spans in fits):
                    return True
                tried += 1
                if tried == _TRIES:
                    break
        leaves = _literal_strings(text)
        if leaves is not None:
            return all(self._shown(leaf, templates, depth + 1, own) for leaf in leaves)
        return not any(self.leaked_by(piece, own) for piece in _path_pieces(text))


def _path_pieces(text: str) -> list[str]:
    """``text`` cut at the dots of its dotted names (``section.field_name``, a field path a
    schema check reports): each name is its own string, as in the schema it comes from."""
    cuts = []
    for path in _DOTTED.finditer(text):
        names = path.group(0).split(".")
        if all(len(_letters(name)) >= _NAME_LETTERS for name in names):
            at = path.start()
            for name in names[:-1]:
                at += len(name)
                cuts.append(at)
                at += 1
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_NAME_LETTERS = 4  # shorter names are not cut apart (so "a.s.s.e.r.t" is still one string)
_DEPTH = 3  # templates filled into templates, at most this deep
_TRIES = 8  # templates that fit one text, at most this many tried


@dataclass(frozen=True)
class Template:
    """A message with values left out: its literal parts, one more than its values."""

    parts: tuple[str, ...]

    def values_in(self, text: str, from_right: bool = False) -> list[tuple[int, int]] | None:
        """Where the values are when ``text`` is this template filled in (each literal part found
        at its first place after the last, or with ``from_right`` at its last place before the
        next: "{}: {} without .sync" in "fix: Train: sagemaker:create..." splits at the second
        colon), or None. Linear in ``len(text)``: no backtracking a learner's text could make slow."""
        if from_right:  # the same search on the mirrored text, its spans mirrored back
            mirrored = Template(tuple(part[::-1] for part in reversed(self.parts))).values_in(text[::-1])
            return None if mirrored is None else [(len(text) - b, len(text) - a) for a, b in reversed(mirrored)]
        first, *middle, last = self.parts
        if not text.startswith(first) or not text.endswith(last) or len(text) < len(first) + len(last):
            return None
        pos, end = len(first), len(text) - len(last)
        spans: list[tuple[int, int]] = []
        for literal in middle:
            at = text.find(literal, pos, end) if literal else pos
            if at < 0:
                return None
            spans.append((pos, at))
            pos = at + len(literal)
        spans.append((pos, end))
        if any(not literal for literal in middle):  # values with nothing between them are one value
            merged = [spans[0]]
            for (a, b), literal in zip(spans[1:], middle, strict=True):
                merged[-1:] = [(merged[-1][0], b)] if not literal else [merged[-1], (a, b)]
            spans = merged
        return spans


def _template(node: ast.AST) -> Template | None:
    """The template of an f-string, or of a sum of strings and f-strings; None for anything else."""
    parts: list[str | None] = []

    def walk(item: ast.AST) -> None:
        if isinstance(item, ast.BinOp) and isinstance(item.op, ast.Add):
            walk(item.left)
            walk(item.right)
        elif isinstance(item, ast.JoinedStr):
            for value in item.values:
                walk(value)
        elif isinstance(item, ast.Constant) and isinstance(item.value, str):
            parts.append(item.value)
        else:
            parts.append(None)

    walk(node)
    if None not in parts:
        return None
    literals_: list[str] = [""]
    for part in parts:
        if part is None:
            literals_.append("")
        else:
            literals_[-1] += part
    if len(_letters("".join(literals_))) < _TEMPLATE_LETTERS:
        return None
    return Template(tuple(literals_))


_TEMPLATE_LETTERS = 6  # a template whose words have fewer letters explains nothing


def templates_in(source: str) -> tuple[Template, ...]:
    """The message templates of Python ``source``: its f-strings and sums of strings."""
    tree = parse_cell(source)
    if tree is None:
        return ()
    inner = {id(n.format_spec) for n in ast.walk(tree) if isinstance(n, ast.FormattedValue) and n.format_spec}
    inner |= {id(side) for n in ast.walk(tree) if isinstance(n, ast.BinOp) for side in (n.left, n.right)}
    found = {_template(n) for n in ast.walk(tree)
             if isinstance(n, ast.JoinedStr | ast.BinOp) and id(n) not in inner}
    return tuple(sorted((t for t in found if t is not None), key=lambda t: t.parts))


@functools.lru_cache(maxsize=512)
def message_templates(source: str) -> tuple[Template, ...]:
    """The message templates of a visible test (cached: explained once per failing submission)."""
    return templates_in(source)


@functools.cache
def shipped_templates() -> tuple[Template, ...]:
    """The messages the package writes (its offline backend's AWS errors among them) and botocore's
    ClientError text, as templates; read once per process."""
    found: set[Template] = set()
    for path in sorted(_package_dir("labkit").rglob("*.py")):
        found |= fstring_templates(file_text(path))
    from botocore.exceptions import ClientError

    parts = [""]
    for literal, field, _spec, _conversion in string.Formatter().parse(ClientError.MSG_TEMPLATE):
        parts[-1] += literal
        if field is not None:
            parts.append("")
    found.add(Template(tuple(parts)))
    # Longest words first: the most specific template that fits a text is tried first.
    return tuple(sorted(found, key=lambda t: (-len("".join(t.parts)), t.parts)))


# A run of string literals Python joins into one (implicit concatenation), one of them an f-string.
_STRING = r"""(?:[rRuUbBfF]{0,2})(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
_STRINGS = re.compile(rf"{_STRING}(?:\s*{_STRING})*")
_ONE_STRING = re.compile(r"([rRuUbBfF]{0,2})(.)(.*)\2$", re.S)
_ESCAPE = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


def fstring_templates(source: str) -> set[Template]:
    """The templates of the f-strings in Python ``source`` (a regular-expression scan: parsing two
    megabytes of the package with ``ast`` takes seconds; a string it misreads only fits no message)."""
    found = set()
    for run in _STRINGS.finditer(source):
        parts: list[str] = [""]
        for piece in re.finditer(_STRING, run.group(0)):
            match = _ONE_STRING.match(piece.group(0))
            if match is None:
                break
            prefix, body = match.group(1).lower(), match.group(3)
            if "r" not in prefix:
                body = re.sub(r"\\(.)", lambda m: _ESCAPE.get(m.group(1), m.group(0)), body)
            if "f" in prefix:
                _fill_fstring(body, parts)
            else:
                parts[-1] += body
        if len(parts) > 1 and len(_letters("".join(parts))) >= _TEMPLATE_LETTERS:
            found.add(Template(tuple(parts)))
    return found


def _fill_fstring(body: str, parts: list[str]) -> None:
    """Add an f-string's literal text and its fields (a new part each) to ``parts``."""
    i, depth = 0, 0
    while i < len(body):
        ch = body[i]
        if depth == 0 and body.startswith(("{{", "}}"), i):
            parts[-1] += ch
            i += 2
            continue
        if ch == "{":
            if depth == 0:
                parts.append("")
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        elif depth == 0:
            parts[-1] += ch
        i += 1


def _literal_strings(text: str) -> list[str] | None:
    """The strings of ``text`` when it is the repr of a Python container (dict, list, tuple, set)."""
    stripped = text.strip()
    if stripped[:1] not in ("{", "[", "(") or len(stripped) > _MAX_LITERAL:
        return None
    tree = parse_expression(stripped)
    try:
        value = ast.literal_eval(tree) if tree is not None else None
    except (ValueError, TypeError, MemoryError, RecursionError):
        return None
    if value is None:
        return None
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple | set | frozenset):
            stack += list(item)
    return found


_MAX_LITERAL = 5000


def literals(source: str) -> set[str]:
    """The string literals ``source`` itself contains (the messages an instructor wrote)."""
    tree = parse_cell(source)
    if tree is None:
        return set()
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
