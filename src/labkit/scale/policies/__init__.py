"""The IAM policies a run on SageMaker needs, least privilege (see docs/grading-at-scale.md).

- ``instructor-policy.json``: whoever runs ``labkit grade/check --on sagemaker``: create, watch and
  stop processing jobs named ``lk-*`` and only with the run's tags, pass only the grading job
  role to SageMaker, read and write only the ``labkit-scale/`` prefix of the bucket, read the
  jobs' logs, read quotas.
- ``job-role-policy.json`` (trust: ``job-role-trust.json``): the role the jobs run as. With
  network isolation the container itself gets no credentials; SageMaker uses this role to stage
  the inputs (read ``labkit-scale/*/in/``), upload the results (write ``labkit-scale/*/out/``),
  pull the course image and write the logs. It cannot touch anything else.

``${AccountId}``, ``${Region}``, ``${Bucket}`` and ``${JobRoleName}`` are filled in by :func:`policy`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
NAMES = ("instructor-policy", "job-role-policy", "job-role-trust")
JOB_ROLE_NAME = "LabkitGradingJobRole"


def policy(name: str, *, account: str, region: str, bucket: str, job_role: str = JOB_ROLE_NAME) -> dict[str, Any]:
    """The policy document ``name`` (one of :data:`NAMES`) for an account, region and bucket."""
    if name not in NAMES:
        raise ValueError(f"no policy {name!r}; known: {', '.join(NAMES)}")
    text = (HERE / f"{name}.json").read_text()
    for key, value in {"AccountId": account, "Region": region, "Bucket": bucket, "JobRoleName": job_role}.items():
        text = text.replace("${" + key + "}", value)
    return json.loads(text)
