"""GPU check of Lab 02's train.py: the CUDA path (NCCL, one process per GPU) on a machine with GPUs.

    python -m bench.gpu_check_lab02            # as a SageMaker job on the offline backend (1 instance)
    python -m bench.gpu_check_lab02 --direct   # torchrun alone, no SageMaker emulation (needs torch only)
    bash bench/gpu_check_lab02.sh              # the same, with the repository's .venv

CI has no GPU, so the lab's jobs always take the CPU path (gloo); this script is for a GPU host.
It takes the lab's source files (``src-ddp/*.py``) from the solution notebook, then trains the
digits model for a few epochs on one instance with ``SM_NUM_GPUS`` = the GPUs of this machine:

- default: a ``ModelTrainer`` job (``Torchrun()``, ``ml.g5.xlarge`` or ``ml.g5.12xlarge`` by GPU
  count) through ``labkit.connect()``; the engine sets ``SM_NUM_GPUS`` from ``nvidia-smi`` and
  the SDK's torchrun driver starts one process per GPU;
- ``--direct``: ``torchrun --standalone --nproc_per_node=$SM_NUM_GPUS train.py`` in a folder laid
  out like ``/opt/ml``, with the SM_* variables the script reads.

It passes when rank 0's ``training.json`` says: accelerator ``cuda``, backend ``nccl``, one rank
per GPU on distinct devices, every training sample seen once per epoch, and the loss fell. It
prints a markdown report and exits 1 on failure, 2 when this machine has no usable GPU.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAB = "02-distributed-training"
NOTEBOOK = REPO / "solutions" / LAB / f"{LAB}.ipynb"
DATA = REPO / "data" / "digits"
EPOCHS = 3


def gpu_count() -> int:
    """GPUs as the SageMaker toolkit counts them (``nvidia-smi --list-gpus``)."""
    if not shutil.which("nvidia-smi"):
        return 0
    out = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=30).stdout
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def write_sources(dest: Path) -> list[str]:
    """The lab's ``%%writefile src-ddp/<name>`` cells, written to ``dest`` (the solution version)."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    names = []
    for cell in cells:
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        first, _, body = text.partition("\n")
        match = re.fullmatch(r"%%writefile src-ddp/(\w+\.py)", first.strip())
        if cell["cell_type"] == "code" and match:
            (dest / match.group(1)).write_text(body + "\n")
            names.append(match.group(1))
    missing = {"train.py", "model.py", "data.py", "loop.py", "checkpoint.py"} - set(names)
    if missing:
        raise SystemExit(f"{NOTEBOOK} lacks the cells for {sorted(missing)}")
    return sorted(names)


def judge(record: dict, gpus: int) -> list[str]:
    """What is wrong with rank 0's training.json for a run on ``gpus`` GPUs (empty: all good)."""
    problems = []
    rt = record.get("runtime", {})
    if rt.get("accelerator") != "cuda":
        problems.append(f"accelerator {rt.get('accelerator')!r}, expected 'cuda' (SM_NUM_GPUS={gpus})")
    if rt.get("backend") != "nccl":
        problems.append(f"process-group backend {rt.get('backend')!r}, expected 'nccl'")
    if rt.get("world_size") != gpus:
        problems.append(f"world size {rt.get('world_size')}, expected one rank per GPU ({gpus})")
    shards = [s for s in record.get("shards", []) if s]
    if sorted(s["local_rank"] for s in shards) != list(range(gpus)):
        problems.append(f"local ranks {[s['local_rank'] for s in shards]}: each GPU needs its own process")
    ids = [i for s in shards for i in s["ids"]]
    if len(ids) != len(set(ids)) or len(ids) != 1440:
        problems.append(f"{len(ids)} samples ({len(set(ids))} distinct) in the first epoch, expected 1440 distinct")
    losses = [h["train_loss"] for h in record.get("history", [])]
    if len(losses) != EPOCHS or not losses[-1] < losses[0]:
        problems.append(f"train loss per epoch {losses}: expected {EPOCHS} epochs and a fall")
    return problems


def run_job(src: Path, gpus: int) -> tuple[dict, dict]:
    """The lab's path: a ModelTrainer job on the offline backend, one GPU instance."""
    import boto3

    import labkit

    lab = labkit.connect("gpu-check-lab02", quiet=True)
    from sagemaker.core import image_uris
    from sagemaker.core.shapes import S3DataSource, StoppingCondition
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig, SourceCode
    from sagemaker.train import ModelTrainer
    from sagemaker.train.distributed import Torchrun

    s3 = boto3.client("s3")
    for split in ("train", "validation"):
        for f in sorted((DATA / split).glob("*.csv")):
            s3.upload_file(str(f), lab.bucket, f"gpu-check/digits/{split}/{f.name}")
    instance = "ml.g5.xlarge" if gpus == 1 else "ml.g5.12xlarge"  # 1 or 4 A10G: the nearest SageMaker shape
    image = image_uris.retrieve("pytorch", lab.region, version="2.8.0", instance_type=instance, image_scope="training")

    def channel(name: str) -> InputData:
        return InputData(channel_name=name, data_source=S3DataSource(
            s3_data_type="S3Prefix", s3_uri=f"s3://{lab.bucket}/gpu-check/digits/{name}",
            s3_data_distribution_type="FullyReplicated"))

    trainer = ModelTrainer(
        training_image=image, source_code=SourceCode(source_dir=str(src), entry_script="train.py"),
        compute=Compute(instance_type=instance, instance_count=1), distributed=Torchrun(),
        hyperparameters={"epochs": EPOCHS, "batch-size": 32}, role=lab.role_arn, base_job_name="gpu-check-lab02",
        stopping_condition=StoppingCondition(max_runtime_in_seconds=900),
        output_data_config=OutputDataConfig(s3_output_path=f"s3://{lab.bucket}/gpu-check/output"))
    trainer.train(input_data_config=[channel("train"), channel("validation")], wait=True, logs=False)
    job = boto3.client("sagemaker").describe_training_job(
        TrainingJobName=trainer._latest_training_job.training_job_name)
    if job["TrainingJobStatus"] != "Completed":
        raise SystemExit(f"job {job['TrainingJobName']} {job['TrainingJobStatus']}: {job.get('FailureReason')}")
    bucket, key = job["ModelArtifacts"]["S3ModelArtifacts"][5:].split("/", 1)
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as tar:
        record = json.load(tar.extractfile("training.json"))
    info = {"mode": f"ModelTrainer job on the offline backend ({instance}, Torchrun)", "job": job["TrainingJobName"],
            "seconds": job.get("TrainingTimeInSeconds")}
    return record, info


def run_direct(src: Path, gpus: int, root: Path) -> tuple[dict, dict]:
    """torchrun alone, with the container contract's folders and variables."""
    model_dir, ckpt = root / "model", root / "checkpoints"
    model_dir.mkdir(parents=True)
    env = {**os.environ, "SM_NUM_GPUS": str(gpus), "SM_CURRENT_HOST": "algo-1", "SM_HOSTS": '["algo-1"]',
           "SM_MODEL_DIR": str(model_dir), "SM_CHANNEL_TRAIN": str(DATA / "train"),
           "SM_CHANNEL_VALIDATION": str(DATA / "validation"),
           "SM_INPUT_DATA_CONFIG": json.dumps({c: {"S3DistributionType": "FullyReplicated"}
                                               for c in ("train", "validation")})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}", "train.py",
           "--epochs", str(EPOCHS), "--batch-size", "32", "--checkpoint-dir", str(ckpt)]
    start = time.time()
    proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise SystemExit(f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    record = json.loads((model_dir / "training.json").read_text())
    return record, {"mode": f"torchrun --standalone --nproc_per_node={gpus}", "seconds": round(time.time() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--direct", action="store_true", help="run torchrun directly, without the offline backend")
    args = parser.parse_args(argv)
    import torch

    gpus = gpu_count()
    if gpus == 0 or not torch.cuda.is_available():
        print(f"No usable GPU: nvidia-smi lists {gpus}, torch.cuda.is_available() is {torch.cuda.is_available()} "
              f"(torch {torch.__version__}). Run this on a GPU host with a CUDA build of torch.")
        return 2
    with tempfile.TemporaryDirectory(prefix="gpu-check-lab02-") as tmp:
        src = Path(tmp) / "src-ddp"
        src.mkdir()
        names = write_sources(src)
        record, info = run_direct(src, gpus, Path(tmp)) if args.direct else run_job(src, gpus)
    problems = judge(record, gpus)
    rt = record["runtime"]
    print(f"## Lab 02 GPU check: {'pass' if not problems else 'FAIL'}\n")
    print("| | |\n|---|---|")
    for key, value in (("mode", info["mode"]), ("sources", ", ".join(names)), ("GPUs (nvidia-smi)", gpus),
                       ("GPU", rt.get("cuda_device_name")), ("accelerator / backend", f"{rt['accelerator']} / "
                                                                                    f"{rt['backend']}"),
                       ("world size", rt["world_size"]), ("torch", torch.__version__),
                       ("train loss per epoch", [round(h["train_loss"], 3) for h in record["history"]]),
                       ("validation accuracy", round(record["history"][-1]["val_accuracy"], 4)),
                       ("seconds", info.get("seconds"))):
        print(f"| {key} | {value} |")
    for problem in problems:
        print(f"- {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
