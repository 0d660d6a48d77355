"""Debugger's built-in rules, evaluated on what a training job emitted.

Rules read a :class:`Trial`: the tensors the job's hook saved (:mod:`.hook`: losses,
gradients, weights as reductions per saved step) and the system metrics the profiler
sampled (:mod:`.profiler`). Each rule returns :class:`Verdict` ``(fired, detail)`` or raises
:class:`NoData` when the trial lacks what it needs (the rule then ends in ``Error``).
Parameters and defaults are those of the AWS documentation's "List of Debugger built-in
rules" (values arrive as strings in ``RuleParameters``, as the API sends them). A rule the
offline backend does not implement ends in ``Error`` with a message naming the ones it does.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class NoData(Exception):
    """The trial has none of the tensors or metrics the rule inspects."""


@dataclass
class Verdict:
    fired: bool
    detail: str = ""
    step: int | None = None


@dataclass
class Trial:
    """What one job emitted so far (read again as the job runs)."""

    tensors: list[dict[str, Any]] = field(default_factory=list)
    system: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    running: bool = True

    @classmethod
    def read(cls, folder: Path | None, system: list[dict[str, Any]] | None = None, started: float | None = None,
             running: bool = True) -> Trial:
        tensors: list[dict[str, Any]] = []
        if folder is not None and folder.is_dir():
            for path in sorted(folder.glob("*.jsonl")):
                for line in path.read_text().splitlines():
                    try:
                        tensors.append(json.loads(line))
                    except ValueError:  # a line being written
                        continue
        return cls(tensors, list(system or []), started or time.time(), running)

    def select(self, collections: list[str] | None = None, regex: list[str] | None = None) -> list[dict[str, Any]]:
        patterns = [re.compile(r) for r in regex or []]
        return [t for t in self.tensors
                if (collections and t["collection"] in collections) or any(p.search(t["name"]) for p in patterns)]

    def losses(self, mode: str, by: str = "mode_step") -> list[tuple[int, float]]:
        """``(step, loss)`` of one mode, by the mode's own step count or the global ``step``."""
        values = [(t[by], t["value"]) for t in self.tensors
                  if t["collection"] == "losses" and t["mode"] == mode and "value" in t]
        return sorted(values)


def _list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    return value if isinstance(value, list) else [v.strip() for v in str(value).split(",") if v.strip()]


def _flag(value: Any, default: bool) -> bool:
    return default if value is None else str(value).lower() in ("true", "1", "yes")


def _mode(trial: Trial, params: dict[str, Any]) -> str:
    if params.get("mode"):
        return str(params["mode"]).upper()
    return "EVAL" if trial.losses("EVAL") else "TRAIN"


def loss_not_decreasing(trial: Trial, p: dict[str, Any]) -> Verdict:
    """Every ``num_steps`` saved steps, the loss must have fallen by ``diff_percent`` percent."""
    num_steps, diff = int(p.get("num_steps", 10)), float(p.get("diff_percent", 0.1))
    mode = _mode(trial, p)
    series = trial.losses(mode)
    if not series:
        raise NoData(f"no {mode} losses were saved (the 'losses' collection: a torch.nn loss module's output)")
    checked = series[0]
    for step, value in series[1:]:
        if step - checked[0] < num_steps:
            continue
        if value > checked[1] * (1 - diff / 100):
            return Verdict(True, f"{mode} loss {value:.6g} at step {step} is not {diff}% below {checked[1]:.6g} "
                                 f"at step {checked[0]}", step)
        checked = (step, value)
    return Verdict(False)


def vanishing_gradient(trial: Trial, p: dict[str, Any]) -> Verdict:
    """The mean absolute value of a gradient falls below ``threshold``."""
    threshold = float(p.get("threshold", 0.0000001))
    grads = [t for t in trial.tensors if t["collection"] == "gradients" and "abs_mean" in t]
    if not grads:
        raise NoData("no gradients were saved (add the 'gradients' collection to DebugHookConfig)")
    for t in grads:
        if t["abs_mean"] < threshold:
            return Verdict(True, f"{t['name']} has mean |gradient| {t['abs_mean']:.3g} < {threshold} at step "
                                 f"{t['step']}", t["step"])
    return Verdict(False)


def exploding_tensor(trial: Trial, p: dict[str, Any]) -> Verdict:
    """A saved tensor holds NaN (or, unless ``only_nan``, an infinite value)."""
    only_nan = _flag(p.get("only_nan"), False)
    chosen = trial.select(_list(p.get("collection_names")), _list(p.get("tensor_regex"))) or trial.tensors
    if not chosen:
        raise NoData("no tensors were saved")
    for t in chosen:
        if t["nan"] or (not only_nan and t["inf"]):
            return Verdict(True, f"{t['name']} holds {t['nan']} NaN and {t['inf']} infinite values at step "
                                 f"{t['step']}", t["step"])
    return Verdict(False)


def overfit(trial: Trial, p: dict[str, Any]) -> Verdict:
    """(validation loss - training loss) / training loss above ``ratio_threshold``, ``patience`` times in a row."""
    start, patience, ratio = int(p.get("start_step", 0)), int(p.get("patience", 1)), float(p.get("ratio_threshold", 0.1))
    train, val = trial.losses("TRAIN", by="step"), trial.losses("EVAL", by="step")
    if not train or not val:
        raise NoData("Overfit needs both TRAIN and EVAL losses (run the model in eval mode on validation data)")
    run = 0
    train_steps = [s for s, _ in train]
    for step, value in val:
        if step < start:
            continue
        # the last training loss saved before this evaluation
        train_loss = train[max(0, int(np.searchsorted(train_steps, step, side="right")) - 1)][1]
        if train_loss > 0 and (value - train_loss) / train_loss > ratio:
            run += 1
            if run >= patience:
                return Verdict(True, f"validation loss {value:.4g} is {(value - train_loss) / train_loss:.0%} above "
                                     f"training loss {train_loss:.4g} (threshold {ratio:.0%})", step)
        else:
            run = 0
    return Verdict(False)


def overtraining(trial: Trial, p: dict[str, Any]) -> Verdict:
    """Validation loss no better by ``delta`` for ``patience_validation`` evaluations (or training
    loss for ``patience_train`` steps): training longer no longer helps."""
    delta = float(p.get("delta", 0.01))
    for mode, patience in (("EVAL", int(p.get("patience_validation", 10))), ("TRAIN", int(p.get("patience_train", 5)))):
        series = [v for _, v in trial.losses(mode)]
        if len(series) <= patience:
            continue
        best = series[0]
        since = 0
        for value in series[1:]:
            if value < best - delta * abs(best):
                best, since = value, 0
            else:
                since += 1
                if since >= patience:
                    return Verdict(True, f"{mode} loss has not improved by {delta:.0%} for {patience} saved steps")
    if not trial.losses("TRAIN") and not trial.losses("EVAL"):
        raise NoData("no losses were saved")
    return Verdict(False)


def stalled_training(trial: Trial, p: dict[str, Any]) -> Verdict:
    """No new step for ``threshold`` seconds while the job runs."""
    threshold = float(p.get("threshold", 1800))
    last = max([t["time"] for t in trial.tensors], default=trial.started)
    if trial.running and time.time() - last > threshold:
        return Verdict(True, f"no step saved for {time.time() - last:.0f} s (threshold {threshold:.0f} s)")
    return Verdict(False)


def _utilisation(trial: Trial, dimension: str) -> np.ndarray:
    return np.array([m["Value"] for m in trial.system if m["Dimension"] == dimension], float)


def low_gpu_utilization(trial: Trial, p: dict[str, Any]) -> Verdict:
    """GPU utilisation's 95th percentile below ``threshold_p95`` (underused), or above it with a
    5th percentile below ``threshold_p5`` (fluctuating), after ``patience`` data points."""
    gpu = _utilisation(trial, "GPUUtilization")
    patience = int(p.get("patience", 1000))
    if len(gpu) == 0:
        return Verdict(False, "the instance has no GPU metrics (no GPU)")
    window = gpu[patience:] if len(gpu) > patience else gpu
    p95, p5 = np.percentile(window, 95), np.percentile(window, 5)
    if p95 < float(p.get("threshold_p95", 70)):
        return Verdict(True, f"GPU utilisation p95 {p95:.0f}% < {p.get('threshold_p95', 70)}%: the GPU is underused")
    if p5 < float(p.get("threshold_p5", 10)):
        return Verdict(True, f"GPU utilisation fluctuates: p5 {p5:.0f}%")
    return Verdict(False)


def cpu_bottleneck(trial: Trial, p: dict[str, Any]) -> Verdict:
    """CPU above ``threshold`` percent while the GPU is below ``gpu_threshold`` percent."""
    cpu, gpu = _utilisation(trial, "CPUUtilization"), _utilisation(trial, "GPUUtilization")
    if len(gpu) == 0:
        return Verdict(False, "no GPU metrics: a CPU bottleneck starves a GPU, and there is none")
    n = min(len(cpu), len(gpu))
    busy = (cpu[:n] > float(p.get("threshold", 50))) & (gpu[:n] < float(p.get("gpu_threshold", 10)))
    if n and busy.mean() > 0.5:
        return Verdict(True, f"CPU busy and GPU idle in {busy.mean():.0%} of the samples")
    return Verdict(False)


def max_initialization_time(trial: Trial, p: dict[str, Any]) -> Verdict:
    """The first step comes more than ``threshold`` minutes after the job started."""
    threshold = float(p.get("threshold", 20)) * 60
    first = min([t["time"] for t in trial.tensors], default=None)
    waited = (first if first is not None else time.time()) - trial.started
    if waited > threshold:
        return Verdict(True, f"initialization took {waited / 60:.1f} min (threshold {threshold / 60:.0f} min)")
    return Verdict(False)


def report_only(trial: Trial, p: dict[str, Any]) -> Verdict:
    """Report rules summarise the metrics; they never find an issue."""
    return Verdict(False, "report rule")


Rule = Callable[[Trial, dict[str, Any]], Verdict]
DEBUGGER_RULES: dict[str, Rule] = {
    "LossNotDecreasing": loss_not_decreasing, "VanishingGradient": vanishing_gradient,
    "ExplodingTensor": exploding_tensor, "Overfit": overfit, "Overtraining": overtraining,
    "StalledTrainingRule": stalled_training,
}
PROFILER_RULES: dict[str, Rule] = {
    "LowGPUUtilization": low_gpu_utilization, "CPUBottleneck": cpu_bottleneck,
    "MaxInitializationTime": max_initialization_time, "OverallSystemUsage": report_only,
    "ProfilerReport": report_only,
}


def lookup(name: str, catalogue: dict[str, Rule]) -> Rule:
    if name not in catalogue:
        raise KeyError(f"built-in rule {name!r} is not emulated offline; the offline backend evaluates "
                       f"{', '.join(sorted(catalogue))}")
    return catalogue[name]
