"""moto's records, as the engines reach them: the one accessor.

moto answers most calls on its own; an engine that must read or change a record no API
call exposes (a training job's status, an endpoint's variants, a knowledge base's id)
takes moto's backend for the service from :func:`backend`, and nowhere else::

    moto_state.backend("sagemaker").training_jobs[name]

Objects in S3 are not reached this way: engines read and write them through the API
(:mod:`labkit.offline.storage`), as the service they stand for does.
"""

from __future__ import annotations

from typing import Any

from . import ACCOUNT_ID, REGION

PARTITION = "aws"  # moto keeps a global service's records (IAM, STS, S3, S3 Vectors) per partition


def backend(service: str, *, region: str = REGION, account: str = ACCOUNT_ID) -> Any:
    """moto's backend of ``service`` (moto's name for it: ``"sagemaker"``, ``"logs"``,
    ``"applicationautoscaling"``, ``"bedrockagent"``...) in the offline account and region,
    or in the partition for a global service."""
    from moto.backends import get_backend

    per_region = get_backend(service)[account]  # type: ignore[call-overload]  # the name is a plain str here
    return per_region[region] if region in per_region.regions else per_region[PARTITION]
