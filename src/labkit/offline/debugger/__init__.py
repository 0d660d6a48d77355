"""Offline SageMaker Debugger and profiler: built-in rules on what a training job really emits.

CreateTrainingJob's ``DebugHookConfig``, ``DebugRuleConfigurations``, ``ProfilerConfig`` and
``ProfilerRuleConfigurations`` are honoured while the job runs:

- the hosts get ``/opt/ml/input/config/debughookconfig.json`` (and ``profilerconfig.json``),
  and a PyTorch script's tensors are collected without code changes (:mod:`.hook`);
- the job's processes are sampled for system metrics (:mod:`.profiler`);
- every rule is evaluated as the data arrives (:mod:`.rules`); DescribeTrainingJob shows
  ``DebugRuleEvaluationStatuses`` / ``ProfilerRuleEvaluationStatuses`` going from
  ``InProgress`` to ``IssuesFound`` (as soon as a rule fires), ``NoIssuesFound`` or ``Error``;
- a rule that fires with the ``StopTraining`` action (``RuleParameters["action_json"]``, as
  ``smdebug_rulesconfig.ActionList`` writes it) stops the training jobs whose names begin with
  its ``training_job_prefix``, as the rule container calls StopTrainingJob on AWS; ``Email``
  and ``SMS`` actions are recorded, not sent;
- at the end the tensors go to ``<DebugHookConfig.S3OutputPath>/<job>/debug-output/`` and the
  system metrics to ``<ProfilerConfig.S3OutputPath>/<job>/profiler-output/system/incremental/``.

AWS runs each rule in a processing container of its own, at no charge for built-in rules; here
the backend evaluates them in a thread per job, and they are not billed either.
Plain classes: :class:`JobMonitor` (one job); the protocol is the validation of
CreateTrainingJob and the fields added to DescribeTrainingJob.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from .. import ACCOUNT_ID, REGION, dispatch, on_reset, s3_location
from .. import storage as s3_storage
from ..dispatch import AWSError
from ..training import jobs
from . import rules as builtin
from .profiler import SystemMonitor

RULES_REPOSITORY = "sagemaker-debugger-rules"
MAX_RULES = 20
POLL_S = 0.2
CONTAINER_ROOT = "/opt/ml"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_actions(text: str | None) -> list[dict[str, str]]:
    """``action_json`` as ``smdebug_rulesconfig`` serializes it (quotes escaped with backslashes)."""
    if not text:
        return []
    try:
        value = json.loads(text.replace('\\"', '"'))
    except ValueError as err:
        raise ValueError(f"action_json is not a JSON list of actions: {text!r}") from err
    return value if isinstance(value, list) else [value]


class RuleState:
    """One rule of one job: its configuration, status and what it found."""

    def __init__(self, job: str, config: dict[str, Any], catalogue: dict[str, builtin.Rule]):
        self.config = config
        self.name = config["RuleConfigurationName"]
        params = dict(config.get("RuleParameters") or {})
        self.actions = parse_actions(params.pop("action_json", None))
        self.invoke = params.pop("rule_to_invoke", self.name)
        self.params = params
        digest = hashlib.sha1(f"{job}/{self.name}".encode()).hexdigest()[:8]
        self.arn = (f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:processing-job/"
                    f"{job[:26]}-{self.name[:20]}-{digest}".lower())
        self.status, self.details, self.modified = "InProgress", "", _now()
        self.error: str | None = None
        image = config.get("RuleEvaluatorImage", "")
        try:
            if image == "DEFAULT_RULE_EVALUATOR_IMAGE":
                raise KeyError("RuleEvaluatorImage is the SDK's placeholder DEFAULT_RULE_EVALUATOR_IMAGE, which an "
                               "estimator replaces at fit(); with boto3, set the rule's image_uri to "
                               "image_uris.retrieve('debugger', region) first")
            if RULES_REPOSITORY not in image:
                raise KeyError(f"custom rule image {image!r} is not run offline (only the built-in rules of the "
                               f"{RULES_REPOSITORY} image are)")
            self.rule: builtin.Rule | None = builtin.lookup(self.invoke, catalogue)
        except KeyError as err:
            self.rule, self.error = None, str(err).strip("'\"")

    def set(self, status: str, details: str = "") -> None:
        self.status, self.details, self.modified = status, details, _now()

    def describe(self) -> dict[str, Any]:
        out = {"RuleConfigurationName": self.name, "RuleEvaluationJobArn": self.arn,
               "RuleEvaluationStatus": self.status, "LastModifiedTime": self.modified}
        if self.details:
            out["StatusDetails"] = self.details[:1024]
        return out


class JobMonitor:
    """Debugger and profiler of one training job (``run`` is its :class:`~..training.jobs.TrainingRun`)."""

    def __init__(self, run: Any):
        self.run = run
        request = run.request
        self.hook_config = request.get("DebugHookConfig")
        self.profiler_config = request.get("ProfilerConfig")
        self.debug_rules = [RuleState(run.name, c, builtin.DEBUGGER_RULES)
                            for c in request.get("DebugRuleConfigurations") or []]
        self.profiler_rules = [RuleState(run.name, c, builtin.PROFILER_RULES)
                               for c in request.get("ProfilerRuleConfigurations") or []]
        profiling = self.profiler_config is not None and not self.profiler_config.get("DisableProfiler")
        self.system = SystemMonitor(int((self.profiler_config or {}).get("ProfilingIntervalInMilliseconds", 500))) \
            if profiling or self.profiler_rules else None
        self.started = time.time()
        self.notes: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return bool(self.hook_config or self.debug_rules or self.profiler_rules or self.system)

    # --- the job's hosts -------------------------------------------------------------------------
    def _local(self, host: Any, path: str) -> Path:
        return Path(str(host.root) + path[len(CONTAINER_ROOT):]) if path.startswith(CONTAINER_ROOT) else Path(path)

    def tensor_dir(self) -> Path | None:
        if not self.hook_config or not self.run.hosts:
            return None
        return self._local(self.run.hosts[0], self.hook_config.get("LocalPath") or "/opt/ml/output/tensors")

    def write_configs(self) -> None:
        for host in self.run.hosts:
            folder = host.root / "input" / "config"
            folder.mkdir(parents=True, exist_ok=True)
            if self.hook_config:
                (folder / "debughookconfig.json").write_text(json.dumps(self.hook_config))
            if self.profiler_config:
                (folder / "profilerconfig.json").write_text(json.dumps(self.profiler_config))

    def start(self) -> None:
        self.write_configs()
        self._thread = threading.Thread(target=self._loop, name=f"labkit-debugger-{self.run.name}", daemon=True)
        self._thread.start()

    # --- evaluation --------------------------------------------------------------------------------
    def trial(self, running: bool) -> builtin.Trial:
        return builtin.Trial.read(self.tensor_dir(), self.system.records if self.system else None,
                                  self.started, running)

    def _sample(self) -> None:
        if self.system is None:
            return
        pids = {h.current_host: p.proc.pid for h, p in zip(self.run.hosts, self.run.processes, strict=False)
                if p.proc.poll() is None}
        if pids:
            self.system.sample(pids)

    def evaluate(self, running: bool) -> None:
        trial = self.trial(running)
        for state in self.debug_rules + self.profiler_rules:
            if state.status != "InProgress":
                continue
            if state.rule is None:
                state.set("Error", f"ClientError: {state.error}")
                continue
            try:
                verdict = state.rule(trial, state.params)
            except builtin.NoData as err:
                if not running:
                    hint = "" if self.hook_config else " The job has no DebugHookConfig, so nothing was collected."
                    state.set("Error", f"ClientError: {err}.{hint}")
                continue
            except (ValueError, TypeError) as err:
                state.set("Error", f"ClientError: rule parameters: {err}")
                continue
            if verdict.fired:
                where = f" at step {verdict.step}" if verdict.step is not None else ""
                state.set("IssuesFound", f"RuleEvaluationConditionMet: Evaluation of the rule {state.name}{where} "
                                         f"resulted in the condition being met. {verdict.detail}")
                self._act(state)
            elif not running:
                state.set("NoIssuesFound", verdict.detail)

    def _act(self, state: RuleState) -> None:
        for action in state.actions:
            kind = str(action.get("name", "")).lower()
            if kind == "stoptraining":
                prefix = action.get("training_job_prefix")
                if not prefix:
                    state.details += (" StopTraining: no training_job_prefix in the action, so no job was "
                                      "stopped (the SDK fills it in from the job name; with boto3, give it).")
                    continue
                stopped = [r.name for r in list(jobs.runs.values())
                           if r.name.startswith(prefix) and not r.done.is_set()]
                for name in stopped:
                    jobs.runs[name].stop()
                state.details += f" StopTraining: stopped {', '.join(stopped) or 'no running job'} (prefix {prefix!r})."
            elif kind in ("email", "sms"):
                state.details += f" {kind} action recorded (not sent offline)."

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self._sample()
                self.evaluate(running=True)
            except Exception as err:  # keep evaluating; the job is not the monitor's to fail
                self.notes.append(repr(err))

    def finish(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.evaluate(running=False)
        self._upload()

    def _upload(self) -> None:
        folder = self.tensor_dir()
        if self.hook_config and folder is not None and folder.is_dir() and self.hook_config.get("S3OutputPath"):
            s3_storage.sync_up(folder, f"{self.hook_config['S3OutputPath'].rstrip('/')}/{self.run.name}/debug-output")
        if self.system is not None and self.system.records and (self.profiler_config or {}).get("S3OutputPath"):
            hour = dt.datetime.fromtimestamp(self.started, dt.UTC).strftime("%Y%m%d%H")
            base = (f"{self.profiler_config['S3OutputPath'].rstrip('/')}/{self.run.name}/profiler-output/"
                    f"system/incremental/{hour}")
            bucket, prefix = s3_location.split(base)
            by_host: dict[str, list[str]] = {}
            for record in self.system.records:
                by_host.setdefault(record["Hostname"], []).append(json.dumps(record))
            for host, lines in by_host.items():
                s3_storage.s3().put_object(Bucket=bucket, Key=f"{prefix}/{int(self.started)}.{host}.json",
                                           Body=("\n".join(lines) + "\n").encode())

    def stop_thread(self) -> None:
        self._stop.set()


monitors: dict[str, JobMonitor] = {}


def observe(run: Any, event: str) -> None:
    """Follows every training job (registered with the training engine)."""
    if event == "hosts":
        monitor = JobMonitor(run)
        if monitor.active:
            monitors[run.name] = monitor
            monitor.start()
    elif event == "finished" and run.name in monitors:
        monitors[run.name].finish()


jobs.observers.append(observe)


@on_reset
def _reset() -> None:
    for monitor in monitors.values():
        monitor.stop_thread()
    monitors.clear()


# --- protocol -----------------------------------------------------------------------------------

def _check_rules(configs: list[dict[str, Any]], field: str) -> None:
    if len(configs) > MAX_RULES:
        raise AWSError("ValidationException", f"{field} has {len(configs)} rules; at most {MAX_RULES} are allowed.")
    names = [c["RuleConfigurationName"] for c in configs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise AWSError("ValidationException", f"{field}: RuleConfigurationName must be unique; repeated: "
                       f"{', '.join(repeated)}.")


@dispatch.validate("sagemaker", "CreateTrainingJob")
def validate_training_job(params: dict[str, Any]) -> None:
    _check_rules(params.get("DebugRuleConfigurations") or [], "DebugRuleConfigurations")
    _check_rules(params.get("ProfilerRuleConfigurations") or [], "ProfilerRuleConfigurations")
    for field, config in (("DebugHookConfig", params.get("DebugHookConfig")),
                          ("ProfilerConfig", params.get("ProfilerConfig"))):
        path = (config or {}).get("S3OutputPath")
        if path is not None and not path.startswith("s3://"):
            raise AWSError("ValidationException", f"{field}.S3OutputPath must be an s3:// URI, got {path!r}.")


@dispatch.after("sagemaker", "DescribeTrainingJob")
def describe_training_job(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    run = jobs.runs.get(params.get("TrainingJobName", ""))
    monitor = monitors.get(params.get("TrainingJobName", ""))
    request = run.request if run is not None else {}
    for key in ("DebugHookConfig", "ProfilerConfig", "ProfilerRuleConfigurations"):
        if request.get(key):
            parsed[key] = request[key]
    if monitor is not None:
        if monitor.debug_rules:
            parsed["DebugRuleEvaluationStatuses"] = [r.describe() for r in monitor.debug_rules]
        if monitor.profiler_rules:
            parsed["ProfilerRuleEvaluationStatuses"] = [r.describe() for r in monitor.profiler_rules]
    if run is not None:
        config = request.get("ProfilerConfig")
        parsed["ProfilingStatus"] = "Enabled" if config and not config.get("DisableProfiler") else "Disabled"
