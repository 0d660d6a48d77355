"""The foundation models and inference profiles the offline Bedrock knows, as ``bedrock`` lists them.

The facts live in ``data/bedrock/models.json`` (each model with its source, the date it
was entered, how it got there and how sure it is; see ``data/bedrock/README.md``): ids,
names, modalities, streaming, customizations, inference types, lifecycle, context and
output limits, the Converse features of each model and the geographies of its
cross-region inference profiles. Prices are in ``data/pricing/bedrock.json``.

How a model may be named in a runtime call, as Bedrock decides it:

* its **base id** (``amazon.nova-lite-v1:0``) or **foundation-model ARN**: only when the
  model supports ``ON_DEMAND`` throughput. A profile-only model (``INFERENCE_PROFILE``
  alone, as Claude Haiku 4.5) is refused with AWS's ValidationException "Invocation of
  model ID ... with on-demand throughput isn’t supported. Retry your request with the ID
  or ARN of an inference profile that contains this model."
* a **system-defined inference profile** id (``us.anthropic.claude-haiku-4-5-20251001-v1:0``)
  or ARN (``arn:aws:bedrock:us-east-1:<account>:inference-profile/us.anthropic...``):
  a profile exists in the source regions of its geography; from us-east-1 those are the
  ``us.`` and ``global.`` profiles (an ``eu.`` id is an invalid identifier there).
* an **application inference profile** ARN (``.../application-inference-profile/<id>``),
  made with CreateInferenceProfile from a model or a system profile (:class:`ProfileStore`).

A model whose end of life has passed is neither listed nor served (ResourceNotFoundException).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import string
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .errors import BedrockError, not_found, validation

REGION = "us-east-1"
ON_DEMAND_REFUSED = ("Invocation of model ID {model} with on-demand throughput isn’t supported. Retry your request "
                     "with the ID or ARN of an inference profile that contains this model.")
END_OF_LIFE = "This model version has reached the end of its life. Please refer to the AWS documentation for more details."
INVALID_ID = "The provided model identifier is invalid."


def _catalogue_path():
    import labkit

    return labkit.data_path("bedrock", "models.json")


def _date(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC) if value else None


@dataclass(frozen=True)
class ConverseFeatures:
    """What the Converse API accepts for a model (Bedrock user guide, "Supported models and model features")."""

    system: bool = True
    document: bool = True
    vision: bool = False
    tool_use: bool = False
    streaming_tool_use: bool = False
    tool_choice: tuple[str, ...] = ()


@dataclass(frozen=True)
class FoundationModel:
    model_id: str
    name: str
    provider: str
    family: str  # the InvokeModel body format: see labkit.bedrock.formats
    input_modalities: tuple[str, ...] = ("TEXT",)
    output_modalities: tuple[str, ...] = ("TEXT",)
    streaming: bool | None = True
    customizations: tuple[str, ...] = ()
    inference_types: tuple[str, ...] = ("ON_DEMAND",)
    profiles: tuple[str, ...] = ()  # geographies of its system-defined profiles: us, eu, apac, jp, au, global
    context_tokens: int | None = None
    max_output_tokens: int = 4096
    lifecycle: dict[str, str] = field(default_factory=lambda: {"status": "ACTIVE"})
    converse: ConverseFeatures | None = None  # None: Converse does not support the model
    api_name: str = ""  # the name Anthropic's API reports as ``model``
    embedding_dimensions: tuple[int, ...] = ()
    temperature_or_top_p: bool = False  # Claude 4.5 models refuse both at once
    chat_body: bool = False  # Mistral Large/Small 24.02 also take the chat-completion body
    max_images: int = 0
    max_pixels: int = 0
    confidence: str = "medium"
    notes: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:aws:bedrock:{REGION}::foundation-model/{self.model_id}"

    @property
    def is_embedding(self) -> bool:
        return "EMBEDDING" in self.output_modalities

    @property
    def is_image(self) -> bool:
        return "IMAGE" in self.output_modalities

    @property
    def is_text(self) -> bool:
        return "TEXT" in self.output_modalities

    @property
    def embedding_dimension(self) -> int | None:
        return self.embedding_dimensions[0] if self.embedding_dimensions else None

    @property
    def on_demand(self) -> bool:
        return "ON_DEMAND" in self.inference_types

    @property
    def status(self) -> str:
        return self.lifecycle.get("status", "ACTIVE")

    def end_of_life(self, now: dt.datetime | None = None) -> bool:
        eol = _date(self.lifecycle.get("endOfLifeTime"))
        return eol is not None and (now or dt.datetime.now(dt.UTC)) >= eol

    def summary(self) -> dict[str, Any]:
        """The ``FoundationModelSummary`` / ``FoundationModelDetails`` structure."""
        out: dict[str, Any] = {
            "modelArn": self.arn,
            "modelId": self.model_id,
            "modelName": self.name,
            "providerName": self.provider,
            "inputModalities": [m for m in self.input_modalities if m in ("TEXT", "IMAGE", "EMBEDDING")],
            "outputModalities": list(self.output_modalities),
        }
        if self.streaming is not None:
            out["responseStreamingSupported"] = self.streaming
        out["customizationsSupported"] = list(self.customizations)
        out["inferenceTypesSupported"] = list(self.inference_types)
        life: dict[str, Any] = {"status": self.status}
        for key in ("startOfLifeTime", "legacyTime", "endOfLifeTime"):
            if key in self.lifecycle:
                life[key] = _date(self.lifecycle[key])
        out["modelLifecycle"] = life
        return out


@dataclass(frozen=True)
class InferenceProfile:
    """A system-defined (cross-region) or application inference profile."""

    profile_id: str
    name: str
    description: str
    arn: str
    model_arns: tuple[str, ...]
    model: FoundationModel
    kind: str = "SYSTEM_DEFINED"  # or APPLICATION
    created: dt.datetime = field(default_factory=lambda: dt.datetime(2024, 8, 27, tzinfo=dt.UTC))
    tags: tuple[tuple[str, str], ...] = ()

    def describe(self) -> dict[str, Any]:
        """The ``InferenceProfileSummary`` / GetInferenceProfile structure."""
        return {"inferenceProfileName": self.name, "description": self.description, "createdAt": self.created,
                "updatedAt": self.created, "inferenceProfileArn": self.arn,
                "models": [{"modelArn": a} for a in self.model_arns], "inferenceProfileId": self.profile_id,
                "status": "ACTIVE", "type": self.kind}


def _model(entry: dict[str, Any], defaults: dict[str, Any]) -> FoundationModel:
    c = entry.get("converse")
    features = None if c is None else ConverseFeatures(
        c["system"], c["document"], c["vision"], c["tool_use"], c["streaming_tool_use"], tuple(c["tool_choice"]))
    provenance = {k: entry.get(k, v) for k, v in defaults.items()}
    return FoundationModel(
        model_id=entry["model_id"], name=entry["name"], provider=entry["provider"], family=entry["family"],
        input_modalities=tuple(entry["input_modalities"]), output_modalities=tuple(entry["output_modalities"]),
        streaming=entry["streaming"], customizations=tuple(entry["customizations"]),
        inference_types=tuple(entry["inference_types"]), profiles=tuple(entry["profiles"]),
        context_tokens=entry.get("context_tokens"), max_output_tokens=entry.get("max_output_tokens", 4096),
        lifecycle=dict(entry["lifecycle"]), converse=features, api_name=entry.get("api_name", ""),
        embedding_dimensions=tuple(entry.get("embedding_dimensions", ())),
        temperature_or_top_p=entry.get("temperature_or_top_p", False), chat_body=entry.get("chat_body", False),
        max_images=entry.get("max_images", 0), max_pixels=entry.get("max_pixels", 0),
        confidence=entry["confidence"], notes=entry.get("notes", ""), provenance=provenance)


@lru_cache(maxsize=1)
def _load() -> tuple[tuple[FoundationModel, ...], dict[str, Any]]:
    doc = json.loads(_catalogue_path().read_text())
    return tuple(_model(e, doc["defaults"]) for e in doc["models"]), doc["geographies"]


def all_models() -> tuple[FoundationModel, ...]:
    """Every model of the catalogue, past its end of life included."""
    return _load()[0]


def geographies() -> dict[str, Any]:
    return _load()[1]


@lru_cache(maxsize=1)
def _by_id() -> dict[str, FoundationModel]:
    return {m.model_id: m for m in all_models()}


def model(model_id: str) -> FoundationModel | None:
    """The catalogue entry of a base model id (even past its end of life)."""
    return _by_id().get(model_id)


def listed(now: dt.datetime | None = None) -> list[FoundationModel]:
    """The models ListFoundationModels shows today: all but those past their end of life."""
    return [m for m in all_models() if not m.end_of_life(now)]


def list_models(by_provider: str | None = None, by_output_modality: str | None = None,
                by_inference_type: str | None = None,
                by_customization_type: str | None = None) -> list[FoundationModel]:
    """Filter as ListFoundationModels does (``byProvider`` is case-insensitive on AWS)."""
    out = []
    for m in listed():
        if by_provider and m.provider.lower() != by_provider.lower() and \
                m.model_id.split(".")[0] != by_provider.lower():
            continue
        if by_output_modality and by_output_modality not in m.output_modalities:
            continue
        if by_inference_type and by_inference_type not in m.inference_types:
            continue
        if by_customization_type and by_customization_type not in m.customizations:
            continue
        out.append(m)
    return out


# --- system-defined inference profiles ---------------------------------------------------------------


def _profile_regions(geo: str) -> list[str]:
    return list(geographies()[geo]["regions"])


def system_profiles(account_id: str, region: str = REGION) -> list[InferenceProfile]:
    """The cross-region profiles whose source regions include ``region`` (from us-east-1: us. and global.)."""
    out = []
    for m in listed():
        for geo in m.profiles:
            regions = _profile_regions(geo)
            if region not in regions:
                continue
            pid = f"{geo}.{m.model_id}"
            label = geographies()[geo]["name"]
            where = "all commercial AWS Regions" if geo == "global" else ", ".join(regions)
            out.append(InferenceProfile(
                profile_id=pid, name=f"{label} {m.provider} {m.name}",
                description=f"Routes requests to {m.provider} {m.name} in {where}.",
                arn=f"arn:aws:bedrock:{region}:{account_id}:inference-profile/{pid}",
                model_arns=tuple(f"arn:aws:bedrock:{r}::foundation-model/{m.model_id}" for r in regions),
                model=m))
    return out


def system_profile(profile_id: str, account_id: str, region: str = REGION) -> InferenceProfile | None:
    geo, _, base = profile_id.partition(".")
    m = model(base)
    if m is None or geo not in m.profiles or m.end_of_life() or region not in _profile_regions(geo):
        return None
    return next(p for p in system_profiles(account_id, region) if p.profile_id == profile_id)


class ProfileStore:
    """Application inference profiles (CreateInferenceProfile), beside the system-defined ones."""

    def __init__(self, account_id: str, region: str = REGION):
        self.account_id = account_id
        self.region = region
        self.applications: dict[str, InferenceProfile] = {}

    def create(self, name: str, copy_from: str, description: str | None = None,
               tags: list[dict[str, str]] | None = None) -> InferenceProfile:
        if any(p.name == name for p in self.applications.values()):
            raise BedrockError("ConflictException", f"Inference profile with name {name} already exists.", 400)
        source = self._source(copy_from)
        pid = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))
        if isinstance(source, InferenceProfile):
            arns, m = source.model_arns, source.model
        else:
            arns, m = (source.arn.replace(f"::{REGION}", f"::{self.region}"),), source
        profile = InferenceProfile(
            profile_id=pid, name=name, description=description or "", model=m, model_arns=arns, kind="APPLICATION",
            arn=f"arn:aws:bedrock:{self.region}:{self.account_id}:application-inference-profile/{pid}",
            created=dt.datetime.now(dt.UTC), tags=tuple((t["key"], t["value"]) for t in tags or ()))
        self.applications[pid] = profile
        return profile

    def _source(self, copy_from: str) -> FoundationModel | InferenceProfile:
        fm = re.fullmatch(r"arn:aws:bedrock:([a-z0-9-]+)::foundation-model/(.+)", copy_from)
        if fm:
            m = model(fm.group(2))
            if m is None or m.end_of_life() or not m.is_text and not m.is_embedding:
                raise validation(f"The model {copy_from} is not supported for an application inference profile.")
            if not m.on_demand:
                raise validation(ON_DEMAND_REFUSED.format(model=m.model_id))
            return m
        sp = re.fullmatch(r"arn:aws:bedrock:([a-z0-9-]+):(\d{12}):inference-profile/(.+)", copy_from)
        if sp:
            profile = system_profile(sp.group(3), self.account_id, self.region)
            if profile is not None:
                return profile
        raise validation("The provided copyFrom value is invalid: give the ARN of a foundation model or of a "
                         "system-defined inference profile.")

    def get(self, identifier: str) -> InferenceProfile:
        profile = self.find(identifier)
        if profile is None:
            raise not_found(f"Inference profile {identifier} does not exist.")
        return profile

    def find(self, identifier: str) -> InferenceProfile | None:
        """A system-defined or application profile by id or ARN."""
        tail = identifier.rsplit("/", 1)[-1]
        if ":application-inference-profile/" in identifier or tail in self.applications:
            return self.applications.get(tail)
        if identifier.startswith("arn:"):
            m = re.fullmatch(r"arn:aws:bedrock:([a-z0-9-]+):(\d{12}):inference-profile/(.+)", identifier)
            if not m or m.group(1) != self.region or m.group(2) != self.account_id:
                return None
        return system_profile(tail, self.account_id, self.region)

    def delete(self, identifier: str) -> None:
        profile = self.get(identifier)
        if profile.kind != "APPLICATION":
            raise validation("System-defined inference profiles cannot be deleted.")
        del self.applications[profile.profile_id]

    def list(self, type_equals: str | None = None) -> list[InferenceProfile]:
        out: list[InferenceProfile] = []
        if type_equals in (None, "SYSTEM_DEFINED"):
            out += system_profiles(self.account_id, self.region)
        if type_equals in (None, "APPLICATION"):
            out += list(self.applications.values())
        return out

    # --- what a runtime call names -----------------------------------------------------------------
    def resolve(self, identifier: str) -> FoundationModel:
        """The model a runtime ``modelId`` names, or AWS's error for it.

        Unknown ids shaped like a foundation model: ResourceNotFoundException; ids shaped like
        nothing Bedrock knows, profiles of other source regions: ValidationException.
        """
        fm = re.fullmatch(r"arn:aws:bedrock:([a-z0-9-]+)::foundation-model/(.+)", identifier)
        if fm:
            if fm.group(1) != self.region:
                raise validation(INVALID_ID)
            base = fm.group(2)
        elif identifier.startswith("arn:"):
            profile = self.find(identifier)
            if profile is None:
                raise validation(INVALID_ID)
            return profile.model
        else:
            base = identifier
        m = model(base)
        if m is not None:
            if m.end_of_life():
                raise not_found(END_OF_LIFE)
            if not m.on_demand:
                raise validation(ON_DEMAND_REFUSED.format(model=m.model_id))
            return m
        profile = self.find(base)
        if profile is not None:
            return profile.model
        inner = model(base.partition(".")[2])
        if inner is not None:
            if inner.end_of_life():
                raise not_found(END_OF_LIFE)
            raise validation(INVALID_ID)  # a profile this source region does not have (eu. from us-east-1)
        if re.fullmatch(r"[a-z0-9-]{1,63}\.[a-z0-9-.:]+", base):
            raise not_found("Could not resolve the foundation model from the provided model identifier.")
        raise validation(INVALID_ID)


def find(identifier: str) -> FoundationModel | None:
    """The model named by base id, foundation-model ARN or system profile id/ARN (no errors; no lifecycle check).

    For places that only need to know *which* model is meant (a knowledge base's embedding
    model ARN, RetrieveAndGenerate's ``modelArn``); runtime calls use :meth:`ProfileStore.resolve`.
    """
    tail = identifier.rsplit("/", 1)[-1]
    if tail in _by_id():
        return _by_id()[tail]
    geo, _, rest = tail.partition(".")
    m = model(rest)
    if m is not None and geo in m.profiles:
        return m
    return None
