"""Offline training jobs through plain boto3: scripts really run under the container contract."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "training"))
import jobkit  # noqa: E402

from labkit.offline import usage  # noqa: E402


@pytest.fixture(scope="module")
def aws(lab):
    s3, sm, logs = boto3.client("s3"), boto3.client("sagemaker"), boto3.client("logs")
    for i in range(3):
        s3.put_object(Bucket=lab.bucket, Key=f"data/train/part-{i}.csv", Body=f"{i},1\n{i},2\n".encode())
    s3.put_object(Bucket=lab.bucket, Key="data/test/test.csv", Body=b"9,9\n")
    return lab, s3, sm, logs


def run(aws, name, script, **kwargs):
    lab, s3, sm, _ = aws
    code = jobkit.upload_code(s3, lab.bucket, script)
    kwargs.setdefault("channels", {"train": f"s3://{lab.bucket}/data/train"})
    sm.create_training_job(**jobkit.script_request(lab, name, script, code, **kwargs))
    return jobkit.wait(sm, name)


def test_script_job_completes_with_model_output_logs_and_metrics(aws):
    lab, s3, sm, logs = aws
    job = run(aws, "basic", "train_basic.py", hyperparameters={"epochs": "3", "lr": "0.05"},
              AlgorithmSpecification={"TrainingImage": jobkit.PYTORCH_IMAGE, "TrainingInputMode": "File",
                                      "MetricDefinitions": [{"Name": "train:loss", "Regex": "#011loss=([0-9.]+)"}]})
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert job["TrainingStartTime"] <= job["TrainingEndTime"]
    assert job["TrainingTimeInSeconds"] >= 1 and job["BillableTimeInSeconds"] == job["TrainingTimeInSeconds"]
    assert job["FinalMetricDataList"][0]["MetricName"] == "train:loss"
    assert job["FinalMetricDataList"][0]["Value"] == pytest.approx(0.3333)
    model = json.loads(jobkit.read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["model.json"])
    assert model["rows"] == 6 and model["lr"] == 0.05 and model["files"] == ["part-0.csv", "part-1.csv", "part-2.csv"]
    assert model["hps"] == {"epochs": 3, "lr": 0.05}
    output = jobkit.read_tar(s3, f"s3://{lab.bucket}/output/basic/output/output.tar.gz")
    assert output["report.txt"] == b"ok\n"
    (stream, messages), = jobkit.log_messages(logs, "basic").items()
    assert stream.startswith("basic/algo-1-")
    assert "epoch=2#011loss=0.3333" in messages and messages[-1] == "done"
    event, = [e for e in usage.events("sagemaker:training") if e["resource"] == "basic"]
    assert event["instance_type"] == "ml.m5.large" and event["instance_count"] == 1
    assert event["seconds"] == job["BillableTimeInSeconds"] and event["spot"] is False


def test_container_contract_variables_arguments_and_config_files(aws):
    lab, s3, sm, _ = aws
    job = run(aws, "contract", "train_env.py", hyperparameters={"epochs": "2", "model-name": '"resnet"'},
              channels={"train": f"s3://{lab.bucket}/data/train", "test": f"s3://{lab.bucket}/data/test/test.csv"},
              Environment={"MY_SETTING": "on"})
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    rec = json.loads(jobkit.read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["env-algo-1.json"])
    env = rec["env"]
    assert rec["argv"] == ["--epochs", "2", "--model-name", "resnet"]
    assert json.loads(env["SM_USER_ARGS"]) == rec["argv"]
    assert json.loads(env["SM_HPS"]) == {"epochs": 2, "model-name": "resnet"}
    assert env["SM_HP_EPOCHS"] == "2" and env["SM_HP_MODEL-NAME"] == "resnet"
    assert json.loads(env["SM_CHANNELS"]) == ["test", "train"]
    assert rec["channels"] == {"train": ["part-0.csv", "part-1.csv", "part-2.csv"], "test": ["test.csv"]}
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"] and env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "ml.m5.large"
    assert int(env["SM_NUM_CPUS"]) >= 1 and int(env["SM_NUM_GPUS"]) >= 0
    for var in ("SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_INPUT_DIR", "SM_INPUT_CONFIG_DIR", "SM_OUTPUT_DIR"):
        assert Path(env[var]).is_absolute() and not env[var].startswith("/opt/ml"), var
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["user_entry_point"] == "train_env.py" and training_env["job_name"] == "contract"
    assert training_env["channel_input_dirs"]["train"] == env["SM_CHANNEL_TRAIN"]
    assert rec["config"]["hyperparameters.json"]["epochs"] == "2"
    assert rec["config"]["resourceconfig.json"]["current_host"] == "algo-1"
    assert rec["config"]["inputdataconfig.json"]["train"]["TrainingInputMode"] == "File"
    assert env["TRAINING_JOB_NAME"] == "contract"


def test_crashing_script_fails_with_its_own_error_and_line(aws):
    job = run(aws, "crash", "train_crash.py")
    assert job["TrainingJobStatus"] == "Failed" and job["SecondaryStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.startswith("AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage ")
    assert "ValueError: label column 'churn' not found in train.csv" in reason
    # Where it was raised, as the container names it (not this machine's temporary folder).
    assert 'File "/opt/ml/code/train_crash.py", line 5, in <module>' in reason
    assert 'raise ValueError(' in reason and "labkit-sagemaker" not in reason


def test_stop_training_job_stops_and_keeps_the_model(aws):
    lab, s3, sm, _ = aws
    code = jobkit.upload_code(s3, lab.bucket, "train_sleep.py")
    sm.create_training_job(**jobkit.script_request(lab, "sleepy", "train_sleep.py", code,
                                                   hyperparameters={"seconds": "60"}))
    deadline = time.time() + 120  # a hang detector: the job starts slowly on a loaded machine
    while not any("sleeping 60.0" in m for ms in jobkit.log_messages(aws[3], "sleepy").values() for m in ms):
        assert time.time() < deadline
        time.sleep(0.05)
    assert sm.describe_training_job(TrainingJobName="sleepy")["SecondaryStatus"] == "Training"
    sm.stop_training_job(TrainingJobName="sleepy")
    assert sm.describe_training_job(TrainingJobName="sleepy")["TrainingJobStatus"] in ("Stopping", "Stopped")
    job = jobkit.wait(sm, "sleepy")
    assert job["TrainingJobStatus"] == "Stopped" and job["SecondaryStatus"] == "Stopped"
    assert "Stopping" in [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert jobkit.read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["partial.txt"] == b"partial\n"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.stop_training_job(TrainingJobName="sleepy")
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_max_runtime_exceeded_stops_the_job(aws):
    job = run(aws, "too-long", "train_sleep.py", hyperparameters={"seconds": "60"},
              StoppingCondition={"MaxRuntimeInSeconds": 1})
    assert job["TrainingJobStatus"] == "Stopped"
    assert job["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_list_training_jobs_filters_by_status(aws):
    _, _, sm, _ = aws
    failed = sm.list_training_jobs(StatusEquals="Failed")["TrainingJobSummaries"]
    assert "crash" in [j["TrainingJobName"] for j in failed]
    assert "basic" not in [j["TrainingJobName"] for j in failed]


def test_describe_unknown_job_is_a_validation_error(aws):
    with pytest.raises(botocore.exceptions.ClientError) as err:
        aws[2].describe_training_job(TrainingJobName="no-such-job")
    assert err.value.response["Error"]["Code"] == "ValidationException"


# --- bad input -------------------------------------------------------------------------


def test_missing_channel_prefix_is_rejected_like_aws(aws):
    lab, s3, sm, _ = aws
    code = jobkit.upload_code(s3, lab.bucket, "train_basic.py")
    request = jobkit.script_request(lab, "nodata", "train_basic.py", code,
                                    channels={"train": f"s3://{lab.bucket}/data/does-not-exist"})
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.create_training_job(**request)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"].startswith(
        f'No S3 objects found under S3 URL "s3://{lab.bucket}/data/does-not-exist" given in input data source.')


def test_unknown_instance_type_is_rejected(aws):
    lab, s3, sm, _ = aws
    request = jobkit.script_request(lab, "badtype", "train_basic.py", "s3://x/y.tar.gz",
                                    channels={"train": f"s3://{lab.bucket}/data/train"},
                                    ResourceConfig={"InstanceType": "ml.m5.huge", "InstanceCount": 1,
                                                    "VolumeSizeInGB": 5})
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.create_training_job(**request)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "Value 'ml.m5.huge' at 'resourceConfig.instanceType'" in err.value.response["Error"]["Message"]


def test_non_string_hyperparameter_is_rejected_by_botocore(aws):
    lab, s3, sm, _ = aws
    request = jobkit.script_request(lab, "badhp", "train_basic.py", "s3://x/y.tar.gz", hyperparameters={"epochs": 3})
    with pytest.raises(botocore.exceptions.ParamValidationError, match="HyperParameters.epochs"):
        sm.create_training_job(**request)


def test_image_that_cannot_be_emulated_fails_with_a_message(aws):
    lab, s3, sm, _ = aws
    code = jobkit.upload_code(s3, lab.bucket, "train_basic.py")
    image = f"{lab.account_id}.dkr.ecr.us-east-1.amazonaws.com/my-custom-image:latest"
    job = run(aws, "custom-image", "train_basic.py", image=image) if code else None
    assert job["TrainingJobStatus"] == "Failed"
    assert "my-custom-image" in job["FailureReason"] and "XGBoost" in job["FailureReason"]


def test_duplicate_job_name_is_resource_in_use(aws):
    lab, s3, sm, _ = aws
    request = jobkit.script_request(lab, "basic", "train_basic.py", "s3://x/y.tar.gz",
                                    channels={"train": f"s3://{lab.bucket}/data/train"})
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.create_training_job(**request)
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
