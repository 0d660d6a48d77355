"""The built-in XGBoost algorithm image, emulated by a local xgboost with the container's contract."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
import xgboost as xgb

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "training"))
import jobkit  # noqa: E402


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


@pytest.fixture(scope="module")
def aws(lab):
    s3, sm, logs = boto3.client("s3"), boto3.client("sagemaker"), boto3.client("logs")
    for channel, seed in (("train", 0), ("validation", 1)):
        X, y = _rows(300, seed)
        csv = "\n".join(",".join([str(label), *(f"{v:.5f}" for v in row)]) for label, row in zip(y, X, strict=True))
        s3.put_object(Bucket=lab.bucket, Key=f"xgb/csv/{channel}/data.csv", Body=csv.encode())
        libsvm = "\n".join(f"{label} " + " ".join(f"{i + 1}:{v:.5f}" for i, v in enumerate(row))
                           for label, row in zip(y, X, strict=True))
        s3.put_object(Bucket=lab.bucket, Key=f"xgb/libsvm/{channel}/data.libsvm", Body=libsvm.encode())
    return lab, s3, sm, logs


def builtin_request(lab, name, fmt, hyperparameters, content_type):
    return {
        "TrainingJobName": name, "RoleArn": lab.role_arn,
        "AlgorithmSpecification": {"TrainingImage": jobkit.XGBOOST_IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters,
        "InputDataConfig": [{"ChannelName": c, "ContentType": content_type, "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{lab.bucket}/xgb/{fmt}/{c}/"}}}
            for c in ("train", "validation")],
        "OutputDataConfig": {"S3OutputPath": f"s3://{lab.bucket}/xgb-output"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


HPS = {"num_round": "20", "objective": "binary:logistic", "eval_metric": "auc,logloss", "max_depth": "3",
       "eta": "0.3", "subsample": "0.9"}


def test_csv_label_first_trains_reports_validation_auc_and_saves_xgboost_model(aws):
    lab, s3, sm, logs = aws
    sm.create_training_job(**builtin_request(lab, "xgb-csv", "csv", HPS, "text/csv"))
    job = jobkit.wait(sm, "xgb-csv")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert set(metrics) == {"train:auc", "validation:auc", "train:logloss", "validation:logloss"}
    assert 0.9 < metrics["validation:auc"] <= 1.0
    names = {d["Name"] for d in job["AlgorithmSpecification"]["MetricDefinitions"]}
    assert {"validation:auc", "train:rmse"} <= names
    (messages,) = jobkit.log_messages(logs, "xgb-csv").values()
    first = next(m for m in messages if m.startswith("[0]"))
    assert first.startswith("[0]#011train-auc:") and "#011validation-auc:" in first
    files = jobkit.read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    booster = xgb.Booster()
    booster.load_model(bytearray(files["xgboost-model"]))
    X, y = _rows(100, 2)
    predictions = booster.predict(xgb.DMatrix(X))
    assert ((predictions > 0.5) == y).mean() > 0.85


def test_libsvm_input_trains_the_same_model_family(aws):
    lab, _, sm, _ = aws
    sm.create_training_job(**builtin_request(lab, "xgb-libsvm", "libsvm", {**HPS, "eval_metric": "error"},
                                             "text/libsvm"))
    job = jobkit.wait(sm, "xgb-libsvm")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics["validation:error"] < 0.15


def test_missing_num_round_fails_with_a_client_error(aws):
    lab, _, sm, _ = aws
    hps = {k: v for k, v in HPS.items() if k != "num_round"}
    sm.create_training_job(**builtin_request(lab, "xgb-no-rounds", "csv", hps, "text/csv"))
    job = jobkit.wait(sm, "xgb-no-rounds")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: Hyperparameter Validation Error: num_round")


def test_unparseable_hyperparameter_value_names_the_hyperparameter(aws):
    lab, _, sm, _ = aws
    sm.create_training_job(**builtin_request(lab, "xgb-bad-depth", "csv", {**HPS, "max_depth": "deep"},
                                             "text/csv"))
    job = jobkit.wait(sm, "xgb-bad-depth")
    assert job["TrainingJobStatus"] == "Failed"
    assert "max_depth must be an integer" in job["FailureReason"]


def test_csv_with_a_header_row_fails_with_the_format_rule(aws):
    lab, s3, sm, _ = aws
    s3.put_object(Bucket=lab.bucket, Key="xgb/header/train/data.csv", Body=b"label,a,b\n1,0.1,0.2\n")
    request = builtin_request(lab, "xgb-header", "header", HPS, "text/csv")
    request["InputDataConfig"] = request["InputDataConfig"][:1]
    sm.create_training_job(**request)
    job = jobkit.wait(sm, "xgb-header")
    assert job["TrainingJobStatus"] == "Failed"
    assert "label in the first column and no header row" in job["FailureReason"]


def test_xgboost_image_with_an_entry_point_runs_the_script(aws):
    lab, s3, sm, _ = aws
    s3.put_object(Bucket=lab.bucket, Key="xgb/plain/train/a.csv", Body=io.BytesIO(b"1,2\n").getvalue())
    code = jobkit.upload_code(s3, lab.bucket, "train_basic.py")
    sm.create_training_job(**jobkit.script_request(lab, "xgb-script", "train_basic.py", code,
                                                   image=jobkit.XGBOOST_IMAGE,
                                                   channels={"train": f"s3://{lab.bucket}/xgb/plain/train"}))
    job = jobkit.wait(sm, "xgb-script")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert "model.json" in jobkit.read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])


def test_csv_weights_reads_the_second_column_as_instance_weights(tmp_path):
    from labkit.offline.training.algorithms.xgboost import load_channel

    (tmp_path / "train.csv").write_text("1,0.5,3.0,4.0\n0,2.0,1.0,2.0\n")
    weighted = load_channel(tmp_path, "text/csv", csv_weights=True)
    assert weighted.num_col() == 2 and list(weighted.get_weight()) == [0.5, 2.0]
    assert load_channel(tmp_path, "text/csv").num_col() == 3


def test_the_algorithm_imports_xgboost_without_scikit_learn_until_a_channel_needs_it(tmp_path):
    """A job's process pays for scikit-learn (1 s of CPU) only for a libsvm channel, whose reader is
    scikit-learn's; xgboost's own import of it, for estimator classes the algorithm never uses, is cut."""
    import subprocess

    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "data.libsvm").write_text("1 1:0.5 2:1.0\n0 1:-0.5 2:0.0\n1 1:0.7 2:0.9\n")
    probe = ("import sys\n"
             "from labkit.offline.training.algorithms import xgboost as algorithm\n"
             "xgb = algorithm.import_xgboost()\n"
             "print('sklearn after import:', 'sklearn' in sys.modules)\n"
             "print('core API:', callable(xgb.train) and callable(xgb.DMatrix))\n"
             f"matrix = algorithm.load_channel(__import__('pathlib').Path({str(folder)!r}), 'text/libsvm')\n"
             "print('libsvm rows:', matrix.num_row(), 'sklearn after libsvm:', 'sklearn' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "sklearn after import: False" in out.stdout, out.stdout
    assert "core API: True" in out.stdout and "libsvm rows: 3 sklearn after libsvm: True" in out.stdout, out.stdout
