"""``labkit run`` / ``check``: a failing notebook explains itself; the console says one line per lab."""
from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import nbformat
import pytest

from labkit.runner import CellError, Execution, execute, failure_report, judge, merged_streams, summary

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "training"))
import jobkit  # noqa: E402


def _cell(source: str, grade_id: str = "", points: float = 0) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if grade_id:
        cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": True, "points": points,
                                     "schema_version": 3, "solution": False, "task": False}
    return cell


def _sourcedir(script: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(jobkit.HERE / script, arcname=script)
    return buffer.getvalue()


@pytest.mark.notebooks
def test_a_broken_ddp_job_shows_its_own_traceback_in_the_run_summary_and_keeps_every_log(tmp_path):
    """Rank 1 of a two-instance job raises: the test cell's error, the summary and the logs say so."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "sourcedir.tar.gz").write_bytes(_sourcedir("train_ddp_broken.py"))
    request = jobkit.script_request(
        type("Lab", (), {"role_arn": "ROLE", "bucket": "BUCKET"})(), "broken-ddp", "train_ddp_broken.py", "CODE",
        hyperparameters={"sagemaker_torch_distributed_enabled": "true"},
        ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 5})
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        _cell('import boto3, labkit, time\nlab = labkit.connect("runner-test")\nsm = boto3.client("sagemaker")'),
        _cell(f'request = {request!r}\n'
              'request["RoleArn"] = lab.role_arn\n'
              'request["OutputDataConfig"]["S3OutputPath"] = f"s3://{lab.bucket}/output"\n'
              'boto3.client("s3").upload_file("sourcedir.tar.gz", lab.bucket, "code/sourcedir.tar.gz")\n'
              'request["HyperParameters"]["sagemaker_submit_directory"] = f\'"s3://{lab.bucket}/code/sourcedir.tar.gz"\'\n'
              'sm.create_training_job(**request)\n'
              'while (job := sm.describe_training_job(TrainingJobName="broken-ddp"))["TrainingJobStatus"] == "InProgress":\n'
              '    time.sleep(0.2)'),
        _cell('assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")', "ddp-test", 1),
    ]
    nbformat.write(nb, source / "broken-ddp.ipynb")

    result = execute("broken-ddp", "solution", out_dir=tmp_path / "out", source_dir=source)

    cause = "RuntimeError: mat1 and mat2 shapes cannot be multiplied (3x7 and 4x5)"
    line = 'File "/opt/ml/code/train_ddp_broken.py", line 14, in <module>'
    assert not result.ok and result.score == 0 and result.max_score == 1
    error, = result.errors  # what the learner sees under the test cell
    assert error.kind == "test" and error.ename == "AssertionError" and cause in error.evalue and line in error.evalue
    report = failure_report(result)
    assert cause in report and line in report and "TrainingJob broken-ddp" in report
    assert "CalledProcessError" not in report and "ChildFailedError" not in report
    logs = sorted((tmp_path / "out" / "solution-logs" / "TrainingJobs" / "broken-ddp").glob("*.log"))
    assert [p.name.split("-")[1] for p in logs] == ["1", "2"], "one log file per host (algo-1, algo-2)"
    assert cause in logs[1].read_text() and "rank=0 met 2 ranks" in logs[0].read_text()
    assert (tmp_path / "out" / "solution.ipynb").exists()


def test_judge_uses_the_graders_rule_stderr_never_fails_a_test():
    cells = [
        _cell("import warnings", ""),
        _cell("warnings.warn('x')", "warns", 2),
        _cell("assert False", "fails", 3),
        _cell("never ran", "not-run", 1),
    ]
    cells[1].outputs = [nbformat.v4.new_output("stream", name="stderr", text="UserWarning: x\n")]
    cells[2].outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[])]
    for cell in cells[:3]:
        cell.execution_count = 1
    result = judge(nbformat.v4.new_notebook(cells=cells), "lab", "solution", 1.0)
    assert (result.score, result.max_score) == (2, 6)
    assert [(e.cell_id, e.ename) for e in result.errors] == [("fails", "AssertionError"), ("not-run", "NotRun")]


def test_console_line_and_table_say_result_score_time_and_cost():
    good = Execution("02-distributed-training", "solution", 95.04, 23, 23, cost_usd=0.0043)
    bad = Execution("05-mlops", "solution", 61.0, 10, 17, [CellError("ex2", "test", "AssertionError", "boom")])
    assert good.line() == "02-distributed-training      solution pass    23/23     95.0 s  $0.0043"
    assert bad.line().split()[:4] == ["05-mlops", "solution", "FAIL", "10/17"]
    table = summary([good, bad])
    assert "| 02-distributed-training | solution | pass | 23/23 | 95.0 | $0.0043 |" in table
    assert "1/2 pass" in table
    assert "cell ex2: AssertionError: boom" in failure_report(bad)


def test_a_print_split_over_stream_messages_reads_as_one_text():
    """As Jupyter shows them: one text per run of same-name streams; stderr, data and errors stay apart."""
    def stream(name, text):
        return {"output_type": "stream", "name": name, "text": text}

    shown = {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}}
    outputs = [stream("stdout", "found in history:"), stream("stdout", [" {'In': 0}", "\n"]),
               stream("stderr", "warn\n"), stream("stdout", "a"), shown, stream("stdout", "b\n")]
    merged = merged_streams(outputs)
    assert [(o["output_type"], o.get("name"), o.get("text")) for o in merged] == [
        ("stream", "stdout", "found in history: {'In': 0}\n"), ("stream", "stderr", "warn\n"),
        ("stream", "stdout", "a"), ("display_data", None, None), ("stream", "stdout", "b\n")]
    assert outputs[0]["text"] == "found in history:", "the notebook's own outputs are left as they are"
