"""The container a job sees: one description, derived once from the job request.

Modelled on the sagemaker-training toolkit's ``environment.py``: a :class:`HostEnvironment`
is built from the request (hosts, channels, hyperparameters, instance type) and every
path, config file and ``SM_*`` variable is derived from it. Training hosts, processing
jobs and tuning trials all read this one object; nothing else knows where the model dir is.

The real ``/opt/ml`` is not writable here, so each host gets its own ``/opt/ml``-like
root under a temporary folder; the ``SM_*`` variables and config JSON files point into
it, and the job's Python processes see ``/opt/ml/...`` mapped there (see
``container/sitecustomize.py``), so scripts that hard-code container paths work too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

CONTAINER_ROOT = "/opt/ml"
FRAMEWORK_PARAMS = ("sagemaker_program", "sagemaker_submit_directory", "sagemaker_region",
                    "sagemaker_container_log_level", "sagemaker_job_name", "sagemaker_enable_cloudwatch_metrics",
                    "sagemaker_distributed_dataparallel_enabled", "sagemaker_torch_distributed_enabled",
                    "sagemaker_pytorch_xla_multi_worker_enabled", "sagemaker_mpi_enabled",
                    "sagemaker_instance_type", "sagemaker_estimator_class_name", "sagemaker_estimator_module",
                    # Added by a tuning job to each trial; the toolkit does not pass it to the script.
                    "_tuning_objective_metric")


@lru_cache(maxsize=1)
def num_gpus() -> int:
    """GPUs on this machine, found the way the toolkit finds them (``nvidia-smi``)."""
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def deserialize(value: str) -> Any:
    """A hyperparameter as the toolkit reads it: JSON if it parses, else the string."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def serialize(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def to_cmd_args(hyperparameters: dict[str, Any]) -> list[str]:
    """``--key value`` arguments, sorted by key, as the toolkit passes them to the script."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        args += [f"--{key}", serialize(hyperparameters[key])]
    return args


@dataclass
class Channel:
    """One input channel as the container sees it in ``inputdataconfig.json``."""

    name: str
    s3_uri: str = ""
    input_mode: str = "File"
    distribution: str = "FullyReplicated"
    content_type: str | None = None
    compression: str = "None"
    record_wrapper: str = "None"

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"TrainingInputMode": self.input_mode, "S3DistributionType": self.distribution,
                               "RecordWrapperType": self.record_wrapper}
        if self.content_type:
            cfg["ContentType"] = self.content_type
        if self.compression != "None":
            cfg["CompressionType"] = self.compression
        return cfg

    @classmethod
    def from_request(cls, entry: dict[str, Any], default_mode: str) -> Channel:
        s3 = entry.get("DataSource", {}).get("S3DataSource", {})
        return cls(name=entry["ChannelName"], s3_uri=s3.get("S3Uri", ""),
                   input_mode=entry.get("InputMode", default_mode),
                   distribution=s3.get("S3DataDistributionType", "FullyReplicated"),
                   content_type=entry.get("ContentType"), compression=entry.get("CompressionType", "None"),
                   record_wrapper=entry.get("RecordWrapperType", "None"))


@dataclass
class HostEnvironment:
    """What one host (``algo-N``) of a job sees: paths, config files, ``SM_*`` variables."""

    job_name: str
    job_arn: str
    root: Path
    current_host: str
    hosts: list[str]
    instance_type: str
    hyperparameters: dict[str, str] = field(default_factory=dict)
    channels: list[Channel] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    checkpoint_path: str | None = None
    master_port: int = 0
    region: str = "us-east-1"

    # --- paths -------------------------------------------------------------------
    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.root / "output" / "data"

    @property
    def intermediate_dir(self) -> Path:
        return self.root / "output" / "intermediate"

    @property
    def failure_file(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    @property
    def checkpoint_dir(self) -> Path | None:
        return remap(self.checkpoint_path, self.root) if self.checkpoint_path else None

    def channel_dir(self, name: str) -> Path:
        return self.data_dir / name

    # --- derived values --------------------------------------------------------------
    @property
    def master_addr(self) -> str:
        """Where the hosts meet for rendezvous (``algo-1`` on AWS; every host is this machine here)."""
        return "127.0.0.1"

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def user_hyperparameters(self) -> dict[str, Any]:
        return {k: deserialize(v) for k, v in self.hyperparameters.items() if k not in FRAMEWORK_PARAMS}

    @property
    def framework_params(self) -> dict[str, Any]:
        return {k: deserialize(v) for k, v in self.hyperparameters.items() if k in FRAMEWORK_PARAMS}

    @property
    def program(self) -> str | None:
        return self.framework_params.get("sagemaker_program")

    def resource_config(self) -> dict[str, Any]:
        return {"current_host": self.current_host, "current_instance_type": self.instance_type,
                "current_group_name": "homogeneousCluster", "hosts": list(self.hosts),
                "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                     "instance_type": self.instance_type, "hosts": list(self.hosts)}],
                "network_interface_name": "eth0"}

    def input_data_config(self) -> dict[str, Any]:
        return {c.name: c.config() for c in self.channels}

    def create(self) -> None:
        """Make the folders and write ``input/config/*.json`` as the platform does."""
        for d in (self.config_dir, self.data_dir, self.model_dir, self.output_data_dir,
                  self.intermediate_dir, self.code_dir):
            d.mkdir(parents=True, exist_ok=True)
        for c in self.channels:
            self.channel_dir(c.name).mkdir(parents=True, exist_ok=True)
        if self.checkpoint_dir:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "hyperparameters.json").write_text(json.dumps(self.hyperparameters))
        (self.config_dir / "resourceconfig.json").write_text(json.dumps(self.resource_config()))
        (self.config_dir / "inputdataconfig.json").write_text(json.dumps(self.input_data_config()))

    def training_env(self) -> dict[str, Any]:
        """The ``SM_TRAINING_ENV`` document: everything below in one JSON object."""
        hps = self.user_hyperparameters
        fw = self.framework_params
        return {
            "additional_framework_parameters": {k: v for k, v in fw.items()
                                                if k not in ("sagemaker_program", "sagemaker_submit_directory",
                                                             "sagemaker_region", "sagemaker_job_name",
                                                             "sagemaker_container_log_level",
                                                             "_tuning_objective_metric")},
            "channel_input_dirs": {c.name: str(self.channel_dir(c.name)) for c in self.channels},
            "current_host": self.current_host,
            "current_instance_group": "homogeneousCluster",
            "current_instance_group_hosts": list(self.hosts),
            "current_instance_type": self.instance_type,
            "distribution_hosts": list(self.hosts),
            "distribution_instance_groups": ["homogeneousCluster"],
            "framework_module": None,
            "hosts": list(self.hosts),
            "hyperparameters": hps,
            "input_config_dir": str(self.config_dir),
            "input_data_config": self.input_data_config(),
            "input_dir": str(self.input_dir),
            "instance_groups": ["homogeneousCluster"],
            "instance_groups_dict": {"homogeneousCluster": {"instance_group_name": "homogeneousCluster",
                                                            "instance_type": self.instance_type,
                                                            "hosts": list(self.hosts)}},
            "is_hetero": False,
            "is_master": self.rank == 0,
            "is_modelparallel_enabled": None,
            "is_smddpmprun_installed": False,
            "is_smddprun_installed": False,
            "job_name": self.job_name,
            "log_level": int(fw.get("sagemaker_container_log_level", 20)),
            "master_hostname": self.hosts[0],
            "model_dir": str(self.model_dir),
            "module_dir": fw.get("sagemaker_submit_directory", str(self.code_dir)),
            "module_name": (self.program or "").removesuffix(".py"),
            "network_interface_name": "eth0",
            "num_cpus": os.cpu_count() or 1,
            "num_gpus": num_gpus(),
            "num_neurons": 0,
            "output_data_dir": str(self.output_data_dir),
            "output_dir": str(self.output_dir),
            "output_intermediate_dir": str(self.intermediate_dir),
            "resource_config": self.resource_config(),
            "user_entry_point": self.program,
        }

    def variables(self) -> dict[str, str]:
        """Every ``SM_*`` variable of the toolkit, plus the torch rendezvous variables."""
        env = self.training_env()
        out: dict[str, str] = {}
        for key, value in env.items():
            name = "SM_" + key.upper()
            out[name] = value if isinstance(value, str) else json.dumps(value)
        out["SM_USER_ARGS"] = json.dumps(to_cmd_args(env["hyperparameters"]))
        out["SM_TRAINING_ENV"] = json.dumps(env)
        out["SM_HPS"] = json.dumps(env["hyperparameters"])
        out["SM_CHANNELS"] = json.dumps(sorted(c.name for c in self.channels))
        out["SM_FRAMEWORK_PARAMS"] = json.dumps({})
        out["SM_MODULE_NAME"] = env["module_name"]
        out["SM_USER_ENTRY_POINT"] = self.program or ""
        out["SM_OUTPUT_FAILURE"] = str(self.failure_file)
        out["SM_INPUT_DATA_DIR"] = str(self.data_dir)
        for c in self.channels:
            out[f"SM_CHANNEL_{c.name.upper()}"] = str(self.channel_dir(c.name))
        for key, value in env["hyperparameters"].items():
            out[f"SM_HP_{key.upper()}"] = serialize(value)
        out.update({
            "TRAINING_JOB_NAME": self.job_name,
            "TRAINING_JOB_ARN": self.job_arn,
            "AWS_REGION": self.region,
            "SM_MASTER_ADDR": self.master_addr,
            "SM_MASTER_PORT": str(self.master_port),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
            "WORLD_SIZE": str(len(self.hosts)),
            "RANK": str(self.rank),
            "NODE_RANK": str(self.rank),
            "LOCAL_RANK": "0",
            "LOCAL_WORLD_SIZE": "1",
        })
        return out


def remap(path: str, root: Path) -> Path:
    """Where a container path (``/opt/ml/checkpoints``) lies under this host's root."""
    p = path.rstrip("/") or "/"
    if p == CONTAINER_ROOT or p.startswith(CONTAINER_ROOT + "/"):
        return root / p[len(CONTAINER_ROOT):].lstrip("/")
    return root / "fs" / p.lstrip("/")
