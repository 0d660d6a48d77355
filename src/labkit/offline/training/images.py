"""Which container image a job names, and what of it the offline backend can run.

Image URIs are resolved the way ``sagemaker.image_uris`` writes them
(``<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>``). Framework images run
the learner's entry point with this Python and its installed libraries (their versions,
not the image's); the built-in XGBoost image without an entry point runs
:mod:`labkit.offline.training.algorithms.xgboost`. Anything else cannot be emulated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FRAMEWORK_REPOSITORIES = {
    "pytorch-training": "PyTorch",
    "pytorch-inference": "PyTorch",
    "sagemaker-scikit-learn": "scikit-learn",
    "sagemaker-xgboost": "XGBoost",
    "huggingface-pytorch-training": "Hugging Face (PyTorch)",
    "tensorflow-training": "TensorFlow",
    "sagemaker-base-python": "Python",
    # The course's own image (docker/labkit-grader.Dockerfile): this package and its pinned
    # requirements, which is exactly what runs here (labkit grade/check --on sagemaker).
    "labkit-grader": "labkit (the course image)",
}
BUILTIN_ALGORITHMS = {"sagemaker-xgboost": "xgboost", "xgboost": "xgboost"}
# The Python package a framework image is built around; its tag starts with that package's version
# (``pytorch-training:1.13.1-cpu-py39`` has torch 1.13.1, ``sagemaker-scikit-learn:1.2-1`` scikit-learn 1.2).
FRAMEWORK_PACKAGES = {"pytorch-training": "torch", "pytorch-inference": "torch", "tensorflow-training": "tensorflow",
                      "sagemaker-scikit-learn": "scikit-learn", "sagemaker-xgboost": "xgboost"}
# Images with an entry point of their own that the offline backend provides (processing jobs).
BUILTIN_ENTRYPOINTS = {"sagemaker-model-monitor-analyzer": ["python3", "-m", "labkit.offline.mlops.monitor.analyzer"]}

EMULATED = ("the built-in XGBoost algorithm image (sagemaker.image_uris.retrieve('xgboost', region, '1.7-1')), "
            "and framework images that run your entry point: " + ", ".join(sorted(set(FRAMEWORK_REPOSITORIES.values()))))


@dataclass(frozen=True)
class Image:
    uri: str
    repository: str
    tag: str
    framework: str | None  # "PyTorch", ... when the image runs an entry point
    algorithm: str | None  # "xgboost" when it is a built-in algorithm

    @property
    def framework_package(self) -> tuple[str, str] | None:
        """(package, version) of the framework the image ships, read from its tag; None if unknown."""
        package = FRAMEWORK_PACKAGES.get(self.repository)
        version = re.match(r"\d+(\.\d+)*", self.tag)
        return (package, version.group(0)) if package and version else None

    @property
    def emulated(self) -> bool:
        return self.framework is not None or self.algorithm is not None or self.repository in BUILTIN_ENTRYPOINTS


def parse(uri: str) -> Image:
    """Classify an image URI (``TrainingImage`` or ``AppSpecification.ImageUri``)."""
    path = uri.split("/", 1)[1] if "/" in uri else uri
    path, _, digest = path.partition("@")
    repository, _, tag = path.partition(":")
    tag = tag or digest or "latest"
    return Image(uri=uri, repository=repository, tag=tag, framework=FRAMEWORK_REPOSITORIES.get(repository),
                 algorithm=BUILTIN_ALGORITHMS.get(repository))


def not_emulated_message(uri: str) -> str:
    return (f"ClientError: The offline backend cannot run image {uri!r}: it emulates {EMULATED}. "
            "Use one of those images, or the sandbox backend (LABKIT_BACKEND=sandbox) for custom images.")
