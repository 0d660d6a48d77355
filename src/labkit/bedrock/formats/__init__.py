"""Each model family's InvokeModel body: request validation, response body, stream chunks.

The family of a model is in the catalogue (``data/bedrock/models.json``); one module per
provider reads its request into the family-neutral :class:`~labkit.bedrock.chat.ChatRequest`
(text models), an :class:`~.embed.EmbedRequest` or an :class:`~.image.ImageRequest`, and
writes the answer back in the provider's shape:

============== ======================================== ==========================
family         models                                   module
============== ======================================== ==========================
anthropic      Claude (Messages API, tools)             :mod:`.anthropic`
nova           Nova Micro/Lite/Pro/Premier (messages-v1) :mod:`.nova`
titan-text     Titan Text Express/Lite/Premier          :mod:`.titan`
llama          Llama 3, 3.1, 3.2, 3.3, 4                :mod:`.meta`
mistral        Mistral 7B, Mixtral, Large, Small        :mod:`.mistral`
mistral-chat   Pixtral Large                            :mod:`.mistral`
cohere-command Command R, R+                            :mod:`.cohere`
ai21-jamba     Jamba 1.5 Mini/Large                     :mod:`.ai21`
deepseek       DeepSeek-R1                              :mod:`.deepseek`
titan-embed-*  Titan Text Embeddings G1, V2             :mod:`.embed`
titan-embed-image, cohere-embed(-v4), nova-embed        :mod:`.embed`
amazon-image   Titan Image Generator, Nova Canvas       :mod:`.image`
stability-*    SDXL, SD3.5 Large, Stable Image          :mod:`.image`
============== ======================================== ==========================

Bodies AWS rejects are rejected with AWS's wording (``Malformed input request: #/path:
problem, please reformat your input and try again.``, or the provider's own message).
Nothing outside the providers' response shapes is added: who answered offline is said
in the ``x-labkit-stand-in`` response header (see :mod:`labkit.bedrock.runtime`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import ai21, anthropic, cohere, deepseek, embed, image, meta, mistral, nova, titan
from .common import deltas, parse_body


@dataclass(frozen=True)
class TextFamily:
    parse: Callable[..., Any]
    body: Callable[..., dict[str, Any]]
    chunks: Callable[..., list[dict[str, Any]]]


@dataclass(frozen=True)
class EmbedFamily:
    parse: Callable[..., embed.EmbedRequest]
    body: Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class ImageFamily:
    parse: Callable[..., image.ImageRequest]
    body: Callable[..., dict[str, Any]]


def _text(module: Any) -> TextFamily:
    return TextFamily(module.parse, module.body, module.chunks)


TEXT: dict[str, TextFamily] = {
    "anthropic": _text(anthropic), "nova": _text(nova), "titan-text": _text(titan), "llama": _text(meta),
    "mistral": _text(mistral), "mistral-chat": _text(mistral), "cohere-command": _text(cohere),
    "ai21-jamba": _text(ai21), "deepseek": _text(deepseek),
}
EMBED: dict[str, EmbedFamily] = {
    "titan-embed-v2": EmbedFamily(embed.titan_text_parse, embed.titan_text_body),
    "titan-embed-v1": EmbedFamily(embed.titan_text_parse, embed.titan_text_body),
    "titan-embed-image": EmbedFamily(embed.titan_image_parse, embed.titan_image_body),
    "cohere-embed": EmbedFamily(embed.cohere_parse, embed.cohere_body),
    "cohere-embed-v4": EmbedFamily(embed.cohere_parse, embed.cohere_body),
    "nova-embed": EmbedFamily(embed.nova_parse, embed.nova_body),
}
IMAGE: dict[str, ImageFamily] = {
    "amazon-image": ImageFamily(image.amazon_parse, image.amazon_body),
    "stability-sdxl": ImageFamily(image.sdxl_parse, image.sdxl_body),
    "stability-sd3": ImageFamily(image.sd3_parse, image.sd3_body),
}

__all__ = ["EMBED", "IMAGE", "TEXT", "EmbedFamily", "ImageFamily", "TextFamily", "deltas", "parse_body"]
