"""Step Functions definitions checked as AWS checks them.

moto stores any ``definition`` string, even one that is not JSON; AWS refuses an invalid
Amazon States Language document with ``InvalidDefinition``. ``CreateStateMachine`` and
``UpdateStateMachine`` are checked here with :mod:`labkit.checks.states_language`
(statelint's rules) before moto records them, and ``ValidateStateMachineDefinition``
(which moto lacks) answers with the same diagnostics in AWS's shape.

Not emulated: executions. moto records ``StartExecution`` but runs no state; the course
reviews a workflow's definition offline and runs it on the sandbox backend.
"""

from __future__ import annotations

import re
from typing import Any

from ..checks import states_language
from . import dispatch
from .dispatch import AWSError

MAX_DEFINITION_BYTES = 1024 * 1024  # "The Amazon States Language definition of the state machine" <= 1 MiB


def _location(problem: str) -> str | None:
    """statelint names where a problem is (``State Machine.States.Train.Next``); AWS uses a JSON pointer."""
    match = re.search(r"State Machine((?:\.[A-Za-z0-9_\-]+|\[\d+\])*)", problem)
    if not match or not match.group(1):
        return None
    path = re.sub(r"\[(\d+)\]", r".\1", match.group(1))
    return "/" + "/".join(p for p in path.split(".") if p)


def _code(problem: str) -> str:
    if problem.startswith("The definition is not valid JSON") or problem.startswith("Problem reading"):
        return "INVALID_JSON_DESCRIPTION"
    if "No state found named" in problem or "not found in States" in problem:
        return "MISSING_TRANSITION_TARGET"
    if "No transition found" in problem:
        return "UNREACHABLE_STATE"
    if "No terminal state" in problem:
        return "MISSING_END_STATE"
    return "SCHEMA_VALIDATION_FAILED"


def diagnostics(definition: str) -> list[dict[str, str]]:
    out = []
    for problem in states_language.problems(definition):
        item = {"severity": "ERROR", "code": _code(problem), "message": problem}
        where = _location(problem)
        if where:
            item["location"] = where
        out.append(item)
    return out


def _check(definition: str | None) -> None:
    if definition is None:
        return
    if len(definition.encode()) > MAX_DEFINITION_BYTES:
        raise AWSError("InvalidDefinition", "Invalid State Machine Definition: the definition is larger than "
                       "1 MiB (the Step Functions quota); move large values to S3 and pass references.")
    found = diagnostics(definition)
    if found:
        listed = "; ".join(f"{d['code']}: {d['message']}" for d in found)
        raise AWSError("InvalidDefinition", f"Invalid State Machine Definition: '{listed}'")


@dispatch.validate("stepfunctions", "CreateStateMachine")
def check_create(params: dict[str, Any]) -> None:
    _check(params.get("definition"))


@dispatch.validate("stepfunctions", "UpdateStateMachine")
def check_update(params: dict[str, Any]) -> None:
    _check(params.get("definition"))


@dispatch.operation("stepfunctions", "ValidateStateMachineDefinition")
def validate_state_machine_definition(params: dict[str, Any]) -> dict[str, Any]:
    if params.get("type", "STANDARD") not in ("STANDARD", "EXPRESS"):
        raise AWSError("ValidationException", "type must be STANDARD or EXPRESS.")
    found = diagnostics(params["definition"])
    limit = params.get("maxResults") or 100
    return {"result": "FAIL" if found else "OK", "diagnostics": found[:limit], "truncated": len(found) > limit}
