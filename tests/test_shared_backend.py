"""The shared backend, as a learner meets it: notebooks in sequence, and nothing leaves the machine.

Two notebooks run one after the other in fresh kernels (papermill), in shared mode, with a
private ``LABKIT_HOME`` (state file, port chosen by the OS). The first is lab-like: ``!aws``
cells, a training job whose script calls S3 itself, a model server whose code reads S3.
The second uses what the first created (objects, the finished job, the endpoint still up),
which ``labkit cleanup`` then finds and removes.
Both run with ``HTTP_PROXY``/``HTTPS_PROXY`` set to a local proxy that refuses and logs every
connection: it must see none. Stopping the backend ends it and its model server.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from labkit.offline import shared
from labkit.runner import IOPUB_TIMEOUT_S, merged_streams

pytestmark = pytest.mark.notebooks

INFERENCE = '''
import json, os, boto3

def model_fn(model_dir):
    # The model server reaches the local endpoint as a container reaches S3.
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=os.environ["BUCKET"], Key="shared/weights.json")["Body"].read()
    return json.loads(body)

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(data, model):
    return [model["scale"] * x for x in data["values"]]
'''

TRAIN = '''
import os, boto3
s3 = boto3.client("s3")
text = s3.get_object(Bucket=os.environ["BUCKET"], Key="shared/notes.txt")["Body"].read().decode()
s3.put_object(Bucket=os.environ["BUCKET"], Key="shared/from-job.txt", Body=text.upper().encode())
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write(text)
print("job wrote shared/from-job.txt")
'''

FIRST = [
    "import labkit\nlab = labkit.connect('shared-first')",
    "!aws s3 ls\n!aws sts get-caller-identity --query Arn --output text",
    "!echo 'notes from the first notebook' > notes.txt\n!aws s3 cp notes.txt s3://{lab.bucket}/shared/notes.txt",
    f"open('train.py', 'w').write({TRAIN!r})\nopen('inference.py', 'w').write({INFERENCE!r})",
    """import boto3, io, json, tarfile
s3, sm = boto3.client("s3"), boto3.client("sagemaker")

def upload_tar(key, files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for arcname, path in files.items():
            tar.add(path, arcname=arcname)
    s3.put_object(Bucket=lab.bucket, Key=key, Body=buf.getvalue())
    return f"s3://{lab.bucket}/{key}"

code = upload_tar("shared/sourcedir.tar.gz", {"train.py": "train.py"})
image = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
sm.create_training_job(
    TrainingJobName="shared-job", RoleArn=lab.role_arn,
    AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
    HyperParameters={"sagemaker_program": '"train.py"', "sagemaker_submit_directory": json.dumps(code)},
    OutputDataConfig={"S3OutputPath": f"s3://{lab.bucket}/shared/output"},
    ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
    StoppingCondition={"MaxRuntimeInSeconds": 300}, Environment={"BUCKET": lab.bucket})
sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName="shared-job",
                                                        WaiterConfig={"Delay": 1, "MaxAttempts": 240})
job = sm.describe_training_job(TrainingJobName="shared-job")
assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
print(s3.get_object(Bucket=lab.bucket, Key="shared/from-job.txt")["Body"].read().decode())""",
    """s3.put_object(Bucket=lab.bucket, Key="shared/weights.json", Body=json.dumps({"scale": 3}).encode())
model = upload_tar("shared/model.tar.gz", {"code/inference.py": "inference.py"})
sm.create_model(ModelName="shared-model", ExecutionRoleArn=lab.role_arn,
                PrimaryContainer={"Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
                                  "ModelDataUrl": model,
                                  "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "BUCKET": lab.bucket}})
sm.create_endpoint_config(EndpointConfigName="shared-endpoint", ProductionVariants=[{
    "VariantName": "AllTraffic", "ModelName": "shared-model", "InstanceType": "ml.m5.large",
    "InitialInstanceCount": 1}])
sm.create_endpoint(EndpointName="shared-endpoint", EndpointConfigName="shared-endpoint")
sm.get_waiter("endpoint_in_service").wait(EndpointName="shared-endpoint")
reply = boto3.client("sagemaker-runtime").invoke_endpoint(
    EndpointName="shared-endpoint", ContentType="application/json", Body=json.dumps({"values": [1, 2]}))
assert json.loads(reply["Body"].read()) == [3, 6]""",
]

SECOND = [
    "import labkit, boto3, json\nlab = labkit.connect('shared-second')",
    """s3, sm = boto3.client("s3"), boto3.client("sagemaker")
assert sm.describe_training_job(TrainingJobName="shared-job")["TrainingJobStatus"] == "Completed"
body = s3.get_object(Bucket=lab.bucket, Key="shared/from-job.txt")["Body"].read().decode()
assert body.strip() == "NOTES FROM THE FIRST NOTEBOOK", body
assert sm.describe_endpoint(EndpointName="shared-endpoint")["EndpointStatus"] == "InService"
reply = boto3.client("sagemaker-runtime").invoke_endpoint(
    EndpointName="shared-endpoint", ContentType="application/json", Body=json.dumps({"values": [5]}))
assert json.loads(reply["Body"].read()) == [15]""",
    "!aws s3 ls s3://{lab.bucket}/shared/",
    """bill = lab.bill(show=False)  # the endpoint is left running: `labkit cleanup` finds it
print("second notebook's bill:", round(bill.total, 6))""",
]


class RefusingProxy:
    """An HTTP(S) proxy on loopback that refuses every connection and logs what was asked."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                except OSError:
                    first = "(nothing read)"
                self.attempts.append(first)
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self._sock.close()


def _notebook(cells: list[str], path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _outputs(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "\n".join(o.get("text", "") or json.dumps(o.get("data", {})) for c in nb.cells
                     for o in merged_streams(c.get("outputs", [])))


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def test_two_notebooks_share_one_backend_and_nothing_leaves_the_machine(tmp_path, monkeypatch):
    import papermill

    home = tmp_path / "labkit-home"
    proxy = RefusingProxy()
    # The kernels see what a learner's would: shared mode, a proxy for the machine, no endpoint yet.
    monkeypatch.setenv("LABKIT_HOME", str(home))
    monkeypatch.setenv("LABKIT_OFFLINE_MODE", "shared")
    monkeypatch.setenv("LABKIT_WHEEL_CACHE", str(tmp_path / "wheels"))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, proxy.url)
    for var in ("NO_PROXY", "no_proxy", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))  # a learner's home folder, not the machine's
    work = tmp_path / "work"
    work.mkdir()
    family: set[int] = set()
    try:
        for name, cells in (("first", FIRST), ("second", SECOND)):
            source = _notebook(cells, work / f"{name}.ipynb")
            out = work / f"{name}-out.ipynb"
            papermill.execute_notebook(str(source), str(out), cwd=str(work), kernel_name="python3",
                                       progress_bar=False, execution_timeout=600, iopub_timeout=IOPUB_TIMEOUT_S)
            text = _outputs(out)
            if name == "first":
                assert "sagemaker-us-east-1-123456789012" in text  # `!aws s3 ls` lists the lab's bucket
                assert "assumed-role/LabkitSageMakerExecutionRole/SageMaker" in text
                assert "NOTES FROM THE FIRST NOTEBOOK" in text
            else:
                assert "from-job.txt" in text and "notes.txt" in text
        assert "region = us-east-1" in (tmp_path / "user" / ".aws" / "config").read_text()  # user_config
        state = shared.read_state()
        assert state is not None and shared.answering(state)
        family = {int(state["pid"]), *_descendants(int(state["pid"]))}
        assert len(family) >= 2, "the endpoint's model server should be a child of the backend process"
        labkit_cli = [str(Path(sys.executable).parent / "labkit")]
        listed = subprocess.run([*labkit_cli, "cleanup"], capture_output=True, text=True, timeout=120)
        assert "endpoint" in listed.stdout and "shared-endpoint" in listed.stdout and "Dry run" in listed.stdout
        removed = subprocess.run([*labkit_cli, "cleanup", "--yes"], capture_output=True, text=True, timeout=120)
        assert "removed endpoint shared-endpoint" in removed.stdout, removed.stdout + removed.stderr
        status = subprocess.run([*labkit_cli, "backend", "status"], capture_output=True, text=True, timeout=120)
        assert f"pid {state['pid']}" in status.stdout and "endpoints: 0" in status.stdout, status.stdout
        assert proxy.attempts == [], f"connections that tried to leave the machine: {proxy.attempts}"
    finally:
        state = shared.read_state()
        family |= {int(state["pid"]), *_descendants(int(state["pid"]))} if state else set()
        stopped = shared.stop()
        proxy.close()
    assert stopped and not shared.read_state()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(family):
        time.sleep(0.2)
    assert not _alive(family), f"processes left after `labkit backend stop`: {_alive(family)}"


def _alive(pids: set[int]) -> list[int]:
    """Those of ``pids`` still running (a zombie has ended)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out


def test_two_kernels_starting_at_once_get_one_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    code = "from labkit.offline import shared; print(shared.ensure_running()['pid'])"
    try:
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
        pids = {p.communicate(timeout=300)[0].strip() for p in procs}
        assert len(pids) == 1 and pids != {""}
    finally:
        assert shared.stop()


SCALER = '''
import json, boto3

def model_fn(model_dir):
    # A model server started again after a restart must reach the local endpoint too.
    body = boto3.client("s3").get_object(Bucket="kept-bucket", Key="scale.json")["Body"].read()
    return json.loads(body)["scale"]

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(data, model):
    return [model * x for x in data]
'''

SLEEPER = "import time\nprint('training for a long while', flush=True)\ntime.sleep(600)\n"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def _clients(state: dict) -> dict:
    """boto3 clients of the shared backend ``state`` describes, with its session keys (no patches here)."""
    import boto3

    from labkit.offline.endpoint import control

    keys = control(state["url"], state["token"], "status")["credentials"]
    session = boto3.Session(aws_access_key_id=keys["AccessKeyId"], aws_secret_access_key=keys["SecretAccessKey"],
                            aws_session_token=keys["SessionToken"], region_name="us-east-1")
    return {name: session.client(name, endpoint_url=state["url"])
            for name in ("s3", "sagemaker", "sagemaker-runtime", "logs", "bedrock")}


def _tar(files: dict[str, str]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()

def _start_sleeper(c: dict, name: str, bucket: str, role: str) -> None:
    """A training job whose script sleeps (SLEEPER), its code uploaded to ``bucket``."""
    c["s3"].put_object(Bucket=bucket, Key="code.tar.gz", Body=_tar({"train.py": SLEEPER}))
    c["sagemaker"].create_training_job(
        TrainingJobName=name, RoleArn=role,
        AlgorithmSpecification={"TrainingImage": SKLEARN, "TrainingInputMode": "File"},
        HyperParameters={"sagemaker_program": '"train.py"', "sagemaker_submit_directory": f'"s3://{bucket}/code.tar.gz"'},
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 900})



def _wait(what, expected: set[str], timeout: float = 240.0) -> str:
    deadline = time.monotonic() + timeout
    while (status := what()) not in expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return status


def test_stop_keeps_the_account_and_start_restores_it(tmp_path, monkeypatch):
    """A stop and start is not a reset: objects, models, logs and the meter come back, the endpoint serves
    again, and the job that ran when the backend stopped is Failed with the reason; reset empties it all."""
    from labkit.offline import persistence

    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    try:
        first = shared.ensure_running()
        c = _clients(first)
        c["s3"].create_bucket(Bucket="kept-bucket")
        c["s3"].put_object(Bucket="kept-bucket", Key="notes/a.txt", Body=b"kept across a stop")
        role = "arn:aws:iam::123456789012:role/LabkitSageMakerExecutionRole"
        c["s3"].put_object(Bucket="kept-bucket", Key="model.tar.gz", Body=_tar({"code/inference.py": SCALER}))
        c["s3"].put_object(Bucket="kept-bucket", Key="scale.json", Body=b'{"scale": 2}')
        c["sagemaker"].create_model(ModelName="kept-model", ExecutionRoleArn=role, PrimaryContainer={
            "Image": SKLEARN, "ModelDataUrl": "s3://kept-bucket/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
        c["sagemaker"].create_endpoint_config(EndpointConfigName="kept", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "kept-model", "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1}])
        c["sagemaker"].create_endpoint(EndpointName="kept", EndpointConfigName="kept")
        c["s3"].put_object(Bucket="kept-bucket", Key="missing.tar.gz", Body=_tar({"code/inference.py": SCALER}))
        c["sagemaker"].create_model(ModelName="no-artifact", ExecutionRoleArn=role, PrimaryContainer={
            "Image": SKLEARN, "ModelDataUrl": "s3://kept-bucket/missing.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
        c["s3"].delete_object(Bucket="kept-bucket", Key="missing.tar.gz")  # the endpoint cannot find it
        c["sagemaker"].create_endpoint_config(EndpointConfigName="broken", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "no-artifact", "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1}])
        c["sagemaker"].create_endpoint(EndpointName="broken", EndpointConfigName="broken")
        c["logs"].create_log_group(logGroupName="/kept/group")
        guardrail = c["bedrock"].create_guardrail(
            name="kept-guardrail", blockedInputMessaging="no", blockedOutputsMessaging="no",
            wordPolicyConfig={"wordsConfig": [{"text": "forbidden"}]})["guardrailId"]
        _start_sleeper(c, "running-at-stop", "kept-bucket", role)
        describe = c["sagemaker"].describe_endpoint
        assert _wait(lambda: describe(EndpointName="kept")["EndpointStatus"], {"InService", "Failed"}) == "InService"
        assert _wait(lambda: describe(EndpointName="broken")["EndpointStatus"], {"InService", "Failed"}) == "Failed"
        job = c["sagemaker"].describe_training_job
        assert _wait(lambda: job(TrainingJobName="running-at-stop")["SecondaryStatus"],
                     {"Training", "Failed", "Completed"}) == "Training"
        assert shared.stop()
        assert (tmp_path / "home" / persistence.FILE).exists()

        second = shared.ensure_running()
        assert second["pid"] != first["pid"]
        c = _clients(second)
        body = c["s3"].get_object(Bucket="kept-bucket", Key="notes/a.txt")["Body"].read()
        assert body == b"kept across a stop"
        assert c["sagemaker"].describe_model(ModelName="kept-model")["PrimaryContainer"]["Image"] == SKLEARN
        groups = c["logs"].describe_log_groups(logGroupNamePrefix="/kept/")["logGroups"]
        assert [g["logGroupName"] for g in groups] == ["/kept/group"]
        assert c["bedrock"].get_guardrail(guardrailIdentifier=guardrail)["name"] == "kept-guardrail"
        interrupted = c["sagemaker"].describe_training_job(TrainingJobName="running-at-stop")
        assert interrupted["TrainingJobStatus"] == "Failed"
        assert "offline backend stopped while this job ran" in interrupted["FailureReason"]
        describe = c["sagemaker"].describe_endpoint
        assert _wait(lambda: describe(EndpointName="kept")["EndpointStatus"], {"InService", "Failed"}) == "InService"
        reply = c["sagemaker-runtime"].invoke_endpoint(EndpointName="kept", ContentType="application/json",
                                                       Body=b"[1, 2]")
        assert json.loads(reply["Body"].read()) == [2, 4]
        # the endpoint that had failed is still Failed, with its reason, and can be fixed by an update
        broken = describe(EndpointName="broken")
        assert broken["EndpointStatus"] == "Failed" and "missing.tar.gz" in broken["FailureReason"], broken
        c["sagemaker"].update_endpoint(EndpointName="broken", EndpointConfigName="kept")
        assert _wait(lambda: describe(EndpointName="broken")["EndpointStatus"], {"InService", "Failed"}) == "InService"
        c["sagemaker"].delete_endpoint(EndpointName="broken")
        log = (tmp_path / "home" / shared.LOG_FILE).read_text()
        assert "restored the account" in log and "not saved" not in log and "not restored" not in log, log
        from labkit.offline.endpoint import control

        events = control(second["url"], second["token"], "call/labkit.offline.usage.events",
                         {"args": [], "kwargs": {"kind": "sagemaker:hosting"}})["result"]
        events = [e for e in events if e["resource"] == "kept"]  # "broken" bills from its update on
        assert len(events) == 2 and events[0]["end"] is not None and events[1]["end"] is None, events

        shared.reset()
        assert not (tmp_path / "home" / persistence.FILE).exists()
        buckets = [b["Name"] for b in _clients(second)["s3"].list_buckets()["Buckets"]]
        assert "kept-bucket" not in buckets
    finally:
        shared.stop()


def test_a_backend_of_another_labkit_is_restarted_with_its_account(tmp_path, monkeypatch):
    """A kernel never attaches to a backend another checkout started: it restarts it, the account kept."""
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    try:
        first = shared.ensure_running()
        assert first["source"] == shared.source_id() and "replaced" not in first
        _clients(first)["s3"].put_object(Bucket="sagemaker-us-east-1-123456789012", Key="kept.txt", Body=b"kept")
        assert shared.ensure_running()["pid"] == first["pid"]  # the same checkout attaches
        # What an older checkout's backend writes: its own version (or, before versions were recorded, none).
        state_file = tmp_path / "home" / shared.STATE_FILE
        state_file.write_text(json.dumps({**first, "source": "0.0.1+0123456789abcdef"}))
        second = shared.ensure_running()
        assert second["pid"] != first["pid"] and second["source"] == shared.source_id()
        assert "another version of labkit (0.0.1+0123456789abcdef" in second["replaced"]
        body = _clients(second)["s3"].get_object(Bucket="sagemaker-us-east-1-123456789012", Key="kept.txt")
        assert body["Body"].read() == b"kept"
        assert _alive({int(first["pid"])}) == []
    finally:
        shared.stop()


def test_an_idle_backend_stops_itself_and_keeps_the_account(tmp_path, monkeypatch):
    """No request and nothing running for LABKIT_BACKEND_IDLE_S: the backend saves the account and exits.
    A running job keeps it up (it would bill, as on AWS)."""
    from labkit.offline import persistence

    home = tmp_path / "home"
    monkeypatch.setenv("LABKIT_HOME", str(home))
    monkeypatch.setenv(shared.IDLE_VARIABLE, "3")
    try:
        state = shared.ensure_running()
        pid = int(state["pid"])
        c = _clients(state)
        _start_sleeper(c, "keeps-it-up", "sagemaker-us-east-1-123456789012",
                       "arn:aws:iam::123456789012:role/LabkitSageMakerExecutionRole")
        time.sleep(8)  # idle longer than the limit, but the job runs
        assert _alive({pid}) == [pid], (home / shared.LOG_FILE).read_text()
        c["sagemaker"].stop_training_job(TrainingJobName="keeps-it-up")
        deadline = time.monotonic() + 120
        while _alive({pid}) and time.monotonic() < deadline:
            shared._reap(pid)
            time.sleep(0.2)
        log = (home / shared.LOG_FILE).read_text()
        assert not _alive({pid}), log
        assert "no request for 3 s and nothing running: stopping" in log
        assert (home / persistence.FILE).exists() and shared.read_state() is None
        again = shared.ensure_running()
        status = _clients(again)["sagemaker"].describe_training_job(TrainingJobName="keeps-it-up")
        assert status["TrainingJobStatus"] == "Stopped"
    finally:
        shared.stop()


def test_labkit_backend_status_does_not_keep_an_idle_backend_up(monkeypatch, capsys):
    from werkzeug.test import Client

    from labkit.offline.endpoint import CONTROL_PREFIX, PASSIVE_STATUS, TOKEN_HEADER, Endpoint

    app = Endpoint("the-token")
    client = Client(app)
    app.last_request = 0.0
    looked = client.get(CONTROL_PREFIX + PASSIVE_STATUS, headers={TOKEN_HEADER: "the-token"})
    assert looked.status_code == 200 and looked.json["pid"] and app.last_request == 0.0
    # connect() checking that the backend answers, before it uses it, is a use (no idle stop in between)
    assert client.get(CONTROL_PREFIX + "status", headers={TOKEN_HEADER: "the-token"}).status_code == 200
    assert app.last_request > 0.0
    # and `labkit backend status` is what only looks
    asked = []
    monkeypatch.setattr(shared, "read_state", lambda: {"pid": 1, "url": "u", "token": "t"})
    monkeypatch.setattr(shared, "answering", lambda state, timeout=5.0, *, use=True: asked.append(use))
    assert shared.main(["status"]) == 1 and asked == [False]


def test_idle_limit_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv(shared.IDLE_VARIABLE, raising=False)
    assert shared.idle_limit() == shared.IDLE_S
    monkeypatch.setenv(shared.IDLE_VARIABLE, "0")
    assert shared.idle_limit() is None
    monkeypatch.setenv(shared.IDLE_VARIABLE, "90")
    assert shared.idle_limit() == 90.0
    monkeypatch.setenv(shared.IDLE_VARIABLE, "soon")
    with pytest.raises(shared.BackendStartError, match="LABKIT_BACKEND_IDLE_S='soon'"):
        shared.idle_limit()
