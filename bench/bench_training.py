"""Per-job overhead of the offline training engine: submit to Completed, less the script's own time.

A trivial script-mode job (it writes one file to the model dir and prints how long its own
code ran) is submitted with plain boto3 and polled with ``DescribeTrainingJob`` as a
client would. Overhead = (time from ``CreateTrainingJob`` until ``Completed`` is seen) minus
the script's own run time (as the script measured it, interpreter start-up excluded).
Measured for one and for two instances (two hosts, one process each).
"""

from __future__ import annotations

import io
import statistics
import tarfile
import time
from pathlib import Path

SCRIPT = b"""\
import os, time
t0 = time.perf_counter()
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
    f.write(os.environ["SM_CURRENT_HOST"])
print(f"script_seconds={time.perf_counter() - t0:.6f}")
"""
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1-cpu-py310"
REPEATS = 7


def _code(s3, bucket: str) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("trivial.py")
        info.size = len(SCRIPT)
        tar.addfile(info, io.BytesIO(SCRIPT))
    s3.put_object(Bucket=bucket, Key="bench/code/sourcedir.tar.gz", Body=buffer.getvalue())
    s3.put_object(Bucket=bucket, Key="bench/data/train.csv", Body=b"1,2\n3,4\n")
    return f"s3://{bucket}/bench/code/sourcedir.tar.gz"


def _one_job(sm, lab, code: str, name: str, instances: int) -> tuple[float, float, float]:
    """(overhead, submit-to-Completed, script seconds) of one job."""
    from labkit.offline.training import jobs

    request = {
        "TrainingJobName": name, "RoleArn": lab.role_arn,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": {"sagemaker_program": '"trivial.py"', "sagemaker_submit_directory": f'"{code}"'},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{lab.bucket}/bench/data",
            "S3DataDistributionType": "FullyReplicated"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{lab.bucket}/bench/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": instances, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    start = time.perf_counter()
    sm.create_training_job(**request)
    while True:
        job = sm.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        time.sleep(0.01)
    total = time.perf_counter() - start
    if job["TrainingJobStatus"] != "Completed":
        raise RuntimeError(f"benchmark job {name} ended {job['TrainingJobStatus']}: {job.get('FailureReason')}")
    run = jobs.runs[name]
    script = max(float(line.split("=", 1)[1]) for line in run.lines if line.startswith("script_seconds="))
    return total - script, total, script


def measure(instances: int, repeats: int = REPEATS) -> dict[str, float]:
    import boto3

    import labkit

    lab = labkit.connect("bench-training", quiet=True)
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    code = _code(s3, lab.bucket)
    _one_job(sm, lab, code, f"bench-warmup-{instances}", instances)  # first job pays imports
    rows = [_one_job(sm, lab, code, f"bench-{instances}-{i}", instances) for i in range(repeats)]
    return {"overhead": statistics.median(r[0] for r in rows), "total": statistics.median(r[1] for r in rows),
            "script": statistics.median(r[2] for r in rows), "worst": max(r[0] for r in rows)}


def _sdk_v3(lab, code_dir: str, instances: int) -> float:
    """Seconds of ``ModelTrainer.train(wait=True)`` for the trivial script, minus the script's own time."""
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, SourceCode

    from labkit.offline.training import jobs

    trainer = ModelTrainer(training_image=IMAGE, role=lab.role_arn, base_job_name="bench-v3",
                           source_code=SourceCode(source_dir=code_dir, entry_script="trivial.py"),
                           compute=Compute(instance_type="ml.m5.large", instance_count=instances))
    start = time.perf_counter()
    trainer.train(input_data_config=[InputData(channel_name="train", data_source=f"s3://{lab.bucket}/bench/data")],
                  wait=True, logs=False)
    total = time.perf_counter() - start
    run = jobs.runs[trainer._latest_training_job.training_job_name]
    return total - max(float(ln.split("=", 1)[1]) for ln in run.lines if ln.startswith("script_seconds="))


def _tuning(sm, lab, code: str, name: str, trials: int = 6) -> float:
    """Seconds from CreateHyperParameterTuningJob to Completed, per trial (2 in parallel)."""
    definition = {
        "StaticHyperParameters": {"sagemaker_program": '"trivial.py"', "sagemaker_submit_directory": f'"{code}"'},
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                   "MetricDefinitions": [{"Name": "t", "Regex": "script_seconds=([0-9.]+)"}]},
        "RoleArn": lab.role_arn, "OutputDataConfig": {"S3OutputPath": f"s3://{lab.bucket}/bench/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60}}
    config = {"Strategy": "Bayesian", "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "t"},
              "ResourceLimits": {"MaxNumberOfTrainingJobs": trials, "MaxParallelTrainingJobs": 2},
              "ParameterRanges": {"IntegerParameterRanges": [{"Name": "unused", "MinValue": "1", "MaxValue": "9"}]}}
    start = time.perf_counter()
    sm.create_hyper_parameter_tuning_job(HyperParameterTuningJobName=name, HyperParameterTuningJobConfig=config,
                                         TrainingJobDefinition=definition)
    while sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
            "HyperParameterTuningJobStatus"] not in ("Completed", "Failed", "Stopped"):
        time.sleep(0.01)
    return (time.perf_counter() - start) / trials


def main() -> str:
    import shutil
    import tempfile

    import boto3

    import labkit

    lines = ["## Training engine: per-job overhead", "",
             "A trivial script-mode job (it writes one file), submitted with plain boto3 and polled with "
             "`DescribeTrainingJob`: overhead = submit to `Completed` minus the script's own run time "
             f"(median of {REPEATS} after one warm-up job).", "",
             "| instances | overhead (median s) | worst s | submit to Completed (median s) | script's own s | target |",
             "|---|---|---|---|---|---|"]
    for n in (1, 2):
        m = measure(n)
        lines.append(f"| {n} | {m['overhead']:.3f} | {m['worst']:.3f} | {m['total']:.3f} | {m['script']:.4f} "
                     "| < 1 s |")
    lab = labkit.connect("bench-training", quiet=True)
    sm = boto3.client("sagemaker")
    code = _code(boto3.client("s3"), lab.bucket)
    folder = tempfile.mkdtemp()
    (Path(folder) / "trivial.py").write_bytes(SCRIPT)
    try:
        v3 = [_sdk_v3(lab, folder, 1) for _ in range(3)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    per_trial = _tuning(sm, lab, code, "bench-tuning")
    lines += ["", "| also measured | seconds | note |", "|---|---|---|",
              f"| SDK v3 `ModelTrainer.train(wait=True)`, 1 instance, less the script | {statistics.median(v3):.2f} "
              "| packs and uploads the source and driver channels, polls every 0.2 s |",
              f"| tuning job of 6 trivial trials, 2 in parallel: submit to `Completed`, per trial | {per_trial:.2f} "
              "| Bayesian (TPE) suggestions included |"]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
