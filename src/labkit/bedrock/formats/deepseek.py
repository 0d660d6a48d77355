"""DeepSeek-R1: ``prompt`` in DeepSeek's template, ``max_tokens``, ``temperature``, ``top_p``, ``stop``.

The template: ``<｜begin▁of▁sentence｜><｜User｜>question<｜Assistant｜><think>\\n``. The answer
(``{"choices": [{"text", "stop_reason"}]}``) holds the model's reasoning, ``</think>``, then
the reply; the stand-in's "reasoning" is an honest account of what it did (the question
it found and the sentences it chose). Converse returns the reasoning as a
``reasoningContent`` block before the text.
"""

from __future__ import annotations

import re
from typing import Any

from ..catalog import FoundationModel
from ..chat import ChatRequest, Generation, Message
from . import common

_MARK = re.compile(r"<｜(User|Assistant)｜>")
_SPECIAL = re.compile(r"<｜[^｜]*｜>|</?think>")


def _turns(prompt: str) -> list[Message]:
    parts = list(_MARK.finditer(prompt))
    if not parts:
        return [Message("user", [prompt])]
    out = []
    for i, m in enumerate(parts):
        end = parts[i + 1].start() if i + 1 < len(parts) else len(prompt)
        text = _SPECIAL.sub("", prompt[m.end():end]).strip()
        if text:
            out.append(Message("user" if m.group(1) == "User" else "assistant", [text]))
    return out or [Message("user", [prompt])]


def parse(body: dict[str, Any], model: FoundationModel) -> ChatRequest:
    common.keys(body, {"prompt", "max_tokens", "temperature", "top_p", "stop"}, ("prompt",))
    text = common.text(body["prompt"], "#/prompt", 1)
    common.number(body, "max_tokens", "#", 1, model.max_output_tokens, integer=True)
    common.number(body, "temperature", "#", 0, 1)
    common.number(body, "top_p", "#", 0, 1)
    return ChatRequest(messages=_turns(text), max_tokens=body.get("max_tokens", 8192),
                       stop_sequences=common.string_list(body.get("stop", []), "#/stop", 10),
                       temperature=body.get("temperature"), top_p=body.get("top_p"), reasoning=True)


def _text(gen: Generation) -> str:
    return f"{gen.reasoning}\n</think>\n\n{gen.text}" if gen.reasoning else gen.text


def _reason(gen: Generation) -> str:
    return "length" if gen.stop_reason == "max_tokens" else "stop"


def body(gen: Generation, model: FoundationModel, request: ChatRequest) -> dict[str, Any]:
    return {"choices": [{"text": _text(gen), "stop_reason": _reason(gen)}]}


def chunks(gen: Generation, model: FoundationModel, metrics: dict[str, int],
           request: ChatRequest) -> list[dict[str, Any]]:
    pieces = common.deltas(_text(gen)) or [""]
    out = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        chunk: dict[str, Any] = {"choices": [{"text": piece, "stop_reason": _reason(gen) if last else None}]}
        if last:
            chunk["amazon-bedrock-invocationMetrics"] = metrics
        out.append(chunk)
    return out
