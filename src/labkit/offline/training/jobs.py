"""A training job's life: Starting, Downloading, Training, Uploading, and its end.

:class:`TrainingRun` runs one job in a thread of its own and keeps moto's record of the
job (``FakeTrainingJob``) up to date, so Describe/List answers show what AWS shows:
``SecondaryStatusTransitions``, start and end times, ``TrainingTimeInSeconds``,
``BillableTimeInSeconds``, ``FinalMetricDataList``, ``FailureReason``.

Managed spot training: there is no spot market offline. The job runs on this machine
as any other; billable time is the training time less :data:`SPOT_DISCOUNT` (an assumed
typical saving, AWS quotes "up to 90%"), and :func:`simulate_spot_interruption` stops
the job as a reclaimed instance would (checkpoints synced, ``Interrupted``, restarted
with the checkpoints restored), so resuming from a checkpoint can be practised.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import REGION, dispatch, failures, moto_state, on_reset, persistence, runlog, storage, usage
from . import images
from .environment import CONTAINER_ROOT, Channel, HostEnvironment
from .metrics import MetricCollector, xgboost_definitions
from .runner import (
    HostProcess,
    JobSetupError,
    all_succeeded,
    first_failure,
    process_environment,
    settle,
    terminate_all,
    training_command,
)

SPOT_DISCOUNT = 0.7
STOP_GRACE_SECONDS = 5.0
FAILURE_SETTLE_SECONDS = 2.0  # after one host fails, how long its peers may take to exit by themselves
POLL_SECONDS = 0.05
CHECKPOINT_SYNC_SECONDS = 1.0

MESSAGES = {
    "Starting": "Launching requested ML instances",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Job stopped because max runtime exceeded",
    "Interrupted": "Spot instance was interrupted; the job will restart from its last checkpoint",
    "Restarting": "Restarting training from the last checkpoint",
}


# SDK v3's driver logs "Executing command: torchrun ..."; its CalledProcessError (in the failure
# file) and torchrun's ChildFailedError only wrap what failed.
_LAUNCH_LINE = "Executing command: "
_LAUNCHER_FAILURE = re.compile(r"CalledProcessError|ChildFailedError")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def container_paths(text: str, hosts: list[HostEnvironment]) -> str:
    """``text`` with each host's folder written as the container path it stands for (``/opt/ml``)."""
    for env in hosts:
        text = text.replace(str(env.root), CONTAINER_ROOT)
    return text


_base: list[Path] = []


def work_dir() -> Path:
    """The folder that holds every job's hosts (one per backend start)."""
    if not _base:
        _base.append(Path(tempfile.mkdtemp(prefix="labkit-sagemaker-")))
    return _base[0]


def reserve_port() -> socket.socket:
    """A loopback port for a job's rendezvous, held from now until the job ends.

    On AWS each instance has its own network, and the rendezvous port (``algo-1:7777``) is
    always free. Here every job shares this machine's ports, and a port that is merely chosen
    (bound to 0, then closed) can be taken by anything that starts before torchrun's master
    binds it, seconds later on a busy machine. So the port stays bound, not listening, with
    ``SO_REUSEADDR``: the kernel hands it to no one else, while the job's master (c10d's
    TCPStore sets ``SO_REUSEADDR`` too) can still bind it and listen. Close it when the job ends.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class SpotInterruption:
    """A scheduled interruption: after some seconds of training or some checkpoint files."""

    job_name: str | None = None
    after_seconds: float | None = None
    after_checkpoints: int | None = None
    fired: bool = False


_interruptions: list[SpotInterruption] = []

# Engines that follow a job's life (the Debugger's rules and profiler) register fn(run, event):
# "hosts" (the hosts' folders and config files exist, nothing runs yet), "launched" (the hosts'
# processes run; again after a spot restart) and "finished" (the outcome is known, before it is
# recorded, so that what they add is there when the job is seen as ended).
observers: list[Callable[[TrainingRun, str], None]] = []


@dispatch.backend_function
def simulate_spot_interruption(job_name: str | None = None, *, after_seconds: float | None = None,
                               after_checkpoints: int | None = None) -> dict[str, Any]:
    """Make the next managed-spot training job (or ``job_name``) lose its instance once.

    The interruption comes after ``after_seconds`` of training, or as soon as the
    checkpoint folder holds ``after_checkpoints`` files (default 1 when neither is given).
    The job's checkpoints are synced to ``CheckpointConfig.S3Uri``, the job shows
    ``SecondaryStatus`` ``Interrupted``, then restarts with the checkpoints restored into
    ``CheckpointConfig.LocalPath``, as SageMaker does after a spot reclaim. Returns what
    was scheduled (job_name, after_seconds, after_checkpoints, fired).
    """
    if after_seconds is None and after_checkpoints is None:
        after_checkpoints = 1
    item = SpotInterruption(job_name, after_seconds, after_checkpoints)
    _interruptions.append(item)
    return dataclasses.asdict(item)


class TrainingRun:
    """One training job, run in a thread; ``record`` is moto's FakeTrainingJob."""

    def __init__(self, request: dict[str, Any], record: Any, *, builtin_metrics: bool = False):
        self.request = request
        self.record = record
        self.name: str = request["TrainingJobName"]
        self.image = images.parse(request["AlgorithmSpecification"].get("TrainingImage", ""))
        self.spot = bool(request.get("EnableManagedSpotTraining"))
        rc = request["ResourceConfig"]
        self.instance_type = rc.get("InstanceType") or rc.get("InstanceGroups", [{}])[0].get("InstanceType", "")
        self.instance_count = int(rc.get("InstanceCount") or sum(g["InstanceCount"] for g in rc.get("InstanceGroups", [])) or 1)
        self.max_runtime = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
        definitions = list(request["AlgorithmSpecification"].get("MetricDefinitions") or [])
        if builtin_metrics and not definitions:
            definitions = xgboost_definitions()
        self.metric_definitions = definitions
        self.metrics = MetricCollector(definitions)
        self.lines: list[str] = []
        self._sinks: dict[str, Any] = {}
        self._commands: dict[str, str] = {}
        self._port: socket.socket | None = None
        self.processes: list[HostProcess] = []
        self.hosts: list[HostEnvironment] = []
        self._stop = threading.Event()
        self._stop_reason = "Stopped"
        self.done = threading.Event()
        self.training_started: float | None = None
        self.thread = threading.Thread(target=self._main, name=f"labkit-training-{self.name}", daemon=True)
        self.status = "InProgress"
        self.secondary = "Starting"
        self.transitions: list[dict[str, Any]] = []
        self.script_seconds = 0.0
        self._set_record(training_job_status="InProgress", secondary_status="Starting",
                         secondary_status_transitions=self.transitions, final_metric_data_list=[],
                         last_modified_time=now())
        self.record.algorithm_specification["MetricDefinitions"] = definitions
        if not definitions:
            self.record.algorithm_specification.pop("MetricDefinitions", None)
        for attr in ("training_start_time", "training_end_time"):
            setattr(self.record, attr, None)
        self._transition("Starting", MESSAGES["Starting"])

    # --- record keeping ------------------------------------------------------------
    def _set_record(self, **fields: Any) -> None:
        for key, value in fields.items():
            setattr(self.record, key, value)

    def _transition(self, status: str, message: str) -> None:
        t = now()
        if self.transitions and "EndTime" not in self.transitions[-1]:
            self.transitions[-1]["EndTime"] = t
        self.transitions.append({"Status": status, "StartTime": t, "StatusMessage": message})
        self.secondary = status
        self._set_record(secondary_status=status, last_modified_time=t)

    def start(self) -> None:
        self.thread.start()

    def _notify(self, event: str) -> None:
        for observer in observers:
            try:
                observer(self, event)
            except Exception as err:  # an observer's failure is its own, never the job's
                self.lines.append(f"labkit: {getattr(observer, '__module__', observer)} failed on {event}: {err!r}")

    def stop(self, reason: str = "Stopped") -> None:
        """StopTrainingJob: Stopping now, Stopped once the processes have exited."""
        if self.done.is_set() or self._stop.is_set():
            return
        self._stop_reason = reason
        if reason == "Stopped":
            self.status = "Stopping"
            self._set_record(training_job_status="Stopping")
            self._transition("Stopping", MESSAGES["Stopping"])
        self._stop.set()

    # --- the job ---------------------------------------------------------------------
    def _sink(self, host: str):
        """The host's log stream (one per host for the job's life, restarts included)."""
        if host in self._sinks:
            return self._sinks[host]
        stream = storage.LogStream(storage.LOG_GROUP_TRAINING, f"{self.name}/{host}-{int(time.time())}",
                                   job=True)

        def write(line: str) -> None:
            if line.startswith(_LAUNCH_LINE):  # the SDK v3 driver names the command it starts
                self._commands[host] = line[len(_LAUNCH_LINE):].strip()
            message = stream.write(line)
            if message is not None:  # a job's stream keeps every line, empty ones too
                self.lines.append(message)
                self.metrics.feed(message)

        self._sinks[host] = write
        return write

    def _make_hosts(self) -> None:
        names = [f"algo-{i + 1}" for i in range(self.instance_count)]
        spec = self.request["AlgorithmSpecification"]
        mode = spec.get("TrainingInputMode", "File")
        channels = [Channel.from_request(c, mode) for c in self.request.get("InputDataConfig", [])]
        checkpoint = self.request.get("CheckpointConfig") or {}
        self._port = reserve_port()
        port = self._port.getsockname()[1]
        arn = self.record.arn
        for host in names:
            env = HostEnvironment(job_name=self.name, job_arn=arn, root=work_dir() / self.name / host,
                                  current_host=host, hosts=names, instance_type=self.instance_type,
                                  hyperparameters=dict(self.request.get("HyperParameters") or {}),
                                  channels=channels, environment=dict(self.request.get("Environment") or {}),
                                  checkpoint_path=(checkpoint.get("LocalPath") or "/opt/ml/checkpoints")
                                  if checkpoint else None, master_port=port, region=REGION)
            env.create()
            self.hosts.append(env)

    def _download(self) -> None:
        for i, env in enumerate(self.hosts):
            for channel in env.channels:
                if not channel.s3_uri:
                    continue
                sharded = channel.distribution == "ShardedByS3Key"
                storage.download_prefix(channel.s3_uri, env.channel_dir(channel.name),
                                        shard=i if sharded else 0, shards=len(self.hosts) if sharded else 1)
        self._restore_checkpoints()

    def _restore_checkpoints(self) -> None:
        uri = (self.request.get("CheckpointConfig") or {}).get("S3Uri")
        if not uri:
            return
        for env in self.hosts:
            assert env.checkpoint_dir is not None
            shutil.rmtree(env.checkpoint_dir, ignore_errors=True)
            env.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            storage.download_prefix(uri.rstrip("/") + "/", env.checkpoint_dir)

    def _sync_checkpoints(self) -> None:
        uri = (self.request.get("CheckpointConfig") or {}).get("S3Uri")
        if uri and self.hosts and self.hosts[0].checkpoint_dir and self.hosts[0].checkpoint_dir.exists():
            storage.sync_up(self.hosts[0].checkpoint_dir, uri)

    def _launch(self) -> None:
        spec = self.request["AlgorithmSpecification"]
        self.processes = []
        for env in self.hosts:
            argv, cwd = training_command(env, self.image, spec)
            sink = self._sink(env.current_host)
            self.processes.append(HostProcess(argv, cwd, process_environment(env), sink))

    def _pending_interruption(self, started: float) -> SpotInterruption | None:
        if not self.spot:
            return None
        for item in _interruptions:
            if item.fired or item.job_name not in (None, self.name):
                continue
            if item.after_seconds is not None and time.time() - started >= item.after_seconds:
                return item
            ckpt = self.hosts[0].checkpoint_dir if self.hosts else None
            if (item.after_checkpoints is not None and ckpt is not None and ckpt.exists()
                    and sum(1 for p in ckpt.rglob("*") if p.is_file()) >= item.after_checkpoints):
                return item
        return None

    def _watch(self) -> tuple[str, str | None]:
        """Wait for the hosts; returns (outcome, failure reason). Handles stop, runtime, spot."""
        assert self.training_started is not None
        last_sync = time.time()
        run_started = time.time()
        while True:
            failed = first_failure(self.processes)
            if failed:
                settle(self.processes, FAILURE_SETTLE_SECONDS)
                terminate_all(self.processes, STOP_GRACE_SECONDS)
                return "Failed", self._failure_reason(*failed)
            if all_succeeded(self.processes):
                return "Completed", None
            if self._stop.is_set():
                terminate_all(self.processes, STOP_GRACE_SECONDS)
                return self._stop_reason, None
            if time.time() - self.training_started > self.max_runtime:
                terminate_all(self.processes, STOP_GRACE_SECONDS)
                return "MaxRuntimeExceeded", None
            interruption = self._pending_interruption(run_started)
            if interruption is not None:
                interruption.fired = True
                terminate_all(self.processes, STOP_GRACE_SECONDS)
                self._sync_checkpoints()
                self._transition("Interrupted", MESSAGES["Interrupted"])
                self._transition("Starting", MESSAGES["Restarting"])
                self._restore_checkpoints()
                self._transition("Training", MESSAGES["Training"])
                self._launch()
                self._notify("launched")
                run_started = time.time()
                continue
            if time.time() - last_sync >= CHECKPOINT_SYNC_SECONDS:
                self._sync_checkpoints()
                last_sync = time.time()
            time.sleep(POLL_SECONDS)

    def _failure_reason(self, index: int, code: int) -> str:
        """FailureReason as AWS writes it, its message the root cause from the hosts' own output.

        Not the launchers' wrappers (the SDK driver's CalledProcessError, torchrun's
        ChildFailedError), and not a host that failed only because its peer had gone: the
        first real failure of any rank (:mod:`labkit.offline.failures`).
        """
        outputs = {env.current_host: list(proc.tail) for env, proc in zip(self.hosts, self.processes, strict=False)}
        cause = failures.root_cause(outputs)
        if cause is not None:  # the host where it happened ("algo-2 rank 1" -> algo-2)
            index = next((i for i, env in enumerate(self.hosts) if cause.source.split()[0] == env.current_host),
                         index)
            if not self.processes[index].terminated:  # else its status is the platform's SIGTERM
                code = self.processes[index].poll() or code
        env, proc = self.hosts[index], self.processes[index]
        message = container_paths(cause.text if cause else failures.last_lines(outputs[env.current_host]),
                                  self.hosts)
        written = env.failure_file.read_text().strip() if env.failure_file.exists() else ""
        if written and not _LAUNCHER_FAILURE.search(written):
            # The script wrote its own reason (the container contract): AWS shows it as written.
            text = container_paths(written, self.hosts)
            if not text.startswith(("ClientError", "AlgorithmError")):
                text = "AlgorithmError: " + text
            first = message.splitlines()[0] if message else ""
            return failures.fit(text, f'\nErrorMessage "{message}"' if first and first not in text else "")
        command = container_paths(self._commands.get(env.current_host) or " ".join(proc.argv), self.hosts)
        return failures.fit(f'AlgorithmError: ExecuteUserScriptError:\nExitCode {code}\nErrorMessage "', message,
                            f'"\nCommand "{command[:300]}", exit code: {code}')

    def _upload(self) -> None:
        out = self.request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        main = self.hosts[0]
        storage.pack(main.model_dir, f"{out}/{self.name}/output/model.tar.gz")
        if any(main.output_data_dir.iterdir()):
            storage.pack(main.output_data_dir, f"{out}/{self.name}/output/output.tar.gz")
        self._sync_checkpoints()

    def _main(self) -> None:
        outcome, reason = "Failed", None
        try:
            outcome, reason = self._run()
        except Exception as err:  # an engine error must still end the job
            outcome, reason = "Failed", f"InternalServerError: offline training engine: {err!r}"
        finally:
            self._finish(outcome, reason)

    def _run(self) -> tuple[str, str | None]:
        if not self.image.emulated:
            return "Failed", images.not_emulated_message(self.image.uri)
        self._make_hosts()
        self._notify("hosts")
        if self._stop.is_set():
            return self._stop_reason, None
        self._transition("Downloading", MESSAGES["Downloading"])
        self.training_started = time.time()
        self._set_record(training_start_time=now())
        self._download()
        self._transition("Training", MESSAGES["Training"])
        script_start = time.time()
        try:
            self._launch()
        except JobSetupError as err:
            return "Failed", str(err)
        self._notify("launched")
        outcome, reason = self._watch()
        self.script_seconds = time.time() - script_start
        if outcome != "Failed":
            self._transition("Uploading", MESSAGES["Uploading"])
            self._upload()
        return outcome, reason

    def _finish(self, outcome: str, reason: str | None) -> None:
        self.outcome = outcome
        self._notify("finished")
        if self._port is not None:
            self._port.close()
        status = {"Completed": "Completed", "Failed": "Failed"}.get(outcome, "Stopped")
        self._transition(outcome, MESSAGES.get(outcome, outcome))
        end = self.transitions[-1]["StartTime"]
        self.transitions[-1]["EndTime"] = end
        fields: dict[str, Any] = {"training_job_status": status, "training_end_time": end,
                                  "last_modified_time": end, "final_metric_data_list": self.metrics.final()}
        if reason:
            fields["failure_reason"] = reason
        if status == "Failed":
            runlog.failed("TrainingJob", self.name, reason or "")
        if self.training_started is not None:
            seconds = max(1, math.ceil(time.time() - self.training_started))
            billable = max(1, math.ceil(seconds * (1 - SPOT_DISCOUNT))) if self.spot else seconds
            fields.update(training_time_in_seconds=seconds, billable_time_in_seconds=billable)
            usage.record("sagemaker:training", self.name, instance_type=self.instance_type,
                         instance_count=self.instance_count, seconds=billable, spot=self.spot,
                         training_seconds=seconds, status=status)
        self.status = status
        self._set_record(**fields)
        self.done.set()

    def kill(self) -> None:
        """Backend reset: end the processes now."""
        self._stop.set()
        terminate_all(self.processes, 0.5)


runs: dict[str, TrainingRun] = {}


@persistence.on_restore
def _interrupted(stopped_at: float) -> None:
    """Jobs that ran when the backend stopped ended with it: Failed, with the reason (never lost silently)."""
    from datetime import UTC, datetime

    end = datetime.fromtimestamp(stopped_at, UTC)
    sm = moto_state.backend("sagemaker")
    for record in sm.training_jobs.values():
        if record.training_job_status in ("InProgress", "Stopping"):
            record.training_job_status, record.secondary_status = "Failed", "Failed"
            record.failure_reason, record.training_end_time = persistence.INTERRUPTED, end
            record.last_modified_time = end
    for record in sm.processing_jobs.values():
        if record.processing_job_status in ("InProgress", "Stopping"):
            record.processing_job_status, record.processing_end_time = "Failed", end
            record.failure_reason, record.last_modified_time = persistence.INTERRUPTED, end
    for tuning in sm.hyper_parameter_tuning_jobs.values():
        if tuning.hyper_parameter_tuning_job_status in ("InProgress", "Stopping"):
            tuning.hyper_parameter_tuning_job_status, tuning.failure_reason = "Failed", persistence.INTERRUPTED
            tuning.hyper_parameter_tuning_end_time = tuning.last_modified_time = end


@on_reset
def _reset() -> None:
    for run in list(runs.values()):
        run.kill()
    for run in list(runs.values()):
        run.done.wait(10)
    runs.clear()
    _interruptions.clear()
    for base in _base:
        shutil.rmtree(base, ignore_errors=True)
    _base.clear()


