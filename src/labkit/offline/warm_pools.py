"""SageMaker managed warm pools for training jobs, offline.

A job with ``ResourceConfig.KeepAlivePeriodInSeconds`` keeps its instances for that long after
it ends; a later job with the same resources (instance type and count, volume size and key, VPC
configuration, execution role) that also asks for a keep-alive period starts on them, skipping
the provisioning and image pull that take minutes on AWS. DescribeTrainingJob's ``WarmPoolStatus``
shows ``Available`` (kept), ``InUse`` (a job runs on it), ``Reused`` (with ``ReusedByJob``) or
``Terminated``, and ``ResourceRetainedBillableTimeInSeconds``: the kept time is billed at the
instance's training rate, whether or not a job reuses it. ``UpdateTrainingJob`` with a new
``KeepAlivePeriodInSeconds`` changes it (0 ends the pool now).

What offline cannot show: the saving in start-up time (a job starts in milliseconds here, warm
or not). The matching, the statuses and the bill are real. On AWS, warm pools also need a
service quota ("ml.<type> for training warm pool usage", 0 by default): request it first.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from . import dispatch, moto_state, on_reset, usage
from .dispatch import AWSError
from .training import jobs

_lock = threading.Lock()


@dataclass
class Pool:
    job: str
    key: tuple
    instance_type: str
    instance_count: int
    ended: float
    keep_alive: int
    status: str = "Available"
    reused_by: str | None = None
    closed: float | None = None

    def refresh(self, now: float) -> None:
        if self.status == "Available" and now >= self.ended + self.keep_alive:
            self.close("Terminated", self.ended + self.keep_alive)

    def close(self, status: str, at: float) -> None:
        self.status, self.closed = status, at
        seconds = max(0, math.ceil(at - self.ended))
        usage.record("sagemaker:training", f"{self.job} (warm pool)", instance_type=self.instance_type,
                     instance_count=self.instance_count, seconds=seconds, spot=False, warm_pool=True)

    def retained(self, now: float) -> int:
        return max(0, math.ceil((self.closed or now) - self.ended))

    def describe(self, now: float) -> dict[str, Any]:
        self.refresh(now)
        out: dict[str, Any] = {"Status": self.status, "ResourceRetainedBillableTimeInSeconds": self.retained(now)}
        if self.reused_by:
            out["ReusedByJob"] = self.reused_by
        return out


def resource_key(request: dict[str, Any]) -> tuple:
    rc = request["ResourceConfig"]
    vpc = request.get("VpcConfig") or {}
    return (rc.get("InstanceType"), int(rc.get("InstanceCount", 1)), int(rc.get("VolumeSizeInGB", 0)),
            rc.get("VolumeKmsKeyId"), tuple(sorted(vpc.get("Subnets", []))), tuple(sorted(vpc.get("SecurityGroupIds", []))),
            request.get("RoleArn"))


pools: dict[str, Pool] = {}     # job that left the pool -> its pool
in_use: dict[str, Pool] = {}    # job running on a pool -> the pool


@dispatch.validate("sagemaker", "CreateTrainingJob")
def claim_pool(params: dict[str, Any]) -> None:
    """A new job with a keep-alive period takes a matching Available pool (before the job is created)."""
    keep = (params.get("ResourceConfig") or {}).get("KeepAlivePeriodInSeconds")
    if not keep:
        return
    if (params.get("ResourceConfig") or {}).get("InstanceGroups"):
        raise AWSError("ValidationException", "KeepAlivePeriodInSeconds is not supported with InstanceGroups "
                       "(heterogeneous clusters).")
    if params.get("EnableManagedSpotTraining"):
        raise AWSError("ValidationException", "Warm pools are not supported for managed spot training: remove "
                       "KeepAlivePeriodInSeconds or EnableManagedSpotTraining.")
    now = time.time()
    key = resource_key(params)
    with _lock:
        for pool in pools.values():
            pool.refresh(now)
            if pool.status == "Available" and pool.key == key:
                pool.status, pool.reused_by = "Reused", params["TrainingJobName"]
                pool.close("Reused", now)
                in_use[params["TrainingJobName"]] = pool
                return


def observe(run: Any, event: str) -> None:
    if event != "finished":
        return
    keep = int(run.request["ResourceConfig"].get("KeepAlivePeriodInSeconds") or 0)
    in_use.pop(run.name, None)
    if keep <= 0:
        return
    with _lock:
        pools[run.name] = Pool(run.name, resource_key(run.request), run.instance_type, run.instance_count,
                               time.time(), keep)


jobs.observers.append(observe)


@dispatch.after("sagemaker", "DescribeTrainingJob")
def describe(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    name = params.get("TrainingJobName", "")
    now = time.time()
    with _lock:
        if name in pools:
            parsed["WarmPoolStatus"] = pools[name].describe(now)
        elif name in in_use:
            parsed["WarmPoolStatus"] = {"Status": "InUse"}


@dispatch.operation("sagemaker", "UpdateTrainingJob")
def update_training_job(params: dict[str, Any]) -> dict[str, Any]:
    record = moto_state.backend("sagemaker").training_jobs.get(params["TrainingJobName"])
    if record is None:
        raise AWSError("ValidationException", "Requested resource not found.")
    keep = (params.get("ResourceConfig") or {}).get("KeepAlivePeriodInSeconds")
    run = jobs.runs.get(params["TrainingJobName"])
    if keep is not None:
        with _lock:
            pool = pools.get(params["TrainingJobName"])
            if pool is None and (run is None or run.done.is_set()):
                raise AWSError("ValidationException", f"Training job {params['TrainingJobName']} has no warm pool "
                               "to update (it was started without KeepAlivePeriodInSeconds, or the pool has ended).")
            if pool is not None:
                pool.refresh(time.time())
                if pool.status != "Available":
                    raise AWSError("ValidationException", f"The warm pool of {params['TrainingJobName']} is "
                                   f"{pool.status}; only an Available pool can be updated.")
                if int(keep) == 0:
                    pool.close("Terminated", time.time())
                else:
                    pool.keep_alive = int(keep)
            if run is not None:
                run.request["ResourceConfig"]["KeepAlivePeriodInSeconds"] = int(keep)
                record.resource_config["KeepAlivePeriodInSeconds"] = int(keep)
    for key in ("ProfilerConfig", "ProfilerRuleConfigurations"):
        if params.get(key) and run is not None:
            run.request[key] = params[key]
    return {"TrainingJobArn": record.arn}


@dispatch.backend_function
def open_pools() -> list[str]:
    """Jobs whose warm pool is still Available (a lab ends them before it ends)."""
    now = time.time()
    with _lock:
        for pool in pools.values():
            pool.refresh(now)
        return [name for name, pool in pools.items() if pool.status == "Available"]


@on_reset
def _reset() -> None:
    pools.clear()
    in_use.clear()
