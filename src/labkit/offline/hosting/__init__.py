"""The offline SageMaker hosting engine: endpoints that really serve the learner's model.

Importing this module (:mod:`labkit.offline.engines` does) registers the boto3
handlers of :mod:`.api`: CreateEndpointConfig, CreateEndpoint, UpdateEndpoint,
DeleteEndpoint, InvokeEndpoint, InvokeEndpointAsync, CreateTransformJob and
StopTransformJob, plus Application Auto Scaling checks (:mod:`.autoscaling`). An
``UpdateEndpoint`` with a ``DeploymentConfig`` runs as deployment guardrails do (blue/green with
canary, linear or rolling traffic shifting, rolled back by alarms: :mod:`.deployment`), and every
request a model serves publishes SageMaker's invocation metrics to CloudWatch (:mod:`.metrics`).
Each endpoint variant is a model server subprocess (:mod:`.server`) that runs the
sagemaker-inference toolkit's handler contract over the learner's ``inference.py``; on
Linux a warm zygote forks them in milliseconds (:mod:`.process`), and every one of them
dies with the Python process that asked for it, however that process ends. The SDKs'
fixed polling sleeps are shortened while the backend runs (:mod:`labkit.offline.patches`), so
``ModelBuilder.deploy``, ``Endpoint.wait_for_status`` and the boto3 waiters return as
soon as the endpoint changes state.

For labs and tests: :data:`engine` (the endpoints), :func:`wait_for_endpoint`,
:func:`~.autoscaling.desired_instance_count` and :func:`~.autoscaling.simulate_target_tracking`.
"""

from __future__ import annotations

import atexit

from .. import on_reset, patches
from . import autoscaling, deployment, metrics, process, transform
from .api import engine
from .autoscaling import desired_instance_count, simulate_target_tracking
from .process import stop_all

patches.on_import("sagemaker.serve", process.warm_up)
engine.observers.append(metrics.record)  # AWS/SageMaker invocation metrics from every request served


def wait_for_endpoint(name: str, timeout: float = 60.0) -> str:
    """Block until endpoint ``name`` is no longer Creating/Updating; returns its status."""
    return engine.wait(name, timeout)


def loaded_models(name: str, variant: str | None = None) -> list[str]:
    """The TargetModels a multi-model endpoint's server holds in memory, least recently used first."""
    import json

    endpoint = engine.get(name)
    v = endpoint.variants[variant] if variant else next(iter(endpoint.variants.values()))
    if v.process is None:
        return []
    return json.loads(v.process.request("GET", "/models")[1])


@on_reset
def _reset() -> None:
    engine.stop_all()
    for stop in list(transform._running.values()):
        stop.set()
    stop_all()


# At exit, endpoints still up are deleted too, so their servers' files go with them (atexit
# runs this before process.py's own hook, which then stops the zygote).
atexit.register(_reset)


__all__ = ["autoscaling", "deployment", "desired_instance_count", "engine", "loaded_models", "simulate_target_tracking",
           "wait_for_endpoint"]
