"""From a SageMaker model's container definition to files a model server can load.

SageMaker downloads ``ModelDataUrl`` (a ``model.tar.gz``, or an S3 prefix for
uncompressed ``ModelDataSource``) into ``/opt/ml/model`` and the inference code into
``/opt/ml/model/code`` (inside the tarball) or from ``SAGEMAKER_SUBMIT_DIRECTORY``
(a ``sourcedir.tar.gz`` on S3). :func:`prepare` does the same into a temporary
directory and says which framework container the image URI names.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import s3_location, storage
from ..dispatch import AWSError

FRAMEWORKS = (("scikit-learn", "sklearn"), ("sklearn", "sklearn"), ("xgboost", "xgboost"),
              ("pytorch", "pytorch"), ("torch", "pytorch"))


def framework_of(image: str) -> str:
    """``sklearn``, ``xgboost``, ``pytorch`` or ``generic`` from an ECR image URI."""
    repo = image.rsplit("/", 1)[-1].split(":")[0].lower()
    for marker, name in FRAMEWORKS:
        if marker in repo:
            return name
    return "generic"


@dataclass
class PreparedModel:
    """A model's files on disk and how to serve them."""

    model_dir: str
    code_dir: str | None
    program: str
    framework: str
    env: dict[str, str] = field(default_factory=dict)
    image: str = ""
    multi_model: bool = False
    model_prefix: str = ""
    workdir: str = ""

    def cleanup(self) -> None:
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _download_error(uri: str) -> AWSError:
    bucket, key = s3_location.split(uri)
    return AWSError("ValidationException",
                    f"Failed to download model data (bucket: {bucket}, key: {key}). Please ensure that there "
                    "is an object located at the URL and that the role passed to CreateModel has "
                    "permissions to download the model.")


def extract_tar(data: bytes, dest: str, uri: str = "") -> None:
    """Unpack a ``.tar.gz`` (paths kept inside ``dest``); a clear error for anything else."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            tar.extractall(dest, filter="data")
    except tarfile.TarError as err:
        raise AWSError("ValidationException",
                       f"{uri or 'The model data'} is not a valid tar.gz archive ({err}). Pack the model "
                       "with `tar -czf model.tar.gz <files>` (files at the archive's top level).") from err


def fetch_model_data(uri: str, dest: str, compressed: bool = True) -> None:
    """Download ``uri`` (tarball or, uncompressed, every object under the prefix) into ``dest``."""
    os.makedirs(dest, exist_ok=True)
    if compressed:
        try:
            data = storage.get(uri)
        except KeyError as err:
            raise _download_error(uri) from err
        extract_tar(data, dest, uri)
        return
    bucket, prefix = s3_location.split(uri)
    keys = storage.list_keys(uri, strict=True)
    if not keys:
        raise _download_error(uri)
    for key in keys:
        target = Path(dest, key[len(prefix):].lstrip("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.get(f"s3://{bucket}/{key}"))


def prepare(container: dict[str, Any]) -> PreparedModel:
    """Download and unpack a container definition's model and code into a fresh directory."""
    env = {k: str(v) for k, v in (container.get("Environment") or {}).items()}
    workdir = tempfile.mkdtemp(prefix="labkit-model-")
    model_dir = os.path.join(workdir, "model")
    os.makedirs(model_dir)
    multi = container.get("Mode") == "MultiModel"
    source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
    url = container.get("ModelDataUrl") or source.get("S3Uri") or ""
    prepared = PreparedModel(model_dir=model_dir, code_dir=None, program=env.get("SAGEMAKER_PROGRAM", "inference.py"),
                             framework=framework_of(container.get("Image", "")), env=env, multi_model=multi,
                             image=container.get("Image", ""),
                             workdir=workdir)
    try:
        if multi:
            if not url:
                raise AWSError("ValidationException", "A MultiModel container needs ModelDataUrl: the S3 prefix "
                                                      "that holds the models' .tar.gz files.")
            prepared.model_prefix = url if url.endswith("/") else url + "/"
        elif url:
            compressed = not source or source.get("CompressionType", "Gzip") == "Gzip"
            fetch_model_data(url, model_dir, compressed=compressed and not url.endswith("/"))
        submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit.startswith("s3://"):
            code_dir = os.path.join(workdir, "code")
            try:
                extract_tar(storage.get(submit), code_dir, submit)
            except KeyError as err:
                raise AWSError("ValidationException", f"SAGEMAKER_SUBMIT_DIRECTORY {submit} does not exist: "
                                                      "upload sourcedir.tar.gz there or pack code/ into "
                                                      "model.tar.gz.") from err
            prepared.code_dir = code_dir
        elif submit.startswith("/opt/ml/model"):  # the container's path of the unpacked model
            prepared.code_dir = model_dir + submit[len("/opt/ml/model"):]
        elif os.path.isdir(os.path.join(model_dir, "code")):
            prepared.code_dir = os.path.join(model_dir, "code")
        elif submit.startswith("file://"):
            prepared.code_dir = submit.removeprefix("file://")
    except BaseException:
        prepared.cleanup()
        raise
    return prepared
