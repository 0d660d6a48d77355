"""The offline stand-in for Bedrock's text models: a labelled, extractive responder.

No foundation model can run on this machine, so every text model (Claude, Nova, Titan
Text, Llama, Mistral, Cohere, Jamba, DeepSeek) is answered by this deterministic procedure
unless a local model is configured (:mod:`labkit.bedrock.generation`), and it says so:
every answer starts with :data:`LABEL`, and the response header ``x-labkit-stand-in``
carries :data:`STAND_IN`. On the sandbox backend the real model answers. Tool calls are
decided by :mod:`labkit.bedrock.tools`.

What it does, given the prompt (system text and conversation turns):

1. Finds the question: a line ``Question: ...``, else the last sentence ending in ``?``,
   else the last sentence of the last user turn.
2. Takes every other sentence of the prompt as context, skipping instructions to the
   model (sentences about "the context", "the question", "answer"... and role lines)
   outside numbered sources.
3. Scores each context sentence against the question with the all-MiniLM-L6-v2
   embeddings (cosine) plus shared content words, and answers with the best one or
   two sentences, verbatim, in their original order.
   A sentence whose content words all occur in the question adds nothing and is never
   the answer; markdown headings are not sentences.
4. When no sentence shares a content word with the question and is similar enough
   (cosine >= :data:`MIN_SIMILARITY`), it answers :data:`NOT_FOUND`.

5. When the context is given as numbered sources (a line that starts with ``[1]``,
   ``[2]``...: the usual way to ask a model for citations), each quoted sentence is
   followed by the number of the source it came from, ``... sentence. [2]``, so that
   citations are parsed from the answer the same way on both backends.

It honours the maximum output tokens (the answer is cut at a token boundary and the
stop reason says so) and stop sequences (the text ends before the first one found).
Token counts come from a real tokenizer (see :mod:`labkit.bedrock.tokens`).
Temperature, top-p and top-k do not change the answer: it is deterministic.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import numpy as np

from . import tokens
from .chat import Generation

LABEL = "(offline stand-in) "
STAND_IN = "extractive; labkit offline stand-in, not the foundation model"
NOT_FOUND = "I cannot find the answer in the provided context."
MIN_SIMILARITY = 0.3
_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most my
myself no nor not now of off on once only or other our ours ourselves out over own same she should so
some such than that the their theirs them themselves then there these they this those through to too
under until up very was we were what when where which while who whom why will with would you your
yours yourself yourselves tell explain describe please give list name say does did use used using
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_INSTRUCTION_WORDS = frozenset({"answer", "question", "context", "provided", "based", "information",
                                "document", "documents", "following", "below", "above", "respond",
                                "assistant", "helpful", "excerpt", "excerpts", "search", "results", "source",
                                "sources", "cite", "citation", "citations", "numbered"})
_SPECIAL = re.compile(r"<\|[^|>]*\|>|</?s>|\[/?INST\]|<<SYS>>|<</SYS>>")
_ROLE_LINE = re.compile(r"^\s*(human|assistant|user|system|bot|context|context information|document|"
                        r"documents|passage|background|excerpt|source)\s*:\s*", re.I)
_QUESTION_LINE = re.compile(r"^\s*(?:question|query|q)\s*:\s*(.+)$", re.I | re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
_SOURCE_MARK = re.compile(r"^[ \t]*\[(\d{1,4})\][ \t]*:?[ \t]*", re.M)


@dataclass
class Prompt:
    """What the model was asked: system texts and (role, text) turns, oldest first."""

    system: list[str] = field(default_factory=list)
    turns: list[tuple[str, str]] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join([*self.system, *(t for _, t in self.turns)])


def _passages(line: str) -> str:
    """A line that is a Python list of strings, as passages (one paragraph each), else the line itself.

    Prompt templates often format a list of retrieved passages straight in (``{contexts}`` of a list):
    the model sees its repr, one line with the passages' line breaks written as ``\\n``, and reads the
    passages in it; so does the stand-in.
    """
    stripped = line.strip()
    if not (stripped.startswith("[") and stripped.endswith("]") and ("'" in stripped or '"' in stripped)):
        return line
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return line
    if not value or not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return line
    return "\n\n".join(value)


def _clean(text: str) -> str:
    text = _SPECIAL.sub("\n", text)
    text = "\n".join(_passages(line) for line in text.splitlines())
    return "\n".join(_ROLE_LINE.sub("", line) for line in text.splitlines())


WRAP_WIDTH = 50  # a line at least this long that ends without punctuation is taken as hard-wrapped prose


def _paragraph_lines(text: str) -> list[str]:
    """Units of ``text``: lines, with hard-wrapped prose sentences joined back together.

    Inside a fenced code block (```) every line is a unit of its own; so are list
    items and other short lines. A long line that does not end a sentence is joined
    with the next one. Markdown headings (``## ...``) are left out: they name a section,
    they do not answer anything.
    """
    out: list[str] = []
    buf = ""
    in_code = False
    for raw in _clean(text).splitlines():
        stripped = raw.strip()
        if stripped.startswith("```") or in_code:
            if buf:
                out.append(buf)
                buf = ""
            if stripped.startswith("```"):
                in_code = not in_code
            elif stripped:
                out.append(stripped)
            continue
        if re.match(r"^#{1,6}\s", stripped):  # a markdown heading is structure, not a statement
            if buf:
                out.append(buf)
                buf = ""
            continue
        line = raw.strip(" \t-*•>")
        starts_item = raw.lstrip().startswith(("-", "*", "•")) or re.match(r"^\s*\d+[.)]\s", raw)
        if not line or starts_item:
            if buf:
                out.append(buf)
            buf = line if starts_item else ""
            continue
        buf = f"{buf} {line}" if buf else line
        if line.endswith((".", "!", "?", ":")) or len(stripped) < WRAP_WIDTH:
            out.append(buf)
            buf = ""
    if buf:
        out.append(buf)
    return out


def quoted_from(sentence: str, passage: str) -> bool:
    """Whether ``sentence`` (one the stand-in quoted) comes from ``passage``, whatever its line breaks.

    :func:`sentences` joins a passage's wrapped lines with spaces (a PDF's text layer breaks
    lines mid-sentence), so the comparison ignores how whitespace was laid out.
    """
    return " ".join(sentence.split()) in " ".join(passage.split())


def sentences(text: str) -> list[str]:
    out: list[str] = []
    for line in _paragraph_lines(text):
        out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return out


def labelled_sentences(text: str) -> list[tuple[str, str | None]]:
    """The sentences of ``text``, each with the number of the ``[n]`` source block it is in (or None)."""
    marks = list(_SOURCE_MARK.finditer(text))
    if not marks:
        return [(s, None) for s in sentences(text)]
    out: list[tuple[str, str | None]] = [(s, None) for s in sentences(text[: marks[0].start()])]
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out.extend((s, m.group(1)) for s in sentences(text[m.end():end]))
    return out


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS and len(w) > 1}


def _is_instruction(sentence: str) -> bool:
    words = set(re.findall(r"[a-z]+", sentence.lower()))
    if len(words & _INSTRUCTION_WORDS) >= 2:
        return True
    return bool(re.match(r"^(you are|you're|please|use the|using the|answer|if the answer)\b", sentence, re.I))


def split_question(prompt: Prompt) -> tuple[str, list[str]]:
    """(question, context sentences) of a prompt."""
    question, context, _ = _split(prompt)
    return question, context


def _split(prompt: Prompt) -> tuple[str, list[str], dict[str, str]]:
    """(question, context sentences, the source number of each numbered context sentence)."""
    last_user = next((t for r, t in reversed(prompt.turns) if r == "user"), "")
    earlier = [*prompt.system]
    seen_last = False
    for role, text in reversed(prompt.turns):
        if role == "user" and not seen_last:
            seen_last = True
            continue
        earlier.insert(len(prompt.system), text)
    question = ""
    rest = _clean(last_user)
    m = list(_QUESTION_LINE.finditer(rest))
    if m:
        question = m[-1].group(1).strip()
        rest = rest[: m[-1].start()] + rest[m[-1].end():]
        rest_sentences = labelled_sentences(rest)
    else:
        rest_sentences = labelled_sentences(rest)
        asks = [i for i, (s, label) in enumerate(rest_sentences) if s.endswith("?") and label is None]
        if not asks:
            asks = [i for i, (s, label) in enumerate(rest_sentences) if label is None]
        idx = asks[-1] if asks else len(rest_sentences) - 1
        if idx >= 0:
            question = rest_sentences.pop(idx)[0]
    labelled = [p for text in earlier for p in labelled_sentences(_clean(text))] + rest_sentences
    labels: dict[str, str] = {}
    context: list[str] = []
    for sentence, label in labelled:
        # Numbered sources are data, whatever they say; elsewhere, skip instructions to the model.
        if (label is None and _is_instruction(sentence)) or sentence == question:
            continue
        if sentence not in labels and label is not None:
            labels[sentence] = label
        if sentence not in context:  # keep order, drop exact repeats
            context.append(sentence)
    return question, context, labels


def _answer(question: str, context: list[str]) -> tuple[str, list[str]]:
    qwords = content_words(question)
    if not question or not context or not qwords:
        return NOT_FOUND, []
    from .embeddings import model

    # Only sentences that share a content word with the question and add one can be the
    # answer; only they are embedded.
    candidates = []
    for i, s in enumerate(context):
        words = content_words(s)
        overlap = len(qwords & words)
        if overlap >= 1 and words - qwords:
            candidates.append((i, overlap))
    if not candidates:
        return NOT_FOUND, []
    vecs = model().encode([question, *(context[i] for i, _ in candidates)])
    sims = vecs[1:] @ vecs[0]
    scored = []
    for (i, overlap), sim in zip(candidates, sims, strict=True):
        if sim >= MIN_SIMILARITY:
            scored.append((float(sim) + 0.15 * overlap / len(qwords), i))
    if not scored:
        return NOT_FOUND, []
    scored.sort(key=lambda x: (-x[0], x[1]))
    best = [scored[0]]
    if len(scored) > 1 and scored[1][0] >= scored[0][0] - 0.05:
        best.append(scored[1])
    picked = [context[i] for _, i in sorted(best, key=lambda x: x[1])]
    return " ".join(picked), picked


def answer_from(question: str, context: list[str]) -> tuple[str, list[str]]:
    """The best one or two ``context`` sentences for ``question`` (and the sentences quoted), or NOT_FOUND."""
    return _answer(question, context)


def finish(text: str, max_tokens: int, stop_sequences: list[str] | None = None) -> tuple[str, int, str, str | None]:
    """``text`` cut at the first stop sequence after the label, then at ``max_tokens``.

    Returns (text, output tokens, stop reason, the stop sequence met).
    """
    stop_reason, stop_seq = "end_turn", None
    hits = [(text.find(s), s) for s in (stop_sequences or []) if s and text.find(s) >= len(LABEL)]
    if hits:
        pos, stop_seq = min(hits)
        text = text[:pos]
        stop_reason = "stop_sequence"
    cut, n_out, was_cut = tokens.truncate(text, max_tokens)
    if was_cut:
        text, stop_reason, stop_seq = cut, "max_tokens", None
    return text, n_out, stop_reason, stop_seq


def respond(prompt: Prompt, max_tokens: int, stop_sequences: list[str] | None = None,
            input_tokens: int | None = None) -> Generation:
    """Answer ``prompt`` extractively within ``max_tokens``, stopping at ``stop_sequences``."""
    question, context, labels = _split(prompt)
    answer, sources = _answer(question, context)
    if sources and any(src in labels for src in sources):
        answer = " ".join(f"{src} [{labels[src]}]" if src in labels else src for src in sources)
    text, n_out, stop_reason, stop_seq = finish(LABEL + answer, max_tokens, stop_sequences)
    n_in = tokens.count(prompt.text()) if input_tokens is None else input_tokens
    return Generation([text], n_in, n_out, stop_reason, stop_seq, label=STAND_IN, found=bool(sources),
                      sources=sources)


def similarity(a: str, b: str) -> float:
    from .embeddings import model

    v = model().encode([a, b])
    return float(np.dot(v[0], v[1]))
