"""Several instances (torch rendezvous, sharded and replicated channels) and managed spot training."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "training"))
import jobkit  # noqa: E402

from labkit.offline import training, usage  # noqa: E402


@pytest.fixture(scope="module")
def aws(lab):
    s3, sm, logs = boto3.client("s3"), boto3.client("sagemaker"), boto3.client("logs")
    for i in range(4):
        s3.put_object(Bucket=lab.bucket, Key=f"dist/train/part-{i}.csv", Body=f"{i}\n".encode())
    s3.put_object(Bucket=lab.bucket, Key="dist/vocab/vocab.txt", Body=b"a\nb\n")
    return lab, s3, sm, logs


def channel(name, uri, distribution):
    return {"ChannelName": name, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": distribution}}}


def test_two_hosts_shard_and_replicate_channels(aws):
    lab, s3, sm, logs = aws
    code = jobkit.upload_code(s3, lab.bucket, "train_env.py")
    request = jobkit.script_request(
        lab, "two-hosts", "train_env.py", code,
        InputDataConfig=[channel("train", f"s3://{lab.bucket}/dist/train", "ShardedByS3Key"),
                         channel("vocab", f"s3://{lab.bucket}/dist/vocab", "FullyReplicated")],
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 5})
    sm.create_training_job(**request)
    job = jobkit.wait(sm, "two-hosts")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    streams = jobkit.log_messages(logs, "two-hosts")
    assert sorted(s.split("/")[1].rsplit("-", 1)[0] for s in streams) == ["algo-1", "algo-2"]
    # Each host packs its own model dir on AWS too; offline the model comes from algo-1.
    rec = json.loads(jobkit.read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["env-algo-1.json"])
    assert rec["channels"]["train"] == ["part-0.csv", "part-2.csv"]
    assert rec["channels"]["vocab"] == ["vocab.txt"]
    env = rec["env"]
    assert json.loads(env["SM_HOSTS"]) == ["algo-1", "algo-2"]
    assert env["WORLD_SIZE"] == "2" and env["RANK"] == "0" and env["LOCAL_RANK"] == "0"
    assert env["MASTER_ADDR"] == "127.0.0.1" and int(env["MASTER_PORT"]) > 0
    event, = [e for e in usage.events("sagemaker:training") if e["resource"] == "two-hosts"]
    assert event["instance_count"] == 2


def test_torch_distributed_all_reduce_across_hosts(aws):
    lab, s3, sm, logs = aws
    code = jobkit.upload_code(s3, lab.bucket, "train_ddp.py")
    request = jobkit.script_request(
        lab, "ddp", "train_ddp.py", code,
        hyperparameters={"sagemaker_torch_distributed_enabled": "true"},
        InputDataConfig=[channel("train", f"s3://{lab.bucket}/dist/train", "ShardedByS3Key")],
        ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 5})
    sm.create_training_job(**request)
    job = jobkit.wait(sm, "ddp")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    result = json.loads(jobkit.read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["ddp.json"])
    assert result == {"world": 2, "total_files": 4.0}
    lines = [m for msgs in jobkit.log_messages(logs, "ddp").values() for m in msgs if m.startswith("rank=")]
    assert sorted(line.split()[0] for line in lines) == ["rank=0", "rank=1"]


def spot_request(lab, name, code, **extra):
    return jobkit.script_request(
        lab, name, "train_checkpoint.py", code, hyperparameters={"epochs": "4", "epoch-seconds": "0.2"},
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 120, "MaxWaitTimeInSeconds": 240},
        CheckpointConfig={"S3Uri": f"s3://{lab.bucket}/checkpoints/{name}", "LocalPath": "/opt/ml/checkpoints"},
        **extra)


def test_spot_interruption_resumes_from_the_synced_checkpoint(aws):
    lab, s3, sm, _ = aws
    code = jobkit.upload_code(s3, lab.bucket, "train_checkpoint.py")
    training.simulate_spot_interruption("spot-1", after_checkpoints=1)
    sm.create_training_job(**spot_request(lab, "spot-1", code))
    job = jobkit.wait(sm, "spot-1")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert statuses[statuses.index("Interrupted") + 1:] == ["Starting", "Training", "Uploading", "Completed"]
    result = json.loads(jobkit.read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["result.json"])
    assert result["runs"] == 2 and result["started_at_epoch"] >= 1
    state = json.loads(s3.get_object(Bucket=lab.bucket, Key="checkpoints/spot-1/state.json")["Body"].read())
    assert state["epoch"] == 3
    assert job["BillableTimeInSeconds"] < job["TrainingTimeInSeconds"] or job["TrainingTimeInSeconds"] == 1
    event, = [e for e in usage.events("sagemaker:training") if e["resource"] == "spot-1"]
    assert event["spot"] is True and event["seconds"] == job["BillableTimeInSeconds"]


def test_a_new_spot_job_starts_from_checkpoints_left_in_s3(aws):
    lab, s3, sm, _ = aws
    code = jobkit.upload_code(s3, lab.bucket, "train_checkpoint.py")
    s3.put_object(Bucket=lab.bucket, Key="checkpoints/spot-2/state.json", Body=b'{"epoch": 2, "runs": 1}')
    sm.create_training_job(**spot_request(lab, "spot-2", code))
    job = jobkit.wait(sm, "spot-2")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    result = json.loads(jobkit.read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["result.json"])
    assert result == {"started_at_epoch": 3, "runs": 2}


def test_spot_needs_max_wait_time(aws):
    import botocore.exceptions

    lab, s3, sm, _ = aws
    request = spot_request(lab, "spot-bad", "s3://x/y.tar.gz")
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": 120}
    with pytest.raises(botocore.exceptions.ClientError, match="MaxWaitTimeInSeconds"):
        sm.create_training_job(**request)


def test_model_trainer_torchrun_meets_at_the_jobs_own_address(aws, tmp_path):
    """SDK v3 Torchrun on two instances: the SDK's drivers name algo-1:7777, which only AWS resolves.

    Also: torch.save to /opt/ml/... (a C++ writer) lands in the job's folder and is synced.
    """
    import io

    import torch
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import CheckpointConfig, Compute, InputData, SourceCode
    from sagemaker.train.distributed import Torchrun

    lab, s3, sm, _ = aws
    (tmp_path / "train_torchrun.py").write_text((jobkit.HERE / "train_torchrun.py").read_text())
    trainer = ModelTrainer(training_image=jobkit.PYTORCH_IMAGE, role=lab.role_arn, base_job_name="torchrun",
                           source_code=SourceCode(source_dir=str(tmp_path), entry_script="train_torchrun.py"),
                           compute=Compute(instance_type="ml.c5.xlarge", instance_count=2), distributed=Torchrun(),
                           checkpoint_config=CheckpointConfig(s3_uri=f"s3://{lab.bucket}/torchrun/ckpt"))
    trainer.train(input_data_config=[InputData(channel_name="train", data_source=f"s3://{lab.bucket}/dist/train")],
                  wait=True, logs=False)
    job = sm.describe_training_job(TrainingJobName=trainer._latest_training_job.training_job_name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    result = json.loads(jobkit.read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["result.json"])
    assert result == {"world": 2, "total": 3.0, "omp_wait_policy": "PASSIVE"}
    body = s3.get_object(Bucket=lab.bucket, Key="torchrun/ckpt/state.pt")["Body"].read()
    assert torch.load(io.BytesIO(body))["total"].item() == 3.0


def test_a_failing_rank_explains_the_two_instance_job(aws, tmp_path):
    """Rank 1 of a torchrun job raises: its own traceback, not torchrun's or the driver's, is the reason."""
    from sagemaker.core.utils.exceptions import FailedStatusError
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, SourceCode
    from sagemaker.train.distributed import Torchrun

    lab, _, sm, logs = aws
    (tmp_path / "train_ddp_broken.py").write_text((jobkit.HERE / "train_ddp_broken.py").read_text())
    trainer = ModelTrainer(training_image=jobkit.PYTORCH_IMAGE, role=lab.role_arn, base_job_name="broken-ddp",
                           source_code=SourceCode(source_dir=str(tmp_path), entry_script="train_ddp_broken.py"),
                           compute=Compute(instance_type="ml.c5.xlarge", instance_count=2), distributed=Torchrun(),
                           environment={"FAIL_RANK": "1"})
    with pytest.raises(FailedStatusError) as raised:
        trainer.train(wait=True, logs=False)
    name = trainer._latest_training_job.training_job_name
    reason = sm.describe_training_job(TrainingJobName=name)["FailureReason"]
    cause = "RuntimeError: mat1 and mat2 shapes cannot be multiplied (3x7 and 4x5)"
    line = 'File "/opt/ml/input/data/code/train_ddp_broken.py", line 14, in <module>'
    for text in (reason, str(raised.value)):  # what describe_training_job and the learner's exception say
        assert cause in text and line in text, text
        assert "ChildFailedError" not in text and "CalledProcessError" not in text
    assert reason.startswith("AlgorithmError: ExecuteUserScriptError:\nExitCode 1\n")
    assert "--node_rank=1 train_ddp_broken.py" in reason, "the command of the host that failed"
    host_logs = jobkit.log_messages(logs, name)
    assert any(cause in m for s, msgs in host_logs.items() if "/algo-2-" in s for m in msgs)


def test_checkpoint_sync_skips_a_file_renamed_while_it_runs(aws, tmp_path, monkeypatch):
    """A script's atomic tmp -> final rename can race the engine's sync: skip the vanished file."""
    from labkit.offline import storage

    lab, s3, _, _ = aws
    (tmp_path / "a.pt.tmp").write_bytes(b"half")
    (tmp_path / "b.pt").write_bytes(b"whole")
    real = storage.s3()

    class Racing:
        def upload_file(self, filename, bucket, key):
            if filename.endswith(".tmp"):
                os.replace(filename, filename[:-4])  # the script renamed it after the listing
            return real.upload_file(filename, bucket, key)

    monkeypatch.setattr(storage, "s3", lambda: Racing())
    assert storage.sync_up(tmp_path, f"s3://{lab.bucket}/race/") == 1
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=lab.bucket, Prefix="race/")["Contents"]]
    assert keys == ["race/b.pt"]
