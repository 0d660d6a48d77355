"""Shared fixtures: a fresh offline backend per test module."""

from __future__ import annotations

import os

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


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one test worker more than there are cores. The notebook gradings wait on kernels,
    jobs and endpoints starting and stopping, which left a core idle about a fifth of the time with
    one worker per core. ``--maxprocesses`` (pyproject.toml) still caps it."""
    return (os.cpu_count() or 1) + 1


# The units that take longest (CI of 2026-12-06, seconds on a 2-core machine), started first so that
# no long one is left running alone at the end; the others keep their order, notebooks before the rest.
LONGEST_FIRST = ["TestLab07_rag", "TestLab03_hyperparameter_tuning", "TestLab13_infrastructure_as_code",
                 "TestLab02_distributed_training", "TestLab14_responsible_ml", "TestLab04_endpoints",
                 "TestLab15_ec2_for_ml", "TestLab05_mlops", "TestLab01_training_jobs",
                 "test_grading_labs.py", "test_grading_modes.py", "test_grading_browser.py", "test_grading.py",
                 "test_shared_backend.py", "test_grading_remote.py"]


def pytest_collection_modifyitems(config, items):
    """The notebook executions, the longest tests, first, the longest of them (:data:`LONGEST_FIRST`)
    before the rest: with pytest-xdist's ``--dist loadscope`` (pyproject.toml) each test module (or
    class) is one unit of work that stays on one worker, in its order, and the units start in this
    order, so the long ones spread over the workers."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def order(item) -> tuple[bool, int]:
        unit = item.cls.__name__ if item.cls is not None else item.path.name
        return item.get_closest_marker("notebooks") is None, rank.get(unit, len(rank))

    items.sort(key=order)


def pytest_collection_finish(session):
    """What is imported by now lives as long as the test process: freeze it, so that the garbage
    collector of every later test skips it (the engines, moto, botocore and the SDK are large)."""
    import gc

    gc.collect()
    gc.freeze()
