"""The sandbox guard: a spending cap, quotas and model access, checked before AWS is asked.

:func:`install` adds a botocore ``before-parameter-build`` handler to the SageMaker
operations that start something billed (and to Bedrock's invoke calls). Before the
request is built, the guard computes the worst case the resource could cost, from the
catalogue:

- training job: hourly price x InstanceCount x ``StoppingCondition.MaxRuntimeInSeconds``
  (AWS's default 86,400 s when absent; managed spot is counted at the on-demand rate,
  since the saving is not guaranteed);
- tuning job: that, x ``ResourceLimits.MaxNumberOfTrainingJobs``;
- processing job: the same with ``ProcessingResources.ClusterConfig``;
- transform job, endpoint and notebook instance: hourly price x count x an assumed
  lifetime (``LABKIT_ASSUMED_HOURS``, default 2 h: a lab deletes its endpoints at the end);
- serverless endpoint: per-second memory price x MaxConcurrency x the assumed lifetime.

If what the lab has committed so far plus that worst case exceeds the lab's cap, the
call is refused with :class:`SpendingCapExceeded` before anything is sent to AWS. The
cap is ``LABKIT_SPEND_CAP_USD``, else :data:`DEFAULT_CAPS` for the lab's number, else
:data:`DEFAULT_CAP_USD`. On the sandbox the guard also checks Service Quotas and Bedrock
model access (:mod:`labkit.cost.quotas`). An instance type the catalogue cannot price is
refused too: the guard fails closed.

Clients created before :func:`install` are not guarded (botocore copies its handler list
into each session when the session is made); ``labkit.sandbox.start`` installs the guard
at ``connect()``, before the lab makes any client. It is meant for the sandbox backend; the tests
install it on the offline backend, where the same botocore calls pass through it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from . import catalogue as cat
from .quotas import BedrockAccess, GuardError, ModelAccessMissing, QuotaChecker, QuotaTooLow

DEFAULT_CAP_USD = 5.00
# Per-lab caps by lab number (SYLLABUS.md): GPU and tuning labs need more headroom.
DEFAULT_CAPS = {"00": 1.0, "01": 3.0, "02": 25.0, "03": 10.0, "04": 5.0, "05": 5.0, "06": 2.0, "07": 3.0,
                "08": 5.0, "09": 1.0, "10": 3.0, "11": 2.0, "12": 1.0, "14": 2.0, "15": 3.0}
DEFAULT_ASSUMED_HOURS = 2.0
DEFAULT_MAX_RUNTIME_S = 86400  # AWS's default StoppingCondition.MaxRuntimeInSeconds

GUARDED = {
    "sagemaker": ("CreateTrainingJob", "CreateHyperParameterTuningJob", "CreateProcessingJob",
                  "CreateTransformJob", "CreateEndpoint", "CreateNotebookInstance", "UpdateEndpoint"),
    "bedrock-runtime": ("InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream"),
}


class SpendingCapExceeded(GuardError):
    """The call could cost more than what is left of the lab's spending cap."""


class UnpricedResource(GuardError):
    """The catalogue has no price for what the call would create, so its cost is unknown."""


@dataclass
class Estimate:
    """The worst-case cost of one create call, and how it was computed."""

    operation: str
    name: str
    worst_usd: float
    detail: str
    quota_checks: list[tuple[str, str, int]] = field(default_factory=list)  # (instance type, usage, count)


@dataclass
class Commitment:
    """An admitted create call: its worst case until it is settled at its actual cost."""

    estimate: Estimate
    created_at: float = field(default_factory=time.time)

    @property
    def amount(self) -> float:
        return self.estimate.worst_usd


def _lab_number(name: str) -> str | None:
    match = re.match(r"(?:lab[-_ ]?)?(\d{2})", name)
    return match.group(1) if match else None


def cap_for(lab_name: str) -> float:
    """The spending cap of a lab: ``$LABKIT_SPEND_CAP_USD``, the lab's default, or the general one."""
    env = os.environ.get("LABKIT_SPEND_CAP_USD")
    if env:
        try:
            return float(env)
        except ValueError:
            raise GuardError(f"LABKIT_SPEND_CAP_USD={env!r} is not a number of dollars (e.g. 10 or 2.50).") from None
    return DEFAULT_CAPS.get(_lab_number(lab_name) or "", DEFAULT_CAP_USD)


def _assumed_hours() -> float:
    return float(os.environ.get("LABKIT_ASSUMED_HOURS") or DEFAULT_ASSUMED_HOURS)


class Guard:
    """Worst-case estimates, the running commitment of a lab and the checks on each call."""

    def __init__(self, lab: Any, *, cap_usd: float | None = None, catalogue: cat.Catalogue | None = None,
                 quotas: QuotaChecker | None = None, bedrock: BedrockAccess | None = None,
                 describe_endpoint_config: Callable[[str], dict[str, Any]] | None = None):
        self.lab = lab
        self._cap = cap_usd
        self.catalogue = catalogue or cat.load()
        self.quotas = quotas
        self.bedrock = bedrock
        self._describe_endpoint_config = describe_endpoint_config
        self.commitments: list[Commitment] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()

    @property
    def cap(self) -> float:
        return self._cap if self._cap is not None else cap_for(self.lab.name)

    def set_cap(self, usd: float) -> None:
        self._cap = float(usd)

    @property
    def committed(self) -> float:
        return sum(c.amount for c in self.commitments)

    # --- estimates ------------------------------------------------------------------------

    def _hourly(self, instance_type: str, usage: str) -> cat.Price:
        try:
            return self.catalogue.sagemaker_instance(instance_type, usage, self.lab.region)
        except cat.PriceNotFound as err:
            raise UnpricedResource(f"labkit guard: {err} Nothing was created: the guard cannot cap what it "
                                   "cannot price.") from err

    def _instances(self, op: str, name: str, itype: str, count: int, usage: str, seconds: float,
                   why: str, multiplier: int = 1, spot: bool = False) -> Estimate:
        price = self._hourly(itype, usage)
        worst = price.price_usd * count * seconds / 3600 * multiplier
        times = f" x {multiplier} jobs" if multiplier > 1 else ""
        detail = (f"{itype} ${price.price_usd:g}/h x {count} instance{'s' * (count != 1)} x "
                  f"{seconds / 3600:g} h ({why}){times}")
        quota_usage = "spot-training" if spot else usage
        return Estimate(op, name, worst, detail, [(itype, quota_usage, count)])

    def estimate(self, operation: str, params: dict[str, Any]) -> Estimate:
        """The worst-case cost of a SageMaker create call (pure: no AWS call except an endpoint config)."""
        hours = _assumed_hours()
        if operation == "CreateTrainingJob":
            rc = params.get("ResourceConfig", {})
            runtime = params.get("StoppingCondition", {}).get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME_S
            return self._instances(operation, params.get("TrainingJobName", "?"), rc.get("InstanceType", "?"),
                                   int(rc.get("InstanceCount", 1)), "training", runtime, "MaxRuntimeInSeconds",
                                   spot=bool(params.get("EnableManagedSpotTraining")))
        if operation == "CreateHyperParameterTuningJob":
            definition = params.get("TrainingJobDefinition") or (params.get("TrainingJobDefinitions") or [{}])[0]
            rc = definition.get("ResourceConfig", {})
            runtime = definition.get("StoppingCondition", {}).get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME_S
            limits = params.get("HyperParameterTuningJobConfig", {}).get("ResourceLimits", {})
            jobs = int(limits.get("MaxNumberOfTrainingJobs") or 1)
            return self._instances(operation, params.get("HyperParameterTuningJobName", "?"),
                                   rc.get("InstanceType", "?"), int(rc.get("InstanceCount", 1)), "training",
                                   runtime, "MaxRuntimeInSeconds", multiplier=jobs,
                                   spot=bool(definition.get("EnableManagedSpotTraining")))
        if operation == "CreateProcessingJob":
            cc = params.get("ProcessingResources", {}).get("ClusterConfig", {})
            runtime = params.get("StoppingCondition", {}).get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME_S
            return self._instances(operation, params.get("ProcessingJobName", "?"), cc.get("InstanceType", "?"),
                                   int(cc.get("InstanceCount", 1)), "processing", runtime, "MaxRuntimeInSeconds")
        if operation == "CreateTransformJob":
            tr = params.get("TransformResources", {})
            return self._instances(operation, params.get("TransformJobName", "?"), tr.get("InstanceType", "?"),
                                   int(tr.get("InstanceCount", 1)), "transform", hours * 3600,
                                   "assumed lifetime, LABKIT_ASSUMED_HOURS")
        if operation == "CreateNotebookInstance":
            return self._instances(operation, params.get("NotebookInstanceName", "?"), params.get("InstanceType", "?"),
                                   1, "notebook", hours * 3600, "assumed lifetime, LABKIT_ASSUMED_HOURS")
        if operation in ("CreateEndpoint", "UpdateEndpoint"):
            return self._endpoint(operation, params, hours)
        raise GuardError(f"labkit guard: no estimate for {operation}")

    def _endpoint(self, operation: str, params: dict[str, Any], hours: float) -> Estimate:
        name = params.get("EndpointName", "?")
        config = self._endpoint_config(params["EndpointConfigName"])
        total, parts, checks = 0.0, [], []
        for variant in config.get("ProductionVariants", []):
            if variant.get("ServerlessConfig"):
                sc = variant["ServerlessConfig"]
                price = self.catalogue.serverless(int(sc["MemorySizeInMB"]), self.lab.region)
                concurrency = int(sc.get("MaxConcurrency", 1))
                cost = price.price_usd * concurrency * hours * 3600
                parts.append(f"serverless {sc['MemorySizeInMB']} MB ${price.price_usd:g}/s x {concurrency} "
                             f"concurrent x {hours:g} h busy (assumed lifetime, LABKIT_ASSUMED_HOURS)")
            elif variant.get("InstanceType"):
                est = self._instances(operation, name, variant["InstanceType"],
                                      int(variant.get("InitialInstanceCount", 1)), "hosting", hours * 3600,
                                      "assumed lifetime, LABKIT_ASSUMED_HOURS")
                cost = est.worst_usd
                parts.append(est.detail)
                checks += est.quota_checks
            else:
                continue
            total += cost
        return Estimate(operation, name, total, "; ".join(parts) or "no billed variants", checks)

    def _endpoint_config(self, name: str) -> dict[str, Any]:
        if self._describe_endpoint_config is not None:
            return self._describe_endpoint_config(name)
        import boto3

        return boto3.client("sagemaker", region_name=self.lab.region).describe_endpoint_config(EndpointConfigName=name)

    # --- checks -----------------------------------------------------------------------------

    def check(self, service: str, operation: str, params: dict[str, Any]) -> Estimate | None:
        """Refuse (raise) or admit a call; an admitted create is added to the commitment."""
        if service == "bedrock-runtime":
            self._check_bedrock(params)
            return None
        estimate = self.estimate(operation, params)
        with self._lock:
            if estimate.worst_usd > self.cap - self.committed + 1e-9:
                self.settle()
            left = self.cap - self.committed
            if estimate.worst_usd > left + 1e-9:
                message = (
                    f"labkit guard: {operation} {estimate.name!r} could cost up to ${estimate.worst_usd:,.2f} "
                    f"on AWS ({estimate.detail}), and lab {self.lab.name!r} has ${max(left, 0):,.2f} left of its "
                    f"${self.cap:,.2f} spending cap (${self.committed:,.2f} committed so far). Nothing was created.\n"
                    "Lower the instance type, InstanceCount or MaxRuntimeInSeconds, or raise the cap if you mean "
                    f"it: export LABKIT_SPEND_CAP_USD={_suggest(self.committed + estimate.worst_usd)} before "
                    "connecting, or labkit.cost.guard.active().set_cap(...) in the notebook.")
                self.refused.append(message)
                raise SpendingCapExceeded(message)
            if self.quotas is not None:
                for itype, usage, count in estimate.quota_checks:
                    self.quotas.check(itype, usage, count)
            self.commitments.append(Commitment(estimate))
        return estimate

    def _check_bedrock(self, params: dict[str, Any]) -> None:
        if self.committed >= self.cap:
            raise SpendingCapExceeded(f"labkit guard: lab {self.lab.name!r} has committed ${self.committed:,.2f} "
                                      f"of its ${self.cap:,.2f} cap; Bedrock calls are refused until the cap is "
                                      "raised (LABKIT_SPEND_CAP_USD).")
        if self.bedrock is not None and params.get("modelId"):
            self.bedrock.check(params["modelId"])
        return None

    def settle(self) -> None:
        """Replace the worst case of finished jobs by what they cost (describe calls).

        A training, processing or transform job that has ended costs its billable time;
        an endpoint or notebook instance that no longer exists costs at most the time
        since it was admitted. Anything still running keeps its worst case.
        """
        import boto3

        sm = boto3.client("sagemaker", region_name=self.lab.region)
        for c in list(self.commitments):
            try:
                actual = self._actual(sm, c)
            except Exception:
                actual = None  # cannot tell: keep the worst case
            if actual is not None:
                c.estimate.worst_usd = min(c.estimate.worst_usd, actual)
                c.estimate.detail += " (settled)"

    def _actual(self, sm: Any, c: Commitment) -> float | None:
        e = c.estimate
        if not e.quota_checks:
            return None
        itype, usage, count = e.quota_checks[0]
        usage = "training" if usage == "spot-training" else usage
        hourly = self._hourly(itype, usage).price_usd * count
        if e.operation == "CreateTrainingJob":
            d = sm.describe_training_job(TrainingJobName=e.name)
            if d["TrainingJobStatus"] not in ("Completed", "Failed", "Stopped"):
                return None
            return hourly * float(d.get("BillableTimeInSeconds") or 0) / 3600
        if e.operation in ("CreateProcessingJob", "CreateTransformJob"):
            kind = "Processing" if e.operation == "CreateProcessingJob" else "Transform"
            d = getattr(sm, f"describe_{kind.lower()}_job")(**{f"{kind}JobName": e.name})
            if d[f"{kind}JobStatus"] not in ("Completed", "Failed", "Stopped"):
                return None
            start, end = d.get(f"{kind}StartTime"), d.get(f"{kind}EndTime")
            return hourly * ((end - start).total_seconds() if start and end else 0) / 3600
        if e.operation in ("CreateEndpoint", "CreateNotebookInstance"):
            try:
                if e.operation == "CreateEndpoint":
                    sm.describe_endpoint(EndpointName=e.name)
                else:
                    status = sm.describe_notebook_instance(NotebookInstanceName=e.name)["NotebookInstanceStatus"]
                    if status not in ("Stopped", "Failed", "Deleting"):
                        return None
            except Exception as err:
                if "ValidationException" not in str(type(err)) + str(err) and "RecordNotFound" not in str(err):
                    raise
            else:
                if e.operation == "CreateEndpoint":
                    return None
            return hourly * (time.time() - c.created_at) / 3600
        return None

    def release(self, name: str) -> None:
        """Forget the commitment of a resource that is gone (deleted or finished and billed)."""
        with self._lock:
            self.commitments = [c for c in self.commitments if c.estimate.name != name]

    # --- botocore -----------------------------------------------------------------------

    def handler(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if _active[0] is not self:
            return
        self.check(model.service_model.service_name, model.name, params)


def _suggest(amount: float) -> str:
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000):
        if step >= amount:
            return str(step)
    return f"{amount:.0f}"


_active: list[Guard | None] = [None]
_registered: list[tuple[str, Any]] = []


def active() -> Guard | None:
    """The installed guard, if any."""
    return _active[0]


def install(lab: Any, *, cap_usd: float | None = None, quotas: QuotaChecker | Literal[False] | None = None,
            bedrock: BedrockAccess | Literal[False] | None = None, **kwargs: Any) -> Guard:
    """Guard every botocore client created from now on for ``lab``; returns the :class:`Guard`.

    ``quotas`` and ``bedrock``: a checker, ``False`` for none, or ``None`` for the default,
    which is to check on the sandbox backend only (the offline backend has no quota data).
    """
    import boto3

    from ..offline import patches

    sandbox = getattr(lab, "backend", "") == "sandbox" and not os.environ.get("LABKIT_SKIP_QUOTA_CHECK")
    if quotas is None and sandbox:
        quotas = QuotaChecker(boto3.client("service-quotas", region_name=lab.region), lab.region)
    if bedrock is None and sandbox:
        bedrock = BedrockAccess(boto3.client("bedrock", region_name=lab.region), lab.region)
    guard = Guard(lab, cap_usd=cap_usd, quotas=quotas or None, bedrock=bedrock or None, **kwargs)
    uninstall()
    _active[0] = guard
    for service, operations in GUARDED.items():
        for operation in operations:
            _registered.append((f"before-parameter-build.{service}.{operation}", guard.handler))
    patches.add_botocore_handlers(_registered)
    boto3.DEFAULT_SESSION = None  # the next boto3.client() builds a session with the handlers
    return guard


def uninstall() -> None:
    """Remove the guard (clients created while it was installed stop consulting it too)."""
    from ..offline import patches

    patches.remove_botocore_handlers(_registered)
    _registered.clear()
    _active[0] = None


__all__ = ["DEFAULT_CAPS", "DEFAULT_CAP_USD", "Estimate", "Guard", "GuardError", "ModelAccessMissing",
           "QuotaTooLow", "SpendingCapExceeded", "UnpricedResource", "active", "cap_for", "install", "uninstall"]
