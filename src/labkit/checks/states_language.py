"""Judge an Amazon States Language definition: is it valid, and is it a sound ML workflow?

Validity is decided by `statelint <https://pypi.org/project/statelint/>`_, a maintained
Python port of awslabs/statelint that implements the rules of the States Language
specification (required fields per state type, transitions that name existing states,
reachability, a terminal state, Retry/Catch shapes, JSONPath and JSONata fields). One
rule of statelint is dropped because AWS does not enforce it: ``BackoffRate`` written as
an integer (``2``) is accepted by Step Functions, statelint wants ``2.0``.

On top of validity, :func:`review` reads the workflow as an ML pipeline: which states call
which service integrations, whether long-running jobs use the ``.sync`` pattern (so the
workflow waits for the job instead of moving on at once), whether every task retries and
has a failure path. The offline backend's ``CreateStateMachine`` uses :func:`problems`,
so a definition AWS refuses is refused offline too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from statelint.config import Config
from statelint.linter import Linter
from statelint.problem import ProblemType

# Service integrations whose work outlives the API call: without ``.sync`` the state ends
# when the job is *started*, and the next state reads a model that does not exist yet.
LONG_RUNNING = ("sagemaker:createTrainingJob", "sagemaker:createProcessingJob", "sagemaker:createTransformJob",
                "sagemaker:createHyperParameterTuningJob", "glue:startJobRun", "elasticmapreduce:addStep",
                "elasticmapreduce:createCluster", "athena:startQueryExecution", "batch:submitJob",
                "ecs:runTask", "codebuild:startBuild", "states:startExecution")
TERMINAL_TYPES = ("Succeed", "Fail")


def _as_dict(definition: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(definition, dict):
        return definition
    parsed = json.loads(definition)
    if not isinstance(parsed, dict):
        raise ValueError("a state machine definition is a JSON object")
    return parsed


def problems(definition: str | dict[str, Any]) -> list[str]:
    """Every rule of the States Language the definition breaks (empty when valid)."""
    if isinstance(definition, str):
        try:
            parsed = json.loads(definition)
        except json.JSONDecodeError as err:
            return [f"The definition is not valid JSON: {err}"]
    else:
        parsed = definition
    if not isinstance(parsed, dict):
        return ["A state machine definition is a JSON object with StartAt and States."]
    return Linter.validate(parsed, Config({ProblemType.FLOAT})) + _missing_resources(parsed, "State Machine")


def _missing_resources(machine: dict[str, Any], where: str) -> list[str]:
    """A Task state must name its Resource (the specification says so; statelint 3.1 lets it pass)."""
    found = []
    states = machine.get("States")
    for name, state in (states.items() if isinstance(states, dict) else []):
        if not isinstance(state, dict):
            continue
        path = f"{where}.States.{name}"
        if state.get("Type") == "Task" and not isinstance(state.get("Resource"), str):
            found.append(f'{path} does not have required field "Resource"')
        for i, branch in enumerate(state.get("Branches") or []):
            if isinstance(branch, dict):
                found += _missing_resources(branch, f"{path}.Branches[{i}]")
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                found += _missing_resources(state[key], f"{path}.{key}")
    return found


@dataclass
class Review:
    """What a valid workflow does, read state by state."""

    states: dict[str, dict[str, Any]]
    order: list[str]  # states reachable from StartAt, in the order first reached
    integrations: dict[str, str] = field(default_factory=dict)  # task state -> "service:action[.sync]"
    findings: list[str] = field(default_factory=list)  # what an ML pipeline reviewer would flag

    def first(self, integration: str) -> str | None:
        """The first reachable task state calling ``integration`` (``sagemaker:createTrainingJob``)."""
        for name in self.order:
            if self.integrations.get(name, "").split(".")[0] == integration:
                return name
        return None


def _integration(resource: str) -> str:
    """``arn:aws:states:::sagemaker:createTrainingJob.sync`` -> ``sagemaker:createTrainingJob.sync``."""
    if resource.startswith("arn:aws:states:::"):
        return resource[len("arn:aws:states:::"):]
    if ":lambda:" in resource and ":function:" in resource:
        return "lambda:invoke"
    return resource


def _next_states(state: dict[str, Any]) -> list[str]:
    out = [state["Next"]] if "Next" in state else []
    out += [c["Next"] for c in state.get("Choices", []) if "Next" in c]
    if "Default" in state:
        out.append(state["Default"])
    out += [c["Next"] for c in state.get("Catch", []) if "Next" in c]
    return out


def review(definition: str | dict[str, Any]) -> Review:
    """Read a valid definition as an ML workflow (raises ``ValueError`` when it is invalid)."""
    found = problems(definition)
    if found:
        raise ValueError("invalid state machine definition: " + "; ".join(found))
    doc = _as_dict(definition)
    states: dict[str, dict[str, Any]] = doc["States"]
    order: list[str] = []
    todo = [doc["StartAt"]]
    while todo:
        name = todo.pop(0)
        if name in order:
            continue
        order.append(name)
        todo.extend(_next_states(states[name]))
    result = Review(states=states, order=order)
    for name in order:
        state = states[name]
        if state["Type"] != "Task":
            continue
        integration = _integration(state["Resource"])
        result.integrations[name] = integration
        base = integration.split(".")[0]
        if base in LONG_RUNNING and not integration.endswith(".sync"):
            result.findings.append(f"{name}: {base} without .sync ends when the job starts, not when it finishes")
        if not state.get("Retry"):
            result.findings.append(f"{name}: no Retry (throttling and transient service errors fail the run)")
        if not state.get("Catch"):
            result.findings.append(f"{name}: no Catch (a failure ends the execution without notifying anyone)")
    return result


__all__ = ["LONG_RUNNING", "Review", "problems", "review"]
