"""SageMaker Model Cards offline: content validated as AWS validates it, and exported to PDF.

moto keeps model cards (Create/Update/Describe/List/Delete, versions) but accepts any
``Content`` string. AWS checks the content against the model card JSON schema (the
documented sections ``model_overview``, ``intended_uses``, ``business_details``,
``training_details``, ``evaluation_details``, ``additional_information``); this engine
checks it with the SageMaker SDK's own pydantic models of that schema
(``sagemaker.core.shapes.model_card_shapes``) and refuses unknown sections, with a
``ValidationException`` that names the field. An ``Approved`` or ``Archived`` card cannot be
changed except to archive it, as on AWS.

``CreateModelCardExportJob`` (missing from moto) renders the card version to a PDF in
``<S3OutputPath>/<card>/<job>/<card>.pdf`` (matplotlib's PDF backend: the sections and their
fields as text); ``DescribeModelCardExportJob`` and ``ListModelCardExportJobs`` report it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import textwrap
import threading
from typing import Any

from . import ACCOUNT_ID, REGION, dispatch, moto_state, on_reset, persistence, s3_location
from .dispatch import AWSError

SECTIONS = ("model_overview", "intended_uses", "business_details", "training_details", "evaluation_details",
            "additional_information")
_lock = threading.Lock()
exports: dict[str, dict[str, Any]] = {}
persistence.keep_contents("model card exports", exports)


def content_problems(content: str) -> list[str]:
    """What AWS's schema check would refuse in ``content`` (empty when it is valid)."""
    try:
        data = json.loads(content)
    except ValueError as err:
        return [f"Content is not valid JSON: {err}"]
    if not isinstance(data, dict):
        return ["Content must be a JSON object of model card sections"]
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        return [f"unknown section(s) {unknown}: the model card schema has {list(SECTIONS)}"]
    from pydantic import ValidationError
    from sagemaker.core.shapes.model_card_shapes import ModelCardContent

    try:
        ModelCardContent.model_validate(data)
    except ValidationError as err:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
    return []


def _check(params: dict[str, Any]) -> None:
    if "Content" in params:
        problems = content_problems(params["Content"])
        if problems:
            raise AWSError("ValidationException", "Model card content does not match the model card schema: "
                           + "; ".join(problems[:5]))


@dispatch.validate("sagemaker", "CreateModelCard")
def validate_create(params: dict[str, Any]) -> None:
    _check(params)


@dispatch.operation("sagemaker", "UpdateModelCard")
def update_model_card(params: dict[str, Any]) -> dict[str, Any]:
    """A new version; what the request leaves out (content or status) is kept, as on AWS (moto drops it)."""
    _check(params)
    versions = moto_state.backend("sagemaker").model_cards.get(params["ModelCardName"])
    if not versions:
        raise AWSError("ResourceNotFound", f"Modelcard {params['ModelCardName']} does not exist.")
    last = versions[-1]
    if last.model_card_status in ("Approved", "Archived") and "Content" in params:
        raise AWSError("ValidationException", f"Model card {params['ModelCardName']} is "
                       f"{last.model_card_status}: its content cannot be updated; create a new model card.")
    arn = moto_state.backend("sagemaker").update_model_card(params["ModelCardName"], params.get("Content", last.content),
                                    params.get("ModelCardStatus", last.model_card_status))
    return {"ModelCardArn": arn}


# --- export to PDF ------------------------------------------------------------------------------


def _lines(value: Any, indent: int = 0) -> list[str]:
    pad = "  " * indent
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            if isinstance(item, dict | list):
                out.append(f"{pad}{key.replace('_', ' ')}:")
                out += _lines(item, indent + 1)
            else:
                out += textwrap.wrap(f"{key.replace('_', ' ')}: {item}", 95, initial_indent=pad,
                                     subsequent_indent=pad + "    ") or [pad]
        return out
    if isinstance(value, list):
        return [line for item in value for line in _lines(item, indent)]
    return textwrap.wrap(str(value), 95, initial_indent=pad, subsequent_indent=pad) or [pad]


def render_pdf(name: str, version: int, status: str, content: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    lines = [f"Model card: {name} (version {version}, {status})", ""]
    for section in SECTIONS:
        if section in content:
            lines += ["", section.replace("_", " ").upper(), *_lines(content[section], 1)]
    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        for start in range(0, len(lines), 60):
            fig = Figure(figsize=(8.27, 11.69))
            fig.text(0.06, 0.96, "\n".join(lines[start:start + 60]), va="top", family="monospace", fontsize=7.5)
            pdf.savefig(fig)
    return buffer.getvalue()


def _arn(name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:model-card/{name.lower()}"


@dispatch.operation("sagemaker", "CreateModelCardExportJob")
def create_export(params: dict[str, Any]) -> dict[str, Any]:
    from . import storage

    versions = moto_state.backend("sagemaker").model_cards.get(params["ModelCardName"])
    if not versions:
        raise AWSError("ResourceNotFound", f"Model card {params['ModelCardName']} does not exist.")
    wanted = params.get("ModelCardVersion")
    card = next((v for v in versions if v.model_card_version == wanted), None) if wanted else versions[-1]
    if card is None:
        raise AWSError("ResourceNotFound", f"Model card {params['ModelCardName']} has no version {wanted}.")
    out = params["OutputConfig"]["S3OutputPath"]
    if not out.startswith("s3://"):
        raise AWSError("ValidationException", "OutputConfig.S3OutputPath must be an s3:// URI.")
    job = params["ModelCardExportJobName"]
    arn = f"{_arn(card.model_card_name)}/export-job/{job.lower()}"
    now = dt.datetime.now(dt.UTC)
    record = {"ModelCardExportJobName": job, "ModelCardExportJobArn": arn, "Status": "InProgress",
              "ModelCardName": card.model_card_name, "ModelCardVersion": card.model_card_version,
              "OutputConfig": {"S3OutputPath": out}, "CreatedAt": now, "LastModifiedAt": now}
    with _lock:
        if any(e["ModelCardExportJobName"] == job and e["ModelCardName"] == card.model_card_name
               for e in exports.values()):
            raise AWSError("ConflictException", f"Model card export job {job} already exists.")
        exports[arn] = record
    try:
        pdf = render_pdf(card.model_card_name, card.model_card_version, card.model_card_status, json.loads(card.content))
        uri = f"{out.rstrip('/')}/{card.model_card_name}/{job}/{card.model_card_name}.pdf"
        bucket, key = s3_location.split(uri)
        storage.s3().put_object(Bucket=bucket, Key=key, Body=pdf, ContentType="application/pdf")
        record.update(Status="Completed", ExportArtifacts={"S3ExportArtifacts": uri})
    except Exception as err:  # the job fails; the API call does not
        record.update(Status="Failed", FailureReason=f"{type(err).__name__}: {err}"[:1024])
    record["LastModifiedAt"] = dt.datetime.now(dt.UTC)
    return {"ModelCardExportJobArn": arn}


@dispatch.operation("sagemaker", "DescribeModelCardExportJob")
def describe_export(params: dict[str, Any]) -> dict[str, Any]:
    record = exports.get(params["ModelCardExportJobArn"])
    if record is None:
        raise AWSError("ResourceNotFound", f"Model card export job {params['ModelCardExportJobArn']} does not exist.")
    return dict(record)


@dispatch.operation("sagemaker", "ListModelCardExportJobs")
def list_exports(params: dict[str, Any]) -> dict[str, Any]:
    rows = [e for e in exports.values() if e["ModelCardName"] == params["ModelCardName"]]
    if params.get("StatusEquals"):
        rows = [e for e in rows if e["Status"] == params["StatusEquals"]]
    keys = ("ModelCardExportJobName", "ModelCardExportJobArn", "Status", "ModelCardName", "ModelCardVersion",
            "CreatedAt", "LastModifiedAt")
    return {"ModelCardExportJobSummaries": [{k: e[k] for k in keys} for e in rows]}


@on_reset
def _reset() -> None:
    exports.clear()
