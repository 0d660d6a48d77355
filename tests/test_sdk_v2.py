"""SDK v2 (``sagemaker<3``) against the offline backend, proven in a separate environment.

The course pins SDK v3; labs show the v2 form, and the seeds, exams and older codebases use it.
This test builds (once, cached in ``build/sdk-v2-venv``) an environment where ``import sagemaker``
is v2, and runs ``tests/fixtures/sdk_v2/session_v2.py`` there: ``SKLearn``, ``PyTorch`` (two
instances, torch_distributed), the built-in XGBoost ``Estimator`` (and ``Estimator.attach``), a v2
``HyperparameterTuner`` (``fit``, ``analytics``, ``attach``) and an ``SKLearn`` ``deploy()``.

How the environment is made: a venv without pip whose site-packages holds only SDK v2 and what
it needs that the course environment lacks or pins differently (``sagemaker-core`` 1.x, a few
small packages). A ``.pth`` file then adds the course venv's site-packages *after* its own, so
v2 shadows v3 while boto3, botocore, moto, numpy and labkit are the course's pinned versions,
exactly what v2 code meets in a lab. Building it installs about ten small wheels (~15 s); it is
skipped, with the reason, only when the package registry cannot be reached.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / "build" / "sdk-v2-venv"
# The last v2 release; it accepts the course's boto3/botocore pins (boto3>=1.42.2,<2).
SDK_V2 = "sagemaker==2.257.7"
SCRIPT = Path(__file__).parent / "fixtures" / "sdk_v2" / "session_v2.py"
NETWORK = re.compile(r"Failed to establish a new connection|Temporary failure in name resolution|"
                     r"Network is unreachable|Name or service not known|Connection refused|Read timed out|"
                     r"ProxyError|No matching distribution found for sagemaker")


def _python() -> Path:
    return VENV / "bin" / "python"


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def build_v2_environment() -> Path:
    """The v2 environment's Python (built if missing or made for another course venv)."""
    course_site = sysconfig.get_paths()["purelib"]
    stamp = {"requirement": SDK_V2, "course_site_packages": course_site, "python": sys.version}
    VENV.parent.mkdir(exist_ok=True)
    with open(VENV.parent / "sdk-v2-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time (parallel test runs)
        stamp_file = VENV / "labkit-stamp.json"
        if _python().exists() and stamp_file.exists() and json.loads(stamp_file.read_text()) == stamp:
            return _python()
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(VENV)], check=True)
        (_site_packages(_python()) / "labkit-course-venv.pth").write_text(
            f"import site; site.addsitedir({course_site!r})\n")
        pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(_python()), "install",
                              "--disable-pip-version-check", "--no-input", "-q", SDK_V2],
                             capture_output=True, text=True, timeout=600)
        if pip.returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            output = pip.stdout + pip.stderr
            if NETWORK.search(output):
                pytest.skip(f"the package registry cannot be reached to install {SDK_V2}: "
                            f"{NETWORK.search(output).group(0)}")
            pytest.fail(f"pip could not install {SDK_V2} into {VENV}:\n{output[-3000:]}")
        stamp_file.write_text(json.dumps(stamp))
    return _python()


@pytest.fixture(scope="module")
def v2_results(tmp_path_factory) -> dict:
    python = build_v2_environment()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    env.update(LABKIT_BACKEND="offline", PYTHONPATH="", MPLBACKEND="Agg")
    run = subprocess.run([str(python), str(SCRIPT)], capture_output=True, text=True, timeout=600, env=env,
                         cwd=tmp_path_factory.mktemp("v2"))
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
    assert run.returncode == 0 and lines, f"the v2 script failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


def _ok(results: dict, step: str) -> dict:
    out = results[step]
    assert out["ok"], f"SDK v2 step {step} failed: {out.get('error')}\n{out.get('traceback', '')}"
    return out


def test_it_really_is_sdk_v2(v2_results):
    assert v2_results["sagemaker_version"].startswith("2."), v2_results["sagemaker_version"]


def test_v2_sklearn_estimator_fit_trains_the_script(v2_results):
    out = _ok(v2_results, "sklearn_fit")
    assert out["status"] == "Completed"
    assert out["predictions"] == [1, 0] and out["C"] == 0.5, "the hyperparameter reached the script"
    assert out["model_data"].endswith("/output/model.tar.gz")


def test_v2_pytorch_estimator_runs_two_ranks(v2_results):
    out = _ok(v2_results, "pytorch_fit_two_instances")
    assert out["status"] == "Completed", out["failure"]
    assert out["instances"] == 2 and out["ddp"]["world"] == 2


def test_v2_estimator_with_the_builtin_xgboost_image(v2_results):
    out = _ok(v2_results, "xgboost_estimator_fit")
    assert out["status"] == "Completed" and out["validation_auc"] > 0.8
    assert "xgboost-model" in out["files"] and out["attached_model_data"].endswith("model.tar.gz")


def test_v2_hyperparameter_tuner(v2_results):
    out = _ok(v2_results, "tuner_fit")
    assert out["status"] == "Completed" and out["trials"] == 4
    assert out["best"] == out["frame_best"]
    assert out["attached_strategy"] == "Bayesian" and out["attached_max_jobs"] == 4
    assert out["attached_ranges"] == ["CategoricalParameterRanges", "ContinuousParameterRanges",
                                      "IntegerParameterRanges"]


def test_v2_deploy_serves_the_trained_model(v2_results):
    out = _ok(v2_results, "sklearn_deploy")
    assert out["answer"] == [1, 0] or out["answer"] == [1.0, 0.0], out
