"""The real-notebook harness's own parts (the notebooks themselves run outside CI: docs/realworld.md)."""

from __future__ import annotations

import gzip
import io
import json
import pickle

import numpy as np

from labkit import realworld


def _notebook(*sources: str) -> dict:
    return {"cells": [{"cell_type": "code", "source": s, "outputs": [{"output_type": "stream", "text": "old"}],
                       "execution_count": 3, "metadata": {}} for s in sources] + [
        {"cell_type": "markdown", "source": "!pip install x is prose here", "metadata": {}}]}


def test_learner_copy_makes_only_a_learners_changes():
    case = realworld.CASES[0]
    nb, changes = realworld.learner_copy(_notebook(
        "!pip install -U sagemaker\n%pip install xgboost==0.90\nimport sagemaker\n",
        "role = sagemaker.get_execution_role()\nsm.create_model(ModelName='m', ExecutionRoleArn=role)\n",
        "role = get_execution_role()"), case)
    sources = [c["source"] for c in nb["cells"]]
    assert sources[0].startswith("import labkit\nlab = labkit.connect(") and "provision" in sources[0]
    assert sources[1] == "import sagemaker\n"
    assert sources[2] == "role = lab.role_arn\nsm.create_model(ModelName='m', ExecutionRoleArn=role)\n"
    assert sources[3] == "role = lab.role_arn"
    assert sources[4] == "!pip install x is prose here"  # markdown untouched
    assert realworld.REPORT_TAG in nb["cells"][-1]["metadata"]["tags"]
    assert all(c.get("outputs", []) == [] for c in nb["cells"] if c["cell_type"] == "code")
    assert any("removed package installs" in c for c in changes) and "get_execution_role() -> lab.role_arn" in changes


def test_gaps_are_classified_by_cause_and_owner():
    assert realworld.classify("FileNotFoundError: '/opt/ml/model/code/serve.pkl'").area == "containers"
    assert realworld.classify("RoleValidationError: No IAM role could be resolved").area.startswith("issue 16")
    cli = realworld.classify('upload failed: a to s3://b/a Could not connect to the endpoint URL: "https://b.s3"')
    assert "CLI" in cli.cause
    assert realworld.classify("No module named 'torchvision'").area == "environment (torch CPU build)"
    assert realworld.classify("No module named 'langchain_aws'").area == "environment (pins)"
    assert realworld.classify("FileNotFoundError: [Errno 2] No such file or directory: 'abalone.py'").area == \
        "upstream notebook"
    assert realworld.classify("something else entirely") is None


def test_judge_reads_errors_checks_and_background_failures(tmp_path):
    case = realworld.Case("t", "repo", "nb.ipynb", "x", expect=(("a score", r"score=\d"),))
    executed = {"cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [{"output_type": "stream", "text": "score=3\n"}]},
        {"cell_type": "code", "metadata": {}, "outputs": [{"output_type": "error", "ename": "ValueError",
                                                           "evalue": "bad", "traceback": []}]},
        {"cell_type": "code", "metadata": {"tags": [realworld.REPORT_TAG]}, "outputs": []}]}
    (tmp_path / "executed.ipynb").write_text(json.dumps(executed))
    (tmp_path / "state.json").write_text(json.dumps({"processing": [
        {"name": "prep", "status": "Failed", "reason": "AlgorithmError: could not connect to 127.0.0.1:9"}]}))
    outcome = realworld.Outcome("t", "repo", "abc", "nb.ipynb", "x")
    realworld.judge(outcome, case, tmp_path / "executed.ipynb", tmp_path / "state.json")
    assert (outcome.status, outcome.failed_cell, outcome.error) == ("failed", 1, "ValueError: bad")
    assert outcome.checks == {"a score": True} and not outcome.ok
    assert outcome.background_failures == ["processing prep: AlgorithmError: could not connect to 127.0.0.1:9"]
    assert outcome.area.startswith("issue 16")
    table = realworld.table([outcome])
    assert "| repo | abc | nb.ipynb | x | failed at cell 1; 1 job(s) failed in the background |" in table


def test_judge_reads_a_traceback_rendered_by_rich_as_the_cells_error(tmp_path):
    """SDK v2 installs rich's traceback handler: the exception is a display, not an error output."""
    case = realworld.Case("t", "repo", "nb.ipynb", "x")
    rich = ["\x1b[31m╭─ Traceback (most recent call last) ─╮\x1b[0m\n", "│ in <module>:2 │\n", "╰──────╯\n",
            "\x1b[1;91mUnicodeDecodeError: \x1b[0m'utf-8' codec can't decode byte 0x93\n"]
    executed = {"cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [{"output_type": "display_data",
                                                           "data": {"text/plain": ["Traceback of a chart\n"]}}]},
        {"cell_type": "code", "metadata": {}, "outputs": [{"output_type": "display_data",
                                                           "data": {"text/plain": rich, "text/html": ["..."]}}]}]}
    (tmp_path / "executed.ipynb").write_text(json.dumps(executed))
    outcome = realworld.Outcome("t", "repo", "abc", "nb.ipynb", "x")
    realworld.judge(outcome, case, tmp_path / "executed.ipynb", tmp_path / "state.json")
    assert (outcome.status, outcome.failed_cell) == ("failed", 1)
    assert outcome.error == "UnicodeDecodeError: 'utf-8' codec can't decode byte 0x93"


def test_a_shell_python_that_fails_quietly_is_no_pass(tmp_path):
    """``! python script.py`` prints its traceback and the cell goes on: the notebook did not do what it shows."""
    case = realworld.Case("t", "repo", "nb.ipynb", "x")
    quiet = "Traceback (most recent call last):\n  File \"script.py\", line 3\nModuleNotFoundError: No module named 'joblib'\n"
    executed = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [{"output_type": "stream", "text": quiet}]}]}
    (tmp_path / "executed.ipynb").write_text(json.dumps(executed))
    outcome = realworld.Outcome("t", "repo", "abc", "nb.ipynb", "x")
    realworld.judge(outcome, case, tmp_path / "executed.ipynb", tmp_path / "state.json")
    assert outcome.status == "ran to the end" and outcome.gap and not outcome.ok


def test_generated_data_has_the_shapes_the_notebooks_read(tmp_path):
    rows = realworld._abalone(20).decode().splitlines()
    assert len(rows) == 20 and all(len(r.split(",")) == 9 and r[0] in "MFI" for r in rows)
    train, valid, test = pickle.loads(gzip.decompress(realworld._mnist_pickle(50)))
    assert train[0].shape == (50, 784) and set(train[1]) <= set(range(10)) and valid[0].shape == (100, 784)
    realworld._mnist_idx(tmp_path, train=30, test=10)
    raw = tmp_path / "MNIST" / "raw"
    images = (raw / "train-images-idx3-ubyte").read_bytes()
    assert int.from_bytes(images[:4], "big") == 2051 and int.from_bytes(images[4:8], "big") == 30
    labels = np.frombuffer(gzip.decompress((raw / "t10k-labels-idx1-ubyte.gz").read_bytes())[8:], dtype=np.uint8)
    assert len(labels) == 10 and labels.max() < 10


def test_provision_puts_public_datasets_in_the_offline_s3(lab, s3):
    realworld.provision("v3-processing")
    body = s3.get_object(Bucket="sagemaker-sample-files", Key="datasets/tabular/uci_abalone/abalone.csv")["Body"]
    assert len(io.BytesIO(body.read()).getvalue().splitlines()) == 300


def test_downloads_come_from_the_harnesss_files_and_nothing_else(tmp_path):
    import urllib.error
    import urllib.request

    import pytest

    url = "https://example.com/files/letter.pdf"
    realworld._serve_downloads({url: realworld._letter_pdf("A letter")})
    try:
        path, _ = urllib.request.urlretrieve(url, tmp_path / "letter.pdf")
        data = (tmp_path / "letter.pdf").read_bytes()
        assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF") and b"(A letter) Tj" in data
        with pytest.raises((urllib.error.URLError, OSError)):
            urllib.request.urlopen("http://127.0.0.1:9/other", timeout=2)
    finally:
        urllib.request.install_opener(None)


def test_generated_tables_read_as_the_libraries_and_algorithms_read_them(tmp_path):
    from sklearn.datasets import fetch_california_housing

    realworld._california_housing(tmp_path / "sklearn", rows=50)
    data = fetch_california_housing(data_home=str(tmp_path / "sklearn"), download_if_missing=False)
    assert data.data.shape == (50, 8) and data.feature_names[0] == "MedInc" and data.target.min() > 0
    rows = [r.split(",") for r in realworld._abalone_numeric(20).decode().splitlines()]
    assert len(rows) == 20 and all(len(r) == 11 for r in rows)
    assert all(float(v) == float(v) for r in rows for v in r)  # numbers only, the label first
