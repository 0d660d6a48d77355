"""MetricDefinitions: regexes over the job's log lines, as SageMaker applies them.

Lines are matched as they appear in CloudWatch (tabs written as ``#011``); the first
group of a match is the value. The last value of each metric is its final value
(``FinalMetricDataList``); the full series is kept for tuning's early stopping.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from typing import Any

XGBOOST_METRICS = ("accuracy", "auc", "aucpr", "error", "f1", "gamma-deviance", "logloss", "mae", "map",
                   "merror", "mlogloss", "mse", "ndcg", "rmse", "rmsle", "mape", "poisson-nloglik", "r2",
                   "cox-nloglik", "tweedie-nloglik")
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def xgboost_definitions() -> list[dict[str, str]]:
    """The metric definitions SageMaker attaches to the built-in XGBoost algorithm."""
    defs = []
    for channel in ("train", "validation"):
        for metric in XGBOOST_METRICS:
            defs.append({"Name": f"{channel}:{metric}",
                         "Regex": rf".*\[[0-9]+\].*#011{channel}-{metric}:{_NUMBER}.*"})
    return defs


class MetricCollector:
    """Applies metric regexes to log lines; thread-safe (several hosts write at once)."""

    def __init__(self, definitions: list[dict[str, str]] | None):
        self._defs = [(d["Name"], re.compile(d["Regex"])) for d in definitions or []]
        self._lock = threading.Lock()
        self.series: dict[str, list[tuple[dt.datetime, float]]] = {}

    def feed(self, line: str) -> None:
        for name, regex in self._defs:
            m = regex.search(line)
            if not m:
                continue
            try:
                value = float(m.group(1) if m.groups() else m.group(0))
            except (ValueError, IndexError):
                continue
            with self._lock:
                self.series.setdefault(name, []).append((dt.datetime.now(dt.UTC), value))

    def final(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"MetricName": name, "Value": values[-1][1], "Timestamp": values[-1][0]}
                    for name, values in self.series.items()]

    def values(self, name: str) -> list[float]:
        with self._lock:
            return [v for _, v in self.series.get(name, [])]
