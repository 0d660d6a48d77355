"""Meta Llama 3.x and 4: ``prompt`` in the model's chat template, ``max_gen_len``, ``temperature``, ``top_p``.

The prompt is read as the model reads it: Llama 3's ``<|start_header_id|>role<|end_header_id|>
... <|eot_id|>`` turns, Llama 4's ``<|header_start|>role<|header_end|> ... <|eot|>`` turns,
or (a prompt without the template) one user turn, which a real Llama would merely continue.
Llama 3.2 11B/90B and Llama 4 take ``images`` (base64). Response: ``{"generation",
"prompt_token_count", "generation_token_count", "stop_reason"}`` (``stop`` or ``length``).
"""

from __future__ import annotations

import re
from typing import Any

from .. import tokens
from ..catalog import FoundationModel
from ..chat import ChatRequest, Generation, Image, Message
from ..errors import validation
from . import common

_TURN = re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>|<\|header_start\|>(\w+)<\|header_end\|>")
_SPECIAL = re.compile(r"<\|(?:eot_id|eot|begin_of_text|end_of_text|image)\|>")


def turns(prompt: str) -> tuple[list[str], list[Message]]:
    """(system texts, user/assistant turns) of a Llama chat prompt."""
    marks = list(_TURN.finditer(prompt))
    if not marks:
        return [], [Message("user", [_SPECIAL.sub("", prompt).strip() or prompt])]
    system: list[str] = []
    out: list[Message] = []
    for i, m in enumerate(marks):
        role = m.group(1) or m.group(2)
        end = marks[i + 1].start() if i + 1 < len(marks) else len(prompt)
        text = _SPECIAL.sub("", prompt[m.end():end]).strip()
        if not text:
            continue
        if role == "system":
            system.append(text)
        elif out and out[-1].role == ("assistant" if role == "assistant" else "user"):
            out[-1].content.append(text)
        else:
            out.append(Message("assistant" if role == "assistant" else "user", [text]))
    return system, out or [Message("user", [prompt])]


def parse(body: dict[str, Any], model: FoundationModel) -> ChatRequest:
    common.keys(body, {"prompt", "temperature", "top_p", "max_gen_len", "images"}, ("prompt",))
    text = common.text(body["prompt"], "#/prompt", 1)
    common.number(body, "temperature", "#", 0, 1)
    common.number(body, "top_p", "#", 0, 1)
    common.number(body, "max_gen_len", "#", 1, model.max_output_tokens, integer=True)
    system, messages = turns(text)
    if body.get("images"):
        if "IMAGE" not in model.input_modalities:
            raise validation(f"{model.name} does not accept images.")
        images = [Image("png", common.b64(b, f"#/images/{i}")) for i, b in enumerate(body["images"])]
        user = next(m for m in reversed(messages) if m.role == "user")
        user.content[:0] = images
    return ChatRequest(system=system, messages=messages, max_tokens=body.get("max_gen_len", 512),
                       temperature=body.get("temperature"), top_p=body.get("top_p"))


def _reason(gen: Generation) -> str:
    return "length" if gen.stop_reason == "max_tokens" else "stop"


def body(gen: Generation, model: FoundationModel, request: ChatRequest) -> dict[str, Any]:
    return {"generation": gen.text, "prompt_token_count": gen.input_tokens,
            "generation_token_count": gen.output_tokens, "stop_reason": _reason(gen)}


def chunks(gen: Generation, model: FoundationModel, metrics: dict[str, int],
           request: ChatRequest) -> list[dict[str, Any]]:
    pieces = common.deltas(gen.text) or [""]
    out, total = [], 0
    for i, piece in enumerate(pieces):
        total += tokens.count(piece)
        last = i == len(pieces) - 1
        chunk: dict[str, Any] = {"generation": piece, "prompt_token_count": gen.input_tokens if i == 0 else None,
                                 "generation_token_count": gen.output_tokens if last else total,
                                 "stop_reason": _reason(gen) if last else None}
        if last:
            chunk["amazon-bedrock-invocationMetrics"] = metrics
        out.append(chunk)
    return out
