"""Stacks: create, update (directly or by change set), detect drift, delete, roll back.

Plain Python (:class:`StackEngine`), driven by the thin AWS layer in :mod:`.api`. Each stack
operation runs in a thread, as CloudFormation runs it in the background: resources whose
dependencies are complete are started together (so a resource that *should* depend on another
but does not say so fails as it would on AWS), each through its provider's API call
(:mod:`.resources`), an endpoint counted complete only once it is ``InService``. Every change
of status is a stack event (``DescribeStackEvents``).

- **Create**: ``CREATE_IN_PROGRESS`` ... ``CREATE_COMPLETE``; a failure marks the resource
  ``CREATE_FAILED`` with its reason and, unless rollback is disabled (``OnFailure``), deletes
  what was created: ``ROLLBACK_IN_PROGRESS`` ... ``ROLLBACK_COMPLETE``.
- **Update** (``UpdateStack`` or ``ExecuteChangeSet``): each changed resource is updated in
  place, or replaced when a property in its type's ``createOnlyProperties`` changes (the new
  one is created first, the old one deleted in ``UPDATE_COMPLETE_CLEANUP_IN_PROGRESS``); a
  failure rolls every change back (``UPDATE_ROLLBACK_IN_PROGRESS`` ... ``UPDATE_ROLLBACK_COMPLETE``).
- **Change sets** list each change with ``Replacement`` True/False/Conditional and the
  properties that cause it, before anything is changed.
- **Drift**: each resource's live properties (read back through the API) against the
  template's, as ``DescribeStackResourceDrifts`` reports them.
- **Delete**: resources deleted in reverse dependency order (``DeletionPolicy: Retain`` kept).
"""

from __future__ import annotations

import contextlib
import json
import random
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import ACCOUNT_ID, REGION
from ..dispatch import AWSError
from . import resources as res
from .template import NO_VALUE, Resolver, Template, create_only, invalid, type_schema, write_only

IN_PROGRESS = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
               "ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS",
               "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "DELETE_IN_PROGRESS", "REVIEW_IN_PROGRESS")
UPDATABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")
FAILED = {"CREATE_IN_PROGRESS": "CREATE_FAILED", "ROLLBACK_IN_PROGRESS": "ROLLBACK_FAILED",
          "UPDATE_IN_PROGRESS": "UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS": "UPDATE_ROLLBACK_FAILED",
          "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS": "UPDATE_COMPLETE",
          "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS": "UPDATE_ROLLBACK_COMPLETE",
          "DELETE_IN_PROGRESS": "DELETE_FAILED"}


def now() -> datetime:
    return datetime.now(UTC)


def _suffix(n: int = 12) -> str:
    return "".join(random.choices(string.ascii_uppercase + string.digits, k=n))


def generated_name(stack: str, logical: str) -> str:
    """The name CloudFormation gives a resource whose template names none: ``stack-Logical-SUFFIX``."""
    return f"{stack[:30]}-{logical[:18]}-{_suffix()}".strip("-")


@dataclass
class StackResource:
    logical_id: str
    type: str
    status: str = ""
    reason: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)  # resolved, as deployed
    created: res.Created | None = None
    updated: datetime = field(default_factory=now)
    drift: dict[str, Any] | None = None

    @property
    def physical_id(self) -> str | None:
        return self.created.physical_id if self.created else None

    def summary(self, stack: Stack) -> dict[str, Any]:
        out: dict[str, Any] = {"StackName": stack.name, "StackId": stack.stack_id, "LogicalResourceId": self.logical_id,
                               "ResourceType": self.type, "Timestamp": self.updated,
                               "LastUpdatedTimestamp": self.updated, "ResourceStatus": self.status,
                               "DriftInformation": {"StackResourceDriftStatus": (self.drift or {}).get(
                                   "StackResourceDriftStatus", "NOT_CHECKED")}}
        if self.physical_id:
            out["PhysicalResourceId"] = self.physical_id
        if self.reason:
            out["ResourceStatusReason"] = self.reason
        return out


@dataclass
class ChangeSet:
    name: str
    change_set_id: str
    stack: Stack
    body: str
    parameters: dict[str, str]
    changes: list[dict[str, Any]]
    description: str | None = None
    status: str = "CREATE_COMPLETE"
    execution_status: str = "AVAILABLE"
    reason: str | None = None
    created: datetime = field(default_factory=now)
    change_set_type: str = "UPDATE"


@dataclass
class Stack:
    name: str
    body: str
    template: Template
    parameters: dict[str, str]
    tags: list[dict[str, str]]
    stack_id: str = ""
    status: str = "CREATE_IN_PROGRESS"
    reason: str | None = None
    created: datetime = field(default_factory=now)
    updated: datetime | None = None
    deleted: datetime | None = None
    rollback: bool = True
    description: str | None = None
    resources: dict[str, StackResource] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    change_sets: dict[str, ChangeSet] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    thread: threading.Thread | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        if not self.stack_id:
            self.stack_id = f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{self.name}/{uuid.uuid4()}"

    # events -----------------------------------------------------------------------------------

    def event(self, status: str, reason: str | None = None, resource: StackResource | None = None,
              properties: dict[str, Any] | None = None) -> None:
        stamp = now()
        entry: dict[str, Any] = {"StackId": self.stack_id, "EventId": str(uuid.uuid4()), "StackName": self.name,
                                 "Timestamp": stamp, "ResourceStatus": status}
        if resource is None:
            entry.update(LogicalResourceId=self.name, PhysicalResourceId=self.stack_id,
                         ResourceType="AWS::CloudFormation::Stack")
            self.status, self.reason = status, reason
        else:
            entry.update(LogicalResourceId=resource.logical_id, PhysicalResourceId=resource.physical_id or "",
                         ResourceType=resource.type)
            if properties is not None:
                entry["ResourceProperties"] = json.dumps(properties, default=str)
            resource.status, resource.reason, resource.updated = status, reason, stamp
        if reason:
            entry["ResourceStatusReason"] = reason
        with self.lock:
            self.events.append(entry)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"StackId": self.stack_id, "StackName": self.name, "CreationTime": self.created,
                               "StackStatus": self.status, "DisableRollback": not self.rollback,
                               "Parameters": [{"ParameterKey": k, "ParameterValue": v}
                                              for k, v in self.parameters.items()],
                               "Tags": self.tags, "Outputs": self.outputs, "EnableTerminationProtection": False,
                               "DriftInformation": {"StackDriftStatus": self.drift.get("StackDriftStatus",
                                                                                         "NOT_CHECKED")}}
        if self.template.body.get("Description"):
            out["Description"] = self.template.body["Description"]
        if self.reason:
            out["StackStatusReason"] = self.reason
        if self.updated:
            out["LastUpdatedTime"] = self.updated
        if self.deleted:
            out["DeletionTime"] = self.deleted
        if self.drift.get("Timestamp"):
            out["DriftInformation"]["LastCheckTimestamp"] = self.drift["Timestamp"]
        return out


class StackEngine:
    """All stacks of the offline backend (deleted ones too, as ``ListStacks`` shows them)."""

    def __init__(self) -> None:
        self.stacks: list[Stack] = []
        self.lock = threading.RLock()
        self._stopping = threading.Event()

    # lookup -------------------------------------------------------------------------------

    def get(self, name_or_id: str, *, deleted: bool = False) -> Stack:
        with self.lock:
            for stack in reversed(self.stacks):
                if stack.stack_id == name_or_id or (stack.name == name_or_id and (
                        deleted or stack.status != "DELETE_COMPLETE")):
                    return stack
        raise invalid(f"Stack with id {name_or_id} does not exist")

    def live(self, name: str) -> Stack | None:
        with self.lock:
            return next((s for s in self.stacks if s.name == name and s.status != "DELETE_COMPLETE"), None)

    def exports(self) -> dict[str, str]:
        out = {}
        for stack in self.stacks:
            if stack.status != "DELETE_COMPLETE":
                out.update({o["ExportName"]: o["OutputValue"] for o in stack.outputs if o.get("ExportName")})
        return out

    def stop(self) -> None:
        """Stop every running operation (a backend reset); resources are the engines' to clear."""
        self._stopping.set()
        with self.lock:
            threads = [s.thread for s in self.stacks if s.thread is not None]
            self.stacks.clear()
        for thread in threads:
            thread.join(timeout=5)
        self._stopping.clear()

    # templates ----------------------------------------------------------------------------

    def template(self, body: str, parameters: dict[str, str], name: str, stack_id: str = "") -> Template:
        from .template import load

        return Template(load(body), parameters, stack_name=name, stack_id=stack_id, account=ACCOUNT_ID,
                        region=REGION)

    # operations -----------------------------------------------------------------------------

    def create(self, name: str, body: str, parameters: dict[str, str], tags: list[dict[str, str]],
               rollback: bool = True) -> Stack:
        if self.live(name) is not None:
            raise AWSError("AlreadyExistsException", f"Stack [{name}] already exists")
        stack_id = f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{name}/{uuid.uuid4()}"
        template = self.template(body, parameters, name, stack_id)
        stack = Stack(name, body, template, template.parameter_text(), tags, stack_id=stack_id,
                      rollback=rollback)
        with self.lock:
            self.stacks.append(stack)
        stack.event("CREATE_IN_PROGRESS", "User Initiated")
        self._start(stack, self._run_create)
        return stack

    def _start(self, stack: Stack, target: Any, *args: Any) -> None:
        def run() -> None:
            try:
                target(stack, *args)
            except Exception as err:  # noqa: BLE001 - a stack never stays IN_PROGRESS because of a bug here
                failed = FAILED.get(stack.status)
                if failed:
                    stack.event(failed, f"Internal failure of the offline CloudFormation: {type(err).__name__}: {err}")

        stack.thread = threading.Thread(target=run, name=f"labkit-stack-{stack.name}", daemon=True)
        stack.thread.start()

    def update(self, stack: Stack, body: str, parameters: dict[str, str]) -> None:
        if stack.status not in UPDATABLE:
            raise invalid(f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
        template = self.template(body, parameters, stack.name, stack.stack_id)
        plan = self.plan(stack, template)
        if not plan:
            raise invalid("No updates are to be performed.")
        stack.event("UPDATE_IN_PROGRESS", "User Initiated")
        self._start(stack, self._run_update, body, template)

    def delete(self, stack: Stack) -> None:
        if stack.status == "DELETE_COMPLETE" or stack.status == "DELETE_IN_PROGRESS":
            return
        if stack.status in IN_PROGRESS:
            raise invalid(f"Stack [{stack.name}] cannot be deleted while in status {stack.status}")
        stack.event("DELETE_IN_PROGRESS", "User Initiated")
        self._start(stack, self._run_delete)

    # the work --------------------------------------------------------------------------------

    def _resolver(self, stack: Stack, template: Template) -> Resolver:
        def lookup(logical: str, attribute: str | None) -> Any:
            resource = stack.resources.get(logical)
            if resource is None or resource.created is None:
                raise res.ResourceFailed(f"Resource {logical} is not available (it was not created).")
            if attribute is None:
                return resource.created.ref or resource.created.physical_id
            if attribute not in resource.created.attributes:
                raise res.ResourceFailed(f"Attribute {attribute} of {logical} is not available offline.")
            return resource.created.attributes[attribute]

        return Resolver(template, lookup, self.exports())

    def _properties(self, stack: Stack, template: Template, logical: str) -> dict[str, Any]:
        """The resource's properties resolved, checked against its type's schema as CloudFormation does."""
        try:
            props = self._resolver(stack, template).resolve(template.resources[logical].get("Properties") or {})
        except AWSError as err:
            raise res.ResourceFailed(err.message) from err
        except (KeyError, IndexError, TypeError) as err:
            raise res.ResourceFailed(f"Template error: an intrinsic function of {logical} could not be resolved "
                                     f"({type(err).__name__}: {err})") from err
        props = {k: v for k, v in (props or {}).items() if v is not NO_VALUE}
        schema = type_schema(template.resources[logical]["Type"]) or {}
        extra = sorted(set(props) - set(schema.get("properties") or {}) - _paths_of(schema, "readOnlyProperties"))
        missing = sorted(set(schema.get("required") or []) - set(props))
        if extra or missing:
            problems = [f"#: extraneous key [{k}] is not permitted" for k in extra]
            problems += [f"#: required key [{k}] not found" for k in missing]
            raise res.ResourceFailed(f"Properties validation failed for resource {logical} with message: "
                                     f"{' '.join(problems)}")
        return props

    def _walk(self, stack: Stack, template: Template, action: Any, verb: str) -> str | None:
        """Run ``action(logical)`` over the template's resources, each once its dependencies are done.

        Ready resources start together; each action returns a callable that is True once the resource
        is stable. Returns the first failure's reason, or None. Resources started but unfinished when
        another fails are marked cancelled.
        """
        done: set[str] = set()
        running: dict[str, Any] = {}
        pending = list(template.order)
        failure = None
        while (pending or running) and failure is None:
            if self._stopping.is_set():
                return "The backend was reset."
            for logical in [p for p in pending if template.dependencies(p) <= done]:
                pending.remove(logical)
                try:
                    check = action(logical)
                except res.ResourceFailed as err:
                    failure = (logical, str(err))
                    break
                if check is None:
                    done.add(logical)
                else:
                    running[logical] = check
            if failure:
                break
            for logical, check in list(running.items()):
                try:
                    finished = check()
                except res.ResourceFailed as err:
                    failure = (logical, str(err))
                    break
                if finished:
                    del running[logical]
                    done.add(logical)
            if running and failure is None:
                time.sleep(0.05)
        if failure is None:
            return None
        logical, reason = failure
        resource = stack.resources.setdefault(logical, StackResource(logical, template.resources[logical]["Type"]))
        stack.event(f"{verb}_FAILED", reason, resource)
        for other in running:
            if other != logical:
                stack.event(f"{verb}_FAILED", "Resource creation cancelled" if verb == "CREATE" else
                            "Resource update cancelled", stack.resources[other])
        return f"The following resource(s) failed to {verb.lower()}: [{logical}]. "

    def _provider(self, resource_type: str) -> res.Provider:
        provider = res.PROVIDERS.get(resource_type)
        if provider is None:
            raise res.ResourceFailed(res.unsupported(resource_type))
        return provider

    def _stable_check(self, stack: Stack, resource: StackResource, verb: str, provider: res.Provider) -> Any:
        if provider.stable is None:
            stack.event(f"{verb}_COMPLETE", None, resource)
            return None
        deadline = time.monotonic() + res.STABILIZE_TIMEOUT_S

        def check() -> bool:
            assert resource.created is not None
            if time.monotonic() > deadline:
                raise res.ResourceFailed(f"Resource of type '{resource.type}' with identifier "
                                         f"'{resource.physical_id}' did not stabilize in time.")
            if provider.stable(resource.created):  # type: ignore[misc]
                stack.event(f"{verb}_COMPLETE", None, resource)
                return True
            return False

        return check

    def _create_one(self, stack: Stack, template: Template, logical: str) -> Any:
        spec = template.resources[logical]
        resource = stack.resources.setdefault(logical, StackResource(logical, spec["Type"]))
        stack.event("CREATE_IN_PROGRESS", None, resource)
        provider = self._provider(spec["Type"])
        props = self._properties(stack, template, logical)
        resource.properties = props
        resource.created = provider.create(generated_name(stack.name, logical), props)
        stack.event("CREATE_IN_PROGRESS", "Resource creation Initiated", resource, props)
        return self._stable_check(stack, resource, "CREATE", provider)

    def _delete_one(self, stack: Stack, resource: StackResource, cleanup: bool = False) -> None:
        spec = stack.template.resources.get(resource.logical_id) or {}
        if resource.created is None:
            stack.event("DELETE_COMPLETE", None, resource)
            return
        if spec.get("DeletionPolicy") == "Retain" and not cleanup:
            stack.event("DELETE_SKIPPED", None, resource)
            return
        stack.event("DELETE_IN_PROGRESS", None, resource)
        provider = res.PROVIDERS[resource.type]
        try:
            provider.delete(resource.created)
            deadline = time.monotonic() + res.STABILIZE_TIMEOUT_S
            while provider.gone is not None and not provider.gone(resource.created):
                if time.monotonic() > deadline or self._stopping.is_set():
                    raise res.ResourceFailed(f"Resource of type '{resource.type}' with identifier "
                                             f"'{resource.physical_id}' did not finish deleting in time.")
                time.sleep(0.05)
        except res.ResourceFailed as err:
            if not res._gone(err):
                stack.event("DELETE_FAILED", str(err), resource)
                raise
        stack.event("DELETE_COMPLETE", None, resource)

    def _delete_all(self, stack: Stack, order: list[str]) -> bool:
        ok = True
        for logical in reversed(order):
            resource = stack.resources.get(logical)
            if resource is None or resource.status in ("DELETE_COMPLETE", "DELETE_SKIPPED"):
                continue
            try:
                self._delete_one(stack, resource)
            except res.ResourceFailed:
                ok = False
        return ok

    def _outputs(self, stack: Stack) -> None:
        resolver = self._resolver(stack, stack.template)
        outputs = []
        for key, spec in stack.template.outputs.items():
            if spec.get("Condition") and not stack.template.conditions.get(spec["Condition"]):
                continue
            entry = {"OutputKey": key, "OutputValue": str(resolver.resolve(spec["Value"]))}
            if spec.get("Description"):
                entry["Description"] = spec["Description"]
            if spec.get("Export"):
                entry["ExportName"] = str(resolver.resolve(spec["Export"]["Name"]))
            outputs.append(entry)
        stack.outputs = outputs

    def _run_create(self, stack: Stack) -> None:
        reason = self._walk(stack, stack.template, lambda logical: self._create_one(stack, stack.template, logical),
                            "CREATE")
        if reason is None:
            try:
                self._outputs(stack)
            except (res.ResourceFailed, AWSError) as err:
                reason = f"Outputs could not be resolved: {err}"
        if reason is None:
            stack.event("CREATE_COMPLETE")
            return
        if not stack.rollback:
            stack.event("CREATE_FAILED", reason.strip())
            return
        stack.event("ROLLBACK_IN_PROGRESS", reason + "Rollback requested by user.")
        ok = self._delete_all(stack, stack.template.order)
        stack.event("ROLLBACK_COMPLETE" if ok else "ROLLBACK_FAILED")

    def _run_delete(self, stack: Stack) -> None:
        ok = self._delete_all(stack, stack.template.order)
        if ok:
            stack.deleted = now()
            stack.event("DELETE_COMPLETE")
        else:
            stack.event("DELETE_FAILED", "The following resource(s) failed to delete.")

    # updates --------------------------------------------------------------------------------

    def plan(self, stack: Stack, template: Template) -> list[dict[str, Any]]:
        """The changes ``template`` makes to ``stack``, as a change set lists them (ResourceChange)."""
        old, new = stack.template.resources, template.resources
        changes: list[dict[str, Any]] = []
        replaced: set[str] = set()
        for logical in template.order:
            spec = new[logical]
            if logical not in stack.resources or stack.resources[logical].created is None:
                changes.append({"Action": "Add", "LogicalResourceId": logical, "ResourceType": spec["Type"],
                                "Scope": [], "Details": []})
                continue
            before = Resolver(stack.template, lambda *_: None).resolve(old[logical].get("Properties") or {}) \
                if logical in old else {}
            after = Resolver(template, lambda *_: None).resolve(spec.get("Properties") or {})
            static = sorted(k for k in set(before or {}) | set(after or {})
                            if json.dumps((before or {}).get(k), sort_keys=True, default=str)
                            != json.dumps((after or {}).get(k), sort_keys=True, default=str))
            from .template import references

            dynamic = sorted(k for k, v in (spec.get("Properties") or {}).items()
                             if references(v) & replaced and k not in static)
            if not static and not dynamic:
                continue
            recreate = create_only(spec["Type"])
            if any(k in recreate for k in static):
                replacement = "True"
            elif any(k in recreate for k in dynamic):
                replacement = "Conditional"
            else:
                replacement = "False"
            if replacement != "False":
                replaced.add(logical)
            details = [{"Target": {"Attribute": "Properties", "Name": k,
                                   "RequiresRecreation": "Always" if k in recreate else "Never"},
                        "Evaluation": "Static", "ChangeSource": "DirectModification"} for k in static]
            details += [{"Target": {"Attribute": "Properties", "Name": k,
                                    "RequiresRecreation": "Always" if k in recreate else "Never"},
                         "Evaluation": "Dynamic", "ChangeSource": "ResourceAttribute",
                         "CausingEntity": ",".join(sorted(references(spec["Properties"][k]) & replaced))}
                        for k in dynamic]
            changes.append({"Action": "Modify", "LogicalResourceId": logical, "ResourceType": spec["Type"],
                            "PhysicalResourceId": stack.resources[logical].physical_id,
                            "Replacement": replacement, "Scope": ["Properties"], "Details": details})
        for logical in stack.template.order:
            if logical not in new and logical in stack.resources:
                changes.append({"Action": "Remove", "LogicalResourceId": logical,
                                "ResourceType": old[logical]["Type"],
                                "PhysicalResourceId": stack.resources[logical].physical_id,
                                "Scope": [], "Details": []})
        return changes

    def _run_update(self, stack: Stack, body: str, template: Template) -> None:
        previous = {k: (r.properties, r.created, r.status) for k, r in stack.resources.items()}
        old_template = stack.template
        touched: list[tuple[str, str]] = []  # (logical, "add" | "update" | "replace") in order
        retired: list[StackResource] = []  # replaced physical resources, deleted at cleanup

        def step(logical: str) -> Any:
            spec = template.resources[logical]
            provider = self._provider(spec["Type"])
            props = self._properties(stack, template, logical)
            current = stack.resources.get(logical)
            if current is None or current.created is None:
                touched.append((logical, "add"))
                resource = StackResource(logical, spec["Type"])
                stack.resources[logical] = resource
                stack.event("CREATE_IN_PROGRESS", None, resource)
                resource.properties = props
                resource.created = provider.create(generated_name(stack.name, logical), props)
                stack.event("CREATE_IN_PROGRESS", "Resource creation Initiated", resource, props)
                return self._stable_check(stack, resource, "CREATE", provider)
            if json.dumps(current.properties, sort_keys=True, default=str) == json.dumps(props, sort_keys=True,
                                                                                          default=str):
                return None
            changed = {k for k in set(current.properties) | set(props) if current.properties.get(k) != props.get(k)}
            if changed & create_only(spec["Type"]) or provider.update is None:
                touched.append((logical, "replace"))
                retired.append(StackResource(logical, current.type, current.status, None, current.properties,
                                             current.created))
                stack.event("UPDATE_IN_PROGRESS", "Requested update requires the creation of a new physical "
                            "resource; hence creating one.", current)
                current.properties = props
                current.created = provider.create(generated_name(stack.name, logical), props)
                stack.event("UPDATE_IN_PROGRESS", "Resource creation Initiated", current, props)
                return self._stable_check(stack, current, "UPDATE", provider)
            touched.append((logical, "update"))
            stack.event("UPDATE_IN_PROGRESS", None, current)
            current.created = provider.update(current.created, current.properties, props)
            current.properties = props
            return self._stable_check(stack, current, "UPDATE", provider)

        stack.template = template
        reason = self._walk(stack, template, step, "UPDATE")
        if reason is None:
            try:
                self._outputs(stack)
            except (res.ResourceFailed, AWSError) as err:
                reason = f"Outputs could not be resolved: {err}"
        if reason is None:
            stack.body, stack.parameters, stack.updated = body, template.parameter_text(), now()
            stack.event("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
            for resource in reversed(retired):
                self._quiet_delete(stack, resource)
            for logical in reversed(old_template.order):
                if logical not in template.resources and logical in stack.resources:
                    resource = stack.resources[logical]
                    self._quiet_delete(stack, resource)
                    del stack.resources[logical]
            stack.event("UPDATE_COMPLETE")
            return
        stack.event("UPDATE_ROLLBACK_IN_PROGRESS", reason)
        stack.template = old_template
        for logical, kind in reversed(touched):
            resource = stack.resources[logical]
            props, created, status = previous.get(logical, ({}, None, ""))
            if kind == "add":
                self._quiet_delete(stack, resource)
                del stack.resources[logical]
            elif kind == "replace":
                old_created = next(r.created for r in retired if r.logical_id == logical)
                self._quiet_delete(stack, StackResource(logical, resource.type, created=resource.created))
                resource.created, resource.properties = old_created, props
                stack.event("UPDATE_COMPLETE", None, resource)
            else:
                provider = res.PROVIDERS[resource.type]
                stack.event("UPDATE_IN_PROGRESS", None, resource)
                try:
                    assert resource.created is not None and provider.update is not None
                    resource.created = provider.update(resource.created, resource.properties, props)
                    res.wait_stable(provider, resource.created, stop=self._stopping.is_set)
                    resource.properties = props
                    stack.event("UPDATE_COMPLETE", None, resource)
                except res.ResourceFailed as err:
                    stack.event("UPDATE_FAILED", str(err), resource)
        stack.event("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        stack.event("UPDATE_ROLLBACK_COMPLETE")

    def _quiet_delete(self, stack: Stack, resource: StackResource) -> None:
        with contextlib.suppress(res.ResourceFailed):
            self._delete_one(stack, resource, cleanup=True)

    # drift ------------------------------------------------------------------------------------

    def detect_drift(self, stack: Stack, logical_ids: list[str] | None = None) -> dict[str, Any]:
        if stack.status in IN_PROGRESS:
            raise invalid(f"Drift detection is not supported while the stack is in {stack.status} state.")
        results = []
        for logical in stack.template.order:
            if logical_ids and logical not in logical_ids:
                continue
            resource = stack.resources.get(logical)
            if resource is None or resource.created is None:
                continue
            resource.drift = self._resource_drift(stack, resource)
            results.append(resource.drift)
        drifted = sum(1 for r in results if r["StackResourceDriftStatus"] in ("MODIFIED", "DELETED"))
        stack.drift = {"StackDriftDetectionId": str(uuid.uuid4()), "Timestamp": now(),
                       "StackDriftStatus": "DRIFTED" if drifted else "IN_SYNC", "DriftedStackResourceCount": drifted}
        return stack.drift

    def _resource_drift(self, stack: Stack, resource: StackResource) -> dict[str, Any]:
        assert resource.created is not None
        provider = res.PROVIDERS[resource.type]
        expected = {k: v for k, v in resource.properties.items()
                    if k not in write_only(resource.type) and k != "Tags"}
        out = {"StackId": stack.stack_id, "LogicalResourceId": resource.logical_id,
               "PhysicalResourceId": resource.physical_id, "ResourceType": resource.type, "Timestamp": now(),
               "ExpectedProperties": json.dumps(expected, sort_keys=True, default=str)}
        actual = provider.read(resource.created)
        if actual is None:
            return {**out, "StackResourceDriftStatus": "DELETED", "PropertyDifferences": []}
        differences = list(_differences(expected, actual, ""))
        return {**out, "ActualProperties": json.dumps({k: actual[k] for k in actual if k in expected} | {
            k: v for k, v in actual.items() if k not in expected}, sort_keys=True, default=str),
            "PropertyDifferences": differences,
            "StackResourceDriftStatus": "MODIFIED" if differences else "IN_SYNC"}


def _paths_of(schema: dict[str, Any], key: str) -> set[str]:
    return {p.removeprefix("/properties/").split("/")[0] for p in schema.get(key) or []}


def _same(a: Any, b: Any) -> bool:
    """Equal as CloudFormation compares property values (``"5"`` and ``5.0`` are the same number)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).lower() == str(b).lower()
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return a == b


def _differences(expected: Any, actual: Any, path: str) -> Any:
    """``PropertyDifferences`` between the template's value and the live one (expected's paths only)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            if key not in actual:
                yield {"PropertyPath": f"{path}/{key}", "ExpectedValue": json.dumps(value, default=str),
                       "ActualValue": "null", "DifferenceType": "REMOVE"}
            else:
                yield from _differences(value, actual[key], f"{path}/{key}")
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
            yield from _differences(a, b, f"{path}/{i}")
    elif isinstance(expected, list | dict) or isinstance(actual, list | dict):
        if json.dumps(expected, sort_keys=True, default=str) != json.dumps(actual, sort_keys=True, default=str):
            yield {"PropertyPath": path, "ExpectedValue": json.dumps(expected, default=str),
                   "ActualValue": json.dumps(actual, default=str), "DifferenceType": "NOT_EQUAL"}
    elif not _same(expected, actual):
        yield {"PropertyPath": path, "ExpectedValue": str(expected), "ActualValue": str(actual),
               "DifferenceType": "NOT_EQUAL"}
