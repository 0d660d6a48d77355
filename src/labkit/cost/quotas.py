"""Service Quotas and Bedrock model access, checked before a billed resource is created.

A new AWS account has a quota of 0 for most GPU instance types in SageMaker, so the
commonest first failure of a learner is ``ResourceLimitExceeded`` on ml.p3 or ml.g5,
minutes into a lab. The guard looks the quota up first and says plainly what to request
and where. SageMaker's quotas are named ``"<instance type> for <usage>"``, e.g.
``"ml.g5.xlarge for training job usage"``, ``"ml.g5.xlarge for spot training job usage"``,
``"ml.g5.xlarge for endpoint usage"``; they are account-level and per region.

Bedrock: a model must be enabled for the account (Bedrock console, Model access) and
Anthropic models need a one-time use-case form. ``GetFoundationModelAvailability``
reports it; where that call is refused, ``ListFoundationModels`` tells at least whether
the model exists in the region.

The offline backend has no Service Quotas data for SageMaker (moto only knows ``vpc``),
so both checks take their client as an argument; the tests drive them with botocore's
``Stubber`` in the real response shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

USAGE_WORDS = {"training": "training job usage", "spot-training": "spot training job usage",
               "hosting": "endpoint usage", "processing": "processing job usage",
               "transform": "transform job usage", "notebook": "notebook instance usage"}


class GuardError(RuntimeError):
    """The labkit guard refused a call; nothing was sent to AWS."""


class QuotaTooLow(GuardError):
    """The account's quota does not allow what is about to be created."""


class ModelAccessMissing(GuardError):
    """The Bedrock model is not enabled (or not offered) for this account and region."""


def quota_name(instance_type: str, usage: str) -> str:
    """``quota_name("ml.g5.xlarge", "training") == "ml.g5.xlarge for training job usage"``."""
    if usage not in USAGE_WORDS:
        raise ValueError(f"usage must be one of {', '.join(USAGE_WORDS)}, not {usage!r}")
    return f"{instance_type} for {USAGE_WORDS[usage]}"


@dataclass
class Quota:
    name: str
    code: str
    value: float
    adjustable: bool
    arn: str = ""


class QuotaChecker:
    """SageMaker quotas of one account and region, read once through ``ListServiceQuotas``."""

    def __init__(self, client: Any, region: str):
        self.client = client
        self.region = region
        self._quotas: dict[str, Quota] | None = None
        self.unavailable: str | None = None
        self._warned = False

    def quotas(self) -> dict[str, Quota]:
        if self._quotas is None:
            found: dict[str, Quota] = {}
            try:
                token = None
                while True:
                    kwargs: dict[str, Any] = {"ServiceCode": "sagemaker", "MaxResults": 100}
                    if token:
                        kwargs["NextToken"] = token
                    page = self.client.list_service_quotas(**kwargs)
                    for q in page.get("Quotas", []):
                        found[q["QuotaName"]] = Quota(q["QuotaName"], q["QuotaCode"], float(q.get("Value", 0)),
                                                      bool(q.get("Adjustable")), q.get("QuotaArn", ""))
                    token = page.get("NextToken")
                    if not token:
                        break
            except Exception as err:  # AccessDenied, NoSuchResource...: say so, do not block on it
                self.unavailable = f"{type(err).__name__}: {err}"
            self._quotas = found
        return self._quotas

    def check(self, instance_type: str, usage: str, count: int) -> Quota | None:
        """Raise :class:`QuotaTooLow` if the quota is below ``count``; the quota, or None if unknown."""
        name = quota_name(instance_type, usage)
        quota = self.quotas().get(name)
        if self.unavailable and not self._warned:
            self._warned = True
            print(f"labkit guard: cannot read Service Quotas ({self.unavailable}); quotas are not checked "
                  "before resources are created. Grant servicequotas:ListServiceQuotas to check them.")
        if quota is None:
            return None
        if quota.value < count:
            raise QuotaTooLow(self.advice(quota, count))
        return quota

    def advice(self, quota: Quota, needed: int) -> str:
        url = (f"https://{self.region}.console.aws.amazon.com/servicequotas/home/services/sagemaker/"
               f"quotas/{quota.code}")
        how = (f"Request an increase to at least {needed}: Service Quotas console -> AWS services -> "
               f"Amazon SageMaker -> '{quota.name}' -> Request increase at account level ({url}), or\n"
               f"  aws service-quotas request-service-quota-increase --region {self.region} "
               f"--service-code sagemaker --quota-code {quota.code} --desired-value {needed}\n"
               "Increases for GPU types can take a day or more; a smaller or CPU instance type "
               "may run the lab now.") if quota.adjustable else \
              "This quota is not adjustable; choose another instance type."
        return (f"Your account's quota '{quota.name}' ({quota.code}) in {self.region} is {quota.value:g}, "
                f"and this request needs {needed}: AWS would refuse it with ResourceLimitExceeded. "
                f"Nothing was created.\n{how}")


class BedrockAccess:
    """Whether a Bedrock model can be invoked by this account (cached per model)."""

    def __init__(self, client: Any, region: str):
        self.client = client
        self.region = region
        self._ok: dict[str, bool] = {}

    def console(self) -> str:
        return f"https://{self.region}.console.aws.amazon.com/bedrock/home?region={self.region}#/modelaccess"

    def check(self, model_id: str) -> None:
        from .catalogue import Catalogue

        base = Catalogue.base_model_id(model_id)
        if self._ok.get(base):
            return
        try:
            a = self.client.get_foundation_model_availability(modelId=base)
        except Exception as err:
            code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
            if code in ("ResourceNotFoundException", "ValidationException"):
                raise ModelAccessMissing(f"Bedrock has no model {base!r} in {self.region} ({code}). Check the "
                                         "model id (bedrock list_foundation_models) or use a region that offers it.") from err
            self._check_listed(base)
            self._ok[base] = True
            return
        problems = []
        if a.get("regionAvailability") == "NOT_AVAILABLE":
            problems.append(f"it is not offered in {self.region}")
        if a.get("authorizationStatus") == "NOT_AUTHORIZED":
            problems.append("this identity is not authorized to use it (an SCP or IAM policy denies it)")
        if a.get("entitlementAvailability") == "NOT_AVAILABLE":
            problems.append("model access is not enabled for the account")
        agreement = (a.get("agreementAvailability") or {}).get("status")
        if agreement in ("NOT_AVAILABLE", "ERROR"):
            problems.append("its provider's agreement (use-case form for Anthropic) is not accepted")
        elif agreement == "PENDING":
            problems.append("its provider's agreement is still pending; try again in a few minutes")
        if problems:
            raise ModelAccessMissing(
                f"Bedrock model {base} cannot be invoked yet: {'; '.join(problems)}. Nothing was sent. "
                f"Enable it in the Bedrock console, Model access -> Modify model access -> tick the model -> "
                f"Submit ({self.console()}); Anthropic models ask for a one-time use-case form.")
        self._ok[base] = True

    def _check_listed(self, base: str) -> None:
        try:
            models = self.client.list_foundation_models().get("modelSummaries", [])
        except Exception:
            return  # nothing more can be known; the call itself will say
        if models and base not in {m.get("modelId") for m in models}:
            raise ModelAccessMissing(f"Bedrock lists no model {base!r} in {self.region}. Check the model id or "
                                     f"the region; model access is managed at {self.console()}.")
