"""Shared fixtures: a fresh offline backend per test module."""

from __future__ import annotations

import contextlib
import os
import platform

import pytest

# Tests never reach a real account, whatever the developer's shell says.
os.environ["LABKIT_BACKEND"] = "offline"
# Each test module gets a private, empty backend in the test process (never the user's shared one).
os.environ["LABKIT_OFFLINE_MODE"] = "embedded"
os.environ.setdefault("MPLBACKEND", "Agg")

import labkit


@pytest.fixture(scope="module")
def lab() -> labkit.Lab:
    """A fresh offline backend and its Lab description (reset for every test module)."""
    return labkit.connect("tests", backend="offline", quiet=True)


# The clients most engine tests use; each test module still gets its own fresh backend (``lab``).
@pytest.fixture(scope="module")
def sm(lab):
    import boto3

    return boto3.client("sagemaker")


@pytest.fixture(scope="module")
def rt(lab):
    import boto3

    return boto3.client("sagemaker-runtime")


@pytest.fixture(scope="module")
def s3(lab):
    import boto3

    return boto3.client("s3")


@pytest.fixture(scope="module")
def bedrock_clients(lab):
    """``(bedrock, bedrock-runtime)`` clients."""
    import boto3

    return boto3.client("bedrock"), boto3.client("bedrock-runtime")


def pytest_report_header(config):
    """The machine, first thing in the output: the suite's time depends on it (the same code ran 16:41 on
    an Intel host with AMX and 20:00 on an AMD EPYC one, both 2 cores: docs/benchmarks.md)."""
    info: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    flags = set(info.get("flags", "").split())
    vector = next((name for flag, name in (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
                   if flag in flags), "")
    model = info.get("model name") or platform.processor() or platform.machine()
    return f"machine: {os.cpu_count()} cores, {model}" + (f", {vector}" if vector else "")


def pytest_collection_modifyitems(config, items):
    """The notebook executions, the longest tests, first: with pytest-xdist's ``--dist loadscope``
    (pyproject.toml) each test module (or class) is one unit of work that stays on one worker,
    in its order, and the units start in this order, so the long ones spread over the workers."""
    items.sort(key=lambda item: item.get_closest_marker("notebooks") is None)


def pytest_collection_finish(session):
    """What is imported by now lives as long as the test process: freeze it, so that the garbage
    collector of every later test skips it (the engines, moto, botocore and the SDK are large)."""
    import gc

    gc.collect()
    gc.freeze()
