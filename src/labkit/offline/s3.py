"""S3 request checks that AWS makes and moto does not.

moto stores any lifecycle configuration; AWS rejects several that learners write
(the seeds among them): an unknown storage class such as ``GLACIER_FLEXIBLE_RETRIEVAL``
(the console's name; the API's is ``GLACIER``), a transition to STANDARD_IA or
ONEZONE_IA before day 30, an expiration not after the last transition, a rule with
both the legacy ``Prefix`` and a ``Filter``, duplicate rule ids. The messages are AWS's.
"""

from __future__ import annotations

from typing import Any

from . import dispatch
from .dispatch import AWSError

TRANSITION_CLASSES = ("GLACIER", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "DEEP_ARCHIVE",
                      "GLACIER_IR")
MIN_DAYS = {"STANDARD_IA": 30, "ONEZONE_IA": 30}
MALFORMED = ("The XML you provided was not well-formed or did not validate against our "
             "published schema")


@dispatch.validate("s3", "PutBucketLifecycleConfiguration")
def check_lifecycle(params: dict[str, Any]) -> None:
    rules = (params.get("LifecycleConfiguration") or {}).get("Rules") or []
    if not rules or len(rules) > 1000:
        raise AWSError("MalformedXML", MALFORMED)
    seen: set[str] = set()
    for rule in rules:
        rule_id = rule.get("ID", "")
        if rule_id in seen:
            raise AWSError("InvalidArgument", "Rule ID must be unique. Found same ID for more than one rule")
        seen.add(rule_id)
        if "Prefix" in rule and "Filter" in rule:
            raise AWSError("MalformedXML", MALFORMED)
        if rule.get("Status") not in ("Enabled", "Disabled"):
            raise AWSError("MalformedXML", MALFORMED)
        last_transition = 0
        for key in ("Transitions", "NoncurrentVersionTransitions"):
            days_key = "Days" if key == "Transitions" else "NoncurrentDays"
            for tr in rule.get(key) or []:
                storage_class = tr.get("StorageClass")
                if storage_class not in TRANSITION_CLASSES:
                    raise AWSError("MalformedXML", MALFORMED)
                days = tr.get(days_key)
                if days is not None:
                    if days < MIN_DAYS.get(storage_class, 0):
                        raise AWSError(
                            "InvalidArgument",
                            f"'{days_key}' in {'Transition' if key == 'Transitions' else 'NoncurrentVersionTransition'}"
                            f" action must be greater than or equal to {MIN_DAYS[storage_class]} for "
                            f"storageClass '{storage_class}'",
                        )
                    if key == "Transitions":
                        last_transition = max(last_transition, days)
        expiration_days = (rule.get("Expiration") or {}).get("Days")
        if expiration_days is not None and last_transition and expiration_days <= last_transition:
            raise AWSError(
                "InvalidArgument",
                f"'Days' in the Expiration action for filter '{_filter_text(rule)}' must be greater than "
                "'Days' in the Transition action",
            )


def _filter_text(rule: dict[str, Any]) -> str:
    flt = rule.get("Filter") or {}
    return flt.get("Prefix", rule.get("Prefix", ""))
