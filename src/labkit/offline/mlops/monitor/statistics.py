"""Data-quality statistics, suggested constraints and constraint checks (Model Monitor's analyzer).

The shapes are the documented ones (``statistics.json``, ``constraints.json``,
``constraint_violations.json``). The computations are real, on all rows:

- each column's type is inferred (``Integral`` when every present value is an integer,
  ``Fractional`` when every one is a number, else ``String``; ``Unknown`` when none is present);
- numeric columns get count, missing, mean, sum, population std dev, min, max, a
  10-bucket histogram (``distribution.kll.buckets``) and a quantile sketch
  (``distribution.kll.sketch.data``): the sorted values themselves up to 2,048 of them,
  else 2,048 evenly spaced quantiles, so the baseline's distribution travels with it;
- string columns get their distinct count and value counts (``distribution.categorical``).

Checks implemented when a dataset is compared with a baseline (``monitoring_config``
thresholds and per-feature ``monitoringConfigOverrides`` honoured):

- ``data_type_check``: the share of present values of the baseline's type is below
  ``datatype_check_threshold``;
- ``completeness_check``: the share of present values is below the feature's ``completeness``;
- ``baseline_drift_check``: numeric features, the L-infinity distance between the
  baseline's and the current empirical CDFs (the Kolmogorov-Smirnov statistic) exceeds
  ``comparison_threshold``; with ``comparison_method`` ``Robust`` the two-sample KS test
  must also reject equality at the 5% level (so a small sample's noise is not drift).
  String features: ``LInfinity`` distance between the category frequencies above
  ``categorical_comparison_threshold``, or for ``ChiSquared`` a chi-squared test at 5%;
- ``missing_column_check`` / ``extra_column_check``: fewer / more columns than the baseline;
- ``categorical_values_check``: the share of values inside the baseline's ``domains`` is
  below ``domain_content_threshold``.

Headerless data (captured CSV requests) is matched to the baseline's features by
position, as the analyzer does; columns are named ``_c0``, ``_c1``... without a baseline.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SKETCH_SIZE = 2048
BUCKETS = 10
DOMAIN_LIMIT = 20
DEFAULT_MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and value.strip() == "")


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _is_integral(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    text = str(value).strip()
    return text.lstrip("+-").isdigit()


def value_type(value: Any) -> str:
    if _is_integral(value):
        return "Integral"
    number = _as_number(value)
    if number is not None and math.isfinite(number):
        return "Fractional"
    return "String"


def infer_type(values: list[Any]) -> str:
    present = [v for v in values if not _missing(v)]
    if not present:
        return "Unknown"
    kinds = {value_type(v) for v in present}
    if kinds == {"Integral"}:
        return "Integral"
    if kinds <= {"Integral", "Fractional"}:
        return "Fractional"
    return "String"


def _sketch(numbers: np.ndarray) -> list[float]:
    ordered = np.sort(numbers)
    if len(ordered) <= SKETCH_SIZE:
        return ordered.tolist()
    return np.quantile(ordered, np.linspace(0, 1, SKETCH_SIZE)).tolist()


def feature_statistics(name: str, values: list[Any], kind: str | None = None) -> dict[str, Any]:
    """One entry of ``statistics.json``'s ``features``."""
    kind = kind or infer_type(values)
    present = [v for v in values if not _missing(v)]
    common = {"num_present": len(present), "num_missing": len(values) - len(present)}
    out: dict[str, Any] = {"name": name, "inferred_type": kind}
    if kind in ("Integral", "Fractional"):
        numbers = np.array([n for n in (_as_number(v) for v in present) if n is not None and math.isfinite(n)],
                           dtype=float)
        stats: dict[str, Any] = {"common": common}
        if len(numbers):
            lo, hi = float(numbers.min()), float(numbers.max())
            counts, edges = np.histogram(numbers, bins=BUCKETS, range=(lo, hi if hi > lo else lo + 1))
            stats.update(mean=float(numbers.mean()), sum=float(numbers.sum()), std_dev=float(numbers.std()),
                         min=lo, max=hi)
            stats["distribution"] = {"kll": {
                "buckets": [{"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]),
                             "count": float(counts[i])} for i in range(len(counts))],
                "sketch": {"parameters": {"c": 0.64, "k": float(SKETCH_SIZE)}, "data": [_sketch(numbers)]}}}
        out["numerical_statistics"] = stats
    else:
        texts = [str(v) for v in present]
        values_, tallies = np.unique(np.array(texts, dtype=object), return_counts=True) if texts else \
            (np.array([], dtype=object), np.array([], dtype=int))
        out["string_statistics"] = {
            "common": common, "distinct_count": float(len(values_)),
            "distribution": {"categorical": {"buckets": [{"value": str(v), "count": float(c)}
                                                         for v, c in zip(values_, tallies, strict=True)]}}}
    return out


def statistics(columns: dict[str, list[Any]], kinds: dict[str, str] | None = None) -> dict[str, Any]:
    """``statistics.json`` of a dataset given as ``{column: values}``."""
    kinds = kinds or {}
    count = max((len(v) for v in columns.values()), default=0)
    return {"version": 0, "dataset": {"item_count": count},
            "features": [feature_statistics(name, values, kinds.get(name)) for name, values in columns.items()]}


def suggest_constraints(stats: dict[str, Any]) -> dict[str, Any]:
    """``constraints.json`` suggested from a baseline's statistics."""
    features = []
    for f in stats["features"]:
        block = f.get("numerical_statistics") or f.get("string_statistics") or {}
        common = block.get("common", {})
        total = common.get("num_present", 0) + common.get("num_missing", 0)
        entry: dict[str, Any] = {"name": f["name"], "inferred_type": f["inferred_type"],
                                 "completeness": (common.get("num_present", 0) / total) if total else 0.0}
        if "numerical_statistics" in f and "min" in f["numerical_statistics"]:
            entry["num_constraints"] = {"is_non_negative": f["numerical_statistics"]["min"] >= 0}
        if "string_statistics" in f:
            buckets = f["string_statistics"]["distribution"]["categorical"]["buckets"]
            if 0 < len(buckets) <= DOMAIN_LIMIT:
                entry["string_constraints"] = {"domains": [b["value"] for b in buckets]}
        features.append(entry)
    return {"version": 0, "features": features, "monitoring_config": json_copy(DEFAULT_MONITORING_CONFIG)}


def json_copy(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


def _config(constraints: dict[str, Any], feature: dict[str, Any]) -> dict[str, Any]:
    config = json_copy(DEFAULT_MONITORING_CONFIG)
    given = constraints.get("monitoring_config") or {}
    for key, value in given.items():
        if key == "distribution_constraints":
            config[key].update(value or {})
        else:
            config[key] = value
    overrides = feature.get("monitoringConfigOverrides") or {}
    for key, value in overrides.items():
        if key == "distribution_constraints":
            config[key].update(value or {})
        else:
            config[key] = value
    return config


def _baseline_sample(feature: dict[str, Any]) -> np.ndarray:
    data = feature.get("numerical_statistics", {}).get("distribution", {}).get("kll", {}).get("sketch", {}).get(
        "data") or []
    return np.array([x for level in data for x in level], dtype=float)


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """L-infinity distance between the empirical CDFs of two samples."""
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def check(current: dict[str, list[Any]], baseline_stats: dict[str, Any],
          constraints: dict[str, Any]) -> list[dict[str, str]]:
    """``constraint_violations.json``'s violations of a dataset against its baseline."""
    from scipy import stats as sps

    violations: list[dict[str, str]] = []
    if (constraints.get("monitoring_config") or {}).get("evaluate_constraints", "Enabled") == "Disabled":
        return violations
    expected = [f["name"] for f in constraints.get("features", [])]
    names = list(current)
    if len(names) < len(expected):
        violations.append({"feature_name": ",".join(expected[len(names):]), "constraint_check_type":
                           "missing_column_check", "description": f"There are missing columns in current dataset. "
                           f"Number of columns in current dataset: {len(names)}, Number of columns in baseline "
                           f"constraints: {len(expected)}"})
    if len(names) > len(expected):
        violations.append({"feature_name": ",".join(names[len(expected):]), "constraint_check_type":
                           "extra_column_check", "description": f"There are extra columns in current dataset. "
                           f"Number of columns in current dataset: {len(names)}, Number of columns in baseline "
                           f"constraints: {len(expected)}"})
    base_features = {f["name"]: f for f in baseline_stats.get("features", [])}
    for feature in constraints.get("features", []):
        name = feature["name"]
        if name not in current:
            continue
        values = current[name]
        config = _config(constraints, feature)
        present = [v for v in values if not _missing(v)]
        kind = feature.get("inferred_type", "Unknown")
        if values and "completeness" in feature:
            completeness = len(present) / len(values)
            if completeness < float(feature["completeness"]) - 1e-12:
                violations.append({"feature_name": name, "constraint_check_type": "completeness_check",
                                   "description": f"Data completeness requirement is not met. Expected: "
                                   f"{_pct(float(feature['completeness']))}. Observed: Only {_pct(completeness)} of "
                                   "data is complete."})
        if present and kind in ("Integral", "Fractional", "String"):
            if kind == "Integral":
                share = sum(_is_integral(v) for v in present) / len(present)
            elif kind == "Fractional":
                share = sum(value_type(v) in ("Integral", "Fractional") for v in present) / len(present)
            else:
                share = 1.0
            threshold = float(config.get("datatype_check_threshold", 1.0))
            if share < threshold - 1e-12:
                violations.append({"feature_name": name, "constraint_check_type": "data_type_check",
                                   "description": f"Data type match requirement is not met. Expected data type: "
                                   f"{kind}, Expected match: {_pct(threshold)}. Observed: Only {_pct(share)} of data "
                                   f"is {kind}."})
        domains = (feature.get("string_constraints") or {}).get("domains")
        if domains and present:
            inside = sum(str(v) in set(domains) for v in present) / len(present)
            threshold = float(config.get("domain_content_threshold", 1.0))
            if inside < threshold - 1e-12:
                violations.append({"feature_name": name, "constraint_check_type": "categorical_values_check",
                                   "description": f"Data content requirement is not met. Expected: {_pct(threshold)} "
                                   f"of values in the baseline's domain {domains}. Observed: Only {_pct(inside)}."})
        dist = config.get("distribution_constraints") or {}
        base = base_features.get(name)
        if dist.get("perform_comparison", "Enabled") != "Enabled" or base is None or not present:
            continue
        if kind in ("Integral", "Fractional"):
            sample = _baseline_sample(base)
            numbers = np.array([n for n in (_as_number(v) for v in present) if n is not None and math.isfinite(n)])
            if not len(sample) or not len(numbers):
                continue
            distance = ks_distance(sample, numbers)
            threshold = float(dist.get("comparison_threshold", 0.1))
            drift = distance > threshold
            if drift and dist.get("comparison_method", "Robust") == "Robust":
                drift = sps.ks_2samp(sample, numbers).pvalue < 0.05
            if drift:
                violations.append({"feature_name": name, "constraint_check_type": "baseline_drift_check",
                                   "description": f"Baseline drift distance: {distance:.4g} exceeds threshold: "
                                   f"{threshold:g}"})
        elif "string_statistics" in base:
            buckets = base["string_statistics"]["distribution"]["categorical"]["buckets"]
            base_counts = {b["value"]: b["count"] for b in buckets}
            cur_counts: dict[str, int] = {}
            for v in present:
                cur_counts[str(v)] = cur_counts.get(str(v), 0) + 1
            keys = sorted(set(base_counts) | set(cur_counts))
            p = np.array([base_counts.get(k, 0) for k in keys], dtype=float)
            q = np.array([cur_counts.get(k, 0) for k in keys], dtype=float)
            threshold = float(dist.get("categorical_comparison_threshold", 0.1))
            distance = float(np.max(np.abs(p / p.sum() - q / q.sum())))
            if dist.get("categorical_drift_method", "LInfinity") == "ChiSquared":
                drift = sps.chi2_contingency(np.vstack([p, q]) + 0.5).pvalue < 0.05
            else:
                drift = distance > threshold
            if drift:
                violations.append({"feature_name": name, "constraint_check_type": "baseline_drift_check",
                                   "description": f"Baseline drift distance: {distance:.4g} exceeds threshold: "
                                   f"{threshold:g}"})
    return violations
