"""Nothing the hosting engine starts outlives the process that started it, even a SIGKILLed one.

A child Python plays the notebook kernel: it deploys two endpoints (their servers forked by
the zygote) and waits. It forks a helper that keeps every pipe open but the one to endpoint
``a``'s model server (as a subprocess started with ``close_fds=False`` would), so ``a``'s
server must go by its stdin pipe, ``b``'s and the zygote by their watchdogs. Then the
"kernel" is SIGKILLed: no atexit, no reset hook runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "hosting"

KERNEL = """
import json, os, sys, time
sys.path.insert(0, {fixtures!r})
import labkit
lab = labkit.connect("tests", backend="offline", quiet=True)
import models as hm
from labkit.offline import hosting
from labkit.offline.hosting import process
url = hm.upload(lab.bucket, "life/model.tar.gz", hm.sklearn_model()[1])
hm.create_model(lab, "life", url, env={{"SAGEMAKER_PROGRAM": "inference.py"}})
for name in ("a", "b"):
    hm.deploy(lab, name, [hm.variant("life")])
process.wait_until_warm()
a, b = (hosting.engine.get(n).variants["AllTraffic"] for n in ("a", "b"))
helper = os.fork()
if helper == 0:  # holds every inherited fd but the pipe to a's server
    os.close(a.process.proc.stdin.fileno())
    time.sleep(120)
    os._exit(0)
pids = {{"a": a.process.proc.pid, "b": b.process.proc.pid}}
pids.update({{f"zygote{{i}}": pid for i, pid in enumerate(process.running_pids()["zygote"])}})
print(json.dumps({{"pids": pids, "helper": helper, "workdirs": [a.prepared.workdir, b.prepared.workdir]}}), flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Running (a zombie that only waits for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def test_model_servers_die_with_a_sigkilled_kernel(tmp_path):
    kernel = subprocess.Popen([sys.executable, "-c", KERNEL.format(fixtures=str(FIXTURES))], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env={**os.environ, "LABKIT_BACKEND": "offline"})
    helper = None
    try:
        line = kernel.stdout.readline()
        assert line, f"the kernel process failed before deploying (exit {kernel.poll()})"
        info = json.loads(line)
        helper = info["helper"]
        pids = info["pids"]
        assert len(pids) == 3 and all(_alive(p) for p in pids.values())  # a, b and the zygote that forked them
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(10)
        left = _wait_gone(list(pids.values()), 30)
        assert not left, f"model servers outlived their kernel: {[n for n, p in pids.items() if p in left]}"
        assert not any(os.path.exists(d) for d in info["workdirs"]), "the models' files were left behind"
    finally:
        kernel.kill()
        if helper:
            os.kill(helper, signal.SIGKILL)


def test_endpoints_outlive_their_zygote_and_the_next_gets_a_new_one(lab):
    import boto3

    sys.path.insert(0, str(FIXTURES))
    import models as hm

    from labkit.offline.hosting import process

    url = hm.upload(lab.bucket, "zygote/model.tar.gz", hm.sklearn_model()[1])
    hm.create_model(lab, "zyg", url, env={"SAGEMAKER_PROGRAM": "inference.py"})
    hm.deploy(lab, "zyg-1", [hm.variant("zyg")])
    first = process.running_pids()["zygote"]
    assert len(first) == 1
    os.kill(first[0], signal.SIGKILL)
    assert not _wait_gone(first, 30)
    rt = boto3.client("sagemaker-runtime")
    body = {"Body": "0.1,0.2,0.3", "ContentType": "text/csv", "Accept": "text/csv"}
    assert 0 < float(rt.invoke_endpoint(EndpointName="zyg-1", **body)["Body"].read()) < 1  # its server lives on
    hm.deploy(lab, "zyg-2", [hm.variant("zyg")])
    assert 0 < float(rt.invoke_endpoint(EndpointName="zyg-2", **body)["Body"].read()) < 1
    second = process.running_pids()["zygote"]
    assert len(second) == 1 and second != first
    for name in ("zyg-1", "zyg-2"):
        boto3.client("sagemaker").delete_endpoint(EndpointName=name)


def test_deleted_endpoint_is_deleting_then_gone_for_the_sdks_waits(lab):
    """DeleteEndpoint leaves the endpoint Deleting for a moment (as AWS does, for longer), so "wait until it
    is gone" is a real wait; the SDKs' waits still end promptly."""
    import boto3
    from sagemaker.core.resources import Endpoint

    sys.path.insert(0, str(FIXTURES))
    import models as hm

    url = hm.upload(lab.bucket, "lifetime/del/model.tar.gz", hm.sklearn_model()[1])
    hm.create_model(lab, "del", url, env={"SAGEMAKER_PROGRAM": "inference.py"})
    hm.deploy(lab, "del", [hm.variant("del")])
    endpoint = Endpoint.get(endpoint_name="del")
    endpoint.delete()
    assert Endpoint.get(endpoint_name="del").endpoint_status == "Deleting"
    started = time.monotonic()
    endpoint.wait_for_delete(poll=5, timeout=60)
    assert time.monotonic() - started < 5
    sm = boto3.client("sagemaker")
    assert "del" not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    sm.get_waiter("endpoint_deleted").wait(EndpointName="del")  # already gone: returns at once


def test_an_endpoint_deleted_while_its_servers_start_leaves_none_running(lab):
    """DeleteEndpoint while the endpoint is Creating or Updating (plain or blue/green): the servers that were
    still starting are stopped when they come up, not left serving a deleted endpoint (nothing running)."""
    import boto3

    sys.path.insert(0, str(FIXTURES))
    import models as hm

    from labkit.offline.hosting import process

    sm = boto3.client("sagemaker")
    url = hm.upload(lab.bucket, "lifetime/race/model.tar.gz", hm.sklearn_model()[1])
    hm.create_model(lab, "race", url, env={"SAGEMAKER_PROGRAM": "inference.py"})
    before = set(process.running_pids()["servers"])
    hm.deploy(lab, "race-create", [hm.variant("race", count=2)], wait=False)
    sm.delete_endpoint(EndpointName="race-create")

    hm.deploy(lab, "race-update", [hm.variant("race")])
    sm.create_endpoint_config(EndpointConfigName="race-update-2", ProductionVariants=[hm.variant("race", count=2)])
    sm.update_endpoint(EndpointName="race-update", EndpointConfigName="race-update-2")
    sm.delete_endpoint(EndpointName="race-update")

    hm.deploy(lab, "race-guarded", [hm.variant("race")])
    sm.create_endpoint_config(EndpointConfigName="race-guarded-2", ProductionVariants=[hm.variant("race", count=2)])
    traffic = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 60}
    sm.update_endpoint(EndpointName="race-guarded", EndpointConfigName="race-guarded-2", DeploymentConfig={
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": traffic, "TerminationWaitInSeconds": 0}})
    sm.delete_endpoint(EndpointName="race-guarded")

    deadline = time.monotonic() + 120
    while set(process.running_pids()["servers"]) - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not set(process.running_pids()["servers"]) - before
    for name in ("race-create", "race-update", "race-guarded"):
        sm.get_waiter("endpoint_deleted").wait(EndpointName=name)


DEPLOY_IN_KERNEL = """
import sys
sys.path.insert(0, {fixtures!r})
import labkit
lab = labkit.connect("tests", backend="offline", quiet=True)
import boto3, models as hm
from labkit.offline.hosting import process
url = hm.upload(lab.bucket, "interrupt/model.tar.gz", hm.sklearn_model()[1])
hm.create_model(lab, "intr", url, env={{"SAGEMAKER_PROGRAM": "inference.py"}})
hm.deploy(lab, "intr", [hm.variant("intr")])
process.wait_until_warm()
rt = boto3.client("sagemaker-runtime")
def predict():
    body = rt.invoke_endpoint(EndpointName="intr", Body="0.1,0.2,0.3", ContentType="text/csv", Accept="text/csv")
    return float(body["Body"].read())
print(sorted(p for pids in process.running_pids().values() for p in pids))
"""


def _run_cell(kc, code: str, timeout: float = 120, on_start=None) -> tuple[str, list[str]]:
    """(stdout, errors) of one cell run in a Jupyter kernel; ``on_start()`` is called once it runs."""
    msg_id = kc.execute(code)
    out, errors = [], []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "execute_input" and on_start is not None:
            on_start()
        elif msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            errors.append(f'{msg["content"]["ename"]}: {msg["content"]["evalue"]}')
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out), errors


def test_endpoints_survive_an_interrupted_cell_and_leave_the_kernel_free_to_shut_down(tmp_path):
    """Jupyter's "interrupt" is SIGINT to the kernel's process group, and ipykernel's shutdown signals
    that group and waits until it is empty: the model servers and their zygote live outside it, so an
    interrupted cell leaves the endpoints serving and a shutdown does not wait for them (it once waited
    out its grace for the zygote, dead but not yet reaped). They still go with the kernel."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env={
        **os.environ, "LABKIT_BACKEND": "offline", "LABKIT_HOME": str(tmp_path / "home")})
    pids: list[int] = []
    try:
        out, errors = _run_cell(kc, DEPLOY_IN_KERNEL.format(fixtures=str(FIXTURES)))
        assert not errors, f"deploying in the kernel failed: {errors} {out}"
        pids = json.loads(out.strip().splitlines()[-1])
        assert len(pids) == 2  # the endpoint's server and the zygote that forked it

        def interrupt() -> None:
            time.sleep(0.5)
            km.interrupt_kernel()

        _, errors = _run_cell(kc, "import time\ntime.sleep(60)", timeout=60, on_start=interrupt)
        assert [e.split(":")[0] for e in errors] == ["KeyboardInterrupt"]
        out, errors = _run_cell(kc, "print(predict())")
        assert not errors, f"the endpoint stopped answering after an interrupted cell: {errors}"
        assert 0 < float(out) < 1
        assert all(_alive(p) for p in pids), "an interrupt reached the model server or the zygote"

        out, errors = _run_cell(kc, "print(len(get_ipython().kernel._process_children()))")
        assert (out.strip(), errors) == ("0", []), "ipykernel's shutdown would wait for processes in its group"
    finally:
        km.shutdown_kernel(now=False)
        kc.stop_channels()
    assert not _wait_gone(pids, 30), "model servers outlived their kernel"
