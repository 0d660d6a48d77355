"""A pipeline definition (the JSON the SDK's ``Pipeline.definition()`` writes), parsed and checked.

:class:`Definition` holds the parameters and every step, including the steps nested in a
Condition step's ``IfSteps``/``ElseSteps``, with each step's dependencies: its
``DependsOn`` list, the steps its ``Arguments`` (or a Condition's ``Conditions``) refer
to through ``{"Get": "Steps.<name>..."}``, and, for a step inside a branch, the
Condition step that owns the branch. :func:`parse` rejects what the service rejects at
CreatePipeline: unreadable JSON, an unknown version, duplicate step names, references to
steps or parameters that do not exist, and dependency cycles.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

VERSIONS = ("2020-12-01",)
PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
EXECUTION_VARIABLES = ("PipelineExecutionId", "PipelineExecutionArn", "PipelineName", "PipelineArn",
                       "StartDateTime", "CurrentDateTime", "PipelineExperimentName", "PipelineExecutionTrialName",
                       "TrainingJobName", "ProcessingJobName")
# Step types the definition may hold. The engine runs those in RUNNABLE; the others are
# accepted (AWS accepts them) and fail at run time with a message that says why.
STEP_TYPES = ("Processing", "Training", "Transform", "Tuning", "Model", "RegisterModel", "Condition", "Fail",
              "Lambda", "Callback", "QualityCheck", "ClarifyCheck", "EMR", "EMRServerless", "AutoML",
              "EndpointConfig", "Endpoint", "InferenceComponent", "Lineage", "Job", "Cleanup", "ForEach")
RUNNABLE = ("Processing", "Training", "Transform", "Tuning", "Model", "RegisterModel", "Condition", "Fail")
STEP_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")


class DefinitionError(ValueError):
    """The definition is not one the service accepts; the message says what to fix."""


@dataclass
class Parameter:
    name: str
    type: str
    default: Any = None
    enum: list[Any] | None = None


@dataclass
class StepDef:
    """One step of the definition, nested ones included."""

    name: str
    type: str
    arguments: dict[str, Any]
    raw: dict[str, Any]
    depends_on: set[str] = field(default_factory=set)
    parent: str | None = None  # the Condition step whose branch holds this step
    branch: bool | None = None  # True: IfSteps, False: ElseSteps
    if_steps: list[str] = field(default_factory=list)
    else_steps: list[str] = field(default_factory=list)

    @property
    def display_name(self) -> str | None:
        return self.raw.get("DisplayName")

    @property
    def description(self) -> str | None:
        return self.raw.get("Description")

    @property
    def property_files(self) -> list[dict[str, str]]:
        return list(self.raw.get("PropertyFiles") or [])


@dataclass
class Definition:
    version: str
    parameters: dict[str, Parameter]
    steps: dict[str, StepDef]
    experiment_config: dict[str, Any] | None
    text: str

    def top_level(self) -> list[StepDef]:
        return [s for s in self.steps.values() if s.parent is None]


def references(value: Any) -> list[str]:
    """Every ``Get`` path inside ``value`` (``Steps.X...``, ``Parameters.Y``, ``Execution.Z``)."""
    found: list[str] = []
    if isinstance(value, dict):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            found.append(value["Get"])
        else:
            for item in value.values():
                found += references(item)
    elif isinstance(value, list):
        for item in value:
            found += references(item)
    return found


def step_of(path: str) -> str | None:
    """``"Steps.Train.ModelArtifacts..."`` -> ``"Train"``."""
    if not path.startswith("Steps."):
        return None
    rest = path[len("Steps."):]
    return re.split(r"[.\[]", rest, maxsplit=1)[0]


def _parameter(entry: Any) -> Parameter:
    if not isinstance(entry, dict) or "Name" not in entry:
        raise DefinitionError("Every entry of Parameters needs a Name (and a Type: String, Integer, Float or Boolean).")
    kind = entry.get("Type", "String")
    if kind not in PARAMETER_TYPES:
        raise DefinitionError(f"Parameter {entry['Name']!r} has Type {kind!r}; use one of {', '.join(PARAMETER_TYPES)}.")
    return Parameter(entry["Name"], kind, entry.get("DefaultValue"), entry.get("EnumValues"))


def _collect(raw: Any, out: dict[str, StepDef], parent: str | None = None, branch: bool | None = None) -> StepDef:
    if not isinstance(raw, dict) or "Name" not in raw or "Type" not in raw:
        raise DefinitionError("Every step needs a Name and a Type.")
    name, kind = raw["Name"], raw["Type"]
    if not isinstance(name, str) or not STEP_NAME.match(name):
        raise DefinitionError(f"Step name {name!r} is invalid: 1 to 64 letters, digits, '-' or '_'.")
    if kind not in STEP_TYPES:
        raise DefinitionError(f"Step {name!r} has unknown Type {kind!r}.")
    if name in out:
        raise DefinitionError(f"Step names must be unique within a pipeline: {name!r} appears more than once.")
    arguments = raw.get("Arguments") or {}
    if not isinstance(arguments, dict):
        raise DefinitionError(f"Step {name!r}: Arguments must be a JSON object.")
    step = StepDef(name, kind, arguments, raw, parent=parent, branch=branch)
    out[name] = step
    depends = raw.get("DependsOn") or []
    for item in depends:
        step.depends_on.add(item["Step"] if isinstance(item, dict) else item)
    if kind == "Condition":
        for key, flag, names in (("IfSteps", True, step.if_steps), ("ElseSteps", False, step.else_steps)):
            for child in arguments.get(key) or []:
                names.append(_collect(child, out, parent=name, branch=flag).name)
    return step


def parse(text: str) -> Definition:
    """Parse and check a definition as CreatePipeline does."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError) as err:
        raise DefinitionError(f"Unable to parse pipeline definition: {err}. It must be the JSON "
                              "document that Pipeline.definition() returns.") from err
    if not isinstance(doc, dict):
        raise DefinitionError("Unable to parse pipeline definition: the document must be a JSON object.")
    version = doc.get("Version")
    if version not in VERSIONS:
        raise DefinitionError(f"Pipeline definition Version {version!r} is not supported; use {VERSIONS[-1]!r}.")
    parameters: dict[str, Parameter] = {}
    for entry in doc.get("Parameters") or []:
        p = _parameter(entry)
        if p.name in parameters:
            raise DefinitionError(f"Parameter names must be unique: {p.name!r} is declared twice.")
        parameters[p.name] = p
    steps: dict[str, StepDef] = {}
    raw_steps = doc.get("Steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise DefinitionError("A pipeline definition needs a non-empty Steps list.")
    for raw in raw_steps:
        _collect(raw, steps)
    for step in steps.values():
        body = {k: v for k, v in step.arguments.items() if k not in ("IfSteps", "ElseSteps")}
        for path in references(body) + references(step.raw.get("PropertyFiles")):
            _check_reference(path, step, steps, parameters)
            target = step_of(path)
            if target is not None and target != step.name:
                step.depends_on.add(target)
        for dep in step.depends_on:
            if dep not in steps:
                raise DefinitionError(f"Step {step.name!r} depends on step {dep!r}, which is not defined.")
        if step.parent is not None:
            step.depends_on.add(step.parent)
    _check_cycles(steps)
    return Definition(version, parameters, steps, doc.get("PipelineExperimentConfig"), text)


def _check_reference(path: str, step: StepDef, steps: dict[str, StepDef], parameters: dict[str, Parameter]) -> None:
    head, _, rest = path.partition(".")
    if head == "Parameters":
        if rest not in parameters:
            raise DefinitionError(f"Step {step.name!r} refers to parameter {rest!r}, which is not declared in "
                                  "Parameters.")
    elif head == "Execution":
        if rest not in EXECUTION_VARIABLES:
            raise DefinitionError(f"Step {step.name!r} refers to execution variable {rest!r}; known: "
                                  f"{', '.join(EXECUTION_VARIABLES)}.")
    elif head == "Steps":
        target = step_of(path)
        if target not in steps:
            raise DefinitionError(f"Step {step.name!r} refers to step {target!r} ({path}), which is not defined.")
        if target == step.name:
            raise DefinitionError(f"Step {step.name!r} refers to its own properties ({path}).")
    else:
        raise DefinitionError(f"Step {step.name!r}: invalid reference {path!r} (a Get must start with Steps., "
                              "Parameters. or Execution.).")


def _check_cycles(steps: dict[str, StepDef]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = trail[trail.index(name):] + [name]
            raise DefinitionError(f"The pipeline's steps form a cycle: {' -> '.join(cycle)}.")
        state[name] = 1
        for dep in sorted(steps[name].depends_on):
            visit(dep, [*trail, name])
        state[name] = 2

    for name in steps:
        visit(name, [])
