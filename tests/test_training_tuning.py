"""Offline hyperparameter tuning jobs through plain boto3 and SDK v3: trials are real training jobs."""
from __future__ import annotations

import json
import math
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "training"))
import jobkit  # noqa: E402

from labkit.offline import usage  # noqa: E402
from labkit.offline.training import tuning  # noqa: E402

OBJECTIVE = "validation:score"
METRICS = [{"Name": OBJECTIVE, "Regex": r"#011score=([-+]?[0-9]*\.?[0-9]+)"}]
X_AND_N = {"ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "1"}],
           "IntegerParameterRanges": [{"Name": "n", "MinValue": "1", "MaxValue": "20"}]}


def score(x: float, n: int, kind: str = "a") -> float:
    """What train_tune.py reports as its final score."""
    return 1 - (x - 0.3) ** 2 - ((n - 7) / 10) ** 2 + (0.05 if kind == "b" else 0.0)


@pytest.fixture(scope="module")
def aws(lab):
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    s3.put_object(Bucket=lab.bucket, Key="tune/train/data.csv", Body=b"1,2\n3,4\n")
    code = jobkit.upload_code(s3, lab.bucket, "train_tune.py")
    return lab, s3, sm, code


def definition(aws, **static) -> dict:
    lab, _, _, code = aws
    return {
        "StaticHyperParameters": {"sagemaker_program": '"train_tune.py"', "sagemaker_submit_directory": f'"{code}"',
                                  **{k: str(v) for k, v in static.items()}},
        "AlgorithmSpecification": {"TrainingImage": jobkit.PYTORCH_IMAGE, "TrainingInputMode": "File",
                                   "MetricDefinitions": METRICS},
        "RoleArn": lab.role_arn,
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{lab.bucket}/tune/train",
            "S3DataDistributionType": "FullyReplicated"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{lab.bucket}/tune/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    }


def config(strategy="Bayesian", ranges=None, max_jobs=6, parallel=2, **extra) -> dict:
    limits = {"MaxParallelTrainingJobs": parallel}
    if max_jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = max_jobs
    return {"Strategy": strategy, "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": OBJECTIVE},
            "ResourceLimits": limits, "ParameterRanges": X_AND_N if ranges is None else ranges, **extra}


def create(aws, name, cfg, defn=None, **extra):
    _, _, sm, _ = aws
    sm.create_hyper_parameter_tuning_job(HyperParameterTuningJobName=name, HyperParameterTuningJobConfig=cfg,
                                         TrainingJobDefinition=defn or definition(aws), **extra)


def wait(sm, name, timeout=300) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if job["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"tuning job {name} did not end in {timeout} s")


def trials(sm, name) -> list[dict]:
    out, token = [], None
    while True:
        page = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, MaxResults=100, **({"NextToken": token} if token else {}))
        out += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            return sorted(out, key=lambda s: s["TrainingJobName"])


def rejected(aws, name, cfg, defn=None, code="ValidationException", **extra) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        create(aws, name, cfg, defn, **extra)
    assert err.value.response["Error"]["Code"] == code, err.value.response["Error"]
    assert name not in aws[2].list_hyper_parameter_tuning_jobs(NameContains=name)["HyperParameterTuningJobSummaries"]
    return err.value.response["Error"]["Message"]


# --- a tuning job end to end -------------------------------------------------------------------


def test_bayesian_job_runs_real_trials_and_reports_the_best(aws):
    lab, s3, sm, _ = aws
    create(aws, "bayes", config(max_jobs=6, parallel=2), Tags=[{"Key": "labkit:lab", "Value": "tests"}])
    job = wait(sm, "bayes")
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TrainingJobStatusCounters"] == {"Completed": 6, "InProgress": 0, "RetryableError": 0,
                                                "NonRetryableError": 0, "Stopped": 0}
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 6, "Pending": 0, "Failed": 0}
    assert job["HyperParameterTuningEndTime"] >= job["CreationTime"]
    assert job["TrainingJobDefinition"]["StaticHyperParameters"]["_tuning_objective_metric"] == OBJECTIVE
    assert job["HyperParameterTuningJobConfig"]["TrainingJobEarlyStoppingType"] == "Off"
    assert job["HyperParameterTuningJobConfig"]["ParameterRanges"]["CategoricalParameterRanges"] == []
    summaries = trials(sm, "bayes")
    assert len(summaries) == 6
    for s in summaries:
        assert re.fullmatch(r"bayes-00[1-6]-[0-9a-f]{8}", s["TrainingJobName"]), s["TrainingJobName"]
        x, n = float(s["TunedHyperParameters"]["x"]), int(s["TunedHyperParameters"]["n"])
        assert 0 <= x <= 1 and 1 <= n <= 20
        # The objective is what the script printed for these hyperparameters, read from its log.
        assert s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(score(x, n), abs=1e-5)
        assert s["ObjectiveStatus"] == "Succeeded" and s["TuningJobName"] == "bayes"
        # Each trial is a real training job: it ran the script with these arguments and packed its model.
        tj = sm.describe_training_job(TrainingJobName=s["TrainingJobName"])
        assert tj["TuningJobArn"] == job["HyperParameterTuningJobArn"]
        assert tj["HyperParameters"]["_tuning_objective_metric"] == OBJECTIVE
        model = json.loads(jobkit.read_tar(s3, tj["ModelArtifacts"]["S3ModelArtifacts"])["model.json"])
        assert model["x"] == pytest.approx(x) and model["n"] == n
        assert "--_tuning_objective_metric" not in model["argv"], "the toolkit does not pass it to the script"
        tags = sm.list_tags(ResourceArn=tj["TrainingJobArn"])["Tags"]
        assert {"Key": "labkit:lab", "Value": "tests"} in tags, "the tuning job's tags go to its trials"
    best = max(summaries, key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert job["BestTrainingJob"]["TrainingJobName"] == best["TrainingJobName"]
    assert job["BestTrainingJob"]["TunedHyperParameters"] == best["TunedHyperParameters"]
    billed = {e["resource"] for e in usage.events("sagemaker:training")}
    assert {s["TrainingJobName"] for s in summaries} <= billed, "every trial bills as a training job"


def test_parallel_trials_never_exceed_max_parallel(aws):
    _, _, sm, _ = aws
    create(aws, "parallel", config(strategy="Random", max_jobs=6, parallel=2),
           definition(aws, sleep=0.15, epochs=2))
    assert wait(sm, "parallel")["HyperParameterTuningJobStatus"] == "Completed"
    spans = [(s["CreationTime"], s["TrainingEndTime"]) for s in trials(sm, "parallel")]
    most = max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)
    assert most == 2, f"at most 2 trials at once, and 2 when there is work for them (saw {most})"


def test_bayesian_concentrates_where_earlier_trials_scored_well(aws):
    """Sequential TPE with a fixed seed: later trials score better than the random start-up ones."""
    _, _, sm, _ = aws
    create(aws, "learns", config(max_jobs=16, parallel=1, RandomSeed=3))
    wait(sm, "learns")
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in trials(sm, "learns")]
    assert statistics.fmean(values[8:]) > statistics.fmean(values[:8]), values
    assert max(values) > 0.9


def test_random_strategy_honours_the_scaling_types(aws):
    _, _, sm, _ = aws
    ranges = {"ContinuousParameterRanges": [
        {"Name": "x", "MinValue": "0.0001", "MaxValue": "1", "ScalingType": "Logarithmic"},
        {"Name": "momentum", "MinValue": "0.9", "MaxValue": "0.9999", "ScalingType": "ReverseLogarithmic"}],
        "IntegerParameterRanges": [{"Name": "n", "MinValue": "1", "MaxValue": "1000", "ScalingType": "Logarithmic"}]}
    create(aws, "scaling", config(strategy="Random", ranges=ranges, max_jobs=12, parallel=4, RandomSeed=1))
    assert wait(sm, "scaling")["HyperParameterTuningJobStatus"] == "Completed"
    tuned = [s["TunedHyperParameters"] for s in trials(sm, "scaling")]
    xs, ms, ns = ([float(t[k]) for t in tuned] for k in ("x", "momentum", "n"))
    assert all(1e-4 <= x <= 1 for x in xs) and all(0.9 <= m <= 0.9999 for m in ms) and all(1 <= n <= 1000 for n in ns)
    assert all(float(t["n"]).is_integer() for t in tuned)
    # Log scale: as many draws per decade, so most lie far below the middle of the range.
    assert sum(x < 0.1 for x in xs) >= 6 and sum(n < 100 for n in ns) >= 6
    # Reverse log: 1 - m is log-uniform, so draws crowd towards 0.9999.
    assert sum(m > 0.99 for m in ms) >= 6


def test_grid_runs_every_combination_once(aws):
    _, _, sm, _ = aws
    ranges = {"CategoricalParameterRanges": [{"Name": "x", "Values": ["0.1", "0.3", "0.5"]},
                                             {"Name": "kind", "Values": ["a", "b"]}]}
    create(aws, "grid", config(strategy="Grid", ranges=ranges, max_jobs=None, parallel=3))
    job = wait(sm, "grid")
    assert job["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 6
    combos = sorted((s["TunedHyperParameters"]["x"], s["TunedHyperParameters"]["kind"]) for s in trials(sm, "grid"))
    assert combos == sorted((x, k) for x in ("0.1", "0.3", "0.5") for k in ("a", "b"))
    assert job["BestTrainingJob"]["TunedHyperParameters"] == {"x": "0.3", "kind": "b"}


def test_early_stopping_stops_trials_worse_than_the_median(aws):
    """Grid order makes it deterministic: three good trials, then two whose every epoch is worse."""
    _, _, sm, _ = aws
    ranges = {"CategoricalParameterRanges": [{"Name": "x", "Values": ["0.3", "0.31", "0.29", "0.9", "1.0"]}]}
    create(aws, "early", config(strategy="Grid", ranges=ranges, max_jobs=None, parallel=1,
                                TrainingJobEarlyStoppingType="Auto"),
           definition(aws, n=7, epochs=5, sleep=0.3))
    job = wait(sm, "early")
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    by_x = {s["TunedHyperParameters"]["x"]: s for s in trials(sm, "early")}
    assert [by_x[x]["TrainingJobStatus"] for x in ("0.3", "0.31", "0.29")] == ["Completed"] * 3
    for x in ("0.9", "1.0"):
        s = by_x[x]
        assert s["TrainingJobStatus"] == "Stopped", s
        # Stopped before its last epoch: its objective is its value where it was stopped, below its final score.
        series = tuning.tunings["early"].trials[int(s["TrainingJobName"].split("-")[1]) - 1].run.metrics.values(OBJECTIVE)
        assert len(series) < 5 and s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(series[-1])
        assert series[-1] < score(float(x), 7)
        assert s["ObjectiveStatus"] == "Succeeded"
    assert job["TrainingJobStatusCounters"]["Stopped"] == 2 and job["TrainingJobStatusCounters"]["Completed"] == 3
    assert job["BestTrainingJob"]["TunedHyperParameters"] == {"x": "0.3"}


def test_median_rule_uses_running_averages_of_earlier_trials():
    earlier = [[0.5, 0.6, 0.7], [0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]
    # at epoch 2 the running averages are 0.55, 0.15, 0.45: the median is 0.45
    assert tuning.median_rule(0.44, 2, earlier, "Maximize")
    assert not tuning.median_rule(0.46, 2, earlier, "Maximize")
    assert tuning.median_rule(0.46, 2, earlier, "Minimize")
    assert not tuning.median_rule(0.0, 2, earlier[:2], "Maximize"), "too few earlier trials to judge"
    assert not tuning.median_rule(0.0, 4, earlier, "Maximize"), "no earlier trial reached epoch 4"


def test_stop_tuning_job_stops_its_trials(aws):
    _, _, sm, _ = aws
    create(aws, "stopme", config(strategy="Random", max_jobs=4, parallel=2), definition(aws, epochs=100, sleep=0.2))
    deadline = time.time() + 120  # only catches a hang
    while sum(s["TrainingJobStatus"] == "InProgress" for s in trials(sm, "stopme")) < 2:
        assert time.time() < deadline
        time.sleep(0.05)
    listed = sm.list_hyper_parameter_tuning_jobs(StatusEquals="InProgress")["HyperParameterTuningJobSummaries"]
    assert [j["HyperParameterTuningJobName"] for j in listed] == ["stopme"]
    assert "HyperParameterTuningEndTime" not in listed[0] and listed[0]["TrainingJobStatusCounters"]["InProgress"] == 2
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="stopme")
    assert sm.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="stopme")["HyperParameterTuningJobStatus"] in ("Stopping", "Stopped")
    job = wait(sm, "stopme")
    assert job["HyperParameterTuningJobStatus"] == "Stopped"
    assert job["TrainingJobStatusCounters"]["Stopped"] == 2 and job["TrainingJobStatusCounters"]["InProgress"] == 0
    assert len(trials(sm, "stopme")) == 2, "no trial is launched after the stop"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="stopme")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    sm.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName="stopme")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="stopme")
    assert err.value.response["Error"]["Code"] == "ResourceNotFound"


def test_failed_trials_are_counted_and_all_failed_fails_the_job(aws):
    _, _, sm, _ = aws
    create(aws, "somefail", config(strategy="Random", max_jobs=8, parallel=4, RandomSeed=2),
           definition(aws, **{"fail-below": 0.5}))
    job = wait(sm, "somefail")
    summaries = trials(sm, "somefail")
    failed = [s for s in summaries if float(s["TunedHyperParameters"]["x"]) < 0.5]
    assert failed and len(failed) < 8
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert job["TrainingJobStatusCounters"]["NonRetryableError"] == len(failed)
    assert job["ObjectiveStatusCounters"]["Failed"] == len(failed)
    for s in failed:
        assert s["TrainingJobStatus"] == "Failed" and s["ObjectiveStatus"] == "Failed"
        assert "refusing to train" in s["FailureReason"]
    assert float(job["BestTrainingJob"]["TunedHyperParameters"]["x"]) >= 0.5

    create(aws, "allfail", config(strategy="Random", max_jobs=2, parallel=2), definition(aws, **{"fail-below": 2}))
    job = wait(sm, "allfail")
    assert job["HyperParameterTuningJobStatus"] == "Failed"
    assert "No training job succeeded" in job["FailureReason"] and "refusing to train" in job["FailureReason"]
    assert "BestTrainingJob" not in job


def test_objective_never_emitted_fails_the_objective(aws):
    _, _, sm, _ = aws
    defn = definition(aws)
    defn["AlgorithmSpecification"]["MetricDefinitions"] = [{"Name": OBJECTIVE, "Regex": r"score: ([0-9.]+)"}]
    create(aws, "nometric", config(strategy="Random", max_jobs=2, parallel=2), defn)
    job = wait(sm, "nometric")
    assert job["HyperParameterTuningJobStatus"] == "Failed"
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 0, "Pending": 0, "Failed": 2}
    assert job["TrainingJobStatusCounters"]["Completed"] == 2
    assert "regex" in job["FailureReason"]


def test_list_training_jobs_pages_sorts_and_filters(aws):
    _, _, sm, _ = aws
    create(aws, "listing", config(strategy="Random", max_jobs=12, parallel=4))
    wait(sm, "listing")
    first = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName="listing")
    assert len(first["TrainingJobSummaries"]) == 10 and first["NextToken"], "10 per page by default"
    names = [s["TrainingJobName"] for s in first["TrainingJobSummaries"]]
    assert names == sorted(names)
    rest = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName="listing",
                                                                NextToken=first["NextToken"])
    assert len(rest["TrainingJobSummaries"]) == 2 and "NextToken" not in rest
    by_value = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="listing", SortBy="FinalObjectiveMetricValue", SortOrder="Descending",
        MaxResults=3)["TrainingJobSummaries"]
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in by_value]
    assert values == sorted(values, reverse=True)
    best = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="listing")["BestTrainingJob"]
    assert by_value[0]["TrainingJobName"] == best["TrainingJobName"]
    assert sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="listing", StatusEquals="Failed")["TrainingJobSummaries"] == []
    summary, = sm.list_hyper_parameter_tuning_jobs(NameContains="listing")["HyperParameterTuningJobSummaries"]
    assert summary["HyperParameterTuningJobStatus"] == "Completed" and summary["Strategy"] == "Random"
    assert summary["TrainingJobStatusCounters"]["Completed"] == 12
    for call in (lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="nope"),
                 lambda: sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName="nope")):
        with pytest.raises(botocore.exceptions.ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "ResourceNotFound"


def test_completion_criteria_end_the_search_early(aws):
    _, _, sm, _ = aws
    create(aws, "target", config(strategy="Random", max_jobs=30, parallel=1, RandomSeed=5,
                                 TuningJobCompletionCriteria={"TargetObjectiveMetricValue": 0.5}))
    job = wait(sm, "target")
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in trials(sm, "target")]
    assert job["HyperParameterTuningJobStatus"] == "Completed" and len(values) < 30
    assert values[-1] >= 0.5 and all(v < 0.5 for v in values[:-1]), "ends at the first trial that reaches it"

    create(aws, "plateau", config(strategy="Random", max_jobs=40, parallel=1, RandomSeed=5,
                                  TuningJobCompletionCriteria={"BestObjectiveNotImproving": {
                                      "MaxNumberOfTrainingJobsNotImproving": 3}}))
    job = wait(sm, "plateau")
    assert len(trials(sm, "plateau")) < 40
    assert job["TuningJobCompletionDetails"]["NumberOfTrainingJobsObjectiveNotImproving"] >= 3


def test_warm_start_seeds_the_search_and_reports_the_overall_best(aws):
    _, _, sm, _ = aws
    create(aws, "parent", config(strategy="Random", max_jobs=4, parallel=2))
    parent = wait(sm, "parent")
    create(aws, "child", config(max_jobs=2, parallel=2),
           WarmStartConfig={"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "parent"}],
                            "WarmStartType": "IdenticalDataAndAlgorithm"})
    child = wait(sm, "child")
    assert child["WarmStartConfig"]["WarmStartType"] == "IdenticalDataAndAlgorithm"
    overall = child["OverallBestTrainingJob"]
    candidates = [parent["BestTrainingJob"], child["BestTrainingJob"]]
    best = max(candidates, key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert overall["TrainingJobName"] == best["TrainingJobName"]
    assert len(tuning.tunings["child"].strategy.study.trials) == 4 + 2, "the parent's trials seeded the optimiser"
    rejected(aws, "orphan", config(), WarmStartConfig={
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "missing"}],
        "WarmStartType": "TransferLearning"}, code="ResourceNotFound")


def test_hyperband_stops_trials_at_its_rungs(aws):
    _, _, sm, _ = aws
    create(aws, "hyperband", config(strategy="Hyperband", max_jobs=8, parallel=1, RandomSeed=0,
                                    StrategyConfig={"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 6}}),
           definition(aws, epochs=12, sleep=0.2))
    job = wait(sm, "hyperband")
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    summaries = trials(sm, "hyperband")
    assert all(s["TrainingJobStatus"] == "Stopped" for s in summaries), "MaxResource 6 < 12 epochs stops each trial"
    steps = [len(t.run.metrics.values(OBJECTIVE)) for t in tuning.tunings["hyperband"].trials]
    assert max(steps) < 12 and min(steps) < 6, f"some trials were stopped at an earlier rung: {steps}"
    assert job["HyperParameterTuningJobConfig"]["StrategyConfig"]["HyperbandStrategyConfig"]["MaxResource"] == 6


def test_max_runtime_ends_the_tuning_job(aws):
    _, _, sm, _ = aws
    create(aws, "runtime", config(strategy="Random", max_jobs=None, parallel=1,
                                  ResourceLimits={"MaxParallelTrainingJobs": 1, "MaxRuntimeInSeconds": 120}),
           definition(aws, epochs=100, sleep=0.1))
    tuning.tunings["runtime"].max_runtime = 0.5  # the API's minimum is 120 s; shorten it for the test
    job = wait(sm, "runtime")
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert job["TrainingJobStatusCounters"]["Stopped"] >= 1


def test_builtin_xgboost_tuning_on_validation_auc(aws):
    import numpy as np

    lab, s3, sm, _ = aws
    rng = np.random.default_rng(0)
    for channel, rows in (("train", 300), ("validation", 100)):
        X = rng.normal(size=(rows, 4))
        y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
        body = "\n".join(",".join(map(str, [label, *row])) for label, row in zip(y, X, strict=True))
        s3.put_object(Bucket=lab.bucket, Key=f"xgbtune/{channel}/{channel}.csv", Body=body.encode())
    defn = {
        "StaticHyperParameters": {"objective": "binary:logistic", "num_round": "20", "eval_metric": "auc"},
        "AlgorithmSpecification": {"TrainingImage": jobkit.XGBOOST_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": lab.role_arn,
        "InputDataConfig": [{"ChannelName": c, "ContentType": "text/csv", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{lab.bucket}/xgbtune/{c}",
            "S3DataDistributionType": "FullyReplicated"}}} for c in ("train", "validation")],
        "OutputDataConfig": {"S3OutputPath": f"s3://{lab.bucket}/xgbtune/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    }
    cfg = {"Strategy": "Random", "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:auc"},
           "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 3},
           "ParameterRanges": {"IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1", "MaxValue": "6"}],
                               "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5"}]}}
    create(aws, "xgb", cfg, defn)
    job = wait(sm, "xgb")
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ObjectiveStatusCounters"]["Succeeded"] == 3
    assert 0.7 < job["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] <= 1
    assert any(m["Name"] == "validation:auc" for m in job["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"])
    rejected(aws, "xgb-bad", {**cfg, "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:nope"}}, defn)
    message = rejected(aws, "xgb-dir", {**cfg, "HyperParameterTuningJobObjective": {"Type": "Minimize",
                                                                                   "MetricName": "validation:auc"}}, defn)
    assert "Maximize" in message


# --- requests AWS rejects ------------------------------------------------------------------------


@pytest.mark.parametrize(("ranges", "says"), [
    ({"IntegerParameterRanges": [{"Name": "n", "MinValue": "9", "MaxValue": "2"}]}, "less than or equal"),
    ({"IntegerParameterRanges": [{"Name": "n", "MinValue": "1.5", "MaxValue": "2"}]}, "not a valid integer"),
    ({"ContinuousParameterRanges": [{"Name": "x", "MinValue": "low", "MaxValue": "1"}]}, "not a valid number"),
    ({"ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}]},
     "greater than 0"),
    ({"ContinuousParameterRanges": [{"Name": "x", "MinValue": "0.5", "MaxValue": "1",
                                     "ScalingType": "ReverseLogarithmic"}]}, "0 <= x < 1.0"),
    ({"IntegerParameterRanges": [{"Name": "n", "MinValue": "0", "MaxValue": "0",
                                  "ScalingType": "ReverseLogarithmic"}]}, "only for continuous"),
    ({"CategoricalParameterRanges": [{"Name": "kind", "Values": ["a", "a"]}]}, "unique"),
    ({"CategoricalParameterRanges": [{"Name": "x", "Values": ["1"]}],
      "ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "1"}]}, "repeated"),
    ({}, "at least one hyperparameter"),
    ({"ContinuousParameterRanges": [{"Name": f"p{i}", "MinValue": "0", "MaxValue": "1"} for i in range(31)]},
     "at most 30"),
])
def test_bad_ranges_are_rejected(aws, ranges, says):
    assert says in rejected(aws, "badrange", config(ranges=ranges))


def test_bad_requests_are_rejected_like_aws(aws):
    lab, _, _, _ = aws
    assert "metric definitions" in rejected(aws, "badobj", {**config(), "HyperParameterTuningJobObjective": {
        "Type": "Maximize", "MetricName": "validation:accuracy"}})
    assert "length less than or equal to 32" in rejected(aws, "x" * 33, config())
    assert "regular expression" in rejected(aws, "bad_name", config())
    assert "both static" in rejected(aws, "overlap", config(), definition(aws, x=0.5))
    assert "categorical" in rejected(aws, "gridint", config(strategy="Grid", max_jobs=None))
    grid = {"CategoricalParameterRanges": [{"Name": "x", "Values": ["0.1", "0.2"]}]}
    assert "must equal" in rejected(aws, "gridmax", config(strategy="Grid", ranges=grid, max_jobs=5))
    assert "bound" in rejected(aws, "unbounded", config(max_jobs=None))
    assert "Off with the Hyperband" in rejected(aws, "hbearly", config(
        strategy="Hyperband", TrainingJobEarlyStoppingType="Auto",
        StrategyConfig={"HyperbandStrategyConfig": {"MaxResource": 3}}))
    assert "MaxResource" in rejected(aws, "hbnomax", config(strategy="Hyperband"))
    assert "only with the Hyperband" in rejected(aws, "hbcfg", config(
        StrategyConfig={"HyperbandStrategyConfig": {"MaxResource": 3}}))
    wrong_type = definition(aws)
    wrong_type["ResourceConfig"]["InstanceType"] = "ml.m5.huge"
    assert "instanceType" in rejected(aws, "badtype", config(), wrong_type)
    no_data = definition(aws)
    no_data["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{lab.bucket}/nothing/here"
    assert "No S3 objects" in rejected(aws, "nodata", config(), no_data)
    custom = definition(aws)
    custom["AlgorithmSpecification"]["TrainingImage"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:1"
    assert "cannot run image" in rejected(aws, "custom", config(), custom)
    assert "not emulated" in rejected(aws, "auto", config(), Autotune={"Mode": "Enabled"})
    with pytest.raises(botocore.exceptions.ClientError) as err:
        aws[2].create_hyper_parameter_tuning_job(HyperParameterTuningJobName="nodef",
                                                 HyperParameterTuningJobConfig=config())
    assert "TrainingJobDefinition is required" in err.value.response["Error"]["Message"]


def test_duplicate_name_is_resource_in_use(aws):
    _, _, sm, _ = aws
    create(aws, "twice", config(strategy="Random", max_jobs=1, parallel=1))
    rejected_message = None
    with pytest.raises(botocore.exceptions.ClientError) as err:
        create(aws, "twice", config(strategy="Random", max_jobs=1, parallel=1))
    rejected_message = err.value.response["Error"]
    assert rejected_message["Code"] == "ResourceInUse"
    wait(sm, "twice")


# --- SDK v3 -----------------------------------------------------------------------------------------


def test_sdk_v3_hyperparameter_tuner(aws, tmp_path):
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, SourceCode
    from sagemaker.train.tuner import HyperparameterTuner

    lab, s3, sm, _ = aws
    shutil.copy(jobkit.HERE / "train_tune.py", tmp_path)
    trainer = ModelTrainer(training_image=jobkit.SKLEARN_IMAGE, role=lab.role_arn, base_job_name="sdk-tune",
                           source_code=SourceCode(source_dir=str(tmp_path), entry_script="train_tune.py"),
                           compute=Compute(instance_type="ml.m5.large", instance_count=1),
                           hyperparameters={"epochs": 2})
    tuner = HyperparameterTuner(trainer, objective_metric_name=OBJECTIVE, metric_definitions=METRICS,
                                hyperparameter_ranges={"x": ContinuousParameter(0, 1), "n": IntegerParameter(1, 20),
                                                       "kind": CategoricalParameter(["a", "b"])},
                                strategy="Bayesian", max_jobs=5, max_parallel_jobs=2, early_stopping_type="Auto",
                                base_tuning_job_name="sdk-tune")
    tuner.tune(inputs=[InputData(channel_name="train", data_source=f"s3://{lab.bucket}/tune/train")], wait=True)
    described = tuner.describe()
    assert described.hyper_parameter_tuning_job_status == "Completed"
    best = tuner.best_training_job()
    frame = tuner.analytics().dataframe()
    assert len(frame) == 5 and set(frame["TrainingJobStatus"]) == {"Completed"}
    top = frame.sort_values("FinalObjectiveValue", ascending=False).iloc[0]
    assert top["TrainingJobName"] == best
    assert top["FinalObjectiveValue"] == pytest.approx(score(top["x"], int(top["n"]), top["kind"]), abs=1e-5)
    job = sm.describe_training_job(TrainingJobName=best)
    assert job["HyperParameters"]["epochs"] == "2" and job["HyperParameters"]["sagemaker_program"] == "train_tune.py"
    assert math.isclose(float(job["HyperParameters"]["x"]), top["x"])
