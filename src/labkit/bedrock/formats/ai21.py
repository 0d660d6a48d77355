"""AI21 Labs Jamba 1.5 (Mini, Large): the chat-completion body.

Request: ``messages`` (``system``/``user``/``assistant``), ``max_tokens`` (up to 4,096),
``temperature`` (0-2), ``top_p``, ``stop``, ``n`` (1-16), ``tools``. Response:
``{"id", "choices": [{"index", "message", "finish_reason"}], "usage": {...}, "meta"}``;
streamed as ``choices[].delta`` chunks. With ``n`` > 1 every choice is the same answer:
the stand-in is deterministic.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..catalog import FoundationModel
from ..chat import ChatRequest, Generation
from . import chatstyle, common

KEYS = {"messages", "max_tokens", "temperature", "top_p", "stop", "n", "frequency_penalty", "presence_penalty",
        "tools", "tool_choice", "documents", "response_format"}


def parse(body: dict[str, Any], model: FoundationModel) -> ChatRequest:
    common.keys(body, KEYS, ("messages",))
    common.number(body, "max_tokens", "#", 0, model.max_output_tokens, integer=True)
    common.number(body, "temperature", "#", 0, 2)
    common.number(body, "top_p", "#", 0, 1)
    common.number(body, "n", "#", 1, 16, integer=True)
    system, turns = chatstyle.messages(body["messages"])
    specs = chatstyle.tools(body.get("tools"))
    choice, forced = chatstyle.choice(body.get("tool_choice"), specs, "required")
    docs = [f"{d.get('id', '')} {d.get('content', '')}".strip() for d in body.get("documents") or []]
    stop = body.get("stop", [])
    return ChatRequest(system=system + docs, messages=turns, max_tokens=body.get("max_tokens", 4096),
                       stop_sequences=[stop] if isinstance(stop, str) else common.string_list(stop, "#/stop"),
                       temperature=body.get("temperature"), top_p=body.get("top_p"), tools=specs,
                       tool_choice=choice, forced_tool=forced, native={"n": body.get("n", 1)})


def _reason(gen: Generation) -> str:
    return {"max_tokens": "length", "tool_use": "tool_calls"}.get(gen.stop_reason, "stop")


def body(gen: Generation, model: FoundationModel, request: ChatRequest) -> dict[str, Any]:
    message = chatstyle.message(request, gen.content)
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "model": model.model_id.split(".", 1)[1].rsplit("-v", 1)[0],
            "choices": [{"index": i, "message": message, "finish_reason": _reason(gen)}
                        for i in range(request.native.get("n", 1))],
            "usage": {"prompt_tokens": gen.input_tokens, "completion_tokens": gen.output_tokens,
                      "total_tokens": gen.input_tokens + gen.output_tokens},
            "meta": {"requestDurationMillis": 1}}


def chunks(gen: Generation, model: FoundationModel, metrics: dict[str, int],
           request: ChatRequest) -> list[dict[str, Any]]:
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    out: list[dict[str, Any]] = [{"id": cid, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                          "finish_reason": None}]}]
    for piece in common.deltas(gen.text):
        out.append({"id": cid, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    out.append({"id": cid, "choices": [{"index": 0, "delta": {}, "finish_reason": _reason(gen)}],
                "usage": {"prompt_tokens": gen.input_tokens, "completion_tokens": gen.output_tokens,
                          "total_tokens": gen.input_tokens + gen.output_tokens},
                "amazon-bedrock-invocationMetrics": metrics})
    return out
