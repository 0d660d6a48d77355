"""Embedding models: Titan Text Embeddings (G1, V2), Titan Multimodal, Cohere Embed v3 and v4, Nova Multimodal.

* ``titan-embed-v2``: ``inputText``, ``dimensions`` (256/512/1024), ``normalize``,
  ``embeddingTypes`` (``float``, ``binary``) -> ``{"embedding", "embeddingsByType",
  "inputTextTokenCount"}``; ``titan-embed-v1`` (and the legacy ``amazon.titan-embed-g1-text-02``):
  ``inputText`` only, 1,536 dimensions.
* ``titan-embed-image``: ``inputText`` and/or ``inputImage`` (base64),
  ``embeddingConfig.outputEmbeddingLength`` (256/384/1024) -> ``{"embedding", "inputTextTokenCount"}``.
* ``cohere-embed`` (v3): ``texts`` (up to 96) or ``images`` (one data URI), ``input_type``
  (required), ``truncate``, ``embedding_types``; ``cohere-embed-v4`` adds ``output_dimension``
  (256/512/1024/1536) and ``max_tokens``.
* ``nova-embed``: ``taskType`` ``SINGLE_EMBEDDING`` with ``singleEmbeddingParams``
  (``embeddingPurpose``, ``embeddingDimension`` 3072/1024/384/256, ``text`` or ``image``) ->
  ``{"embeddings": [{"embeddingType", "embedding"}]}`` (schema recalled, not read: see the catalogue).

Text vectors come from all-MiniLM-L6-v2 (:mod:`labkit.bedrock.embeddings`); image vectors
from a fixed descriptor of the image's pixels (:func:`labkit.bedrock.embeddings.embed_image`),
real but not semantic and not aligned with text: text-to-image search does not work offline.
Cohere's ``input_type`` and Nova's ``embeddingPurpose`` are validated but do not change the
vector (MiniLM is a symmetric model).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import embeddings, tokens
from ..catalog import FoundationModel
from ..errors import malformed, validation
from . import common

COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
COHERE_TYPES = ("float", "int8", "uint8", "binary", "ubinary")
NOVA_PURPOSES = ("GENERIC_INDEX", "GENERIC_RETRIEVAL", "TEXT_RETRIEVAL", "IMAGE_RETRIEVAL", "VIDEO_RETRIEVAL",
                 "DOCUMENT_RETRIEVAL", "AUDIO_RETRIEVAL", "CLASSIFICATION", "CLUSTERING")


@dataclass
class EmbedRequest:
    texts: list[str] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    dimension: int = 1024
    normalize: bool = True
    types: list[str] = field(default_factory=lambda: ["float"])
    input_type: str | None = None


@dataclass
class Embedded:
    texts: np.ndarray
    images: np.ndarray
    input_tokens: int

    def first(self) -> list[float]:
        both = self.texts if len(self.texts) else self.images
        return [float(x) for x in both[0]]


def embed(req: EmbedRequest) -> Embedded:
    texts = embeddings.embed(req.texts, req.dimension, req.normalize) if req.texts else np.zeros((0, req.dimension))
    images = (np.stack([embeddings.embed_image(b, req.dimension) for b in req.images]) if req.images
              else np.zeros((0, req.dimension)))
    return Embedded(texts, images, sum(tokens.count(t) for t in req.texts))


# --- Titan ---------------------------------------------------------------------------------------


def titan_text_parse(body: dict[str, Any], model: FoundationModel) -> EmbedRequest:
    if model.family == "titan-embed-v1":
        common.keys(body, {"inputText"}, ("inputText",))
    else:
        common.keys(body, {"inputText", "dimensions", "normalize", "embeddingTypes"}, ("inputText",))
    text = common.text(body["inputText"], "#/inputText", 1)
    if len(text) > 50000:
        raise malformed(f"#/inputText: expected maxLength: 50000, actual: {len(text)}")
    dim = body.get("dimensions", model.embedding_dimension)
    if model.family == "titan-embed-v2":
        common.enum(dim, tuple(model.embedding_dimensions), "#/dimensions")
    normalize = body.get("normalize", True)
    if not isinstance(normalize, bool):
        raise malformed(f"#/normalize: expected type: Boolean, found: {type(normalize).__name__}")
    types = common.string_list(body.get("embeddingTypes", ["float"]), "#/embeddingTypes")
    for i, t in enumerate(types):
        common.enum(t, ("float", "binary"), f"#/embeddingTypes/{i}")
    return EmbedRequest([text], [], int(dim or 1024), normalize if model.family == "titan-embed-v2" else True,
                        list(types))


def titan_text_body(req: EmbedRequest, out: Embedded, model: FoundationModel) -> dict[str, Any]:
    vec = out.first()
    body: dict[str, Any] = {"embedding": vec, "inputTextTokenCount": out.input_tokens}
    if model.family == "titan-embed-v2":
        by_type: dict[str, Any] = {}
        if "float" in req.types:
            by_type["float"] = vec
        if "binary" in req.types:
            by_type["binary"] = [1 if x > 0 else 0 for x in vec]
        body["embeddingsByType"] = by_type
    return body


def titan_image_parse(body: dict[str, Any], model: FoundationModel) -> EmbedRequest:
    common.keys(body, {"inputText", "inputImage", "embeddingConfig"})
    if "inputText" not in body and "inputImage" not in body:
        raise malformed("#: at least one of [inputText, inputImage] is required")
    config = body.get("embeddingConfig") or {}
    common.keys(config, {"outputEmbeddingLength"}, (), "#/embeddingConfig")
    dim = common.enum(config.get("outputEmbeddingLength", 1024), tuple(model.embedding_dimensions),
                      "#/embeddingConfig/outputEmbeddingLength")
    texts = [common.text(body["inputText"], "#/inputText", 1)] if "inputText" in body else []
    images = [common.b64(body["inputImage"], "#/inputImage")] if "inputImage" in body else []
    return EmbedRequest(texts, images, dim)


def titan_image_body(req: EmbedRequest, out: Embedded, model: FoundationModel) -> dict[str, Any]:
    vecs = [v for v in (*out.texts, *out.images)]
    combined = np.mean(np.stack(vecs), axis=0)
    combined = combined / max(float(np.linalg.norm(combined)), 1e-12)
    return {"embedding": [float(x) for x in combined], "inputTextTokenCount": out.input_tokens}


# --- Cohere ---------------------------------------------------------------------------------------


def cohere_parse(body: dict[str, Any], model: FoundationModel) -> EmbedRequest:
    v4 = model.family == "cohere-embed-v4"
    allowed = {"texts", "images", "input_type", "truncate", "embedding_types"}
    if v4:
        allowed |= {"output_dimension", "max_tokens", "inputs"}
    common.keys(body, allowed, ("input_type",))
    input_type = common.enum(body["input_type"], COHERE_INPUT_TYPES, "#/input_type")
    texts = common.string_list(body.get("texts", []), "#/texts", 96)
    images = [common.b64(uri, f"#/images/{i}") for i, uri in enumerate(
        common.string_list(body.get("images", []), "#/images", 1 if not v4 else 96))]
    for inp in body.get("inputs") or []:
        for part in inp.get("content") or []:
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                images.append(common.b64((part.get("image_url") or {}).get("url", ""), "#/inputs"))
    if not texts and not images:
        raise malformed("#: required key [texts] not found")
    if texts and images and not v4:
        raise validation("Provide either texts or images, not both.")
    for i, t in enumerate(texts):
        if not v4 and len(t) > 2048:
            raise malformed(f"#/texts/{i}: expected maxLength: 2048, actual: {len(t)}")
    common.enum(body.get("truncate", "NONE"), ("NONE", "START", "END", "LEFT", "RIGHT"), "#/truncate")
    types = body.get("embedding_types")
    if types is not None:
        for i, t in enumerate(common.string_list(types, "#/embedding_types")):
            common.enum(t, COHERE_TYPES, f"#/embedding_types/{i}")
    dim = model.embedding_dimension or 1024
    if v4:
        dim = common.enum(body.get("output_dimension", dim), tuple(model.embedding_dimensions), "#/output_dimension")
    return EmbedRequest(texts, images, dim, True, list(types) if types else [], input_type)


def _quantize(vectors: np.ndarray, kind: str) -> list[list[int]]:
    if kind in ("int8", "uint8"):
        scale = 127.0 / np.maximum(np.abs(vectors).max(axis=1, keepdims=True), 1e-12)
        q = np.clip(np.round(vectors * scale), -128, 127).astype(int)
        return (q + 128).tolist() if kind == "uint8" else q.tolist()
    bits = np.packbits(vectors > 0, axis=1).astype(int)
    return bits.tolist() if kind == "ubinary" else (bits - 128).tolist()


def cohere_body(req: EmbedRequest, out: Embedded, model: FoundationModel) -> dict[str, Any]:
    vectors = np.concatenate([out.texts, out.images]) if len(out.images) else out.texts
    floats = [[float(x) for x in v] for v in vectors]
    body: dict[str, Any] = {"id": str(uuid.uuid4()), "texts": req.texts}
    if req.images:
        body["images"] = [{"width": 0, "height": 0, "format": "image", "bit_depth": 8} for _ in req.images]
    if req.types or model.family == "cohere-embed-v4":
        types = req.types or ["float"]
        body["embeddings"] = {t: (floats if t == "float" else _quantize(vectors, t)) for t in types}
        body["response_type"] = "embeddings_by_type"
    else:
        body["embeddings"] = floats
        body["response_type"] = "embeddings_floats"
    return body


# --- Nova Multimodal Embeddings ------------------------------------------------------------------


def nova_parse(body: dict[str, Any], model: FoundationModel) -> EmbedRequest:
    common.keys(body, {"schemaVersion", "taskType", "singleEmbeddingParams", "segmentedEmbeddingParams"},
                ("taskType",))
    common.enum(body["taskType"], ("SINGLE_EMBEDDING", "SEGMENTED_EMBEDDING"), "#/taskType")
    if body["taskType"] != "SINGLE_EMBEDDING":
        raise validation("SEGMENTED_EMBEDDING (long text, audio and video in segments) is not emulated offline; use "
                         "SINGLE_EMBEDDING.")
    params = body.get("singleEmbeddingParams")
    if not isinstance(params, dict):
        raise malformed("#: required key [singleEmbeddingParams] not found")
    path = "#/singleEmbeddingParams"
    common.keys(params, {"embeddingPurpose", "embeddingDimension", "text", "image", "audio", "video", "document"},
                ("embeddingPurpose",), path)
    purpose = common.enum(params["embeddingPurpose"], NOVA_PURPOSES, f"{path}/embeddingPurpose")
    dim = common.enum(params.get("embeddingDimension", 3072), tuple(model.embedding_dimensions),
                      f"{path}/embeddingDimension")
    kinds = [k for k in ("text", "image", "audio", "video", "document") if k in params]
    if len(kinds) != 1:
        raise malformed(f"{path}: exactly one of [text, image, audio, video, document] is required")
    if kinds[0] == "text":
        t = params["text"]
        common.keys(t, {"truncationMode", "value", "source"}, ("truncationMode",), f"{path}/text")
        common.enum(t["truncationMode"], ("START", "END", "NONE"), f"{path}/text/truncationMode")
        return EmbedRequest([common.text(t.get("value"), f"{path}/text/value", 1)], [], dim, input_type=purpose)
    if kinds[0] == "image":
        img = params["image"]
        source = img.get("source") or {}
        if "bytes" not in source:
            raise validation("Amazon S3 image sources are not emulated offline; send source.bytes.")
        return EmbedRequest([], [common.b64(source["bytes"], f"{path}/image/source/bytes")], dim, input_type=purpose)
    raise validation(f"{kinds[0]} input is not emulated offline: the offline backend embeds text and images.")


def nova_body(req: EmbedRequest, out: Embedded, model: FoundationModel) -> dict[str, Any]:
    kind = "TEXT" if req.texts else "IMAGE"
    return {"embeddings": [{"embeddingType": kind, "embedding": out.first()}]}
