"""The offline stand-in for Bedrock's text models: a labelled, extractive responder.

No foundation model can run on this machine, so Claude, Titan Text and Llama are all
answered by this deterministic procedure, and it says so: every answer starts with
:data:`LABEL`, and each response carries a ``labkit`` note (see ``formats``). On the
sandbox backend the real model answers.

What it does, given the prompt (system text and conversation turns):

1. Finds the question: a line ``Question: ...``, else the last sentence ending in ``?``,
   else the last sentence of the last user turn.
2. Takes every other sentence of the prompt as context, skipping instructions to the
   model (sentences about "the context", "the question", "answer"... and role lines).
3. Scores each context sentence against the question with the all-MiniLM-L6-v2
   embeddings (cosine) plus shared content words, and answers with the best one or
   two sentences, verbatim, in their original order.
4. When no sentence shares a content word with the question and is similar enough
   (cosine >= :data:`MIN_SIMILARITY`), it answers :data:`NOT_FOUND`.

It honours the maximum output tokens (the answer is cut at a token boundary and the
stop reason says so) and stop sequences (the text ends before the first one found).
Token counts come from a real tokenizer (see :mod:`labkit.bedrock.tokens`).
Temperature, top-p and top-k do not change the answer: it is deterministic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from . import tokens

LABEL = "(offline stand-in) "
NOT_FOUND = "I cannot find the answer in the provided context."
MIN_SIMILARITY = 0.3
NOTE = ("Generated offline by labkit's extractive stand-in, not by the foundation model: it quotes "
        "the prompt's context sentence most similar to the question (all-MiniLM-L6-v2), or says it "
        "cannot find the answer. Token counts: " + tokens.TOKENIZER_NAME + ".")

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
                                "assistant", "helpful", "excerpt", "excerpts", "search", "results"})
_SPECIAL = re.compile(r"<\|[^|>]*\|>|</?s>|\[/?INST\]|<<SYS>>|<</SYS>>")
_ROLE_LINE = re.compile(r"^\s*(human|assistant|user|system|bot|context|context information|document|"
                        r"documents|passage|background|excerpt|source)\s*:\s*", re.I)
_QUESTION_LINE = re.compile(r"^\s*(?:question|query|q)\s*:\s*(.+)$", re.I | re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")


@dataclass
class Prompt:
    """What the model was asked: system texts and (role, text) turns, oldest first."""

    system: list[str] = field(default_factory=list)
    turns: list[tuple[str, str]] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join([*self.system, *(t for _, t in self.turns)])


@dataclass
class Generation:
    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str  # "end_turn" | "max_tokens" | "stop_sequence"
    stop_sequence: str | None = None
    found: bool = False
    sources: list[str] = field(default_factory=list)  # the context sentences quoted


def _clean(text: str) -> str:
    text = _SPECIAL.sub("\n", text)
    return "\n".join(_ROLE_LINE.sub("", line) for line in text.splitlines())


def _paragraph_lines(text: str) -> list[str]:
    """Lines of ``text`` with hard-wrapped sentences joined back together."""
    out: list[str] = []
    buf = ""
    for raw in _clean(text).splitlines():
        line = raw.strip(" \t-*•>")
        starts_item = raw.lstrip().startswith(("-", "*", "•")) or re.match(r"^\s*\d+[.)]\s", raw)
        if not line or starts_item:
            if buf:
                out.append(buf)
            buf = line if starts_item else ""
            continue
        buf = f"{buf} {line}" if buf else line
        if line.endswith((".", "!", "?", ":")):
            out.append(buf)
            buf = ""
    if buf:
        out.append(buf)
    return out


def sentences(text: str) -> list[str]:
    out = []
    for line in _paragraph_lines(text):
        out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
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
        rest_sentences = sentences(rest)
    else:
        rest_sentences = sentences(rest)
        asks = [i for i, s in enumerate(rest_sentences) if s.endswith("?")]
        idx = asks[-1] if asks else len(rest_sentences) - 1
        if idx >= 0:
            question = rest_sentences.pop(idx)
    context = [s for text in earlier for s in sentences(text)] + rest_sentences
    context = [s for s in context if not _is_instruction(s) and s != question]
    # Keep order, drop exact repeats.
    seen: set[str] = set()
    context = [s for s in context if not (s in seen or seen.add(s))]
    return question, context


def _answer(question: str, context: list[str]) -> tuple[str, list[str]]:
    qwords = content_words(question)
    if not question or not context or not qwords:
        return NOT_FOUND, []
    from .embeddings import model

    vecs = model().encode([question, *context])
    sims = vecs[1:] @ vecs[0]
    scored = []
    for i, (s, sim) in enumerate(zip(context, sims, strict=True)):
        overlap = len(qwords & content_words(s))
        if overlap >= 1 and sim >= MIN_SIMILARITY:
            scored.append((float(sim) + 0.15 * overlap / len(qwords), i))
    if not scored:
        return NOT_FOUND, []
    scored.sort(key=lambda x: (-x[0], x[1]))
    best = [scored[0]]
    if len(scored) > 1 and scored[1][0] >= scored[0][0] - 0.05:
        best.append(scored[1])
    picked = [context[i] for _, i in sorted(best, key=lambda x: x[1])]
    return " ".join(picked), picked


def respond(prompt: Prompt, max_tokens: int, stop_sequences: list[str] | None = None) -> Generation:
    """Answer ``prompt`` extractively within ``max_tokens``, stopping at ``stop_sequences``."""
    question, context = split_question(prompt)
    answer, sources = _answer(question, context)
    full = LABEL + answer
    stop_reason, stop_seq = "end_turn", None
    hits = [(full.find(s), s) for s in (stop_sequences or []) if s and full.find(s) >= len(LABEL)]
    if hits:
        pos, stop_seq = min(hits)
        full = full[:pos]
        stop_reason = "stop_sequence"
    cut, n_out, was_cut = tokens.truncate(full, max_tokens)
    if was_cut:
        full, stop_reason, stop_seq = cut, "max_tokens", None
    return Generation(text=full, input_tokens=tokens.count(prompt.text()), output_tokens=n_out,
                      stop_reason=stop_reason, stop_sequence=stop_seq, found=bool(sources), sources=sources)


def similarity(a: str, b: str) -> float:
    from .embeddings import model

    v = model().encode([a, b])
    return float(np.dot(v[0], v[1]))
