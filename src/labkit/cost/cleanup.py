"""Find and delete what labs left behind, by the ``labkit:lab`` tag.

SageMaker resources are found by listing them and reading their tags (``ListTags``),
which is exact; everything else tagged ``labkit:lab`` is found through the Resource
Groups Tagging API (``GetResources``). Only resources whose tag names the lab (or, with
no lab given, any lab but ``shared``, the tag of the account's default bucket) are
touched. Nothing is deleted in a dry run; the CLI is a dry run unless ``--yes``.

What "delete" means per kind: in-progress training, tuning, processing and transform jobs
are stopped (a finished job costs nothing and cannot be deleted); endpoints, endpoint
configurations, models, monitoring schedules and notebook instances (stopped first)
are deleted; an S3 bucket tagged with the lab is emptied and deleted; Bedrock guardrails
and knowledge bases are deleted; EC2 instances terminated. Anything else tagged is listed
with "delete by hand".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TAG_KEY = "labkit:lab"  # on every resource a lab creates (the sandbox's guard adds it)
SHARED = "shared"


@dataclass
class Leftover:
    """One tagged resource a lab left behind."""

    kind: str
    name: str
    arn: str
    lab: str
    status: str = ""
    action: str = "delete"

    def __str__(self) -> str:
        status = f" [{self.status}]" if self.status else ""
        return f"{self.action:<10} {self.kind:<22} {self.name}{status}  (labkit:lab={self.lab})"


# kind, list operation, summaries key, name key, arn key, status key, list kwargs, action
_SAGEMAKER_SCANS: list[tuple[str, str, str, str, str, str | None, dict[str, Any], str]] = [
    ("training-job", "list_training_jobs", "TrainingJobSummaries", "TrainingJobName", "TrainingJobArn",
     "TrainingJobStatus", {"StatusEquals": "InProgress"}, "stop"),
    ("tuning-job", "list_hyper_parameter_tuning_jobs", "HyperParameterTuningJobSummaries",
     "HyperParameterTuningJobName", "HyperParameterTuningJobArn", "HyperParameterTuningJobStatus",
     {"StatusEquals": "InProgress"}, "stop"),
    ("processing-job", "list_processing_jobs", "ProcessingJobSummaries", "ProcessingJobName", "ProcessingJobArn",
     "ProcessingJobStatus", {"StatusEquals": "InProgress"}, "stop"),
    ("transform-job", "list_transform_jobs", "TransformJobSummaries", "TransformJobName", "TransformJobArn",
     "TransformJobStatus", {"StatusEquals": "InProgress"}, "stop"),
    ("monitoring-schedule", "list_monitoring_schedules", "MonitoringScheduleSummaries", "MonitoringScheduleName",
     "MonitoringScheduleArn", "MonitoringScheduleStatus", {}, "delete"),
    ("endpoint", "list_endpoints", "Endpoints", "EndpointName", "EndpointArn", "EndpointStatus", {}, "delete"),
    ("endpoint-config", "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", "EndpointConfigArn",
     None, {}, "delete"),
    ("model", "list_models", "Models", "ModelName", "ModelArn", None, {}, "delete"),
    ("notebook-instance", "list_notebook_instances", "NotebookInstances", "NotebookInstanceName",
     "NotebookInstanceArn", "NotebookInstanceStatus", {}, "delete"),
]


def _lab_of(tags: list[dict[str, str]]) -> str | None:
    for tag in tags:
        if tag.get("Key") == TAG_KEY:
            return tag.get("Value")
    return None


def _wanted(lab_value: str | None, lab_name: str | None, untagged: bool = False) -> bool:
    if lab_value is None:
        return untagged and lab_name is None
    if lab_value == SHARED:
        return False
    return lab_name is None or lab_value == lab_name


def _sagemaker_leftovers(sm: Any, lab_name: str | None, untagged: bool = False) -> list[Leftover]:
    found = []
    for kind, op, key, name_key, arn_key, status_key, kwargs, action in _SAGEMAKER_SCANS:
        try:
            pages = sm.get_paginator(op).paginate(**kwargs) if sm.can_paginate(op) else [getattr(sm, op)(**kwargs)]
            summaries = [s for page in pages for s in page.get(key, [])]
        except Exception as err:  # an operation the backend lacks must not hide the others
            found.append(Leftover(kind, f"(could not list: {type(err).__name__})", "", "?", action="skip"))
            continue
        for summary in summaries:
            arn = summary.get(arn_key, "")
            try:
                tags = sm.list_tags(ResourceArn=arn).get("Tags", [])
            except Exception:
                continue
            lab_value = _lab_of(tags)
            if _wanted(lab_value, lab_name, untagged):
                found.append(Leftover(kind, summary[name_key], arn, str(lab_value),
                                      str(summary.get(status_key, "")) if status_key else "", action))
    return found


def _kind_of_arn(arn: str) -> tuple[str, str]:
    """(kind, name) of a non-SageMaker ARN."""
    parts = arn.split(":", 5)
    service, resource = parts[2], parts[5] if len(parts) > 5 else ""
    if service == "s3":
        return "s3-bucket", resource
    if service == "bedrock" and resource.startswith("guardrail/"):
        return "bedrock-guardrail", resource.split("/", 1)[1]
    if service == "bedrock" and resource.startswith("knowledge-base/"):
        return "knowledge-base", resource.split("/", 1)[1]
    if service == "ec2" and resource.startswith("instance/"):
        return "ec2-instance", resource.split("/", 1)[1]
    return f"{service}:{resource.split('/', 1)[0]}", resource


_DELETABLE_OTHER = {"s3-bucket", "bedrock-guardrail", "knowledge-base", "ec2-instance"}


def _tagged_leftovers(tagging: Any, lab_name: str | None) -> list[Leftover]:
    filters = [{"Key": TAG_KEY, "Values": [lab_name]}] if lab_name else [{"Key": TAG_KEY}]
    found = []
    try:
        pages = tagging.get_paginator("get_resources").paginate(TagFilters=filters)
        mappings = [m for page in pages for m in page.get("ResourceTagMappingList", [])]
    except Exception as err:
        return [Leftover("tagging-api", f"(could not list: {type(err).__name__})", "", "?", action="skip")]
    for mapping in mappings:
        arn = mapping.get("ResourceARN", "")
        if not arn.startswith("arn:") or arn.split(":")[2] == "sagemaker":
            continue  # SageMaker is scanned exactly above
        lab_value = _lab_of(mapping.get("Tags", []))
        if not _wanted(lab_value, lab_name):
            continue
        kind, name = _kind_of_arn(arn)
        found.append(Leftover(kind, name, arn, str(lab_value),
                              action="delete" if kind in _DELETABLE_OTHER else "by hand"))
    return found


def find_leftovers(lab_name: str | None, *, region: str, session: Any = None,
                   untagged: bool = False) -> list[Leftover]:
    """Tagged resources of ``lab_name`` (or of every lab when None), in deletion order.

    ``untagged``: with no lab given, also the billed SageMaker resources without a lab tag (the
    offline backend's account is the learner's own: everything still up is theirs).
    """
    import boto3

    session = session or boto3.Session()
    sm = session.client("sagemaker", region_name=region)
    tagging = session.client("resourcegroupstaggingapi", region_name=region)
    return _sagemaker_leftovers(sm, lab_name, untagged) + _tagged_leftovers(tagging, lab_name)


def _empty_and_delete_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        items = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                 for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if items:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": items, "Quiet": True})
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        items = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if items:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": items, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


def _deleter(leftover: Leftover, client: Callable[[str], Any]) -> Callable[[], Any] | None:
    sm = lambda: client("sagemaker")  # noqa: E731
    n = leftover.name
    actions: dict[str, Callable[[], Any]] = {
        "training-job": lambda: sm().stop_training_job(TrainingJobName=n),
        "tuning-job": lambda: sm().stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=n),
        "processing-job": lambda: sm().stop_processing_job(ProcessingJobName=n),
        "transform-job": lambda: sm().stop_transform_job(TransformJobName=n),
        "monitoring-schedule": lambda: sm().delete_monitoring_schedule(MonitoringScheduleName=n),
        "endpoint": lambda: sm().delete_endpoint(EndpointName=n),
        "endpoint-config": lambda: sm().delete_endpoint_config(EndpointConfigName=n),
        "model": lambda: sm().delete_model(ModelName=n),
        "notebook-instance": lambda: _delete_notebook(sm(), n, leftover.status),
        "s3-bucket": lambda: _empty_and_delete_bucket(client("s3"), n),
        "bedrock-guardrail": lambda: client("bedrock").delete_guardrail(guardrailIdentifier=leftover.arn),
        "knowledge-base": lambda: client("bedrock-agent").delete_knowledge_base(knowledgeBaseId=n),
        "ec2-instance": lambda: client("ec2").terminate_instances(InstanceIds=[n]),
    }
    return actions.get(leftover.kind)


def _delete_notebook(sm: Any, name: str, status: str) -> None:
    if status in ("InService", "Pending", "Updating"):
        sm.stop_notebook_instance(NotebookInstanceName=name)
        with contextlib.suppress(Exception):  # a timeout here shows up as the delete's error
            sm.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=name,
                                                            WaiterConfig={"Delay": 15, "MaxAttempts": 40})
    sm.delete_notebook_instance(NotebookInstanceName=name)


def delete_leftovers(leftovers: list[Leftover], *, region: str, session: Any = None) -> tuple[list[str], list[str]]:
    """Stop or delete each leftover; (what was removed, what failed and why)."""
    import boto3

    session = session or boto3.Session()
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, region_name=region)
        return clients[service]

    done, failed = [], []
    for leftover in leftovers:
        if leftover.action in ("skip", "by hand"):
            continue
        action = _deleter(leftover, client)
        if action is None:
            continue
        try:
            action()
            done.append(f"{leftover.kind} {leftover.name}")
        except Exception as err:
            failed.append(f"{leftover.kind} {leftover.name}: {type(err).__name__}: {err}")
    return done, failed


def cleanup_lab(lab: Any, dry_run: bool = False) -> list[str]:
    """Delete (or list, with ``dry_run``) what ``lab`` left tagged; returns what it removed or would remove."""
    leftovers = find_leftovers(lab.name, region=lab.region)
    if dry_run:
        return [f"{x.kind} {x.name}" for x in leftovers if x.action not in ("skip", "by hand")]
    done, failed = delete_leftovers(leftovers, region=lab.region)
    for line in failed:
        print(f"labkit cleanup: could not remove {line}")
    for x in leftovers:
        if x.action == "by hand":
            print(f"labkit cleanup: {x.kind} {x.name} ({x.arn}) is tagged for lab {x.lab}: delete it by hand.")
    return done
