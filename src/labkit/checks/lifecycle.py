"""Simulate an S3 lifecycle configuration: where is an object after N days?

Follows the documented semantics: a rule applies to an object when it is ``Enabled``
and its filter (``Prefix``, ``Tag``, ``ObjectSizeGreaterThan``/``LessThan`` or an
``And`` of them) matches; of the transitions whose day has come, the latest wins;
expiration beats transition. Noncurrent versions follow the ``Noncurrent*`` actions,
counted from the day they became noncurrent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int = 1024
    tags: tuple[tuple[str, str], ...] = ()
    current: bool = True


def _matches(rule: dict[str, Any], obj: S3Object) -> bool:
    if rule.get("Status") != "Enabled":
        return False
    if "Prefix" in rule:  # legacy form
        return obj.key.startswith(rule["Prefix"])
    flt = rule.get("Filter") or {}
    conditions = flt.get("And") or flt
    prefix = conditions.get("Prefix", "")
    if not obj.key.startswith(prefix):
        return False
    tags = conditions.get("Tags") or ([conditions["Tag"]] if "Tag" in conditions else [])
    if any((t["Key"], t["Value"]) not in obj.tags for t in tags):
        return False
    if "ObjectSizeGreaterThan" in conditions and not obj.size > conditions["ObjectSizeGreaterThan"]:
        return False
    return not ("ObjectSizeLessThan" in conditions and not obj.size < conditions["ObjectSizeLessThan"])


def state_after(rules: list[dict[str, Any]], obj: S3Object, days: int,
                initial_class: str = "STANDARD") -> str:
    """The storage class of ``obj`` after ``days`` days, or ``EXPIRED``.

    For a noncurrent version, ``days`` counts from when it became noncurrent.
    """
    best_day, storage_class = -1, initial_class
    for rule in rules:
        if not _matches(rule, obj):
            continue
        if obj.current:
            expiration = (rule.get("Expiration") or {}).get("Days")
            transitions = [(t.get("Days"), t["StorageClass"]) for t in rule.get("Transitions") or []]
        else:
            expiration = (rule.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays")
            transitions = [(t.get("NoncurrentDays"), t["StorageClass"])
                           for t in rule.get("NoncurrentVersionTransitions") or []]
        if expiration is not None and days >= expiration:
            return EXPIRED
        for day, cls in transitions:
            if day is not None and day <= days and day > best_day:
                best_day, storage_class = day, cls
    return storage_class


def abort_multipart_days(rules: list[dict[str, Any]], key: str) -> int | None:
    """Days after which an incomplete multipart upload under ``key`` is aborted, if any rule says."""
    days = [r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] for r in rules
            if "AbortIncompleteMultipartUpload" in r and _matches(r, S3Object(key))]
    return min(days) if days else None
