"""Benchmark of the offline hosting engine: create-to-InService time and invoke latency.

Run: ``python bench/bench_hosting.py``. A scikit-learn model (logistic regression on 3
features) with an ``inference.py`` is served through plain boto3, as a lab serves it.
Targets (issue 4): invoke p50 < 5 ms, InService < 2 s.

The first endpoint's time is dominated by the model server's imports (scikit-learn pulls
in scipy and pandas: about 1.3 s of CPU); later ones are forked by the warm zygote that
CreateModel started, with those imports done. Both depend on how busy the machine is, so
the load is reported too.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import tarfile
import time

INFERENCE = b'''
import json, os
import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type):
    return np.asarray(json.loads(body)["instances"], dtype=float)

def predict_fn(data, model):
    return model.predict_proba(data)[:, 1]

def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction.tolist()}), "application/json"
'''
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
INVOCATIONS = 500


def _tarball() -> bytes:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(0)
    x = rng.rand(500, 3)
    model = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    out, buf = io.BytesIO(), io.BytesIO()
    joblib.dump(model, buf)
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in (("model.joblib", buf.getvalue()), ("code/inference.py", INFERENCE)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _create(sm, name: str) -> float:
    started = time.perf_counter()
    sm.create_endpoint(EndpointName=name, EndpointConfigName="bench")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name)
    return time.perf_counter() - started


def _model_builder(lab) -> float:
    """Seconds of ``ModelBuilder(...).build()`` and ``.deploy()`` (the SDK imported beforehand)."""
    import logging

    from sagemaker.serve.model_builder import ModelBuilder

    builder = ModelBuilder(s3_model_data_url=f"s3://{lab.bucket}/bench/model.tar.gz", image_uri=IMAGE,
                           role_arn=lab.role_arn, instance_type="ml.m5.large", log_level=logging.WARNING,
                           env_vars={"SAGEMAKER_PROGRAM": "inference.py"})
    started = time.perf_counter()
    builder.build(model_name="bench-sdk")
    builder.deploy(endpoint_name="bench-sdk", initial_instance_count=1)
    return time.perf_counter() - started


def main() -> str:
    import boto3

    import labkit
    from labkit.offline.hosting import process

    lab = labkit.connect("bench-hosting", backend="offline", quiet=True)
    process.stop_all(zygote=True)  # a zygote left by an earlier benchmark would make "cold" warm
    load = os.getloadavg()[0]
    sm, rt = boto3.client("sagemaker"), boto3.client("sagemaker-runtime")
    boto3.client("s3").put_object(Bucket=lab.bucket, Key="bench/model.tar.gz", Body=_tarball())
    sm.create_model(ModelName="bench", ExecutionRoleArn=lab.role_arn, PrimaryContainer={
        "Image": IMAGE, "ModelDataUrl": f"s3://{lab.bucket}/bench/model.tar.gz",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    sm.create_endpoint_config(EndpointConfigName="bench", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "bench", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    cold = _create(sm, "bench-cold")
    time.sleep(0.5)
    process.wait_until_warm()  # the zygote has done its imports, as between two lab cells
    warm = _create(sm, "bench-warm")
    body = json.dumps({"instances": [[0.2, 0.4, 0.6]]})
    for _ in range(20):
        rt.invoke_endpoint(EndpointName="bench-warm", Body=body, ContentType="application/json")["Body"].read()
    latencies = []
    for _ in range(INVOCATIONS):
        started = time.perf_counter()
        rt.invoke_endpoint(EndpointName="bench-warm", Body=body, ContentType="application/json")["Body"].read()
        latencies.append(1000 * (time.perf_counter() - started))
    sdk = _model_builder(lab)
    for name in ("bench-cold", "bench-warm", "bench-sdk"):
        sm.delete_endpoint(EndpointName=name)
    p50, p99 = statistics.median(latencies), _percentile(latencies, 99)
    rows = [
        ("create_endpoint to InService, first endpoint (cold model server)", f"{cold:.2f} s", "< 2 s"),
        ("create_endpoint to InService, next endpoints (forked by the warm zygote)", f"{warm:.2f} s", "< 2 s"),
        ("SDK v3 ModelBuilder build() + deploy() to InService (its waits poll every 30 s on AWS)",
         f"{sdk:.2f} s", ""),
        (f"invoke_endpoint latency p50 (scikit-learn, boto3, n={INVOCATIONS})", f"{p50:.2f} ms", "< 5 ms"),
        (f"invoke_endpoint latency p99 (scikit-learn, boto3, n={INVOCATIONS})", f"{p99:.2f} ms", ""),
        ("machine load when the run started (1-minute load average)", f"{load:.1f} on {os.cpu_count()} cores", ""),
    ]
    table = "\n".join(["### Hosting engine", "", "| measure | value | target |", "|---|---|---|",
                       *[f"| {a} | {b} | {c} |" for a, b, c in rows]])
    print(table)
    return table


if __name__ == "__main__":
    main()
