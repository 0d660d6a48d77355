"""Hyperparameter tuning jobs whose trials are real training jobs.

A tuning job (``CreateHyperParameterTuningJob``) runs in a thread of its own. It asks its
strategy for hyperparameter values, starts each trial through the same path as
``CreateTrainingJob`` (:func:`~labkit.offline.training.api.start_training_job`), so trials run the
learner's code, log to CloudWatch, pack their model and bill like any job, reads each trial's
objective from its ``FinalMetricDataList`` and feeds it back to the strategy. Trials are named as
AWS names them (``<tuning-job>-<NNN>-<8 hex>``) and get the hyperparameter
``_tuning_objective_metric`` (the toolkit does not pass it to the script).

Strategies:

- ``Random``: independent uniform draws in each range's scale (optuna's ``RandomSampler``).
- ``Grid``: every combination of the categorical values, in order (AWS allows only categorical
  ranges; ``MaxNumberOfTrainingJobs`` is the number of combinations).
- ``Bayesian``: sequential model-based optimisation with optuna's TPE sampler (multivariate,
  with a "constant liar" for the trials still running, after a few random start-up trials).
  AWS's Bayesian strategy models the objective with a Gaussian process; the offline backend uses
  TPE, another Bayesian optimiser, because it suggests in milliseconds on two cores where
  optuna's GP sampler took 0.5-5 s per suggestion here. Trial values therefore differ from AWS's,
  the behaviour (later trials concentrate where earlier ones scored well) does not.
- ``Hyperband``: random configurations, each trial stopped at the rungs of successive halving
  when its objective at that epoch is not among the best (optuna's ``HyperbandPruner`` on the
  epochs the trial reports); a trial that reaches ``MaxResource`` epochs is stopped.

Scaling: ``Linear``, ``Logarithmic``, ``ReverseLogarithmic`` as documented; ``Auto`` is taken as
``Linear`` offline (AWS chooses a scale itself and does not say how).

Early stopping (``TrainingJobEarlyStoppingType: Auto``) follows AWS's description: after each
epoch (each new value of the objective metric in the trial's log) the running average of the
objective of every earlier trial up to the same epoch is computed, and the trial is stopped when
its value is worse than the median of those running averages. AWS does not document how many
earlier trials it needs first; offline it is :data:`.search.EARLY_STOPPING_MIN_TRIALS`.

Completion criteria ``TargetObjectiveMetricValue`` and ``BestObjectiveNotImproving`` are applied
as documented; ``ConvergenceDetected`` is AWS's own internal test and is accepted but not applied
offline. ``ResourceLimits.MaxRuntimeInSeconds`` stops the running trials and completes the job.
Warm start seeds the optimiser with the parent jobs' trials and fills ``OverallBestTrainingJob``.
Not emulated (refused with a message): ``Autotune`` and several ``TrainingJobDefinitions``.

The search itself (ranges, strategies, early stopping) is :mod:`.search`.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import _reset_hooks, dispatch, moto_state, runlog
from ..dispatch import AWSError
from . import api, images, jobs, metrics, shapes
from .search import GridStrategy, OptunaStrategy, Range, Strategy, invalid, median_rule, parse_ranges

POLL_SECONDS = 0.05
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
MAX_HYPERPARAMETERS = 100
TUNING_METRIC = "_tuning_objective_metric"
EPOCH_KEYS = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs")
# Direction of the built-in XGBoost algorithm's metrics (others are minimised).
XGBOOST_MAXIMIZED = ("accuracy", "auc", "aucpr", "f1", "map", "ndcg", "r2")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- the tuning job ---------------------------------------------------------------------------


@dataclass
class Trial:
    index: int
    name: str
    tuned: dict[str, str]
    key: Any
    run: jobs.TrainingRun
    checked: int = 0
    early_stopped: bool = False
    told: bool = False
    objective: float | None = None
    finished_at: float | None = None

    @property
    def record(self) -> Any:
        return self.run.record

    @property
    def status(self) -> str:
        return self.record.training_job_status

    @property
    def ended(self) -> bool:
        return self.run.done.is_set()

    def objective_status(self) -> str:
        if not self.ended:
            return "Pending"
        return "Succeeded" if self.objective is not None else "Failed"


@dataclass
class Objective:
    name: str
    direction: str

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "Maximize" else a < b


@dataclass
class TuningRun:
    """One tuning job, run in a thread; ``record`` is moto's HyperParameterTuningJob."""

    request: dict[str, Any]
    record: Any
    definition: dict[str, Any]
    space: list[Range]
    strategy: Strategy
    objective: Objective
    max_jobs: int | None
    max_parallel: int
    builtin: bool
    parents: list[TuningRun] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    status: str = "InProgress"
    failure_reason: str | None = None
    started: float = field(default_factory=time.time)
    ended_at: dt.datetime | None = None
    exhausted: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.name: str = self.request["HyperParameterTuningJobName"]
        config = self.request["HyperParameterTuningJobConfig"]
        self.config = config
        self.early_stopping = config.get("TrainingJobEarlyStoppingType", "Off") == "Auto"
        self.max_runtime = (config.get("ResourceLimits") or {}).get("MaxRuntimeInSeconds")
        self.criteria = config.get("TuningJobCompletionCriteria") or {}
        self._stop = threading.Event()
        self._killed = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"labkit-tuning-{self.name}", daemon=True)
        self._lock = threading.Lock()
        self.stop_reason: str | None = None
        self.max_resource = None
        if self.config["Strategy"] == "Hyperband":
            self.max_resource = self.config["StrategyConfig"]["HyperbandStrategyConfig"]["MaxResource"]
        for parent in self.parents:
            for t in parent.trials:
                if t.objective is not None:
                    self.strategy.seed_with(t.tuned, t.objective)

    # --- control -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """StopHyperParameterTuningJob: Stopping now, Stopped once every trial has ended."""
        with self._lock:
            if self.status == "InProgress":
                self.status = "Stopping"
                self._sync_record()
        self._stop.set()

    def kill(self) -> None:
        """Backend reset: launch nothing more and end the trials now."""
        self._killed.set()
        self._stop.set()
        for t in self.trials:
            t.run.kill()

    # --- trials ----------------------------------------------------------------------
    def _trial_request(self, name: str, tuned: dict[str, str]) -> dict[str, Any]:
        d = copy.deepcopy(self.definition)
        spec = {k: v for k, v in d["AlgorithmSpecification"].items()
                if k in ("TrainingImage", "TrainingInputMode", "AlgorithmName", "MetricDefinitions")}
        hps = {**(d.get("StaticHyperParameters") or {}), **tuned, TUNING_METRIC: self.objective.name}
        request: dict[str, Any] = {
            "TrainingJobName": name, "HyperParameters": hps, "AlgorithmSpecification": spec,
            "RoleArn": d["RoleArn"], "OutputDataConfig": d["OutputDataConfig"],
            "ResourceConfig": resource_config(d),
            "StoppingCondition": d.get("StoppingCondition") or {"MaxRuntimeInSeconds": 86400},
        }
        for key in ("InputDataConfig", "VpcConfig", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption",
                    "EnableManagedSpotTraining", "CheckpointConfig", "Environment"):
            if d.get(key) not in (None, {}, []):
                request[key] = d[key]
        if self.request.get("Tags"):
            request["Tags"] = list(self.request["Tags"])
        return request

    def _launch(self) -> bool:
        """Start the next trial; ``False`` when the strategy has nothing more to try."""
        asked = self.strategy.ask()
        if asked is None:
            self.exhausted = True
            return False
        key, tuned = asked
        index = len(self.trials) + 1
        name = f"{self.name}-{index:03d}-{secrets.token_hex(4)}"
        with self._lock:
            if self._killed.is_set():
                return False
            run = api.start_training_job(self._trial_request(name, tuned))
            run.record.tuning_job_arn = self.record.arn
            self.trials.append(Trial(index, name, tuned, key, run))
        return True

    def _objective_of(self, trial: Trial) -> float | None:
        for item in trial.record.final_metric_data_list or []:
            if item["MetricName"] == self.objective.name:
                value = float(item["Value"])
                return value if math.isfinite(value) else None
        return None

    def _collect(self) -> None:
        for t in self.trials:
            if t.ended and not t.told:
                t.objective = self._objective_of(t)
                t.finished_at = time.time()
                self.strategy.tell(t.key, t.objective)
                t.told = True

    def _watch_trials(self) -> None:
        """Early stopping (AWS's median rule), Hyperband's rungs, Hyperband's MaxResource."""
        for t in self.trials:
            if t.ended or t.run._stop.is_set():
                continue
            series = t.run.metrics.values(self.objective.name)
            for step in range(t.checked + 1, len(series) + 1):
                value = series[step - 1]
                stop = self.strategy.report(t.key, step, value)
                if self.early_stopping and not stop:
                    earlier = [o.run.metrics.values(self.objective.name) for o in self.trials if o.index < t.index]
                    stop = median_rule(value, step, earlier, self.objective.direction)
                if self.max_resource is not None and step >= self.max_resource:
                    stop = True
                if stop:
                    t.early_stopped = True
                    t.run.stop()
                    break
            t.checked = len(series)

    def running(self) -> list[Trial]:
        return [t for t in self.trials if not t.ended]

    # --- results ---------------------------------------------------------------------
    def best(self) -> Trial | None:
        best: Trial | None = None
        best_value = 0.0
        for t in self.trials:
            if t.ended and t.objective is not None and (best is None or self.objective.better(t.objective, best_value)):
                best, best_value = t, t.objective
        return best

    def not_improving(self) -> int:
        """Trials (in the order they ended) since the best last improved by more than 1%."""
        count, best = 0, None
        for t in sorted((t for t in self.trials if t.told), key=lambda t: t.finished_at or 0):
            value = t.objective
            if value is not None and (best is None or (self.objective.better(value, best) and
                                                       abs(value - best) > 0.01 * max(abs(best), 1e-12))):
                best, count = value, 0
            else:
                count += 1
        return count

    def _criteria_met(self) -> bool:
        best = self.best()
        target = self.criteria.get("TargetObjectiveMetricValue")
        if target is not None and best is not None and best.objective is not None \
                and not self.objective.better(float(target), best.objective):
            self.stop_reason = "target"
            return True
        limit = (self.criteria.get("BestObjectiveNotImproving") or {}).get("MaxNumberOfTrainingJobsNotImproving")
        if limit and self.not_improving() >= limit:
            self.stop_reason = "not-improving"
            return True
        return False

    # --- the loop ---------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._loop()
        except AWSError as err:  # a trial the platform refused (its data gone, say)
            self._end("Failed", f"ClientError: a training job could not be started: {err.code}: {err.message}")
        except Exception as err:
            self._end("Failed", f"InternalServerError: offline tuning engine: {err!r}")

    def _loop(self) -> None:
        while True:
            self._collect()
            if self._stop.is_set():
                self._drain()
                if self._killed.is_set():
                    self.done.set()
                else:
                    self._end("Stopped")
                return
            if self.max_runtime and time.time() - self.started > self.max_runtime:
                self._drain()
                self._end("Completed")
                return
            if self._criteria_met():
                self._drain()
                self._end("Completed")
                return
            launched = len(self.trials)
            while (not self.exhausted and len(self.running()) < self.max_parallel
                   and (self.max_jobs is None or launched < self.max_jobs)):
                if not self._launch():
                    break
                launched += 1
            if not self.running() and (self.exhausted or (self.max_jobs is not None and launched >= self.max_jobs)):
                self._collect()
                self._finish()
                return
            self._watch_trials()
            self._sync_record()
            time.sleep(POLL_SECONDS)

    def _drain(self) -> None:
        """Stop the running trials and wait for them to end."""
        for t in self.running():
            t.run.stop()
        for t in self.trials:
            t.run.done.wait(jobs.STOP_GRACE_SECONDS * 3)
        self._collect()

    def _finish(self) -> None:
        if self.trials and self.best() is None:
            first = next((t for t in self.trials if t.status == "Failed"), None)
            why = (f" First failure, {first.name}: {first.record.failure_reason}" if first is not None else
                   f" No training job emitted the objective metric {self.objective.name}: check its metric "
                   "definition's regex against the job's log.")
            self._end("Failed", ("No training job succeeded: every training job that the tuning job launched "
                                 "failed or did not emit the objective metric." + why)[:1024])
        else:
            self._end("Completed")

    def _end(self, status: str, reason: str | None = None) -> None:
        with self._lock:
            self.status = status
            self.failure_reason = reason
            self.ended_at = now()
            self._sync_record()
        if status == "Failed":
            runlog.failed("HyperParameterTuningJob", self.name, reason or "")
        self.done.set()

    def _sync_record(self) -> None:
        """Keep moto's record (ListHyperParameterTuningJobs answers from it) up to date."""
        r = self.record
        r.hyper_parameter_tuning_job_status = self.status
        r.last_modified_time = now()
        r.hyper_parameter_tuning_end_time = self.ended_at
        r.training_job_status_counters = self.status_counters()
        r.objective_status_counters = self.objective_counters()
        r.failure_reason = self.failure_reason or ""

    # --- what Describe and List show ----------------------------------------------------
    def status_counters(self) -> dict[str, int]:
        counts = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
        for t in self.trials:
            status = t.status if t.ended else "InProgress"
            if status == "Failed":
                reason = t.record.failure_reason or ""
                counts["RetryableError" if reason.startswith("InternalServerError") else "NonRetryableError"] += 1
            else:
                counts[{"Stopping": "InProgress"}.get(status, status)] += 1
        return counts

    def objective_counters(self) -> dict[str, int]:
        counts = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        for t in self.trials:
            counts[t.objective_status() if t.told or not t.ended else "Pending"] += 1
        return counts

    def summary(self, t: Trial) -> dict[str, Any]:
        r = t.record
        out: dict[str, Any] = {
            "TrainingJobName": t.name, "TrainingJobArn": r.arn, "TuningJobName": self.name,
            "CreationTime": r.creation_time, "TrainingStartTime": r.training_start_time,
            "TrainingEndTime": r.training_end_time if t.ended else None, "TrainingJobStatus": t.status,
            "TunedHyperParameters": dict(t.tuned), "ObjectiveStatus": t.objective_status() if t.told else "Pending",
        }
        if t.status == "Failed":
            out["FailureReason"] = r.failure_reason
        if t.told and t.objective is not None:
            out["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": self.objective.name,
                                                                  "Value": t.objective}
        return out

    def describe(self) -> dict[str, Any]:
        config = normalized_config(self.config, self.max_jobs)
        definition = copy.deepcopy(self.definition)
        definition["StaticHyperParameters"] = {**(definition.get("StaticHyperParameters") or {}),
                                               TUNING_METRIC: self.objective.name}
        # AWS describes the resources and the runtime limit of the trials even when the request gave
        # HyperParameterTuningResourceConfig or no StoppingCondition (SDK v2's attach reads both).
        if "ResourceConfig" not in definition and "InstanceConfigs" not in (
                definition.get("HyperParameterTuningResourceConfig") or {}):
            definition["ResourceConfig"] = resource_config(definition)
        definition.setdefault("StoppingCondition", {}).setdefault("MaxRuntimeInSeconds", 86400)
        if self.builtin and not definition["AlgorithmSpecification"].get("MetricDefinitions"):
            definition["AlgorithmSpecification"]["MetricDefinitions"] = metrics.xgboost_definitions()
        out: dict[str, Any] = {
            "HyperParameterTuningJobName": self.name, "HyperParameterTuningJobArn": self.record.arn,
            "HyperParameterTuningJobConfig": config, "TrainingJobDefinition": definition,
            "HyperParameterTuningJobStatus": self.status, "CreationTime": self.record.creation_time,
            "HyperParameterTuningEndTime": self.ended_at, "LastModifiedTime": self.record.last_modified_time,
            "TrainingJobStatusCounters": self.status_counters(), "ObjectiveStatusCounters": self.objective_counters(),
            "WarmStartConfig": self.request.get("WarmStartConfig"), "FailureReason": self.failure_reason,
            "TuningJobCompletionDetails": {"NumberOfTrainingJobsObjectiveNotImproving": self.not_improving()},
            "ConsumedResources": {"RuntimeInSeconds": int((self.ended_at.timestamp() if self.ended_at
                                                            else time.time()) - self.started)},
        }
        best = self.best()
        if best is not None:
            out["BestTrainingJob"] = self.summary(best)
        if self.parents:
            candidates = [(t.objective, t, run) for run in [self, *self.parents] for t in run.trials
                          if t.ended and t.objective is not None]
            if candidates:
                value, t, run = candidates[0]
                for other_value, other, other_run in candidates[1:]:
                    if self.objective.better(other_value, value):
                        value, t, run = other_value, other, other_run
                out["OverallBestTrainingJob"] = run.summary(t)
        shaped = shapes.describe("DescribeHyperParameterTuningJob", out)
        # AWS lists every kind of range, empty ones included (the SDKs index them directly).
        ranges = shaped["HyperParameterTuningJobConfig"].setdefault("ParameterRanges", {})
        for kind in ("Integer", "Continuous", "Categorical"):
            ranges.setdefault(f"{kind}ParameterRanges", [])
        return shaped


def resource_config(definition: dict[str, Any]) -> dict[str, Any]:
    """A trial's ResourceConfig: as given, or the first choice of HyperParameterTuningResourceConfig."""
    if definition.get("ResourceConfig"):
        return dict(definition["ResourceConfig"])
    flexible = definition.get("HyperParameterTuningResourceConfig") or {}
    first = (flexible.get("InstanceConfigs") or [flexible])[0]
    out = {k: first[k] for k in ("InstanceType", "InstanceCount", "VolumeSizeInGB") if k in first}
    if flexible.get("VolumeKmsKeyId"):
        out["VolumeKmsKeyId"] = flexible["VolumeKmsKeyId"]
    if "InstanceType" not in out:
        raise invalid("TrainingJobDefinition must have a ResourceConfig (InstanceType, InstanceCount) or a "
                      "HyperParameterTuningResourceConfig.")
    out.setdefault("InstanceCount", 1)
    out.setdefault("VolumeSizeInGB", 30)
    return out


def normalized_config(config: dict[str, Any], max_jobs: int | None) -> dict[str, Any]:
    out = copy.deepcopy(config)
    out.setdefault("TrainingJobEarlyStoppingType", "Off")
    if max_jobs is not None:
        out["ResourceLimits"]["MaxNumberOfTrainingJobs"] = max_jobs
    return out


tunings: dict[str, TuningRun] = {}


def _reset() -> None:
    for run in list(tunings.values()):
        run.kill()
    for run in list(tunings.values()):
        run.done.wait(10)
    tunings.clear()


# Tuning jobs must stop launching trials before the training engine ends its jobs.
_reset_hooks.insert(0, _reset)


# --- validation (CreateHyperParameterTuningJob) -------------------------------------------------


def _validate_name(name: str) -> None:
    if len(name) > 32:
        raise invalid(f"1 validation error detected: Value '{name}' at 'hyperParameterTuningJobName' failed to "
                      "satisfy constraint: Member must have length less than or equal to 32")
    if not NAME_PATTERN.match(name):
        raise invalid(f"1 validation error detected: Value '{name}' at 'hyperParameterTuningJobName' failed to "
                      f"satisfy constraint: Member must satisfy regular expression pattern: {NAME_PATTERN.pattern}")
    if name in moto_state.backend("sagemaker").hyper_parameter_tuning_jobs:
        raise AWSError("ResourceInUse", f"Resource Already Exists: Hyper Parameter Tuning Job with name {name} "
                       "already exists. Choose a different name.")


def is_builtin(definition: dict[str, Any]) -> bool:
    image = images.parse(definition["AlgorithmSpecification"].get("TrainingImage", ""))
    program = (definition.get("StaticHyperParameters") or {}).get("sagemaker_program")
    return image.algorithm is not None and not program


def _objective(config: dict[str, Any], definition: dict[str, Any], builtin: bool) -> Objective:
    spec = config.get("HyperParameterTuningJobObjective")
    if spec is None:
        raise invalid("HyperParameterTuningJobConfig.HyperParameterTuningJobObjective is required: name the "
                      "metric to optimise (MetricName) and whether to Maximize or Minimize it (Type).")
    name, direction = spec["MetricName"], spec["Type"]
    defined = [m["Name"] for m in definition["AlgorithmSpecification"].get("MetricDefinitions") or []]
    if builtin and not defined:
        known = [m["Name"] for m in metrics.xgboost_definitions()]
        if name not in known:
            raise invalid(f"The objective metric [{name}] is not a metric of the built-in XGBoost algorithm. "
                          f"Choose one of: {', '.join(known)}.")
        wanted = "Maximize" if name.split(":", 1)[1] in XGBOOST_MAXIMIZED else "Minimize"
        if direction != wanted:
            raise invalid(f"The objective metric type, [{direction}], that you specified for objective metric, "
                          f"[{name}], isn't valid for the [xgboost] algorithm. Choose a valid objective metric "
                          f"type ({wanted}).")
    elif name not in defined:
        raise invalid("A metric is required for this hyperparameter tuning job objective. Provide a metric in the "
                      f"metric definitions. (Objective {name!r}; MetricDefinitions name {defined or 'none'}.)")
    return Objective(name, direction)


def _validate_definition(name: str, definition: dict[str, Any], space: list[Range]) -> None:
    static = definition.get("StaticHyperParameters") or {}
    both = sorted(set(static) & {r.name for r in space})
    if both:
        raise invalid(f"Hyperparameter(s) {', '.join(both)} are both static (StaticHyperParameters) and tunable "
                      "(ParameterRanges): keep each in one place.")
    if len(static) + len(space) + 1 > MAX_HYPERPARAMETERS:
        raise invalid(f"A tuning job can use at most {MAX_HYPERPARAMETERS} hyperparameters in total (static and "
                      f"tunable, {TUNING_METRIC} included); {len(static) + len(space) + 1} were given.")
    probe = {"TrainingJobName": f"{name}-000-00000000",
             "HyperParameters": dict(static),
             "AlgorithmSpecification": {k: v for k, v in definition["AlgorithmSpecification"].items()
                                        if k != "MetricDefinitions"},
             "RoleArn": definition["RoleArn"], "OutputDataConfig": definition["OutputDataConfig"],
             "ResourceConfig": resource_config(definition),
             "StoppingCondition": definition.get("StoppingCondition") or {},
             "InputDataConfig": definition.get("InputDataConfig") or [],
             "EnableManagedSpotTraining": definition.get("EnableManagedSpotTraining", False)}
    if definition.get("CheckpointConfig"):
        probe["CheckpointConfig"] = definition["CheckpointConfig"]
    try:
        api.validate_training_request(probe)
    except AWSError as err:
        raise AWSError(err.code, f"TrainingJobDefinition: {err.message}", err.status) from None
    image = images.parse(definition["AlgorithmSpecification"].get("TrainingImage", ""))
    if not image.emulated:
        raise invalid(images.not_emulated_message(image.uri).removeprefix("ClientError: "))


def _limits(config: dict[str, Any], space: list[Range]) -> tuple[int | None, int]:
    limits = config["ResourceLimits"]
    strategy = config["Strategy"]
    max_jobs = limits.get("MaxNumberOfTrainingJobs")
    if strategy == "Grid":
        not_categorical = [r.name for r in space if r.kind != "Categorical"]
        if not_categorical:
            raise invalid(f"The Grid strategy supports only categorical hyperparameters; {', '.join(not_categorical)} "
                          "are integer or continuous ranges. Give them as CategoricalParameterRanges, or use the "
                          "Bayesian or Random strategy.")
        combinations = GridStrategy.size(space)
        if max_jobs is not None and max_jobs != combinations:
            raise invalid(f"For the Grid strategy, MaxNumberOfTrainingJobs ({max_jobs}) must equal the number of "
                          f"distinct combinations of the categorical values ({combinations}), or be left out.")
        max_jobs = combinations
    elif max_jobs is None and not limits.get("MaxRuntimeInSeconds") and not config.get("TuningJobCompletionCriteria"):
        raise invalid("ResourceLimits must bound the tuning job: give MaxNumberOfTrainingJobs (or "
                      "MaxRuntimeInSeconds, or TuningJobCompletionCriteria).")
    return max_jobs, int(limits["MaxParallelTrainingJobs"])


def _hyperband(config: dict[str, Any], definition: dict[str, Any]) -> dict[str, int] | None:
    strategy_config = (config.get("StrategyConfig") or {}).get("HyperbandStrategyConfig")
    if config["Strategy"] != "Hyperband":
        if strategy_config is not None:
            raise invalid("StrategyConfig.HyperbandStrategyConfig is allowed only with the Hyperband strategy.")
        return None
    if config.get("TrainingJobEarlyStoppingType", "Off") != "Off":
        raise invalid("TrainingJobEarlyStoppingType must be Off with the Hyperband strategy, which has its own "
                      "early stopping.")
    hb = dict(strategy_config or {})
    if "MaxResource" not in hb:
        static = definition.get("StaticHyperParameters") or {}
        found = next((static[k] for k in EPOCH_KEYS if k in static), None)
        try:
            hb["MaxResource"] = int(float(str(found).strip('"'))) if found is not None else None
        except ValueError:
            hb["MaxResource"] = None
        if hb["MaxResource"] is None:
            raise invalid("HyperbandStrategyConfig.MaxResource is required when no static hyperparameter "
                          f"({', '.join(EPOCH_KEYS)}) gives the number of epochs.")
    if hb.get("MinResource", 1) > hb["MaxResource"]:
        raise invalid(f"HyperbandStrategyConfig.MinResource ({hb['MinResource']}) must not exceed MaxResource "
                      f"({hb['MaxResource']}).")
    config.setdefault("StrategyConfig", {})["HyperbandStrategyConfig"] = hb
    return hb


def _parents(request: dict[str, Any]) -> list[TuningRun]:
    warm = request.get("WarmStartConfig")
    if not warm:
        return []
    out = []
    for item in warm["ParentHyperParameterTuningJobs"]:
        name = item.get("HyperParameterTuningJobName", "")
        run = tunings.get(name)
        if run is None or name not in moto_state.backend("sagemaker").hyper_parameter_tuning_jobs:
            raise AWSError("ResourceNotFound", f"Parent tuning job {name!r} of WarmStartConfig was not found.")
        if not run.done.is_set():
            raise invalid(f"Parent tuning job {name!r} is {run.status}: a warm start needs parent jobs that have "
                          "ended (Completed, Stopped or Failed).")
        out.append(run)
    return out


def create(request: dict[str, Any]) -> TuningRun:
    """Validate, record and start a tuning job (the behaviour behind the API)."""
    name = request["HyperParameterTuningJobName"]
    _validate_name(name)
    if request.get("Autotune"):
        raise invalid("Autotune is not emulated offline: give ParameterRanges, ResourceLimits and a Strategy.")
    if request.get("TrainingJobDefinitions"):
        raise invalid("Several TrainingJobDefinitions (one tuning job over several algorithms) are not emulated "
                      "offline: give one TrainingJobDefinition with its ParameterRanges in "
                      "HyperParameterTuningJobConfig.")
    definition = request.get("TrainingJobDefinition")
    if definition is None:
        raise invalid("TrainingJobDefinition is required: it describes the training jobs the tuning job launches.")
    config = copy.deepcopy(request["HyperParameterTuningJobConfig"])
    space = parse_ranges(config.get("ParameterRanges"))
    builtin = is_builtin(definition)
    objective = _objective(config, definition, builtin)
    _validate_definition(name, definition, space)
    max_jobs, max_parallel = _limits(config, space)
    hyperband = _hyperband(config, definition)
    parents = _parents(request)
    seed = config.get("RandomSeed")
    strategy: Strategy
    if config["Strategy"] == "Grid":
        strategy = GridStrategy(space, seed)
    else:
        strategy = OptunaStrategy(space, seed, direction=objective.direction, kind=config["Strategy"],
                                  max_jobs=max_jobs, hyperband=hyperband)
    record = moto_state.backend("sagemaker").create_hyper_parameter_tuning_job(
        hyper_parameter_tuning_job_name=name, hyper_parameter_tuning_job_config=config,
        training_job_definition=definition, training_job_definitions=None,
        warm_start_config=request.get("WarmStartConfig"), tags=request.get("Tags") or [], autotune=None)
    record = moto_state.backend("sagemaker").hyper_parameter_tuning_jobs[name]
    for attr in ("best_training_job", "OverallBestTrainingJob", "tuning_job_completion_details", "consumed_resources"):
        setattr(record, attr, None)
    if max_jobs is not None:
        record.hyper_parameter_tuning_job_config["ResourceLimits"]["MaxNumberOfTrainingJobs"] = max_jobs
    request = {**request, "HyperParameterTuningJobConfig": config}
    run = TuningRun(request, record, copy.deepcopy(definition), space, strategy, objective, max_jobs, max_parallel,
                    builtin, parents)
    run._sync_record()
    tunings[name] = run
    run.start()
    return run


# --- the protocol layer ----------------------------------------------------------------------------


def _run(name: str) -> TuningRun:
    run = tunings.get(name)
    if run is None or name not in moto_state.backend("sagemaker").hyper_parameter_tuning_jobs:
        raise AWSError("ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name {name}")
    return run


@dispatch.operation("sagemaker", "CreateHyperParameterTuningJob")
def create_hyper_parameter_tuning_job(params: dict[str, Any]) -> dict[str, Any]:
    run = create(params)
    return {"HyperParameterTuningJobArn": run.record.arn}


@dispatch.operation("sagemaker", "DescribeHyperParameterTuningJob")
def describe_hyper_parameter_tuning_job(params: dict[str, Any]) -> dict[str, Any]:
    return _run(params["HyperParameterTuningJobName"]).describe()


@dispatch.operation("sagemaker", "StopHyperParameterTuningJob")
def stop_hyper_parameter_tuning_job(params: dict[str, Any]) -> dict[str, Any]:
    run = _run(params["HyperParameterTuningJobName"])
    if run.status != "InProgress":
        raise invalid(f"The request was rejected because the tuning job is in status {run.status}.")
    run.stop()
    return {}


SORT_KEYS = {
    "Name": lambda s: s["TrainingJobName"],
    "CreationTime": lambda s: s["CreationTime"],
    "Status": lambda s: s["TrainingJobStatus"],
    "FinalObjectiveMetricValue": lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
}


@dispatch.operation("sagemaker", "ListTrainingJobsForHyperParameterTuningJob")
def list_training_jobs_for_hyper_parameter_tuning_job(params: dict[str, Any]) -> dict[str, Any]:
    run = _run(params["HyperParameterTuningJobName"])
    summaries = [run.summary(t) for t in list(run.trials)]
    if params.get("StatusEquals"):
        summaries = [s for s in summaries if s["TrainingJobStatus"] == params["StatusEquals"]]
    sort_by = params.get("SortBy", "Name")
    if sort_by == "FinalObjectiveMetricValue":
        summaries = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
    summaries.sort(key=SORT_KEYS[sort_by], reverse=params.get("SortOrder", "Ascending") == "Descending")
    size = params.get("MaxResults", 10)
    if not 1 <= size <= 100:
        raise invalid(f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy constraint: "
                      "Member must have value less than or equal to 100")
    token = params.get("NextToken")
    try:
        start = int(token) if token else 0
    except ValueError:
        raise invalid(f'Invalid pagination token because "{token}".') from None
    page = summaries[start:start + size]
    out: dict[str, Any] = {"TrainingJobSummaries": page}
    if start + size < len(summaries):
        out["NextToken"] = str(start + size)
    shaped = shapes.describe("ListTrainingJobsForHyperParameterTuningJob", out)
    shaped.setdefault("TrainingJobSummaries", [])
    return shaped
