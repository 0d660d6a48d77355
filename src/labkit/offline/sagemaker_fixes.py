"""Small corrections to moto's SageMaker answers, so the SDKs accept them as from AWS.

moto returns empty structures (``VpcConfig: {}``, ``DataCaptureConfig: {}``) that AWS
leaves out, and SDK v3's pydantic resources reject them. We drop them after the call.
"""

from __future__ import annotations

from typing import Any

from . import dispatch

_EMPTY_WHEN_UNSET = ("VpcConfig", "DataCaptureConfig", "AsyncInferenceConfig", "ExplainerConfig",
                     "ShadowProductionVariants", "DebugHookConfig", "TensorBoardOutputConfig",
                     "ProfilerConfig", "CheckpointConfig", "ExperimentConfig", "RetryStrategy",
                     "InferenceExecutionConfig")


def drop_empty(parsed: dict[str, Any], keys: tuple[str, ...] = _EMPTY_WHEN_UNSET) -> None:
    for key in keys:
        if key in parsed and parsed[key] in ({}, [], None):
            del parsed[key]


for _op in ("DescribeTrainingJob", "DescribeModel", "DescribeEndpointConfig", "DescribeEndpoint",
            "DescribeProcessingJob", "DescribeTransformJob"):
    dispatch.after("sagemaker", _op)(lambda params, parsed: drop_empty(parsed))
