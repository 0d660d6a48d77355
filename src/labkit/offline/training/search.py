"""A tuning job's search: the hyperparameter ranges, the strategies that pick values (Bayesian,
Random and Hyperband on Optuna, Grid), and AWS's early-stopping rule. Plain classes, no AWS calls.
"""

from __future__ import annotations

import itertools
import math
import statistics
import warnings
from dataclasses import dataclass
from typing import Any

from ..dispatch import AWSError

EARLY_STOPPING_MIN_TRIALS = 3
MAX_TUNED = 30


def invalid(message: str) -> AWSError:
    return AWSError("ValidationException", message)


# --- the search space ------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """One tunable hyperparameter: ``Integer``, ``Continuous`` or ``Categorical``."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Auto"
    values: tuple[str, ...] = ()

    def distribution(self) -> Any:
        """The optuna distribution sampled for this range (in its scale)."""
        from optuna import distributions as d

        if self.kind == "Categorical":
            return d.CategoricalDistribution(self.values)
        if self.kind == "Integer":
            return d.IntDistribution(int(self.low), int(self.high), log=self.scaling == "Logarithmic")
        if self.scaling == "ReverseLogarithmic":  # sample 1 - x on a log scale
            return d.FloatDistribution(1.0 - self.high, 1.0 - self.low, log=True)
        return d.FloatDistribution(self.low, self.high, log=self.scaling == "Logarithmic")

    def to_value(self, sampled: Any) -> str:
        """The hyperparameter value the trial gets (a string, as AWS passes it)."""
        if self.kind == "Categorical":
            return str(sampled)
        if self.kind == "Integer":
            return str(int(sampled))
        x = 1.0 - float(sampled) if self.scaling == "ReverseLogarithmic" else float(sampled)
        return repr(min(max(x, self.low), self.high))

    def from_value(self, value: str) -> Any:
        """The sampled value behind a trial's hyperparameter (warm start), or ``None`` if outside."""
        try:
            if self.kind == "Categorical":
                return value if value in self.values else None
            x = int(value) if self.kind == "Integer" else float(value)
        except ValueError:
            return None
        if not self.low <= x <= self.high:
            return None
        return 1.0 - x if self.scaling == "ReverseLogarithmic" else x


def _number(text: Any, kind: str, what: str, name: str) -> float:
    try:
        return float(int(text)) if kind == "Integer" else float(text)
    except (TypeError, ValueError):
        raise invalid(f"The {what} '{text}' of hyperparameter '{name}' is not a valid "
                      f"{'integer' if kind == 'Integer' else 'number'}.") from None


def parse_ranges(ranges: dict[str, Any] | None) -> list[Range]:
    """``ParameterRanges`` as :class:`Range` objects, validated as AWS validates them."""
    ranges = ranges or {}
    if ranges.get("AutoParameters"):
        raise invalid("AutoParameters (Autotune) are not emulated offline: give IntegerParameterRanges, "
                      "ContinuousParameterRanges or CategoricalParameterRanges.")
    out: list[Range] = []
    for kind in ("Integer", "Continuous"):
        for item in ranges.get(f"{kind}ParameterRanges") or []:
            name, scaling = item["Name"], item.get("ScalingType", "Auto")
            low = _number(item["MinValue"], kind, "MinValue", name)
            high = _number(item["MaxValue"], kind, "MaxValue", name)
            if low > high:
                raise invalid(f"The MinValue ({item['MinValue']}) of hyperparameter '{name}' must be less than or "
                              f"equal to its MaxValue ({item['MaxValue']}).")
            if scaling == "Logarithmic" and low <= 0:
                raise invalid(f"Hyperparameter '{name}': Logarithmic scaling works only for ranges whose values are "
                              f"all greater than 0 (MinValue is {item['MinValue']}). Use Linear scaling, or raise "
                              "MinValue above 0.")
            if scaling == "ReverseLogarithmic":
                if kind == "Integer":
                    raise invalid(f"Hyperparameter '{name}': ReverseLogarithmic scaling is supported only for "
                                  "continuous hyperparameters (ranges within 0 <= x < 1.0).")
                if low < 0 or high >= 1:
                    raise invalid(f"Hyperparameter '{name}': ReverseLogarithmic scaling works only for ranges "
                                  f"entirely within 0 <= x < 1.0 (got {item['MinValue']} to {item['MaxValue']}).")
            out.append(Range(name, kind, low, high, scaling))
    for item in ranges.get("CategoricalParameterRanges") or []:
        values = tuple(item["Values"])
        if len(set(values)) != len(values):
            raise invalid(f"The values of categorical hyperparameter '{item['Name']}' must be unique: {list(values)}.")
        out.append(Range(item["Name"], "Categorical", values=values))
    names = [r.name for r in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise invalid(f"Hyperparameter names must be unique across ParameterRanges: {', '.join(repeated)} repeated.")
    if len(out) > MAX_TUNED:
        raise invalid(f"A tuning job can search at most {MAX_TUNED} hyperparameters; {len(out)} were given.")
    if not out:
        raise invalid("ParameterRanges must name at least one hyperparameter to tune (IntegerParameterRanges, "
                      "ContinuousParameterRanges or CategoricalParameterRanges).")
    return out


# --- strategies ----------------------------------------------------------------------------


class Strategy:
    """Chooses each trial's hyperparameters; learns from the results it is told."""

    def __init__(self, space: list[Range], seed: int | None):
        self.space = space
        self.seed = seed

    def ask(self) -> tuple[Any, dict[str, str]] | None:
        """(a key for :meth:`tell`, the trial's tuned hyperparameters), or ``None`` when exhausted."""
        raise NotImplementedError

    def tell(self, key: Any, value: float | None) -> None:
        """The trial's objective (``None``: failed or no objective)."""

    def report(self, key: Any, step: int, value: float) -> bool:
        """An intermediate objective value; ``True`` when the strategy stops the trial here."""
        return False

    def seed_with(self, tuned: dict[str, str], value: float) -> None:
        """A finished trial of a parent tuning job (warm start)."""


class OptunaStrategy(Strategy):
    """Random, Bayesian (TPE) and Hyperband strategies on an in-memory optuna study."""

    def __init__(self, space: list[Range], seed: int | None, *, direction: str, kind: str,
                 max_jobs: int | None = None, hyperband: dict[str, int] | None = None):
        super().__init__(space, seed)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            pruner: Any = optuna.pruners.NopPruner()
            if kind == "Bayesian":
                startup = min(10, max(2, math.ceil((max_jobs or 30) / 4)))
                sampler: Any = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                                          constant_liar=True)
            else:
                sampler = optuna.samplers.RandomSampler(seed=seed)
            if kind == "Hyperband":
                hb = hyperband or {}
                pruner = optuna.pruners.HyperbandPruner(min_resource=hb.get("MinResource", 1),
                                                        max_resource=hb["MaxResource"], reduction_factor=3)
        self.study = optuna.create_study(direction="maximize" if direction == "Maximize" else "minimize",
                                         sampler=sampler, pruner=pruner)
        self.kind = kind
        self._distributions = {r.name: r.distribution() for r in space}

    def ask(self) -> tuple[Any, dict[str, str]] | None:
        trial = self.study.ask(self._distributions)
        return trial, {r.name: r.to_value(trial.params[r.name]) for r in self.space}

    def tell(self, key: Any, value: float | None) -> None:
        import optuna

        if value is None or not math.isfinite(value):
            self.study.tell(key, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(key, value)

    def report(self, key: Any, step: int, value: float) -> bool:
        if self.kind != "Hyperband":
            return False
        key.report(value, step)
        return key.should_prune()

    def seed_with(self, tuned: dict[str, str], value: float) -> None:
        import optuna

        params = {}
        for r in self.space:
            if r.name not in tuned:
                return
            sampled = r.from_value(tuned[r.name])
            if sampled is None:
                return
            params[r.name] = sampled
        self.study.add_trial(optuna.trial.create_trial(params=params, distributions=self._distributions,
                                                       value=value))


class GridStrategy(Strategy):
    """Every combination of the categorical values, in the order given."""

    def __init__(self, space: list[Range], seed: int | None):
        super().__init__(space, seed)
        self._combinations = itertools.product(*(r.values for r in space))

    @staticmethod
    def size(space: list[Range]) -> int:
        return math.prod(len(r.values) for r in space)

    def ask(self) -> tuple[Any, dict[str, str]] | None:
        combination = next(self._combinations, None)
        if combination is None:
            return None
        return None, {r.name: value for r, value in zip(self.space, combination, strict=True)}


# --- early stopping ----------------------------------------------------------------------------


def worse(value: float, reference: float, direction: str) -> bool:
    return value < reference if direction == "Maximize" else value > reference


def median_rule(value: float, step: int, earlier: list[list[float]], direction: str) -> bool:
    """AWS's rule: stop if ``value`` at ``step`` (1-based) is worse than the median of the earlier
    trials' running averages up to that step (only trials that reached the step count)."""
    averages = [statistics.fmean(series[:step]) for series in earlier if len(series) >= step]
    if len(averages) < EARLY_STOPPING_MIN_TRIALS:
        return False
    return worse(value, statistics.median(averages), direction)


