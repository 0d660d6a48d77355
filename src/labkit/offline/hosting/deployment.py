"""Deployment guardrails: blue/green endpoint updates with traffic shifting and automatic rollback.

``UpdateEndpoint`` with a ``DeploymentConfig`` (or ``RetainDeploymentConfig``) is carried out
here, as SageMaker documents it (Deployment guardrails for updating models in production):

1. the new endpoint configuration's fleet (*green*) is provisioned beside the serving one
   (*blue*); both are billed meanwhile;
2. traffic shifts to green in steps: ``ALL_AT_ONCE`` (one step), ``CANARY`` (``CanarySize``,
   then the rest) or ``LINEAR`` (``LinearStepSize`` at a time); a ``RollingUpdatePolicy``
   shifts ``MaximumBatchSize`` at a time, as linear does, while blue shrinks by as much;
3. after each step comes a baking period of ``WaitIntervalInSeconds``, during which the
   ``AutoRollbackConfiguration`` alarms are watched; then ``TerminationWaitInSeconds`` before
   blue is terminated (alarms still watched: blue is still there to go back to);
4. an alarm in ``ALARM`` rolls the update back: ``EndpointStatus`` ``RollingBack``, every
   request to blue again, green terminated, then ``InService`` on the old configuration with a
   ``FailureReason`` that says which alarm rolled it back. So does a deployment that exceeds
   ``MaximumExecutionTimeoutInSeconds``, and a green fleet that fails its health check.

``DescribeEndpoint`` shows ``LastDeploymentConfig`` and, while a deployment runs,
``PendingDeploymentSummary`` (the green variants, their phase and share of traffic).

The alarms are CloudWatch alarms, evaluated by :mod:`labkit.offline.cloudwatch` on the metrics
the endpoints publish from their real requests (:mod:`.metrics`): a broken model version fails
real requests, its ``Invocation5XXErrors`` rise, the alarm fires, the update rolls back.

Offline time, said plainly: every wait of the deployment (``WaitIntervalInSeconds``,
``TerminationWaitInSeconds``, ``MaximumExecutionTimeoutInSeconds``) runs scaled by
:data:`TIME_SCALE` (``LABKIT_DEPLOYMENT_TIME_SCALE``, default 0.01: a 300 s baking period
takes 3 s). CloudWatch alarm periods are not scaled. The wording of the rollback's
``FailureReason`` is ours; AWS's may differ.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import ACCOUNT_ID, REGION, dispatch, moto_state, on_reset
from ..dispatch import AWSError
from .endpoints import Endpoint, HostingEngine, Variant, variants_from_config

TIME_SCALE = float(os.environ.get("LABKIT_DEPLOYMENT_TIME_SCALE", "0.01"))
POLL_S = 0.05  # how often alarms are read during a baking period (real seconds)
DEFAULT_TIMEOUT_S = 28800  # MaximumExecutionTimeoutInSeconds' maximum, when none is given


def invalid(message: str) -> AWSError:
    return AWSError("ValidationException", message)


# --- the plan: traffic steps and waits -----------------------------------------------------------


def capacity(config: dict[str, Any]) -> int:
    """The new fleet's capacity in instances (a serverless variant counts as one)."""
    return sum(int(v.get("InitialInstanceCount") or 1) for v in config["ProductionVariants"])


def share_of(size: dict[str, Any], instances: int) -> float:
    """A ``CapacitySize`` as a share of the new fleet (0..1)."""
    if size["Type"] == "CAPACITY_PERCENT":
        return size["Value"] / 100.0
    return size["Value"] / instances


@dataclass
class Plan:
    """What a deployment will do: the green share after each step, the waits (AWS seconds)."""

    steps: list[float]
    wait_s: float
    termination_wait_s: float
    timeout_s: float
    rolling: bool = False
    alarms: list[str] = field(default_factory=list)

    @property
    def total_wait_s(self) -> float:
        return self.wait_s * len(self.steps) + self.termination_wait_s


def plan(deployment: dict[str, Any], config: dict[str, Any]) -> Plan:
    """Check ``deployment`` (a DeploymentConfig) as SageMaker does for ``config``, and plan it."""
    blue_green: dict[str, Any] = deployment.get("BlueGreenUpdatePolicy") or {}
    rolling: dict[str, Any] = deployment.get("RollingUpdatePolicy") or {}
    if blue_green and rolling:
        raise invalid("DeploymentConfig takes a BlueGreenUpdatePolicy or a RollingUpdatePolicy, not both.")
    if not blue_green and not rolling:
        raise invalid("DeploymentConfig needs a BlueGreenUpdatePolicy (traffic shifting: ALL_AT_ONCE, CANARY, "
                      "LINEAR) or a RollingUpdatePolicy.")
    instances = capacity(config)
    alarms = [a["AlarmName"] for a in (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms", [])]
    if rolling:
        variants = config["ProductionVariants"]
        if len(variants) > 1 or any(v.get("ServerlessConfig") for v in variants):
            raise invalid("A rolling deployment is not supported for multi-variant or serverless endpoints: use a "
                          "BlueGreenUpdatePolicy.")
        batch = share_of(rolling["MaximumBatchSize"], instances)
        if not 0 < batch <= 0.5:
            raise invalid(f"RollingUpdatePolicy.MaximumBatchSize must be at most 50% of the endpoint's capacity "
                          f"({instances} instance(s)); it is {batch:.0%}.")
        steps = [min(1.0, batch * k) for k in range(1, math.ceil(1 / batch - 1e-9) + 1)]
        timeout = rolling.get("MaximumExecutionTimeoutInSeconds", DEFAULT_TIMEOUT_S)
        result = Plan(steps, rolling["WaitIntervalInSeconds"], 0, timeout, rolling=True, alarms=alarms)
    else:
        routing = blue_green["TrafficRoutingConfiguration"]
        kind, canary, linear = routing["Type"], routing.get("CanarySize"), routing.get("LinearStepSize")
        if kind != "CANARY" and canary:
            raise invalid(f"CanarySize is only valid with the CANARY traffic routing type (Type is {kind}).")
        if kind != "LINEAR" and linear:
            raise invalid(f"LinearStepSize is only valid with the LINEAR traffic routing type (Type is {kind}).")
        if kind == "ALL_AT_ONCE":
            steps = [1.0]
        elif kind == "CANARY":
            if not canary:
                raise invalid("CANARY traffic routing needs a CanarySize (INSTANCE_COUNT or CAPACITY_PERCENT).")
            first = share_of(canary, instances)
            if not 0 < first <= 0.5:
                raise invalid(f"CanarySize must be at most 50% of the new fleet's capacity ({instances} "
                              f"instance(s)); it is {first:.0%}.")
            steps = [first, 1.0]
        else:
            if not linear:
                raise invalid("LINEAR traffic routing needs a LinearStepSize (INSTANCE_COUNT or CAPACITY_PERCENT).")
            step = share_of(linear, instances)
            if not 0.1 <= step <= 0.5:
                raise invalid(f"LinearStepSize must be between 10% and 50% of the new fleet's capacity "
                              f"({instances} instance(s)); it is {step:.0%}.")
            steps = [min(1.0, step * k) for k in range(1, math.ceil(1 / step - 1e-9) + 1)]
        timeout = blue_green.get("MaximumExecutionTimeoutInSeconds", DEFAULT_TIMEOUT_S)
        result = Plan(steps, routing["WaitIntervalInSeconds"], blue_green.get("TerminationWaitInSeconds", 0),
                      timeout, alarms=alarms)
    if result.total_wait_s >= result.timeout_s:
        raise invalid(f"MaximumExecutionTimeoutInSeconds ({result.timeout_s:g}) must be larger than the total "
                      f"waiting time of the deployment ({result.total_wait_s:g} s: WaitIntervalInSeconds after "
                      "each of its traffic steps, plus TerminationWaitInSeconds).")
    return result


def check_alarms(names: list[str]) -> None:
    """Every auto-rollback alarm must exist."""
    missing = [n for n in names if n not in moto_state.backend("cloudwatch").alarms]
    if missing:
        raise invalid(f"The auto-rollback alarm(s) {missing} do not exist in account {ACCOUNT_ID} ({REGION}): "
                      "create them (cloudwatch put_metric_alarm) before the update.")



def alarms_in_alarm(names: list[str]) -> list[str]:
    """Which of the alarms are in ``ALARM`` now (evaluated on the data as of now)."""
    if not names:
        return []
    from .. import cloudwatch

    cloudwatch.evaluate_all()
    alarms = moto_state.backend("cloudwatch").alarms
    return [n for n in names if n in alarms and alarms[n].state_value == "ALARM"]


# --- a running deployment ------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deployment:
    """One blue/green (or rolling) update of one endpoint, run by :meth:`run` in a thread."""

    engine: HostingEngine
    endpoint: Endpoint
    config: dict[str, Any]
    deployment: dict[str, Any]
    plan: Plan
    green: dict[str, Variant]
    on_status: Any = None
    share: float = 0.0
    phase: str = "Creating"
    phase_started: datetime = field(default_factory=_now)
    started: datetime = field(default_factory=_now)
    rolling_back: bool = False
    outcome: str | None = None  # "completed" or "rolled back"
    original_counts: dict[str, int] = field(default_factory=dict)  # blue's instance counts (rolling)

    # routing --------------------------------------------------------------------------------

    def route(self, endpoint: Endpoint, target: str | None) -> Variant:
        """The engine's router while traffic shifts: a request goes to green with probability ``share``."""
        fleet = self.green if endpoint.rng.random() < self.share else endpoint.variants
        if target:
            if target not in fleet:
                return self.engine.choose_variant(endpoint, target)  # the engine's own error
            return fleet[target]
        variants = [v for v in fleet.values() if v.weight > 0] or list(fleet.values())
        return endpoint.rng.choices(variants, weights=[max(v.weight, 1e-9) for v in variants])[0]

    # phases ---------------------------------------------------------------------------------

    def _phase(self, name: str) -> None:
        self.phase, self.phase_started = name, _now()

    def _gone(self) -> bool:
        """The endpoint was deleted meanwhile (it is Deleting, or no longer there)."""
        return (self.engine.endpoints.get(self.endpoint.name) is not self.endpoint
                or self.endpoint.status == "Deleting")

    def _bake(self, seconds: float, deadline: float) -> str | None:
        """Wait ``seconds`` (AWS seconds, scaled) watching the alarms; why to roll back, if so."""
        end = time.monotonic() + seconds * TIME_SCALE
        while True:
            if self._gone():
                return "deleted"
            fired = alarms_in_alarm(self.plan.alarms)
            if fired:
                return (f"Endpoint update was rolled back because the auto-rollback alarm(s) {fired} went into "
                        "ALARM state during the deployment. The endpoint serves its previous endpoint "
                        f"configuration {self.endpoint.config_name}.")
            if time.monotonic() >= deadline:
                return (f"Endpoint update was rolled back because the deployment exceeded "
                        f"MaximumExecutionTimeoutInSeconds ({self.plan.timeout_s:g}).")
            if time.monotonic() >= end:
                return None
            time.sleep(POLL_S)

    def _resize_blue(self) -> None:
        """A rolling update terminates blue instances as green ones take their traffic."""
        for variant in self.endpoint.variants.values():
            original = self.original_counts.get(variant.name)
            if variant.serverless is None and original:
                self._set_count(variant, max(1, math.ceil(original * (1 - self.share) - 1e-9)))

    def _set_count(self, variant: Variant, count: int) -> None:
        if count != variant.instance_count:
            variant.instance_count = count
            self.engine._close_usage(variant)
            self.engine._open_usage(variant)

    def run(self) -> None:
        deadline = time.monotonic() + self.plan.timeout_s * TIME_SCALE
        if self.plan.rolling:  # green grows batch by batch
            for variant in self.green.values():
                variant.instance_count = max(1, math.ceil(variant.instance_count * self.plan.steps[0] - 1e-9))
        ok = self.engine._bring_up(self.endpoint, self.green, None)
        if not ok and self._gone():  # deleted while green started: _bring_up stopped green already
            _running.pop(self.endpoint.name, None)
            return
        if not ok:
            self._finish_failed(f"The new endpoint configuration {self.config['EndpointConfigName']} could not be "
                                f"deployed, so the update was rolled back: {self.endpoint.failure}")
            return
        for variant in self.green.values():
            self.engine._open_usage(variant)
        self.endpoint.router = self.route
        reason = None
        targets = {v.name: int(pv.get("InitialInstanceCount") or 1) for v, pv in
                   zip(self.green.values(), self.config["ProductionVariants"], strict=True)}
        for step in self.plan.steps:
            self._phase("ActivatingTraffic")
            if self.plan.rolling:
                for variant in self.green.values():
                    self._set_count(variant, max(1, math.ceil(targets[variant.name] * step - 1e-9)))
            self.share = step
            if self.plan.rolling:
                self._resize_blue()
            self._phase("Baking")
            reason = self._bake(self.plan.wait_s, deadline)
            if reason:
                break
        if reason is None and self.plan.termination_wait_s:
            self._phase("Deleting")  # the old fleet waits TerminationWaitInSeconds before it goes
            reason = self._bake(self.plan.termination_wait_s, deadline)
        if reason == "deleted":
            self._stop(self.green)
            return
        if reason:
            self._roll_back(reason)
        else:
            self._complete()

    def _stop(self, fleet: dict[str, Variant]) -> None:
        for variant in fleet.values():
            self.engine._stop_variant(variant)

    def _roll_back(self, reason: str) -> None:
        self.rolling_back = True
        self.share = 0.0
        self.endpoint.router = None
        deadline = time.time() + 60
        while any(v.in_flight for v in self.green.values()) and time.time() < deadline:
            time.sleep(0.01)
        self._stop(self.green)
        self._finish_failed(reason)

    def _finish_failed(self, reason: str) -> None:
        for variant in self.endpoint.variants.values():  # a rolling update restores blue's capacity
            original = self.original_counts.get(variant.name)
            if original is not None:
                self._set_count(variant, original)
        self.endpoint.failure = reason
        self.endpoint.status = "InService" if self.endpoint.variants else "Failed"
        self.outcome = "rolled back"
        self._done()

    def _complete(self) -> None:
        from .capture import DataCapture

        with self.engine.lock:
            if self._gone():  # deleted as the bake ended: DeleteEndpoint stopped blue, green goes too
                self._stop(self.green)
                _running.pop(self.endpoint.name, None)
                return
            old, self.endpoint.variants = self.endpoint.variants, self.green
            self.endpoint.router = None
        self.share = 1.0
        self.endpoint.config_name = self.config["EndpointConfigName"]
        capture = self.config.get("DataCaptureConfig")
        self.endpoint.capture = DataCapture(capture, self.endpoint.name) if capture else None
        self.endpoint.async_config = self.config.get("AsyncInferenceConfig")
        deadline = time.time() + 60
        while any(v.in_flight for v in old.values()) and time.time() < deadline:
            time.sleep(0.01)
        self._stop(old)
        self.endpoint.failure = None
        self.endpoint.status = "InService"
        self.outcome = "completed"
        self._done()

    def _done(self) -> None:
        _running.pop(self.endpoint.name, None)
        if self.on_status:
            self.on_status(self.endpoint)

    def pending_summary(self) -> dict[str, Any]:
        """``PendingDeploymentSummary`` as DescribeEndpoint shows it."""
        message = f"{self.share:.0%} of the endpoint's traffic is on the new fleet"
        variants = []
        for variant, pv in zip(self.green.values(), self.config["ProductionVariants"], strict=True):
            summary = {"VariantName": variant.name, "CurrentWeight": variant.weight,
                       "DesiredWeight": float(pv.get("InitialVariantWeight", 1.0)),
                       "VariantStatus": [{"Status": self.phase, "StatusMessage": message,
                                          "StartTime": self.phase_started}]}
            if variant.serverless is None:
                summary.update({"CurrentInstanceCount": variant.instance_count if variant.process else 0,
                                "DesiredInstanceCount": int(pv.get("InitialInstanceCount") or 1),
                                "InstanceType": variant.instance_type})
            variants.append(summary)
        return {"EndpointConfigName": self.config["EndpointConfigName"], "ProductionVariants": variants,
                "StartTime": self.started}


_running: dict[str, Deployment] = {}  # endpoint name -> its deployment in progress
last_deployment_config: dict[str, dict[str, Any]] = {}  # endpoint name -> LastDeploymentConfig


@on_reset
def _reset() -> None:
    _running.clear()
    last_deployment_config.clear()


def deployment_for(name: str) -> Deployment | None:
    return _running.get(name)


def start(engine: HostingEngine, name: str, config: dict[str, Any], params: dict[str, Any], on_status=None) -> bool:
    """UpdateEndpoint with deployment guardrails; False when there is no DeploymentConfig to apply.

    ``params`` are UpdateEndpoint's; ``config`` the new endpoint configuration (as
    :func:`.api._config` returns it).
    """
    deployment = params.get("DeploymentConfig")
    if deployment is None and params.get("RetainDeploymentConfig"):
        deployment = last_deployment_config.get(name)
    if deployment is None:
        last_deployment_config.pop(name, None)
        return False
    endpoint = engine.get(name)
    if endpoint.status not in ("InService", "Failed"):
        raise invalid(f"Cannot update in-progress endpoint \"{endpoint.arn}\".")
    old_names = sorted(endpoint.variants)
    new_names = sorted(v["VariantName"] for v in config["ProductionVariants"])
    if old_names != new_names:
        raise invalid(f"A blue/green or rolling deployment needs the same variant names in the new endpoint "
                      f"configuration as in the current one: the endpoint has {old_names}, "
                      f"{config['EndpointConfigName']} has {new_names}.")
    the_plan = plan(deployment, config)
    check_alarms(the_plan.alarms)
    green = variants_from_config(name, config)
    run = Deployment(engine, endpoint, config, deployment, the_plan, green, on_status=on_status)
    run.original_counts.update({v.name: v.instance_count for v in endpoint.variants.values()})
    last_deployment_config[name] = deployment
    endpoint.status, endpoint.failure = "Updating", None
    _running[name] = run
    threading.Thread(target=run.run, name=f"labkit-deployment-{name}", daemon=True).start()
    return True


@dispatch.validate("sagemaker", "CreateEndpointConfig")
def _no_shadow_variants(params: dict[str, Any]) -> None:
    """Shadow variants are not emulated: refused, rather than an endpoint served without its shadow."""
    if params.get("ShadowProductionVariants"):
        raise AWSError(dispatch.NOT_EMULATED_CODE, dispatch.refusal(
            "sagemaker", "CreateEndpointConfig", "ShadowProductionVariants: shadow testing is not emulated; compare "
            "models as weighted production variants, or use the sandbox backend"), dispatch.NOT_EMULATED_STATUS)


@dispatch.after("sagemaker", "DescribeEndpoint")
def _describe(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    name = params.get("EndpointName", "")
    if name in last_deployment_config:
        parsed["LastDeploymentConfig"] = last_deployment_config[name]
    run = _running.get(name)
    if run is not None:
        parsed["PendingDeploymentSummary"] = run.pending_summary()
        if run.rolling_back:
            parsed["EndpointStatus"] = "RollingBack"


@dispatch.after("sagemaker", "DeleteEndpoint")
def _forget(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    last_deployment_config.pop(params.get("EndpointName", ""), None)
