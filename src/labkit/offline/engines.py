"""Every engine of the offline backend, in one list: what it is, where it lives, what it answers.

An engine is a module or package that adds what moto only records (or lacks) for some
AWS operations. Each has the same shape, after moto's: behaviour in plain classes that
tests drive without HTTP or botocore, and a thin protocol layer that registers handlers,
validators and after hooks with :mod:`labkit.offline.dispatch` when the module is
imported. :func:`load` imports them all (the backend does, at start); which operations
each one answers is read back from the dispatcher (:func:`answered`), so this list never
needs to repeat them. ``labkit doctor`` prints it.

A new engine is one module (or package) and one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Engine:
    name: str
    module: str
    summary: str


ENGINES: tuple[Engine, ...] = (
    Engine("iam", "labkit.offline.iam", "IAM policy evaluation and the policy simulator"),
    Engine("s3", "labkit.offline.s3", "S3 request checks AWS makes and moto does not"),
    Engine("training", "labkit.offline.training", "training, processing and tuning jobs that run the learner's code"),
    Engine("hosting", "labkit.offline.hosting", "endpoints that serve the learner's model; batch transform"),
    Engine("cloudformation", "labkit.offline.cloudformation", "stacks whose resources are created through the engines"),
    Engine("bedrock", "labkit.offline.bedrock", "Bedrock runtime, guardrails, knowledge bases, agents"),
    Engine("aoss", "labkit.offline.aoss", "OpenSearch Serverless collections on a real ANN index"),
    Engine("pricing", "labkit.offline.pricing", "Price List API and spot price history"),
    Engine("mlops", "labkit.offline.mlops", "Pipelines, Model Registry, Model Monitor, Feature Store"),
    Engine("athena", "labkit.offline.athena", "SQL over the Glue Data Catalog, run by DuckDB"),
    Engine("stepfunctions", "labkit.offline.stepfunctions", "state machine definitions checked as AWS checks them"),
    Engine("emr", "labkit.offline.emr", "RunJobFlow checks and instance fleets"),
    Engine("cloudwatch", "labkit.offline.cloudwatch", "alarms that evaluate"),
    Engine("cloudtrail", "labkit.offline.cloudtrail", "trails checked against the log bucket's policy"),
    Engine("eks", "labkit.offline.eks", "clusters and node groups with AWS's checks"),
    Engine("cost_explorer", "labkit.offline.cost_explorer", "Cost Explorer and Budgets from the metered usage"),
    Engine("metering", "labkit.offline.metering", "usage of the services moto answers alone"),
    Engine("clarify", "labkit.offline.clarify", "the Clarify container: bias metrics and Kernel SHAP"),
    Engine("debugger", "labkit.offline.debugger", "Debugger hook, rules and profiler"),
    Engine("model_cards", "labkit.offline.model_cards", "model cards validated and exported to PDF"),
    Engine("ec2_cluster", "labkit.offline.ec2_cluster", "DLAMI parameters, placement groups, EFA, capacity"),
    Engine("batch", "labkit.offline.batch", "AWS Batch jobs that run"),
    Engine("warm_pools", "labkit.offline.warm_pools", "managed warm pools for training jobs"),
    Engine("inference_recommender", "labkit.offline.inference_recommender", "load tests against real endpoints"),
)

loaded: dict[str, str] = {}  # module -> "loaded" or "not built yet"


def modules() -> list[str]:
    return [engine.module for engine in ENGINES]


def load() -> dict[str, str]:
    """Import every engine (once), registering its handlers; an engine not built yet is noted, not fatal."""
    for engine in ENGINES:
        if engine.module in loaded:
            continue
        try:
            importlib.import_module(engine.module)
            loaded[engine.module] = "loaded"
        except ModuleNotFoundError as err:
            if err.name != engine.module:
                raise
            loaded[engine.module] = "not built yet"
    return dict(loaded)


def answered(engine: Engine) -> dict[str, list[str]]:
    """``{service: [operations]}`` the engine registered a handler, validator or after hook for."""
    from . import dispatch

    out: dict[str, list[str]] = {}
    for service, operation, module in dispatch.registrations():
        if module == engine.module or module.startswith(engine.module + "."):
            out.setdefault(service, []).append(operation)
    return {service: sorted(set(ops)) for service, ops in sorted(out.items())}
