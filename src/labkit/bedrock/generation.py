"""Who answers offline Bedrock's text models: the deterministic stand-in, or a local model.

* :class:`StandIn` (the default, and what CI uses): the extractive responder of
  :mod:`labkit.bedrock.responder` with the tool policy of :mod:`labkit.bedrock.tools`.
  Deterministic, labelled, no intelligence.
* :class:`LocalModel`: a real model you run yourself behind an OpenAI-compatible
  ``/v1/chat/completions`` API (Ollama, llama.cpp's ``llama-server``, vLLM), chosen with::

      LABKIT_BEDROCK_OPENAI_URL=http://localhost:11434/v1   # where the server listens
      LABKIT_BEDROCK_OPENAI_MODEL=llama3.2                  # the model name the server knows
      LABKIT_BEDROCK_OPENAI_API_KEY=...                     # optional, sent as a Bearer token

  Every text model of every family, InvokeModel and Converse alike (tool use included),
  is then answered by that model: the request is translated to a chat completion
  (system, user and assistant turns, images as data URLs, tools as functions,
  ``toolChoice`` any -> ``required``, tool results as ``tool`` messages) and the
  completion back (``tool_calls`` -> tool uses, ``finish_reason`` -> stop reason,
  ``usage`` -> token counts, counted here when the server gives none). Streaming calls
  are answered whole and then streamed in pieces. Embeddings and images stay local
  (all-MiniLM-L6-v2; the procedural image). Each response names who answered in its
  ``x-labkit-stand-in`` header. Requests go only to that URL, never to AWS.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
import uuid
from typing import Any, Protocol

from . import responder, tokens, tools
from .chat import ChatRequest, Document, Generation, Image, Reasoning, ToolResult, ToolUse
from .errors import BedrockError

URL_SETTING = "LABKIT_BEDROCK_OPENAI_URL"
MODEL_SETTING = "LABKIT_BEDROCK_OPENAI_MODEL"
KEY_SETTING = "LABKIT_BEDROCK_OPENAI_API_KEY"
TIMEOUT_S = 300


class Generator(Protocol):
    label: str

    def generate(self, request: ChatRequest) -> Generation: ...


def tool_use_id() -> str:
    """An id in the form Bedrock gives tool uses (``tooluse_`` and 22 characters)."""
    return "tooluse_" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=").replace("-", "x")[:22]


class StandIn:
    """The deterministic stand-in: tool calls by the documented policy, answers extracted from the prompt."""

    label = responder.STAND_IN

    def generate(self, request: ChatRequest) -> Generation:
        n_in = tokens.count(request.text())
        call = tools.decide(request, tool_use_id())
        if call is not None:
            n_out = max(1, tokens.count(call.name + " " + json.dumps(call.input)))
            return Generation([call], n_in, n_out, "tool_use", label=self.label)
        question = tools.question_of(request)
        last = request.messages[-1].content if request.messages else []
        results = [b for b in last if isinstance(b, ToolResult)]
        if results:
            return self._from_results(request, results, question, n_in)
        lacking = tools.missing_for(request)
        if lacking:
            tool, missing = lacking
            text = (f"{responder.LABEL}To use {tool.name} I need {', '.join(missing)}: "
                    "please give them in your question.")
            return self._finish(request, text, n_in)
        prompt = responder.Prompt(list(request.system), [(m.role, m.text()) for m in request.messages])
        gen = responder.respond(prompt, request.max_tokens, request.stop_sequences, input_tokens=n_in)
        if request.reasoning:
            gen.content.insert(0, Reasoning(self._reasoning(prompt, gen)))
        return gen

    def _from_results(self, request: ChatRequest, results: list[ToolResult], question: str, n_in: int) -> Generation:
        names = tools.tool_names(request)
        parts = []
        for r in results:
            name = names.get(r.tool_use_id, "the tool")
            if r.status == "error":
                parts.append(f"The tool {name} failed: {r.text()}")
            else:
                parts.append(f"From {name}: {tools.result_summary(r, question)}")
        gen = self._finish(request, responder.LABEL + " ".join(parts), n_in)
        gen.found = True
        return gen

    def _finish(self, request: ChatRequest, text: str, n_in: int) -> Generation:
        text, n_out, stop, seq = responder.finish(text, request.max_tokens, request.stop_sequences)
        return Generation([text], n_in, n_out, stop, seq, label=self.label)

    @staticmethod
    def _reasoning(prompt: responder.Prompt, gen: Generation) -> str:
        question, context = responder.split_question(prompt)
        quoted = " | ".join(gen.sources) if gen.sources else "none is similar enough"
        return (f"The question is: {question} The context has {len(context)} sentences. "
                f"Closest to the question: {quoted}")


class LocalModel:
    """A model behind an OpenAI-compatible chat-completions API (see the module docstring)."""

    def __init__(self, url: str, model: str, api_key: str | None = None):
        self.url = url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.label = f"openai-compatible; model={model}; url={self.url}"

    # --- Bedrock -> OpenAI ---------------------------------------------------------------------
    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": "\n\n".join(request.system)})
        for m in request.messages:
            messages += self._messages(m.role, m.content)
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": request.max_tokens,
                                "stream": False}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop_sequences:
            body["stop"] = request.stop_sequences[:4]
        if request.tools:
            body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                               "parameters": t.schema}} for t in request.tools]
            body["tool_choice"] = {"any": "required", "none": "none", "auto": "auto"}.get(
                request.tool_choice, {"type": "function", "function": {"name": request.forced_tool}})
        return body

    @staticmethod
    def _messages(role: str, content: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        calls = []
        for b in content:
            if isinstance(b, str):
                parts.append({"type": "text", "text": b})
            elif isinstance(b, Document):
                parts.append({"type": "text", "text": f"[{b.name}]\n{b.text}"})
            elif isinstance(b, Image):
                data = base64.b64encode(b.data).decode()
                parts.append({"type": "image_url", "image_url": {"url": f"data:image/{b.format};base64,{data}"}})
            elif isinstance(b, ToolResult):
                text = b.text() if b.status != "error" else f"Error: {b.text()}"
                out.append({"role": "tool", "tool_call_id": b.tool_use_id, "content": text})
            elif isinstance(b, ToolUse):
                calls.append({"id": b.tool_use_id, "type": "function",
                              "function": {"name": b.name, "arguments": json.dumps(b.input)}})
        if role == "assistant":
            msg: dict[str, Any] = {"role": "assistant",
                                   "content": "".join(p["text"] for p in parts if p["type"] == "text") or None}
            if calls:
                msg["tool_calls"] = calls
            return [msg]
        if parts:
            only_text = all(p["type"] == "text" for p in parts)
            out.append({"role": "user", "content": "\n".join(p["text"] for p in parts) if only_text else parts})
        return out

    # --- OpenAI -> Bedrock ---------------------------------------------------------------------
    def generation(self, request: ChatRequest, answer: dict[str, Any]) -> Generation:
        choice = (answer.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        content: list[Any] = []
        thinking = message.get("reasoning_content") or message.get("reasoning")
        if thinking:
            content.append(Reasoning(str(thinking)))
        if message.get("content"):
            content.append(str(message["content"]))
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except ValueError:
                args = {"arguments": fn.get("arguments")}
            content.append(ToolUse(call.get("id") or tool_use_id(), fn.get("name", ""), args))
        reason = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                  "function_call": "tool_use", "content_filter": "content_filtered"}.get(
            choice.get("finish_reason") or "stop", "end_turn")
        if any(isinstance(b, ToolUse) for b in content):
            reason = "tool_use"
        usage = answer.get("usage") or {}
        text = "".join(b for b in content if isinstance(b, str))
        n_in = int(usage.get("prompt_tokens") or tokens.count(request.text()))
        n_out = int(usage.get("completion_tokens") or tokens.count(text))
        return Generation(content or [""], n_in, n_out, reason, label=self.label, found=bool(text))

    def generate(self, request: ChatRequest) -> Generation:
        body = json.dumps(self.request_body(request)).encode()
        req = urllib.request.Request(f"{self.url}/chat/completions", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:300]
            raise BedrockError("ModelErrorException", f"The local model server at {self.url} answered HTTP "
                               f"{err.code}: {detail}", 424) from None
        except (urllib.error.URLError, OSError) as err:
            raise BedrockError("ServiceUnavailableException", f"The local model server at {self.url} did not "
                               f"answer ({err}). Start it, or unset {URL_SETTING} to use the offline stand-in.",
                               503) from None
        return self.generation(request, answer)


def generator() -> Generator:
    """The local model when ``LABKIT_BEDROCK_OPENAI_URL`` is set, else the stand-in."""
    url = os.environ.get(URL_SETTING, "").strip()
    if not url:
        return StandIn()
    model = os.environ.get(MODEL_SETTING, "").strip()
    if not model:
        raise BedrockError("ValidationException", f"{URL_SETTING} is set but {MODEL_SETTING} is not: name the model "
                           "the server should run (for Ollama, one of `ollama list`).")
    if ".amazonaws.com" in url:
        raise BedrockError("ValidationException", f"{URL_SETTING} must name a local OpenAI-compatible server, not an "
                           "AWS endpoint.")
    return LocalModel(url, model, os.environ.get(KEY_SETTING) or None)
