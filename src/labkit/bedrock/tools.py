"""Tool use offline: the stand-in's deterministic policy, and the checks AWS makes on tools.

No foundation model runs here, so when a request offers tools (Converse ``toolConfig``,
Anthropic ``tools``, Nova ``toolConfig``, an agent's action group functions) the offline
stand-in decides by this documented procedure, the same every time:

**Whether it calls a tool**

1. ``toolChoice`` ``tool`` (Anthropic ``{"type": "tool"}``): it calls that tool. ``any``: it
   calls the tool that fits the question best. Forced choices call a tool on *every* turn,
   as on AWS: switch back to ``auto`` once you have the result.
2. ``auto``, when the last user message carries tool results: it does not call again; it
   answers from the results (below).
3. ``auto`` otherwise: it scores each tool against the question (the last user text):
   cosine similarity of all-MiniLM-L6-v2 embeddings of the question and of the tool's
   name (``get_weather`` read as "get weather") and description, plus 0.1 for each content
   word they share. The best tool is called when its score is at least
   :data:`MIN_TOOL_SCORE` and every required argument can be filled from the conversation;
   otherwise it answers in text (from the prompt's context, as it always does).

**How it fills the arguments** (:func:`fill_arguments`), property by property in the
schema's order, from the question's text:

* ``enum``: the allowed value that the text mentions (case-insensitive); if none is, and
  the property is required, the allowed value most similar to the question;
* ``integer`` / ``number``: the numbers of the text, in order, one per property;
* ``boolean``: the schema's ``default``, else whether the property's name occurs in the text;
* ``string``: a property whose name or description asks for free text (query, question,
  text, prompt, topic, search, message, keywords) gets the whole question; any other gets
  the next unused *candidate* of the text: a quoted string first; then, for a property
  with a ``pattern`` or whose name says it holds an identifier (id, type, arn, uri, key,
  path, region, code, version, model, bucket, instance...), an identifier-like token
  (``ml.g5.xlarge``, ``us-east-1``, ``s3://bucket/key``, ``ORD-1234``), and for any other
  property a run of capitalised words that does not start a sentence (``Seattle``,
  ``New York``); then the other kind. With a ``pattern``, only candidates that match it;
* ``array``: every remaining candidate of the item type; ``object``: its own properties.

An optional property nothing fills is left out. The arguments always validate against
the tool's schema (checked with ``jsonschema``): under a forced choice a required value
that cannot be found gets the schema's ``default``, its first ``enum`` value, its
``minimum``, or an empty value of its type, so the call is well-formed but may be
useless; validate semantically in your tool and answer with a ``toolResult`` whose
status is ``error``.

**The answer after a tool result**: each successful result is quoted as the source of the
answer, ``(offline stand-in) From get_weather: city Seattle; temperature_c 12.`` (JSON
flattened to ``key value`` pairs; long text reduced to the sentences closest to the
question); a result with status ``error`` makes the stand-in say that the tool failed and
quote the error. It calls one tool per turn.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from .chat import ChatRequest, Message, ToolResult, ToolSpec, ToolUse
from .errors import validation

MIN_TOOL_SCORE = 0.25
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_FREE_TEXT = {"query", "question", "text", "prompt", "topic", "search", "message", "keywords", "keyword", "input",
              "request", "q", "utterance"}
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|'([^']{2,})'")
_IDENTIFIER = re.compile(r"(?<![\w/.:-])(?=[\w./:-]*[./:_-])(?=[\w./:-]*[A-Za-z])[A-Za-z0-9][\w./:-]*[A-Za-z0-9]")
_CAPITALISED = re.compile(r"\b[A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+)*")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*[A-Za-z])")


# --- what AWS checks ------------------------------------------------------------------------------


def check_schema(schema: Any, where: str) -> None:
    """Refuse an input schema that is not a JSON Schema for an object, as Bedrock does."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise validation(f"The value at {where}.type must be one of the following: object.")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        path = ".".join(str(p) for p in err.path) or "(root)"
        raise validation(f"The provided {where} is not a valid JSON schema: {err.message} at {path}.") from None


def check_tools(tools: list[ToolSpec], where: str) -> None:
    names = set()
    for i, t in enumerate(tools):
        if not TOOL_NAME.match(t.name):
            raise validation(f"The value at {where}.{i}.toolSpec.name must match the pattern ^[a-zA-Z0-9_-]{{1,64}}$.")
        if t.name in names:
            raise validation(f"The tool name {t.name} is used more than once in {where}. Tool names must be unique.")
        names.add(t.name)
        check_schema(t.schema, f"{where}.{i}.toolSpec.inputSchema.json")


def validate_input(schema: dict[str, Any], value: Any) -> list[str]:
    """What is wrong with ``value`` for ``schema`` (empty: it validates)."""
    from jsonschema import Draft202012Validator

    return [f"{'/'.join(str(p) for p in e.path) or '(input)'}: {e.message}"
            for e in Draft202012Validator(schema).iter_errors(value)]


# --- the stand-in's policy ------------------------------------------------------------------------


def _words(name: str) -> str:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return re.sub(r"[_\-.]+", " ", spaced).lower()


def question_of(request: ChatRequest) -> str:
    """The user's question: the last user text (skipping messages that only carry tool results)."""
    for msg in reversed(request.messages):
        if msg.role != "user":
            continue
        texts = [b for b in msg.content if isinstance(b, str) and b.strip()]
        if texts:
            return "\n".join(texts)
    return ""


def score(question: str, tool: ToolSpec) -> float:
    """How well ``tool`` fits ``question`` (cosine of MiniLM embeddings + 0.1 per shared content word)."""
    from .embeddings import model
    from .responder import content_words

    about = f"{_words(tool.name)}. {tool.description}"
    vecs = model().encode([question, about])
    shared = content_words(question) & content_words(about)
    return float(np.dot(vecs[0], vecs[1])) + 0.1 * len(shared)


def rank(question: str, tools: list[ToolSpec]) -> list[tuple[float, ToolSpec]]:
    scored = [(score(question, t), i, t) for i, t in enumerate(tools)]
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [(s, t) for s, _, t in scored]


class _Candidates:
    """Values the question offers, by kind, in the order the filling consumes them."""

    def __init__(self, text: str):
        self.text = text
        found: list[tuple[str, str]] = []  # (kind, value): quoted | identifier | name
        for m in _QUOTED.finditer(text):
            found.append(("quoted", next(g for g in m.groups() if g)))
        unquoted = _QUOTED.sub(" ", text)
        found += [("identifier", m.group(0)) for m in _IDENTIFIER.finditer(unquoted)]
        no_ids = _IDENTIFIER.sub(" ", unquoted)
        for m in _CAPITALISED.finditer(no_ids):
            before = no_ids[:m.start()].rstrip()
            if not before or before[-1] in ".!?\n:":
                words = m.group(0).split()[1:]  # the sentence's first word is capitalised anyway
                if words:
                    found.append(("name", " ".join(words)))
                continue
            found.append(("name", m.group(0)))
        seen: set[str] = set()
        self.strings: list[tuple[str, str]] = []
        for kind, value in found:
            value = value.strip()
            if value and value not in seen:
                seen.add(value)
                self.strings.append((kind, value))
        self.numbers = [m.group(0) for m in _NUMBER.finditer(_IDENTIFIER.sub(" ", text))]

    def take_string(self, pattern: str | None = None, prefer: str = "name") -> str | None:
        """The next unused string: quoted first, then ``prefer``'s kind, then the other kind."""
        for kinds in (("quoted",), (prefer,), ("identifier", "name")):
            for i, (kind, value) in enumerate(self.strings):
                if kind in kinds and (pattern is None or re.search(pattern, value)):
                    return self.strings.pop(i)[1]
        return None

    def take_number(self, integer: bool) -> int | float | None:
        for i, n in enumerate(self.numbers):
            if integer and "." in n:
                continue
            self.numbers.pop(i)
            return int(n) if integer else float(n)
        return None


def _free_text(name: str, prop: dict[str, Any]) -> bool:
    words = set(_words(name).split())
    return bool(words & _FREE_TEXT) or bool(set(re.findall(r"[a-z]+", prop.get("description", "").lower()))
                                             & {"query", "question", "search"})


_IDENTIFIER_WORDS = {"id", "ids", "type", "types", "arn", "uri", "url", "key", "path", "region", "code", "sku",
                     "version", "model", "bucket", "instance", "file"}


def _prefers(name: str, prop: dict[str, Any]) -> str:
    """Which kind of candidate a string property takes first: identifiers for ids, types, paths...; else names."""
    words = set(_words(name).split())
    if prop.get("pattern") or words & _IDENTIFIER_WORDS:
        return "identifier"
    return "name"


def _placeholder(prop: dict[str, Any]) -> Any:
    if "default" in prop:
        return prop["default"]
    if prop.get("enum"):
        return prop["enum"][0]
    kind = prop.get("type", "string")
    if kind in ("integer", "number"):
        return prop.get("minimum", 0)
    return {"boolean": False, "array": [], "object": {}}.get(kind, "")


def _fill(schema: dict[str, Any], question: str, found: _Candidates, forced: bool) -> tuple[dict[str, Any], list[str]]:
    out: dict[str, Any] = {}
    missing: list[str] = []
    props: dict[str, Any] = schema.get("properties") or {}
    required = list(schema.get("required") or [])
    order = [p for p in props if p in required] + [p for p in props if p not in required]
    for name in order:
        prop = props[name] or {}
        kind = prop.get("type", "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        value: Any = None
        if prop.get("enum"):
            lowered = question.lower()
            value = next((v for v in prop["enum"] if isinstance(v, str) and re.search(
                rf"(?<![a-z0-9]){re.escape(v.lower())}(?![a-z0-9])", lowered)), None)
            if value is None and name in required and question:
                value = _closest(question, [v for v in prop["enum"] if isinstance(v, str)]) or prop["enum"][0]
        elif kind in ("integer", "number"):
            value = found.take_number(kind == "integer")
            if value is None and "default" in prop:
                value = prop["default"]
        elif kind == "boolean":
            value = prop["default"] if "default" in prop else _words(name) in question.lower()
            if name not in required and "default" not in prop and value is False:
                value = None
        elif kind == "string":
            if _free_text(name, prop) and question:
                value = question.strip()
            else:
                value = found.take_string(prop.get("pattern"), _prefers(name, prop))
            if value is None and "default" in prop:
                value = prop["default"]
        elif kind == "array":
            item = prop.get("items") or {"type": "string"}
            values: list[Any] = []
            if item.get("type") in ("integer", "number"):
                while (n := found.take_number(item["type"] == "integer")) is not None:
                    values.append(n)
            else:
                while (s := found.take_string(item.get("pattern"), _prefers(name, item))) is not None:
                    values.append(s)
            value = values or None
        elif kind == "object":
            inner, inner_missing = _fill(prop, question, found, forced)
            value = inner if inner or name in required else None
            missing += [f"{name}.{m}" for m in inner_missing]
        if value is None and name in required:
            missing.append(name)
            if forced:
                value = _placeholder(prop)
        if value is not None:
            out[name] = value
    return out, missing


def _closest(text: str, options: list[str]) -> str | None:
    if not options:
        return None
    from .embeddings import model

    vecs = model().encode([text, *(_words(o) for o in options)])
    sims = vecs[1:] @ vecs[0]
    return options[int(np.argmax(sims))]


def fill_arguments(schema: dict[str, Any], question: str, forced: bool = False) -> tuple[dict[str, Any], list[str]]:
    """(arguments, required properties it could not fill) for ``schema`` from ``question``."""
    return _fill(schema, question, _Candidates(question), forced)


def decide(request: ChatRequest, tool_use_id: str) -> ToolUse | None:
    """The tool call the stand-in makes for ``request``, or None to answer in text."""
    if not request.tools or request.tool_choice == "none":
        return None
    question = question_of(request)
    last = request.messages[-1] if request.messages else Message("user", [])
    answered = any(isinstance(b, ToolResult) for b in last.content)
    forced = request.tool_choice in ("any", "tool")
    if answered and not forced:
        return None
    if request.tool_choice == "tool":
        tool = next(t for t in request.tools if t.name == request.forced_tool)
        args, _ = fill_arguments(tool.schema, question, forced=True)
        return ToolUse(tool_use_id, tool.name, args)
    ranked = rank(question, request.tools) if question else [(0.0, t) for t in request.tools]
    if forced:
        tool = ranked[0][1]
        args, _ = fill_arguments(tool.schema, question, forced=True)
        return ToolUse(tool_use_id, tool.name, args)
    best_score, tool = ranked[0]
    if best_score < MIN_TOOL_SCORE:
        return None
    args, missing = fill_arguments(tool.schema, question)
    if missing or validate_input(tool.schema, args):
        return None
    return ToolUse(tool_use_id, tool.name, args)


def missing_for(request: ChatRequest) -> tuple[ToolSpec, list[str]] | None:
    """When the best tool fits but lacks required values: (tool, what is missing), to ask for them."""
    if not request.tools or request.tool_choice not in ("auto",):
        return None
    question = question_of(request)
    if not question:
        return None
    best_score, tool = rank(question, request.tools)[0]
    if best_score < MIN_TOOL_SCORE:
        return None
    _, missing = fill_arguments(tool.schema, question)
    return (tool, missing) if missing else None


# --- the answer from tool results -----------------------------------------------------------------


def _flatten(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix} {k}".strip())
        return out
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return [f"{prefix} {', '.join(str(v) for v in value)}".strip()]
        out = []
        for v in value:
            out += _flatten(v, prefix)
        return out
    return [f"{prefix} {value}".strip()]


def result_summary(result: ToolResult, question: str) -> str:
    """A tool result as the stand-in quotes it: flattened JSON, or the text's sentences closest to the question."""
    parts = []
    for c in result.content:
        if "json" in c:
            parts.append("; ".join(_flatten(c["json"])))
        elif "text" in c:
            text = str(c["text"]).strip()
            try:
                parts.append("; ".join(_flatten(json.loads(text))))
                continue
            except ValueError:
                pass
            from . import responder

            sentences = responder.sentences(text)
            if len(sentences) > 2 and question:
                answer, picked = responder.answer_from(question, sentences)
                parts.append(answer if picked else " ".join(sentences[:2]))
            else:
                parts.append(text)
    return " ".join(p for p in parts if p)


def tool_names(request: ChatRequest) -> dict[str, str]:
    """toolUseId -> tool name, over the conversation's assistant turns."""
    return {b.tool_use_id: b.name for m in request.messages for b in m.content if isinstance(b, ToolUse)}
