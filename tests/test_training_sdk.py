"""SDK v3 ModelTrainer end to end on the offline backend: source-code channel, driver, logs, artifact."""
from __future__ import annotations

import io
import logging
import shutil
import sys
import tarfile
from pathlib import Path

import boto3
import joblib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "training"))
import jobkit  # noqa: E402


@pytest.fixture(scope="module")
def sdk(lab, tmp_path_factory):
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, SourceCode

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    body = "\n".join(",".join(map(str, [label, *row])) for label, row in zip(y, X, strict=True))
    boto3.client("s3").put_object(Bucket=lab.bucket, Key="sdk/train/train.csv", Body=body.encode())
    source = tmp_path_factory.mktemp("source")
    for script in ("train_sklearn.py", "train_crash.py"):
        shutil.copy(jobkit.HERE / script, source)
    return lab, ModelTrainer, Compute, InputData, SourceCode, source


def test_model_trainer_trains_a_sklearn_script_and_the_artifact_loads(sdk, caplog):
    lab, ModelTrainer, Compute, InputData, SourceCode, source = sdk
    trainer = ModelTrainer(training_image=jobkit.SKLEARN_IMAGE, role=lab.role_arn, base_job_name="sdk-sklearn",
                           source_code=SourceCode(source_dir=str(source), entry_script="train_sklearn.py"),
                           compute=Compute(instance_type="ml.m5.large", instance_count=1),
                           hyperparameters={"C": 0.5, "max_iter": 100})
    with caplog.at_level(logging.INFO):
        trainer.train(input_data_config=[InputData(channel_name="train", data_source=f"s3://{lab.bucket}/sdk/train")],
                      wait=True, logs=True)
    job = trainer._latest_training_job
    assert job.training_job_status == "Completed"
    assert "train_accuracy=" in caplog.text  # the container's log lines were shown by logs=True
    assert "--C 0.5 --max_iter 100" in caplog.text
    bucket, key = job.model_artifacts.s3_model_artifacts[5:].split("/", 1)
    data = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        model = joblib.load(tar.extractfile("model.joblib"))
    X = np.array([[2.0, 0.0, -2.0], [-2.0, 0.0, 2.0]])
    assert list(model.predict(X)) == [1, 0]
    assert job.billable_time_in_seconds >= 1


def test_model_trainer_surfaces_the_scripts_error(sdk):
    from sagemaker.core.utils.exceptions import FailedStatusError

    lab, ModelTrainer, Compute, InputData, SourceCode, source = sdk
    trainer = ModelTrainer(training_image=jobkit.SKLEARN_IMAGE, role=lab.role_arn, base_job_name="sdk-crash",
                           source_code=SourceCode(source_dir=str(source), entry_script="train_crash.py"),
                           compute=Compute(instance_type="ml.m5.large", instance_count=1))
    with pytest.raises(FailedStatusError, match="label column 'churn' not found"):
        trainer.train(input_data_config=[InputData(channel_name="train", data_source=f"s3://{lab.bucket}/sdk/train")],
                      wait=True, logs=False)
