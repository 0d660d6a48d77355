"""The region reaches processes started with an empty environment (the SDK's dependency capture).

Revealed by SDK v3's InferenceSpec example: ``ModelBuilder`` captures dependencies in
``python -c ...`` with only ``SETUPTOOLS_USE_DISTUTILS`` set, where botocore finds a region in
``~/.aws/config`` or nowhere. Tests use a private home folder, never the machine's.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import labkit
from labkit.offline import user_config

BARE_REGION = "import boto3; print(boto3.client('sagemaker').meta.region_name)"


def _bare_python(home) -> subprocess.CompletedProcess:
    """Python as the SDK starts it: nothing in the environment but one setting.

    Also HOME, so that ``~`` is the test's folder, and no instance metadata service: without a
    region botocore would ask 169.254.169.254 next, and a test never sends anything off the machine.
    """
    env = {"SETUPTOOLS_USE_DISTUTILS": "stdlib", "HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true"}
    return subprocess.run([sys.executable, "-c", BARE_REGION], env=env, capture_output=True, text=True, timeout=120)


def test_a_bare_process_finds_the_region_once_the_user_config_is_written(tmp_path):
    before = _bare_python(tmp_path)
    assert before.returncode != 0 and "NoRegionError" in before.stderr  # what the SDK step met
    path = user_config.ensure_default_region("us-east-1", tmp_path)
    assert path == tmp_path / ".aws" / "config"
    text = path.read_text()
    assert "[default]\nregion = us-east-1\n" in text and text.startswith("# Written by labkit")
    assert "aws_access_key_id" not in text and "endpoint_url" not in text  # the region only
    assert oct((tmp_path / ".aws").stat().st_mode & 0o777) == "0o700"
    after = _bare_python(tmp_path)
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == "us-east-1"


@pytest.mark.parametrize("existing", ["", "[default]\noutput = json\n", "[profile work]\nregion = eu-west-1\n"])
def test_an_existing_user_config_is_never_changed(tmp_path, existing):
    config = tmp_path / ".aws" / "config"
    config.parent.mkdir()
    config.write_text(existing)
    stamp = config.stat().st_mtime_ns
    assert user_config.ensure_default_region("us-east-1", tmp_path) is None
    assert config.read_text() == existing and config.stat().st_mtime_ns == stamp


def test_a_dangling_link_or_an_unwritable_home_is_left_alone(tmp_path):
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").symlink_to(tmp_path / "elsewhere")
    assert user_config.ensure_default_region("us-east-1", tmp_path) is None
    assert not (tmp_path / "elsewhere").exists()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        assert user_config.ensure_default_region("us-east-1", locked) is None


def test_grading_and_tests_never_write_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert os.environ["LABKIT_OFFLINE_MODE"] == "embedded"
    labkit.connect("tests", backend="offline", quiet=True)
    assert not (tmp_path / ".aws").exists()
