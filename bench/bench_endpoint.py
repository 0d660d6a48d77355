"""The local endpoint: connect time (embedded vs shared, cold vs attach) and per-call latency.

Each measurement runs in a fresh Python process, as a kernel would. The shared backend uses
a private ``LABKIT_HOME`` (and is stopped at the end), never the user's own.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

CONNECT = ("import time; t = time.perf_counter(); import labkit; labkit.connect('bench', quiet=True); "
           "print(time.perf_counter() - t)")

CALLS = """
import json, statistics, time
import boto3, labkit
labkit.connect("bench", quiet=True)
clients = {"s3": boto3.client("s3"), "sagemaker": boto3.client("sagemaker"),
           "pricing": boto3.client("pricing", region_name="us-east-1"), "sts": boto3.client("sts")}
bucket = "sagemaker-us-east-1-123456789012"
calls = {
    "S3 HeadBucket (moto)": lambda: clients["s3"].head_bucket(Bucket=bucket),
    "S3 PutObject 1 KB (moto)": lambda: clients["s3"].put_object(Bucket=bucket, Key="bench/x", Body=b"x" * 1024),
    "SageMaker ListTrainingJobs (moto)": lambda: clients["sagemaker"].list_training_jobs(),
    "SageMaker DescribeTrainingJob, unknown (engine)": lambda: _try(
        lambda: clients["sagemaker"].describe_training_job(TrainingJobName="none")),
    "Pricing DescribeServices (engine)": lambda: clients["pricing"].describe_services(ServiceCode="AmazonSageMaker"),
    "STS GetCallerIdentity (moto)": lambda: clients["sts"].get_caller_identity(),
}
def _try(fn):
    try:
        fn()
    except Exception:
        pass
out = {}
for name, fn in calls.items():
    fn()
    samples = []
    for _ in range(30):
        t = time.perf_counter(); fn(); samples.append(time.perf_counter() - t)
    out[name] = statistics.median(samples) * 1000
print(json.dumps(out))
"""


def _run(code: str, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return out.stdout.strip().splitlines()[-1]


def main() -> str:
    from labkit.offline import shared

    home = tempfile.mkdtemp(prefix="labkit-bench-home-")
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    embedded = dict(base, LABKIT_OFFLINE_MODE="embedded")
    shared_env = dict(base, LABKIT_OFFLINE_MODE="shared", LABKIT_HOME=home)
    old_home = os.environ.get("LABKIT_HOME")
    os.environ["LABKIT_HOME"] = home
    try:
        embedded_connect = [float(_run(CONNECT, embedded)) for _ in range(3)]
        cold = []
        for _ in range(3):
            shared.stop()
            cold.append(float(_run(CONNECT, shared_env)))
        attach = [float(_run(CONNECT, shared_env)) for _ in range(5)]
        in_process = json.loads(_run(CALLS, embedded))
        over_http = json.loads(_run(CALLS, shared_env))
    finally:
        shared.stop()
        if old_home is None:
            os.environ.pop("LABKIT_HOME", None)
        else:
            os.environ["LABKIT_HOME"] = old_home
    lines = ["## Local endpoint", "",
             "`labkit.connect()` in a new process (import included), median of runs:", "",
             "| mode | median seconds | target |", "|---|---|---|",
             f"| embedded: a private backend in the process (grading, tests) | {statistics.median(embedded_connect):.2f} | < 8 s |",
             f"| shared, cold: starts the user's backend process | {statistics.median(cold):.2f} | < 15 s |",
             f"| shared, attach: the backend is already running | {statistics.median(attach):.2f} | < 3 s |",
             "", "Per-call latency, median of 30 calls after one warm-up, in milliseconds: in-process (the embedded "
             "kernel's own clients) vs through the endpoint over loopback HTTP (an attached kernel, the CLI, jobs):", "",
             "| call | in-process ms | endpoint ms |", "|---|---|---|"]
    for name, value in in_process.items():
        lines.append(f"| {name} | {value:.1f} | {over_http[name]:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
