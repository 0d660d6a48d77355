"""A training job's processes do not outlive the kernel that started them, even a SIGKILLed one.

A child Python plays the notebook kernel: it starts a job whose script starts a child of
its own and sleeps. The "kernel" is SIGKILLed (no atexit, no reset hook runs); the
script and its child must be gone within seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from test_hosting_lifetime import _alive, _wait_gone

FIXTURES = Path(__file__).parent / "fixtures" / "training"

SCRIPT = """
import json, os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print("PIDS " + json.dumps([os.getpid(), child.pid]), flush=True)
time.sleep(120)
"""

KERNEL = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {fixtures!r})
import boto3, jobkit, labkit
lab = labkit.connect("tests", backend="offline", quiet=True)
s3, sm, logs = boto3.client("s3"), boto3.client("sagemaker"), boto3.client("logs")
import io, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    data = {script!r}.encode()
    info = tarfile.TarInfo("sleepy.py"); info.size = len(data); tar.addfile(info, io.BytesIO(data))
s3.put_object(Bucket=lab.bucket, Key="code/sleepy.tar.gz", Body=buf.getvalue())
sm.create_training_job(**jobkit.script_request(lab, "sleepy", "sleepy.py", f"s3://{{lab.bucket}}/code/sleepy.tar.gz"))
deadline = time.time() + 60
while time.time() < deadline:
    try:
        streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                            logStreamNamePrefix="sleepy/")["logStreams"]
    except logs.exceptions.ResourceNotFoundException:  # the group appears when the job logs
        streams = []
    for stream in streams:
        for event in logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                         logStreamName=stream["logStreamName"])["events"]:
            if event["message"].startswith("PIDS "):
                print(event["message"][5:], flush=True)
                time.sleep(120)
    time.sleep(0.1)
"""


def test_job_processes_die_with_a_sigkilled_kernel():
    kernel = subprocess.Popen([sys.executable, "-c", KERNEL.format(fixtures=str(FIXTURES), script=SCRIPT)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env={**os.environ, "LABKIT_BACKEND": "offline"})
    pids: list[int] = []
    try:
        line = kernel.stdout.readline()
        assert line, f"the kernel process failed before the job started (exit {kernel.poll()})"
        pids = json.loads(line)
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(10)
        left = _wait_gone(pids, 20)
        assert not left, f"the job's processes outlived their kernel: {left}"
    finally:
        kernel.kill()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
