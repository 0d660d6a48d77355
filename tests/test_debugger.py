"""Offline Debugger and profiler: the rules on synthetic trials, and on real PyTorch training jobs."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from labkit.offline.debugger import parse_actions
from labkit.offline.debugger import rules as r

SCRIPT = Path(__file__).parent / "fixtures" / "debugger" / "train.py"


def _loss(mode: str, step: int, value: float) -> dict:
    return {"collection": "losses", "name": "BCELoss_output_0", "mode": mode, "mode_step": step, "step": step,
            "value": value, "nan": 0, "inf": 0, "time": time.time()}


def test_loss_not_decreasing_compares_num_steps_apart():
    falling = r.Trial([_loss("TRAIN", s, 1.0 / (1 + s)) for s in range(30)])
    assert not r.loss_not_decreasing(falling, {"num_steps": "5"}).fired
    flat = r.Trial([_loss("TRAIN", s, 0.69) for s in range(30)])
    verdict = r.loss_not_decreasing(flat, {"num_steps": "5"})
    assert verdict.fired and verdict.step == 5
    assert not r.loss_not_decreasing(r.Trial([_loss("TRAIN", s, 0.69) for s in range(4)]), {"num_steps": "5"}).fired
    mixed = r.Trial([_loss("TRAIN", s, 0.69) for s in range(30)] + [_loss("EVAL", s, 1 / (1 + s)) for s in range(30)])
    assert not r.loss_not_decreasing(mixed, {"num_steps": "5"}).fired, "EVAL losses are preferred when there are some"
    assert r.loss_not_decreasing(mixed, {"num_steps": "5", "mode": "TRAIN"}).fired
    with pytest.raises(r.NoData):
        r.loss_not_decreasing(r.Trial([]), {})


def test_gradient_and_tensor_rules():
    grads = [{"collection": "gradients", "name": "gradient/0.weight", "step": 3, "abs_mean": 1e-9, "nan": 0, "inf": 0}]
    assert r.vanishing_gradient(r.Trial(grads), {}).fired
    assert not r.vanishing_gradient(r.Trial(grads), {"threshold": "1e-10"}).fired
    nan = [dict(grads[0], abs_mean=0.1, nan=2)]
    assert r.exploding_tensor(r.Trial(nan), {}).fired
    inf = [dict(grads[0], abs_mean=0.1, inf=1)]
    assert r.exploding_tensor(r.Trial(inf), {}).fired and not r.exploding_tensor(r.Trial(inf), {"only_nan": "True"}).fired


def test_overfit_and_overtraining():
    train = [_loss("TRAIN", s, 1.0 / (1 + s)) for s in range(20)]
    good = r.Trial(train + [_loss("EVAL", s, 1.05 / (1 + s)) for s in range(20)])
    assert not r.overfit(good, {}).fired
    bad = r.Trial(train + [_loss("EVAL", s, 0.5 + 0.01 * s) for s in range(20)])
    assert r.overfit(bad, {"patience": "2"}).fired
    assert r.overtraining(bad, {"patience_validation": "5"}).fired
    assert not r.overtraining(good, {}).fired


def test_profiler_rules_without_and_with_a_gpu():
    cpu = [{"Dimension": "CPUUtilization", "Value": 90.0} for _ in range(20)]
    assert not r.low_gpu_utilization(r.Trial(system=cpu), {}).fired
    gpu = [{"Dimension": "GPUUtilization", "Value": 20.0} for _ in range(20)]
    assert r.low_gpu_utilization(r.Trial(system=gpu), {"patience": "0"}).fired
    assert r.cpu_bottleneck(r.Trial(system=cpu + [dict(g, Value=2.0) for g in gpu]), {}).fired


def test_actions_as_smdebug_rulesconfig_writes_them():
    from smdebug_rulesconfig import ActionList, Email, StopTraining

    actions = ActionList(StopTraining("job-"), Email("ml@example.com"))
    parsed = parse_actions(actions.serialize())
    assert parsed[0] == {"name": "stoptraining", "training_job_prefix": "job-"}
    assert parsed[1]["name"] == "email"
    with pytest.raises(KeyError, match="not emulated offline"):
        r.lookup("DeadRelu", r.DEBUGGER_RULES)


# --- real training jobs ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def job_inputs(lab, s3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4))
    label = (x[:, 0] - x[:, 1] + 0.3 * rng.normal(size=600) > 0).astype(int)
    rows = "x0,x1,x2,x3,label\n" + "\n".join(",".join(f"{v:.4f}" for v in row) + f",{y}" for row, y in zip(x, label, strict=True))
    s3.put_object(Bucket=lab.bucket, Key="debugger-test/data/train.csv", Body=rows.encode())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(SCRIPT, arcname="train.py")
    s3.put_object(Bucket=lab.bucket, Key="debugger-test/code/source.tar.gz", Body=buffer.getvalue())
    from sagemaker.core import image_uris

    return {"image": image_uris.retrieve("pytorch", lab.region, version="2.3", py_version="py311",
                                         instance_type="ml.m5.large", image_scope="training"),
            "rules_image": image_uris.retrieve("debugger", lab.region)}


def _train(sm, lab, inputs, name: str, hyperparameters: dict, rules: list, **extra) -> dict:
    sm.create_training_job(
        TrainingJobName=name, RoleArn=lab.role_arn,
        AlgorithmSpecification={"TrainingImage": inputs["image"], "TrainingInputMode": "File"},
        HyperParameters={"sagemaker_program": "train.py",
                         "sagemaker_submit_directory": f"s3://{lab.bucket}/debugger-test/code/source.tar.gz",
                         **hyperparameters},
        InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{lab.bucket}/debugger-test/data/"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{lab.bucket}/debugger-test/out/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 300},
        DebugHookConfig={"S3OutputPath": f"s3://{lab.bucket}/debugger-test/debug", "CollectionConfigurations": [
            {"CollectionName": "losses", "CollectionParameters": {"save_interval": "1"}},
            {"CollectionName": "gradients", "CollectionParameters": {"save_interval": "5"}}]},
        DebugRuleConfigurations=rules, **extra)
    deadline = time.time() + 180
    while (job := sm.describe_training_job(TrainingJobName=name))["TrainingJobStatus"] in ("InProgress", "Stopping"):
        assert time.time() < deadline
        time.sleep(0.2)
    return job


def _rule(name: str, image: str, **params) -> dict:
    return {"RuleConfigurationName": name, "RuleEvaluatorImage": image,
            "RuleParameters": {"rule_to_invoke": name, **params}}


def test_a_firing_rule_stops_the_faulty_job_only(lab, sm, s3, job_inputs):
    image = job_inputs["rules_image"]
    stop = '[{\\"name\\": \\"stoptraining\\", \\"training_job_prefix\\": \\"dbg-faulty\\"}]'
    rules = [_rule("LossNotDecreasing", image, num_steps="2", mode="EVAL", action_json=stop), _rule("VanishingGradient", image),
             _rule("DeadRelu", image)]
    faulty = _train(sm, lab, job_inputs, "dbg-faulty", {"bug": "1", "epochs": "40"}, rules,
                    ProfilerConfig={"S3OutputPath": f"s3://{lab.bucket}/debugger-test/profiler",
                                    "ProfilingIntervalInMilliseconds": 100})
    statuses = {s["RuleConfigurationName"]: s for s in faulty["DebugRuleEvaluationStatuses"]}
    assert statuses["LossNotDecreasing"]["RuleEvaluationStatus"] == "IssuesFound"
    assert "RuleEvaluationConditionMet" in statuses["LossNotDecreasing"]["StatusDetails"]
    assert faulty["TrainingJobStatus"] == "Stopped", "the StopTraining action stops the job"
    assert statuses["DeadRelu"]["RuleEvaluationStatus"] == "Error"
    assert faulty["ProfilingStatus"] == "Enabled"
    healthy = _train(sm, lab, job_inputs, "dbg-healthy", {"bug": "0", "epochs": "8"}, rules[:2])
    assert healthy["TrainingJobStatus"] == "Completed"
    assert {s["RuleEvaluationStatus"] for s in healthy["DebugRuleEvaluationStatuses"]} == {"NoIssuesFound"}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=lab.bucket, Prefix="debugger-test/")["Contents"]]
    assert "debugger-test/debug/dbg-healthy/debug-output/losses.jsonl" in keys
    system = [k for k in keys if "/dbg-faulty/profiler-output/system/incremental/" in k]
    assert system, "system metrics are written where the profiler writes them"
    records = [json.loads(line) for line in s3.get_object(Bucket=lab.bucket, Key=system[0])["Body"].read().splitlines()]
    assert {rec["Dimension"] for rec in records} >= {"CPUUtilization", "MemoryUsedPercent"}


def test_rules_without_a_hook_and_bad_requests(lab, sm, job_inputs):
    image = job_inputs["rules_image"]
    job = _train(sm, lab, job_inputs, "dbg-nohook", {"epochs": "1"}, [_rule("LossNotDecreasing", image)])
    assert job["TrainingJobStatus"] == "Completed"
    status = job["DebugRuleEvaluationStatuses"][0]
    assert status["RuleEvaluationStatus"] == "NoIssuesFound" or "no TRAIN losses" not in status.get("StatusDetails", "")
    import botocore.exceptions

    with pytest.raises(botocore.exceptions.ClientError, match="must be unique"):
        _train(sm, lab, job_inputs, "dbg-twice", {}, [_rule("Overfit", image), _rule("Overfit", image)])
