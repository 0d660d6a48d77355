"""A job's requirements.txt offline: what the image or the course provides needs no wheel.

Revealed by the SDK's train-then-deploy example, whose ``requirements.txt`` says
``torch>=1.13.0,<2.0.0`` for the image ``pytorch-training:1.13.1-cpu-py39``: on AWS pip finds
the image's torch and installs nothing; offline the course's torch stands in for the image's.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import boto3
import pytest

from labkit.offline.training import dependencies, images

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "training"))
import jobkit  # noqa: E402

TORCH_113 = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:1.13.1-cpu-py39"


@pytest.mark.parametrize("uri,expected", [
    (TORCH_113, ("torch", "1.13.1")),
    ("763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-inference:2.1.0-gpu-py310", ("torch", "2.1.0")),
    (jobkit.SKLEARN_IMAGE, ("scikit-learn", "1.2")),
    (jobkit.XGBOOST_IMAGE, ("xgboost", "1.7")),
    ("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:latest", None),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-image:1.0", None),
])
def test_the_framework_an_image_ships_is_read_from_its_tag(uri, expected):
    assert images.parse(uri).framework_package == expected


def _set_aside(tmp_path: Path, text: str, framework=("torch", "1.13.1")) -> tuple[list[str], str]:
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return dependencies.set_aside_image_framework(path, framework), path.read_text()


@pytest.mark.parametrize("line", ["torch>=1.13.0,<2.0.0", "torch", "Torch==1.13.1", "torch~=1.13.0",
                                  "torch>=1.0 ; python_version >= '3'", "torch>=1.13  # the image's"])
def test_a_requirement_the_images_framework_satisfies_is_set_aside(tmp_path, line):
    aside, text = _set_aside(tmp_path, f"numpy\n{line}\nscikit-learn>=1.0\n")
    assert aside == [line.split(" #")[0].strip()]
    lines = text.splitlines()
    assert lines[0] == "numpy" and lines[2] == "scikit-learn>=1.0"
    assert lines[1].startswith("#") and "provided by the image, torch 1.13.1" in lines[1]
    assert "the course's torch" in lines[1]


@pytest.mark.parametrize("line", ["torch==2.0.1", "torch>=2", "torch<1.13", "torch>=1.0 ; python_version < '3'",
                                  "torch @ https://example.com/torch-1.13.1-py3-none-any.whl", "torchvision>=0.14",
                                  "-r more.txt", "--find-links wheels", "# torch"])
def test_other_requirements_are_left_to_pip(tmp_path, line):
    aside, text = _set_aside(tmp_path, f"{line}\n")
    assert aside == [] and text == f"{line}\n"


def test_nothing_is_set_aside_without_a_known_framework_or_one_the_course_lacks(tmp_path):
    assert _set_aside(tmp_path, "torch<2\n", None) == ([], "torch<2\n")
    assert _set_aside(tmp_path, "labkit-no-such-framework<2\n", ("labkit-no-such-framework", "1.0")) == (
        [], "labkit-no-such-framework<2\n")


def _job(lab, name: str, requirements: str, image: str = TORCH_113) -> dict:
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for arcname, text in (("train.py", "import torch, sklearn\nprint('torch', torch.__version__)\n"),
                              ("requirements.txt", requirements)):
            info = tarfile.TarInfo(arcname)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    s3.put_object(Bucket=lab.bucket, Key=f"{name}/sourcedir.tar.gz", Body=buffer.getvalue())
    code = f"s3://{lab.bucket}/{name}/sourcedir.tar.gz"
    sm.create_training_job(**jobkit.script_request(lab, name, "train.py", code, image=image))
    return jobkit.wait(sm, name, timeout=180)


def test_a_job_whose_requirements_the_image_satisfies_runs_without_a_wheel(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_WHEEL_CACHE", str(tmp_path / "empty-cache"))
    job = _job(lab, "image-torch", "torch>=1.13.0,<2.0.0\nscikit-learn\n")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    import torch

    logs = [m for ms in jobkit.log_messages(boto3.client("logs"), "image-torch").values() for m in ms]
    assert f"torch {torch.__version__}" in logs  # the course's torch ran the job


def test_a_requirement_neither_image_nor_course_satisfies_fails_the_job_naming_it(lab, tmp_path, monkeypatch):
    cache = tmp_path / "empty-cache"
    monkeypatch.setenv("LABKIT_WHEEL_CACHE", str(cache))
    job = _job(lab, "other-torch", "torch==1.12.1\n")
    assert job["TrainingJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert "requirements.txt could not be installed offline" in reason
    import torch

    assert f"torch==1.12.1 (the course environment has torch {torch.__version__})" in reason
    assert f"pip download -r requirements.txt -d {cache}" in reason


def test_model_trainer_requirements_the_image_satisfies_pass_the_sdks_own_pip_too(lab, tmp_path, monkeypatch):
    """SDK v3's container driver runs ``pip install -r requirements.txt`` itself: it sees the host's copy."""
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, SourceCode

    monkeypatch.setenv("LABKIT_WHEEL_CACHE", str(tmp_path / "empty-cache"))
    source = tmp_path / "code"
    source.mkdir()
    (source / "train.py").write_text("import torch\nprint('trained with torch', torch.__version__)\n")
    (source / "requirements.txt").write_text("torch>=1.13.0,<2.0.0\n")
    trainer = ModelTrainer(training_image=TORCH_113, base_job_name="v3-image-torch",
                           source_code=SourceCode(source_dir=str(source), entry_script="train.py",
                                                  requirements="requirements.txt"),
                           compute=Compute(instance_type="ml.m5.large", instance_count=1))
    trainer.train(wait=True, logs=False)
    job = trainer._latest_training_job
    assert job.training_job_status == "Completed", job.failure_reason
    assert (source / "requirements.txt").read_text() == "torch>=1.13.0,<2.0.0\n"  # the learner's file is untouched
