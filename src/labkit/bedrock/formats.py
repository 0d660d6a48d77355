"""Each model family's InvokeModel body: validation, response body, stream chunks.

Families (see :mod:`labkit.bedrock.catalog`):

* ``anthropic``: the Messages API (``anthropic_version`` ``bedrock-2023-05-31``,
  ``max_tokens``, ``messages``, ``system``, ``stop_sequences``...).
* ``titan-text``: ``inputText`` + ``textGenerationConfig``.
* ``llama``: ``prompt``, ``max_gen_len``, ``temperature``, ``top_p``.
* ``titan-embed-v2``: ``inputText``, ``dimensions`` (256/512/1024), ``normalize``,
  ``embeddingTypes``; ``titan-embed-v1``: ``inputText`` only (1536 dimensions).
* ``cohere-embed``: ``texts``, ``input_type`` (required), ``truncate``,
  ``embedding_types``.

Bodies AWS rejects are rejected with AWS's wording: Bedrock validates each body with the
model's JSON schema and answers ``Malformed input request: #/path: problem, please
reformat your input and try again.``

Text answers come from the labelled extractive stand-in (:mod:`.responder`); each JSON
body also carries ``"labkit": {"offline_stand_in": true, "note": ...}``, a field the
real models never send, so the response itself says who answered. Embeddings come from
all-MiniLM-L6-v2 (:mod:`.embeddings`). Cohere's ``input_type`` is validated but does
not change the vector (MiniLM is a symmetric model).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import embeddings, responder, tokens
from .catalog import FoundationModel
from .errors import malformed, validation

ANTHROPIC_VERSION = "bedrock-2023-05-31"
STAND_IN_FIELD = {"offline_stand_in": True, "note": responder.NOTE}
EMBEDDING_NOTE = ("Embedded offline by labkit with all-MiniLM-L6-v2 (384-d) mapped to the requested size "
                  "by a fixed orthogonal transform; not the provider's model.")


@dataclass
class TextRequest:
    prompt: responder.Prompt
    max_tokens: int
    stop_sequences: list[str] = field(default_factory=list)


@dataclass
class EmbedRequest:
    texts: list[str]
    dimension: int
    normalize: bool = True
    types: list[str] = field(default_factory=lambda: ["float"])
    input_type: str | None = None


# --- generic schema checks ----------------------------------------------------------------


def parse_body(body: bytes | str | None) -> dict[str, Any]:
    if body is None or body in (b"", ""):
        raise malformed("#: expected type: JSONObject, found: Null")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise malformed(f"the body is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise malformed(f"#: expected type: JSONObject, found: {type(data).__name__}")
    return data


def _keys(body: dict[str, Any], allowed: set[str], required: tuple[str, ...], path: str = "#") -> None:
    for key in required:
        if key not in body:
            raise malformed(f"{path}: required key [{key}] not found")
    for key in body:
        if key not in allowed:
            raise malformed(f"{path}: extraneous key [{key}] is not permitted")


def _number(body: dict[str, Any], key: str, path: str, lo: float | None, hi: float | None,
            integer: bool = False) -> None:
    if key not in body or body[key] is None:
        return
    v = body[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not isinstance(v, int)):
        raise malformed(f"{path}/{key}: expected type: {'Integer' if integer else 'Number'}, found: "
                        f"{type(v).__name__}")
    if lo is not None and v < lo:
        raise malformed(f"{path}/{key}: {v} is not greater or equal to {lo}")
    if hi is not None and v > hi:
        raise malformed(f"{path}/{key}: {v} is not less or equal to {hi}")


def _string_list(value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise malformed(f"{path}: expected type: JSONArray of strings")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise malformed(f"{path}: expected type: String, found: {type(value).__name__}")
    return value


# --- Anthropic Messages API -------------------------------------------------------------

_CLAUDE_KEYS = {"anthropic_version", "anthropic_beta", "max_tokens", "messages", "system", "stop_sequences",
                "temperature", "top_p", "top_k", "tools", "tool_choice", "metadata", "thinking"}


def _claude_content(content: Any, path: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise malformed(f"{path}: expected type: String or JSONArray")
    parts = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or "type" not in block:
            raise malformed(f"{path}/{i}: required key [type] not found")
        kind = block["type"]
        if kind == "text":
            parts.append(_text(block.get("text"), f"{path}/{i}/text"))
        elif kind == "document":
            src = block.get("source") or {}
            if src.get("type") == "text":
                parts.append(str(src.get("data", "")))
        elif kind == "tool_result":
            inner = block.get("content", "")
            parts.append(_claude_content(inner, f"{path}/{i}/content") if inner else "")
        elif kind not in ("image", "tool_use", "thinking", "redacted_thinking"):
            raise validation(f"messages: Input tag '{kind}' found using 'type' does not match any of the "
                             "expected tags: 'document', 'image', 'text', 'tool_result', 'tool_use'")
    return "\n".join(p for p in parts if p)


def claude_request(body: dict[str, Any], model: FoundationModel) -> TextRequest:
    if "prompt" in body and "messages" not in body:
        raise validation(f'"{model.api_name}" is not supported on this API. Please use the Messages API '
                         "instead.")
    _keys(body, _CLAUDE_KEYS, ("anthropic_version", "max_tokens", "messages"))
    if body["anthropic_version"] != ANTHROPIC_VERSION:
        raise malformed(f"#/anthropic_version: {body['anthropic_version']} is not a valid enum value")
    _number(body, "max_tokens", "#", 1, None, integer=True)
    if body["max_tokens"] > model.max_output_tokens:
        raise validation(f"max_tokens: {body['max_tokens']} > {model.max_output_tokens}, which is the maximum "
                         f"allowed number of output tokens for {model.api_name}")
    _number(body, "temperature", "#", 0, 1)
    _number(body, "top_p", "#", 0, 1)
    _number(body, "top_k", "#", 0, 500, integer=True)
    messages = body["messages"]
    if not isinstance(messages, list):
        raise malformed("#/messages: expected type: JSONArray")
    if not messages:
        raise validation("messages: at least one message is required")
    turns = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise malformed(f"#/messages/{i}: expected type: JSONObject")
        _keys(msg, {"role", "content"}, ("role", "content"), f"#/messages/{i}")
        role = msg["role"]
        if role not in ("user", "assistant"):
            raise validation(f"messages: Unexpected role \"{role}\". Allowed roles are \"user\" or \"assistant\". "
                             "Use the top-level \"system\" parameter for a system prompt.")
        if i == 0 and role != "user":
            raise validation('messages: first message must use the "user" role')
        if i and turns[-1][0] == role:
            raise validation(f'messages: roles must alternate between "user" and "assistant", but found '
                             f'multiple "{role}" roles in a row')
        turns.append((role, _claude_content(msg["content"], f"#/messages/{i}/content")))
    system = body.get("system")
    system_texts = [] if system is None else [_claude_content(system, "#/system")]
    stops = _string_list(body.get("stop_sequences", []), "#/stop_sequences")
    return TextRequest(responder.Prompt(system_texts, turns), body["max_tokens"], stops)


def claude_body(gen: responder.Generation, model: FoundationModel) -> dict[str, Any]:
    return {
        "id": f"msg_bdrk_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model.api_name,
        "content": [{"type": "text", "text": gen.text}],
        "stop_reason": gen.stop_reason,
        "stop_sequence": gen.stop_sequence,
        "usage": {"input_tokens": gen.input_tokens, "output_tokens": gen.output_tokens},
        "labkit": STAND_IN_FIELD,
    }


def claude_chunks(gen: responder.Generation, model: FoundationModel, metrics: dict[str, int]) -> list[dict]:
    body = claude_body(gen, model)
    start = {**body, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {"input_tokens": gen.input_tokens, "output_tokens": 1}}
    out: list[dict[str, Any]] = [{"type": "message_start", "message": start},
                                 {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "text", "text": ""}}]
    for piece in _deltas(gen.text):
        out.append({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
    out.append({"type": "content_block_stop", "index": 0})
    out.append({"type": "message_delta", "delta": {"stop_reason": gen.stop_reason,
                                                    "stop_sequence": gen.stop_sequence},
                "usage": {"output_tokens": gen.output_tokens}})
    out.append({"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics})
    return out


# --- Amazon Titan Text --------------------------------------------------------------------

_TITAN_REASON = {"end_turn": "FINISH", "max_tokens": "LENGTH", "stop_sequence": "STOP_CRITERIA_MET"}


def titan_request(body: dict[str, Any], model: FoundationModel) -> TextRequest:
    _keys(body, {"inputText", "textGenerationConfig"}, ("inputText",))
    text = _text(body["inputText"], "#/inputText")
    if not text:
        raise malformed("#/inputText: expected minLength: 1, actual: 0")
    config = body.get("textGenerationConfig") or {}
    if not isinstance(config, dict):
        raise malformed("#/textGenerationConfig: expected type: JSONObject")
    path = "#/textGenerationConfig"
    _keys(config, {"maxTokenCount", "stopSequences", "temperature", "topP"}, (), path)
    _number(config, "maxTokenCount", path, 0, model.max_output_tokens, integer=True)
    _number(config, "temperature", path, 0, 1)
    _number(config, "topP", path, 0, 1)
    stops = _string_list(config.get("stopSequences", []), f"{path}/stopSequences")
    return TextRequest(responder.Prompt([], [("user", text)]), config.get("maxTokenCount", 512), stops)


def titan_body(gen: responder.Generation, model: FoundationModel) -> dict[str, Any]:
    return {"inputTextTokenCount": gen.input_tokens,
            "results": [{"tokenCount": gen.output_tokens, "outputText": gen.text,
                         "completionReason": _TITAN_REASON[gen.stop_reason]}],
            "labkit": STAND_IN_FIELD}


def titan_chunks(gen: responder.Generation, model: FoundationModel, metrics: dict[str, int]) -> list[dict]:
    pieces = _deltas(gen.text) or [""]
    out, total = [], 0
    for i, piece in enumerate(pieces):
        total += tokens.count(piece)
        last = i == len(pieces) - 1
        chunk: dict[str, Any] = {"outputText": piece, "index": 0,
                                 "totalOutputTextTokenCount": gen.output_tokens if last else total,
                                 "completionReason": _TITAN_REASON[gen.stop_reason] if last else None,
                                 "inputTextTokenCount": gen.input_tokens if i == 0 else None}
        if last:
            chunk["amazon-bedrock-invocationMetrics"] = metrics
            chunk["labkit"] = STAND_IN_FIELD
        out.append(chunk)
    return out


# --- Meta Llama ---------------------------------------------------------------------------


def llama_request(body: dict[str, Any], model: FoundationModel) -> TextRequest:
    _keys(body, {"prompt", "temperature", "top_p", "max_gen_len", "images"}, ("prompt",))
    text = _text(body["prompt"], "#/prompt")
    _number(body, "temperature", "#", 0, 1)
    _number(body, "top_p", "#", 0, 1)
    _number(body, "max_gen_len", "#", 1, model.max_output_tokens, integer=True)
    return TextRequest(responder.Prompt([], _llama_turns(text)), body.get("max_gen_len", 512))


def _llama_turns(text: str) -> list[tuple[str, str]]:
    """Turns of a Llama 3 chat prompt (``<|start_header_id|>role<|end_header_id|>``), or one user turn."""
    import re

    parts = re.split(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>", text)
    if len(parts) == 1:
        return [("user", text)]
    turns = []
    for role, content in zip(parts[1::2], parts[2::2], strict=True):
        content = content.replace("<|eot_id|>", "").strip()
        if content:
            turns.append(("user" if role == "system" else role, content))
    return turns or [("user", text)]


def llama_body(gen: responder.Generation, model: FoundationModel) -> dict[str, Any]:
    return {"generation": gen.text, "prompt_token_count": gen.input_tokens,
            "generation_token_count": gen.output_tokens,
            "stop_reason": "length" if gen.stop_reason == "max_tokens" else "stop",
            "labkit": STAND_IN_FIELD}


def llama_chunks(gen: responder.Generation, model: FoundationModel, metrics: dict[str, int]) -> list[dict]:
    pieces = _deltas(gen.text) or [""]
    out, total = [], 0
    for i, piece in enumerate(pieces):
        total += tokens.count(piece)
        last = i == len(pieces) - 1
        chunk: dict[str, Any] = {"generation": piece, "prompt_token_count": gen.input_tokens if i == 0 else None,
                                 "generation_token_count": gen.output_tokens if last else total,
                                 "stop_reason": ("length" if gen.stop_reason == "max_tokens" else "stop")
                                 if last else None}
        if last:
            chunk["amazon-bedrock-invocationMetrics"] = metrics
            chunk["labkit"] = STAND_IN_FIELD
        out.append(chunk)
    return out


# --- embeddings ---------------------------------------------------------------------------

TITAN_V2_DIMENSIONS = (256, 512, 1024)
COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
COHERE_TYPES = ("float", "int8", "uint8", "binary", "ubinary")


def titan_embed_request(body: dict[str, Any], model: FoundationModel) -> EmbedRequest:
    if model.family == "titan-embed-v1":
        _keys(body, {"inputText"}, ("inputText",))
    else:
        _keys(body, {"inputText", "dimensions", "normalize", "embeddingTypes"}, ("inputText",))
    text = _text(body["inputText"], "#/inputText")
    if not text:
        raise malformed("#/inputText: expected minLength: 1, actual: 0")
    if len(text) > 50000:
        raise malformed(f"#/inputText: expected maxLength: 50000, actual: {len(text)}")
    dim = body.get("dimensions", model.embedding_dimension)
    if model.family == "titan-embed-v2" and dim not in TITAN_V2_DIMENSIONS:
        raise malformed(f"#/dimensions: {dim} is not a valid enum value")
    normalize = body.get("normalize", True)
    if not isinstance(normalize, bool):
        raise malformed(f"#/normalize: expected type: Boolean, found: {type(normalize).__name__}")
    types = body.get("embeddingTypes", ["float"])
    for t in _string_list(types, "#/embeddingTypes"):
        if t not in ("float", "binary"):
            raise malformed(f"#/embeddingTypes/{types.index(t)}: {t} is not a valid enum value")
    return EmbedRequest([text], int(dim or 1024), normalize if model.family == "titan-embed-v2" else True,
                        list(types))


def titan_embed_body(req: EmbedRequest, vectors: np.ndarray, n_tokens: int, model: FoundationModel) -> dict:
    vec = [float(x) for x in vectors[0]]
    out: dict[str, Any] = {"embedding": vec, "inputTextTokenCount": n_tokens}
    if model.family == "titan-embed-v2":
        by_type: dict[str, Any] = {}
        if "float" in req.types:
            by_type["float"] = vec
        if "binary" in req.types:
            by_type["binary"] = [1 if x > 0 else 0 for x in vec]
        out["embeddingsByType"] = by_type
    out["labkit"] = {"offline_stand_in": True, "note": EMBEDDING_NOTE}
    return out


def cohere_embed_request(body: dict[str, Any], model: FoundationModel) -> EmbedRequest:
    _keys(body, {"texts", "images", "input_type", "truncate", "embedding_types"}, ("input_type",))
    if body["input_type"] not in COHERE_INPUT_TYPES:
        raise malformed(f"#/input_type: {body['input_type']} is not a valid enum value")
    if "texts" not in body:
        raise malformed("#: required key [texts] not found")
    texts = _string_list(body["texts"], "#/texts")
    if len(texts) > 96:
        raise malformed(f"#/texts: expected maxItems: 96, actual: {len(texts)}")
    for i, t in enumerate(texts):
        if len(t) > 2048:
            raise malformed(f"#/texts/{i}: expected maxLength: 2048, actual: {len(t)}")
    if body.get("truncate", "NONE") not in ("NONE", "START", "END"):
        raise malformed(f"#/truncate: {body['truncate']} is not a valid enum value")
    types = body.get("embedding_types")
    if types is not None:
        for i, t in enumerate(_string_list(types, "#/embedding_types")):
            if t not in COHERE_TYPES:
                raise malformed(f"#/embedding_types/{i}: {t} is not a valid enum value")
    return EmbedRequest(texts, model.embedding_dimension or 1024, True, list(types) if types else [],
                        body["input_type"])


def _quantize(vectors: np.ndarray, kind: str) -> list[list[int]]:
    if kind in ("int8", "uint8"):
        scale = 127.0 / np.maximum(np.abs(vectors).max(axis=1, keepdims=True), 1e-12)
        q = np.clip(np.round(vectors * scale), -128, 127).astype(int)
        return (q + 128).tolist() if kind == "uint8" else q.tolist()
    bits = np.packbits(vectors > 0, axis=1).astype(int)
    return bits.tolist() if kind == "ubinary" else (bits - 128).tolist()


def cohere_embed_body(req: EmbedRequest, vectors: np.ndarray, n_tokens: int, model: FoundationModel) -> dict:
    floats = [[float(x) for x in v] for v in vectors]
    out: dict[str, Any] = {"id": str(uuid.uuid4()), "texts": req.texts}
    if req.types:
        out["embeddings"] = {t: (floats if t == "float" else _quantize(vectors, t)) for t in req.types}
        out["response_type"] = "embeddings_by_type"
    else:
        out["embeddings"] = floats
        out["response_type"] = "embeddings_floats"
    out["labkit"] = {"offline_stand_in": True, "note": EMBEDDING_NOTE}
    return out


def embed(req: EmbedRequest) -> tuple[np.ndarray, int]:
    """The vectors of an embedding request and its input token count."""
    vecs = embeddings.embed(req.texts, req.dimension, req.normalize)
    return vecs, sum(tokens.count(t) for t in req.texts)


# --- dispatch by family -------------------------------------------------------------------

TEXT_FAMILIES = {
    "anthropic": (claude_request, claude_body, claude_chunks),
    "titan-text": (titan_request, titan_body, titan_chunks),
    "llama": (llama_request, llama_body, llama_chunks),
}
EMBED_FAMILIES = {
    "titan-embed-v2": (titan_embed_request, titan_embed_body),
    "titan-embed-v1": (titan_embed_request, titan_embed_body),
    "cohere-embed": (cohere_embed_request, cohere_embed_body),
}


def _deltas(text: str, per_chunk: int = 4) -> list[str]:
    """``text`` in streaming deltas of a few tokens each; joined they give ``text``."""
    pieces = tokens.chunks(text)
    return ["".join(pieces[i:i + per_chunk]) for i in range(0, len(pieces), per_chunk)]
