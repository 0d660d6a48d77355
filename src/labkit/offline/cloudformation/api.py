"""The AWS protocol of the CloudFormation engine: boto3 calls in, :class:`StackEngine` calls, AWS's answers.

Every stack operation a program uses is answered here; moto's own CloudFormation (which
creates resources by calling moto's backends directly, past the engines) never sees a stack.
The stack operations not emulated (stack sets, refactors, resource scans, the type
registry, stack policies...) are refused with a message rather than answered by moto about
stacks it does not hold.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .. import ACCOUNT_ID, REGION, dispatch, on_reset
from ..dispatch import AWSError
from . import resources
from .stacks import IN_PROGRESS, UPDATABLE, ChangeSet, Stack, StackEngine, StackResource, now
from .template import Template, invalid, load

engine = StackEngine()

REFUSED = ("CancelUpdateStack", "ContinueUpdateRollback", "RollbackStack", "SignalResource", "SetStackPolicy",
           "GetStackPolicy", "UpdateTerminationProtection", "EstimateTemplateCost", "DescribeChangeSetHooks",
           "CreateStackSet", "UpdateStackSet", "DeleteStackSet", "DescribeStackSet", "ListStackSets",
           "CreateStackInstances", "UpdateStackInstances", "DeleteStackInstances", "DescribeStackInstance",
           "ListStackInstances", "DetectStackSetDrift", "ImportStacksToStackSet", "CreateStackRefactor",
           "ExecuteStackRefactor", "DescribeStackRefactor", "ListStackRefactors", "ListStackRefactorActions",
           "ListImports", "DescribeEvents", "StartResourceScan", "CreateGeneratedTemplate")


@on_reset
def _reset() -> None:
    engine.stop()
    resources.forget_clients()


def _body(params: dict[str, Any], stack: Stack | None = None) -> str:
    if params.get("UsePreviousTemplate"):
        if stack is None:
            raise invalid("UsePreviousTemplate needs an existing stack.")
        return stack.body
    if params.get("TemplateURL"):
        raise AWSError("NotImplemented", dispatch.refusal("cloudformation", "TemplateURL",
                                                          "pass the template as TemplateBody"), 501)
    if not params.get("TemplateBody"):
        raise invalid("Either Template URL or Template Body must be specified.")
    return params["TemplateBody"]


def _parameters(params: dict[str, Any], stack: Stack | None = None) -> dict[str, str]:
    out = {}
    for p in params.get("Parameters") or []:
        if p.get("UsePreviousValue"):
            if stack is None or p["ParameterKey"] not in stack.parameters:
                raise invalid(f"Invalid input for parameter key {p['ParameterKey']}. Cannot specify usePreviousValue "
                              "as true for a parameter key not in the previous template")
            out[p["ParameterKey"]] = stack.parameters[p["ParameterKey"]]
        else:
            out[p["ParameterKey"]] = p.get("ParameterValue", "")
    return out


# --- stacks --------------------------------------------------------------------------------------


@dispatch.operation("cloudformation", "CreateStack")
def create_stack(params: dict[str, Any]) -> dict[str, Any]:
    rollback = not params.get("DisableRollback") and params.get("OnFailure", "ROLLBACK") == "ROLLBACK"
    if params.get("OnFailure") == "DELETE":
        raise AWSError("NotImplemented", dispatch.refusal("cloudformation", "CreateStack", "OnFailure=DELETE"), 501)
    stack = engine.create(params["StackName"], _body(params), _parameters(params), params.get("Tags") or [],
                          rollback=rollback)
    return {"StackId": stack.stack_id}


@dispatch.operation("cloudformation", "UpdateStack")
def update_stack(params: dict[str, Any]) -> dict[str, Any]:
    stack = engine.get(params["StackName"])
    engine.update(stack, _body(params, stack), _parameters(params, stack))
    return {"StackId": stack.stack_id}


@dispatch.operation("cloudformation", "DeleteStack")
def delete_stack(params: dict[str, Any]) -> dict[str, Any]:
    stack = engine.live(params["StackName"])
    if stack is None:
        try:
            stack = engine.get(params["StackName"])
        except AWSError:
            return {}  # AWS answers success for a stack that does not exist
    engine.delete(stack)
    return {}


@dispatch.operation("cloudformation", "DescribeStacks")
def describe_stacks(params: dict[str, Any]) -> dict[str, Any]:
    name = params.get("StackName")
    if name:
        return {"Stacks": [engine.get(name).describe()]}
    return {"Stacks": [s.describe() for s in engine.stacks if s.status != "DELETE_COMPLETE"]}


@dispatch.operation("cloudformation", "ListStacks")
def list_stacks(params: dict[str, Any]) -> dict[str, Any]:
    wanted = params.get("StackStatusFilter")
    out = []
    for s in reversed(engine.stacks):
        if wanted and s.status not in wanted:
            continue
        summary = {"StackId": s.stack_id, "StackName": s.name, "CreationTime": s.created, "StackStatus": s.status,
                   "DriftInformation": {"StackDriftStatus": s.drift.get("StackDriftStatus", "NOT_CHECKED")}}
        for key, value in (("LastUpdatedTime", s.updated), ("DeletionTime", s.deleted),
                           ("StackStatusReason", s.reason), ("TemplateDescription", s.template.body.get("Description"))):
            if value:
                summary[key] = value
        out.append(summary)
    return {"StackSummaries": out}


@dispatch.operation("cloudformation", "DescribeStackEvents")
def describe_stack_events(params: dict[str, Any]) -> dict[str, Any]:
    stack = engine.get(params["StackName"], deleted=True)
    with stack.lock:
        return {"StackEvents": list(reversed(stack.events))}


def _resources(stack: Stack) -> list[StackResource]:
    return [r for r in stack.resources.values() if r.status]


@dispatch.operation("cloudformation", "DescribeStackResources")
def describe_stack_resources(params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("StackName"):
        raise invalid("StackName is required offline (PhysicalResourceId look-ups are not emulated).")
    stack = engine.get(params["StackName"], deleted=True)
    found = [r.summary(stack) for r in _resources(stack)
             if not params.get("LogicalResourceId") or r.logical_id == params["LogicalResourceId"]]
    for item in found:
        item.pop("LastUpdatedTimestamp", None)
    return {"StackResources": found}


@dispatch.operation("cloudformation", "DescribeStackResource")
def describe_stack_resource(params: dict[str, Any]) -> dict[str, Any]:
    stack = engine.get(params["StackName"], deleted=True)
    resource = stack.resources.get(params["LogicalResourceId"])
    if resource is None or not resource.status:
        raise invalid(f"Resource {params['LogicalResourceId']} does not exist for stack {stack.name}")
    detail = resource.summary(stack)
    detail.pop("Timestamp", None)
    detail["Metadata"] = json.dumps(stack.template.resources.get(resource.logical_id, {}).get("Metadata", {}))
    return {"StackResourceDetail": detail}


@dispatch.operation("cloudformation", "ListStackResources")
def list_stack_resources(params: dict[str, Any]) -> dict[str, Any]:
    stack = engine.get(params["StackName"], deleted=True)
    out = []
    for r in _resources(stack):
        item = r.summary(stack)
        item.pop("Timestamp", None)
        item.pop("StackName", None)
        item.pop("StackId", None)
        out.append(item)
    return {"StackResourceSummaries": out}


@dispatch.operation("cloudformation", "GetTemplate")
def get_template(params: dict[str, Any]) -> dict[str, Any]:
    if params.get("ChangeSetName"):
        change_set = _change_set(params["ChangeSetName"], params.get("StackName"))
        return {"TemplateBody": change_set.body, "StagesAvailable": ["Original", "Processed"]}
    stack = engine.get(params["StackName"], deleted=True)
    return {"TemplateBody": stack.body, "StagesAvailable": ["Original", "Processed"]}


@dispatch.operation("cloudformation", "ValidateTemplate")
def validate_template(params: dict[str, Any]) -> dict[str, Any]:
    body = load(_body(params))
    declared = body.get("Parameters") or {}
    defaults = {k: str(v["Default"]) for k, v in declared.items() if "Default" in v}
    filled = {k: defaults.get(k, "0" if v.get("Type") == "Number" else "x") for k, v in declared.items()}
    Template(body, filled, stack_name="validate", account=ACCOUNT_ID, region=REGION)
    out: dict[str, Any] = {"Parameters": [
        {"ParameterKey": k, "NoEcho": bool(v.get("NoEcho", False)), "Description": v.get("Description", ""),
         **({"DefaultValue": str(v["Default"])} if "Default" in v else {})} for k, v in declared.items()]}
    if body.get("Description"):
        out["Description"] = body["Description"]
    return out


@dispatch.operation("cloudformation", "ListExports")
def list_exports(params: dict[str, Any]) -> dict[str, Any]:
    out = []
    for stack in engine.stacks:
        if stack.status != "DELETE_COMPLETE":
            out += [{"ExportingStackId": stack.stack_id, "Name": o["ExportName"], "Value": o["OutputValue"]}
                    for o in stack.outputs if o.get("ExportName")]
    return {"Exports": out}


# --- change sets ---------------------------------------------------------------------------------


def _change_set(name: str, stack_name: str | None) -> ChangeSet:
    for stack in reversed(engine.stacks):
        if stack_name and stack_name not in (stack.name, stack.stack_id):
            continue
        for change_set in stack.change_sets.values():
            if name in (change_set.name, change_set.change_set_id):
                return change_set
    raise AWSError("ChangeSetNotFound", f"ChangeSet [{name}] does not exist")


@dispatch.operation("cloudformation", "CreateChangeSet")
def create_change_set(params: dict[str, Any]) -> dict[str, Any]:
    kind = params.get("ChangeSetType", "UPDATE")
    if kind == "IMPORT":
        raise AWSError("NotImplemented", dispatch.refusal("cloudformation", "CreateChangeSet", "ChangeSetType=IMPORT"),
                       501)
    existing = engine.live(params["StackName"])
    if kind == "CREATE":
        if existing is not None and existing.status != "REVIEW_IN_PROGRESS":
            raise AWSError("AlreadyExistsException", f"Stack [{params['StackName']}] already exists and cannot be "
                           "created again with the changeSet [{params['ChangeSetName']}].")
        body = _body(params)
        template = engine.template(body, _parameters(params), params["StackName"])
        stack = existing or Stack(params["StackName"], body, template, template.parameter_text(),
                                  params.get("Tags") or [], status="REVIEW_IN_PROGRESS")
        if existing is None:
            with engine.lock:
                engine.stacks.append(stack)
            stack.event("REVIEW_IN_PROGRESS", "User Initiated")
        changes = [{"Action": "Add", "LogicalResourceId": k, "ResourceType": template.resources[k]["Type"],
                    "Scope": [], "Details": []} for k in template.order]
    else:
        if existing is None:
            raise invalid(f"Stack [{params['StackName']}] does not exist")
        stack = existing
        if stack.status not in UPDATABLE:
            raise invalid(f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
        body = _body(params, stack)
        template = engine.template(body, _parameters(params, stack), stack.name, stack.stack_id)
        changes = engine.plan(stack, template)
    if params["ChangeSetName"] in stack.change_sets:
        raise AWSError("AlreadyExistsException", f"ChangeSet {params['ChangeSetName']} already exists")
    change_set_id = (f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:changeSet/{params['ChangeSetName']}/"
                     f"{uuid.uuid4()}")
    change_set = ChangeSet(params["ChangeSetName"], change_set_id, stack, body, template.parameter_text(), changes,
                           description=params.get("Description"), change_set_type=kind)
    if not changes:
        change_set.status, change_set.execution_status = "FAILED", "UNAVAILABLE"
        change_set.reason = ("The submitted information didn't contain changes. Submit different information to "
                             "create a change set.")
    stack.change_sets[change_set.name] = change_set
    return {"Id": change_set_id, "StackId": stack.stack_id}


def _change_set_summary(change_set: ChangeSet) -> dict[str, Any]:
    out = {"StackId": change_set.stack.stack_id, "StackName": change_set.stack.name,
           "ChangeSetId": change_set.change_set_id, "ChangeSetName": change_set.name,
           "ExecutionStatus": change_set.execution_status, "Status": change_set.status,
           "CreationTime": change_set.created}
    if change_set.reason:
        out["StatusReason"] = change_set.reason
    if change_set.description:
        out["Description"] = change_set.description
    return out


@dispatch.operation("cloudformation", "DescribeChangeSet")
def describe_change_set(params: dict[str, Any]) -> dict[str, Any]:
    change_set = _change_set(params["ChangeSetName"], params.get("StackName"))
    changes = []
    for change in change_set.changes:
        change = {k: v for k, v in change.items() if v is not None}
        changes.append({"Type": "Resource", "ResourceChange": change})
    return {**_change_set_summary(change_set), "Changes": changes,
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in change_set.parameters.items()],
            "Tags": change_set.stack.tags, "Capabilities": [], "NotificationARNs": []}


@dispatch.operation("cloudformation", "ListChangeSets")
def list_change_sets(params: dict[str, Any]) -> dict[str, Any]:
    stack = engine.get(params["StackName"])
    return {"Summaries": [_change_set_summary(c) for c in stack.change_sets.values()]}


@dispatch.operation("cloudformation", "DeleteChangeSet")
def delete_change_set(params: dict[str, Any]) -> dict[str, Any]:
    change_set = _change_set(params["ChangeSetName"], params.get("StackName"))
    if change_set.execution_status == "EXECUTE_IN_PROGRESS":
        raise AWSError("InvalidChangeSetStatus", f"Cannot delete ChangeSet {change_set.name} while it executes.")
    change_set.stack.change_sets.pop(change_set.name, None)
    return {}


@dispatch.operation("cloudformation", "ExecuteChangeSet")
def execute_change_set(params: dict[str, Any]) -> dict[str, Any]:
    change_set = _change_set(params["ChangeSetName"], params.get("StackName"))
    stack = change_set.stack
    if change_set.execution_status != "AVAILABLE":
        raise AWSError("InvalidChangeSetStatus", f"ChangeSet [{change_set.change_set_id}] cannot be executed in its "
                       f"current status of [{change_set.status}]")
    if change_set.change_set_type == "CREATE":
        stack.template = engine.template(change_set.body, change_set.parameters, stack.name, stack.stack_id)
        stack.body, stack.parameters = change_set.body, stack.template.parameter_text()
        stack.rollback = not params.get("DisableRollback")
        stack.event("CREATE_IN_PROGRESS", "User Initiated")
        engine._start(stack, engine._run_create)
    else:
        engine.update(stack, change_set.body, change_set.parameters)
    change_set.execution_status = "EXECUTE_COMPLETE"
    for other in stack.change_sets.values():
        if other is not change_set:
            other.execution_status = "OBSOLETE"
    return {}


# --- drift -----------------------------------------------------------------------------------------

_detections: dict[str, tuple[Stack, dict[str, Any]]] = {}


@dispatch.operation("cloudformation", "DetectStackDrift")
def detect_stack_drift(params: dict[str, Any]) -> dict[str, Any]:
    stack = engine.get(params["StackName"])
    try:
        result = engine.detect_drift(stack, params.get("LogicalResourceIds"))
    except resources.ResourceFailed as err:
        raise invalid(f"Drift detection failed: {err}") from err
    _detections[result["StackDriftDetectionId"]] = (stack, dict(result))
    return {"StackDriftDetectionId": result["StackDriftDetectionId"]}


@dispatch.operation("cloudformation", "DescribeStackDriftDetectionStatus")
def describe_stack_drift_detection_status(params: dict[str, Any]) -> dict[str, Any]:
    found = _detections.get(params["StackDriftDetectionId"])
    if found is None:
        raise invalid(f"Drift detection with id {params['StackDriftDetectionId']} does not exist")
    stack, result = found
    return {"StackId": stack.stack_id, "StackDriftDetectionId": result["StackDriftDetectionId"],
            "StackDriftStatus": result["StackDriftStatus"], "DetectionStatus": "DETECTION_COMPLETE",
            "DriftedStackResourceCount": result["DriftedStackResourceCount"], "Timestamp": result["Timestamp"]}


@dispatch.operation("cloudformation", "DescribeStackResourceDrifts")
def describe_stack_resource_drifts(params: dict[str, Any]) -> dict[str, Any]:
    stack = engine.get(params["StackName"])
    wanted = params.get("StackResourceDriftStatusFilters")
    drifts = [r.drift for r in stack.resources.values() if r.drift is not None
              and (not wanted or r.drift["StackResourceDriftStatus"] in wanted)]
    return {"StackResourceDrifts": drifts}


@dispatch.operation("cloudformation", "DetectStackResourceDrift")
def detect_stack_resource_drift(params: dict[str, Any]) -> dict[str, Any]:
    stack = engine.get(params["StackName"])
    resource = stack.resources.get(params["LogicalResourceId"])
    if resource is None or resource.created is None:
        raise invalid(f"Resource {params['LogicalResourceId']} does not exist for stack {stack.name}")
    resource.drift = engine._resource_drift(stack, resource)
    return {"StackResourceDrift": resource.drift}


def _refuse(name: str) -> None:
    @dispatch.operation("cloudformation", name)
    def refuse(params: dict[str, Any]) -> dict[str, Any]:
        raise AWSError(dispatch.NOT_EMULATED_CODE, dispatch.refusal("cloudformation", name),
                       dispatch.NOT_EMULATED_STATUS)


for _name in REFUSED:
    _refuse(_name)

__all__ = ["IN_PROGRESS", "engine", "now"]
