"""The foundation models the offline backend knows, as ``bedrock`` lists them.

Each entry holds the public ``FoundationModelSummary`` fields AWS returns for the model
in us-east-1 (names, modalities, streaming, customizations, inference types, lifecycle)
and, apart from them, what the offline engine needs: the request ``family`` (which body
format InvokeModel expects), the maximum output tokens the model accepts, and for
embedding models the vector size. Model ids and limits follow the Bedrock user guide's
model tables ("Supported foundation models", "Inference request parameters").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REGION = "us-east-1"


@dataclass(frozen=True)
class FoundationModel:
    model_id: str
    name: str
    provider: str
    family: str  # anthropic | titan-text | llama | titan-embed-v2 | titan-embed-v1 | cohere-embed
    input_modalities: tuple[str, ...] = ("TEXT",)
    output_modalities: tuple[str, ...] = ("TEXT",)
    streaming: bool | None = True
    customizations: tuple[str, ...] = ()
    inference_types: tuple[str, ...] = ("ON_DEMAND",)
    status: str = "ACTIVE"
    max_output_tokens: int = 4096
    embedding_dimension: int | None = None
    api_name: str = ""  # the name Anthropic's API reports as ``model``
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:aws:bedrock:{REGION}::foundation-model/{self.model_id}"

    @property
    def is_embedding(self) -> bool:
        return "EMBEDDING" in self.output_modalities

    def summary(self) -> dict[str, Any]:
        """The ``FoundationModelSummary`` / ``FoundationModelDetails`` structure."""
        out: dict[str, Any] = {
            "modelArn": self.arn,
            "modelId": self.model_id,
            "modelName": self.name,
            "providerName": self.provider,
            "inputModalities": list(self.input_modalities),
            "outputModalities": list(self.output_modalities),
        }
        if self.streaming is not None:
            out["responseStreamingSupported"] = self.streaming
        out["customizationsSupported"] = list(self.customizations)
        out["inferenceTypesSupported"] = list(self.inference_types)
        out["modelLifecycle"] = {"status": self.status}
        return out


_CLAUDE = dict(provider="Anthropic", family="anthropic", input_modalities=("TEXT", "IMAGE"))

MODELS: tuple[FoundationModel, ...] = (
    FoundationModel("anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku", **_CLAUDE,
                    customizations=("FINE_TUNING",), api_name="claude-3-haiku-20240307"),
    FoundationModel("anthropic.claude-3-sonnet-20240229-v1:0", "Claude 3 Sonnet", **_CLAUDE,
                    api_name="claude-3-sonnet-20240229"),
    FoundationModel("anthropic.claude-3-opus-20240229-v1:0", "Claude 3 Opus", **_CLAUDE,
                    api_name="claude-3-opus-20240229"),
    FoundationModel("anthropic.claude-3-5-haiku-20241022-v1:0", "Claude 3.5 Haiku", provider="Anthropic",
                    family="anthropic", max_output_tokens=8192, api_name="claude-3-5-haiku-20241022"),
    FoundationModel("anthropic.claude-3-5-sonnet-20240620-v1:0", "Claude 3.5 Sonnet", **_CLAUDE,
                    max_output_tokens=8192, api_name="claude-3-5-sonnet-20240620"),
    FoundationModel("anthropic.claude-3-5-sonnet-20241022-v2:0", "Claude 3.5 Sonnet v2", **_CLAUDE,
                    max_output_tokens=8192, api_name="claude-3-5-sonnet-20241022"),
    FoundationModel("amazon.titan-text-express-v1", "Titan Text G1 - Express", provider="Amazon",
                    family="titan-text", customizations=("FINE_TUNING", "CONTINUED_PRE_TRAINING"),
                    max_output_tokens=8192),
    FoundationModel("amazon.titan-text-lite-v1", "Titan Text G1 - Lite", provider="Amazon",
                    family="titan-text", customizations=("FINE_TUNING", "CONTINUED_PRE_TRAINING"),
                    max_output_tokens=4096),
    FoundationModel("amazon.titan-embed-text-v2:0", "Titan Text Embeddings V2", provider="Amazon",
                    family="titan-embed-v2", output_modalities=("EMBEDDING",), streaming=None,
                    embedding_dimension=1024),
    FoundationModel("amazon.titan-embed-text-v1", "Titan Embeddings G1 - Text", provider="Amazon",
                    family="titan-embed-v1", output_modalities=("EMBEDDING",), streaming=None,
                    embedding_dimension=1536),
    FoundationModel("cohere.embed-english-v3", "Embed English", provider="Cohere",
                    family="cohere-embed", output_modalities=("EMBEDDING",), streaming=None,
                    embedding_dimension=1024),
    FoundationModel("cohere.embed-multilingual-v3", "Embed Multilingual", provider="Cohere",
                    family="cohere-embed", output_modalities=("EMBEDDING",), streaming=None,
                    embedding_dimension=1024),
    FoundationModel("meta.llama3-8b-instruct-v1:0", "Llama 3 8B Instruct", provider="Meta",
                    family="llama", max_output_tokens=2048),
    FoundationModel("meta.llama3-70b-instruct-v1:0", "Llama 3 70B Instruct", provider="Meta",
                    family="llama", max_output_tokens=2048),
)

_BY_ID = {m.model_id: m for m in MODELS}
_BY_ARN = {m.arn: m for m in MODELS}


def find(identifier: str) -> FoundationModel | None:
    """The model named by id, foundation-model ARN, or ``us.``/``eu.`` inference profile id."""
    if identifier in _BY_ID:
        return _BY_ID[identifier]
    if identifier in _BY_ARN:
        return _BY_ARN[identifier]
    if identifier.startswith("arn:") and "/foundation-model/" not in identifier:
        identifier = identifier.rsplit("/", 1)[-1]
    for prefix in ("us.", "eu.", "apac.", "global."):
        if identifier.startswith(prefix) and identifier[len(prefix):] in _BY_ID:
            return _BY_ID[identifier[len(prefix):]]
    return None


def list_models(by_provider: str | None = None, by_output_modality: str | None = None,
                by_inference_type: str | None = None,
                by_customization_type: str | None = None) -> list[FoundationModel]:
    """Filter as ListFoundationModels does (``byProvider`` is case-insensitive on AWS)."""
    out = []
    for m in MODELS:
        if by_provider and m.provider.lower() != by_provider.lower():
            continue
        if by_output_modality and by_output_modality not in m.output_modalities:
            continue
        if by_inference_type and by_inference_type not in m.inference_types:
            continue
        if by_customization_type and by_customization_type not in m.customizations:
            continue
        out.append(m)
    return out
