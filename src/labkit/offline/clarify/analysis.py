"""One Clarify analysis: an ``analysis_config.json`` and a dataset in, ``analysis.json`` out.

Plain Python, no files and no HTTP: :func:`analyze` takes the parsed configuration, the
dataset as a pandas frame (columns named by ``headers``) and, when the configuration has
a ``predictor``, a function that scores feature rows (what the shadow endpoint answers).
It returns :class:`Result`: the ``analysis.json`` document in the schema Clarify writes
(``version``, ``pre_training_bias_metrics``, ``post_training_bias_metrics``,
``explanations.kernel_shap``), the local SHAP values and the baseline used.

The configuration keys read are those of the documented ``analysis_config.json`` schema
(the SageMaker Python SDK's ``_AnalysisConfigGenerator`` writes them): ``headers``,
``label``, ``label_values_or_threshold``, ``facet`` (``name_or_index``,
``value_or_threshold``), ``group_variable``, ``excluded_columns``, ``predicted_label``,
``joinsource_name_or_index``, ``probability_threshold``, ``methods`` (``pre_training_bias``,
``post_training_bias``, ``shap``, ``report``) and ``predictor`` (``label``, ``probability``,
``label_headers``). SHAP is Kernel SHAP (:mod:`.kernel_shap`) against the configured
``baseline`` (or k-means centres of the data when none is given, as Clarify does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import kernel_shap
from . import metrics as bm

Predict = Callable[[pd.DataFrame], np.ndarray]
UNIQUENESS_THRESHOLD = 0.05  # a numeric column with this share of distinct values is continuous


class ConfigError(ValueError):
    """The analysis configuration cannot be applied to the data (a ClientError on AWS)."""


@dataclass
class Result:
    analysis: dict[str, Any]
    local_shap: pd.DataFrame | None = None
    baseline: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def _norm(value: Any) -> str:
    """A value as a comparable string: 1, 1.0 and "1" are the same label."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else repr(number)


def column(frame: pd.DataFrame, name_or_index: Any, what: str) -> str:
    if isinstance(name_or_index, int) and not isinstance(name_or_index, bool):
        if not 0 <= name_or_index < frame.shape[1]:
            raise ConfigError(f"{what} index {name_or_index} is out of range: the dataset has {frame.shape[1]} columns")
        return str(frame.columns[name_or_index])
    if str(name_or_index) not in frame.columns:
        raise ConfigError(f"{what} {name_or_index!r} is not a column of the dataset; the columns are "
                          f"{list(frame.columns)} (give 'headers' when the CSV has no header row)")
    return str(name_or_index)


def _continuous(series: pd.Series, values: list[Any] | None) -> bool:
    if values is not None and len(values) > 1:
        return False
    if not pd.api.types.is_numeric_dtype(series):
        return False
    if pd.api.types.is_float_dtype(series) and not (series.dropna() % 1 == 0).all():
        return True
    return series.nunique() / max(series.count(), 1) >= UNIQUENESS_THRESHOLD


def positive_mask(series: pd.Series, values: list[Any] | None, what: str) -> tuple[np.ndarray, str]:
    """Rows whose value is one of ``values`` (categorical) or above the single threshold
    (continuous), and the ``value_or_threshold`` text analysis.json shows for it."""
    if values is None or (isinstance(values, list) and not values):
        raise ConfigError(f"{what}: give the value(s) or threshold")
    values = values if isinstance(values, list) else [values]
    if _continuous(series, values):
        threshold = float(values[0])
        return (pd.to_numeric(series) > threshold).to_numpy(), f"({_norm(threshold)}, inf)"
    wanted = {_norm(v) for v in values}
    mask = series.map(_norm).isin(wanted).to_numpy()
    return mask, ",".join(_norm(v) for v in values)


@dataclass
class Columns:
    """Which column is which, resolved once from the configuration."""

    label: str | None
    facets: list[tuple[str, list[Any] | None]]
    group: str | None
    predicted: str | None
    features: list[str]


def resolve(config: dict[str, Any], frame: pd.DataFrame) -> Columns:
    label = column(frame, config["label"], "label") if config.get("label") is not None else None
    facets = [(column(frame, f["name_or_index"], "facet"), f.get("value_or_threshold"))
              for f in config.get("facet") or []]
    group = column(frame, config["group_variable"], "group_variable") if config.get("group_variable") is not None else None
    predicted = (column(frame, config["predicted_label"], "predicted_label")
                 if config.get("predicted_label") is not None else None)
    drop = {label, predicted}
    for item in config.get("excluded_columns") or []:
        drop.add(column(frame, item, "excluded column"))
    if config.get("joinsource_name_or_index") is not None:
        drop.add(column(frame, config["joinsource_name_or_index"], "joinsource"))
    features = [c for c in frame.columns if c not in drop]
    return Columns(label, facets, group, predicted, features)


def scores_to_labels(scores: np.ndarray, threshold: float | None) -> tuple[np.ndarray, bool]:
    """Predicted labels from the model's outputs: scores above the probability threshold are
    positive (0.5 unless configured); outputs that are already 0/1 labels are kept as they are."""
    scores = np.asarray(scores, dtype=float)
    if threshold is None and np.isin(scores, (0.0, 1.0)).all():
        return scores, False
    return (scores > (0.5 if threshold is None else float(threshold))).astype(float), True


def _facet_reports(frame: pd.DataFrame, cols: Columns, catalogue: dict[str, bm.Metric], methods: Any,
                   label_mask: np.ndarray, label_values: np.ndarray, predicted: np.ndarray | None) -> dict[str, Any]:
    chosen = bm.select(catalogue, methods, cols.group is not None)
    group = frame[cols.group].map(_norm).to_numpy() if cols.group else None
    numeric = frame[cols.features]
    features = numeric.to_numpy(dtype=float) if all(
        pd.api.types.is_numeric_dtype(numeric[c]) for c in numeric) else numeric.to_numpy()
    out: dict[str, list[dict[str, Any]]] = {}
    for name, values in cols.facets:
        series = frame[name]
        if values is None:  # every value of a categorical facet against the rest
            groups = [[v] for v in sorted(series.map(_norm).unique())]
        else:
            groups = [values if isinstance(values, list) else [values]]
        reports = []
        for value in groups:
            facet, text = positive_mask(series, value, f"facet {name}")
            inputs = {"facet": facet, "label": label_mask, "values": label_values, "group": group,
                      "predicted": predicted, "features": features}
            reports.append({"value_or_threshold": text, "metrics": [bm.compute(m, **inputs) for m in chosen]})
        out[name] = reports
    return out


def kmeans_baseline(X: pd.DataFrame, clusters: int, seed: int | None) -> tuple[pd.DataFrame, np.ndarray]:
    """Clarify's baseline when none is given: k-means centres of the data, weighted by cluster size."""
    from sklearn.cluster import KMeans

    k = max(1, min(clusters, len(X)))
    fit = KMeans(n_clusters=k, n_init=4, random_state=0 if seed is None else seed).fit(X.to_numpy(dtype=float))
    weights = np.bincount(fit.labels_, minlength=k).astype(float)
    return pd.DataFrame(fit.cluster_centers_, columns=X.columns), weights


def _shap(config: dict[str, Any], frame: pd.DataFrame, cols: Columns, predict: Predict,
          label_name: str) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    settings = config["methods"]["shap"]
    X = frame[cols.features]
    non_numeric = [c for c in cols.features if not pd.api.types.is_numeric_dtype(X[c])]
    if non_numeric:
        raise ConfigError(f"SHAP on tabular data needs numeric features; {non_numeric} are not (encode them, "
                          "or list them in excluded_columns)")
    baseline = settings.get("baseline")
    weights = None
    if isinstance(baseline, str):
        raise ConfigError("shap baseline given as an S3 URI: the offline Clarify container cannot read S3 itself; "
                          "give the baseline rows inline (SHAPConfig(baseline=[[...]])) or leave it out")
    if baseline is None:
        base, weights = kmeans_baseline(X, int(settings.get("num_clusters") or 10), settings.get("seed"))
    else:
        rows = [list(r) for r in baseline]
        if any(len(r) != len(cols.features) for r in rows):
            raise ConfigError(f"each shap baseline row needs {len(cols.features)} values, one per feature "
                              f"{cols.features} (the label and excluded columns are not features)")
        base = pd.DataFrame(rows, columns=cols.features)
    agg = settings.get("agg_method", "mean_abs")
    aggregate = {"mean_abs": lambda v: np.abs(v).mean(0), "median": lambda v: np.median(v, 0),
                 "mean_sq": lambda v: (v ** 2).mean(0)}
    if agg not in aggregate:
        raise ConfigError(f"agg_method {agg!r}: choose mean_abs, median or mean_sq")

    def f(array: np.ndarray) -> np.ndarray:
        return np.asarray(predict(pd.DataFrame(array, columns=cols.features)), dtype=float)

    values, expected = kernel_shap.explain(
        f, X.to_numpy(dtype=float), base.to_numpy(dtype=float), num_samples=settings.get("num_samples"),
        seed=settings.get("seed"), link="logit" if settings.get("use_logit") else "identity",
        baseline_weights=weights)
    global_values = aggregate[agg](values)
    section = {label_name: {"global_shap_values": {c: float(v) for c, v in zip(cols.features, global_values,
                                                                                 strict=True)},
                            "expected_value": expected}}
    return section, pd.DataFrame(values, columns=cols.features), base


def analyze(config: dict[str, Any], frame: pd.DataFrame, predict: Predict | None = None) -> Result:
    """Run every method the configuration asks for; see the module docstring."""
    methods = config.get("methods") or {}
    if not any(k in methods for k in ("pre_training_bias", "post_training_bias", "shap")):
        raise ConfigError("analysis_config has no method to run: add pre_training_bias, post_training_bias or shap")
    cols = resolve(config, frame)
    result = Result(analysis={"version": "1.0"})
    bias = any(k in methods for k in ("pre_training_bias", "post_training_bias"))
    label_mask = label_values = None
    label_text = ""
    if bias:
        if cols.label is None:
            raise ConfigError("bias metrics need the label column ('label' in DataConfig)")
        if not cols.facets:
            raise ConfigError("bias metrics need a facet (BiasConfig facet_name)")
        label_mask, label_text = positive_mask(frame[cols.label], config.get("label_values_or_threshold"),
                                               "label_values_or_threshold")
        thresholded = label_text.startswith("(")
        label_values = label_mask.astype(int) if thresholded else frame[cols.label].map(_norm).to_numpy()

    predicted_mask = None
    needs_model = "post_training_bias" in methods or "shap" in methods
    if needs_model:
        if cols.predicted is not None and "shap" not in methods:
            scores = pd.to_numeric(frame[cols.predicted]).to_numpy()
        elif predict is None:
            raise ConfigError("post-training bias and SHAP need a model: give ModelConfig (the 'predictor' "
                              "section) or a predicted label column")
        else:
            scores = np.asarray(predict(frame[cols.features]), dtype=float)
        predicted, thresholded = scores_to_labels(scores, config.get("probability_threshold"))
        result.predictions = pd.DataFrame({"score": scores, "predicted_label": predicted})
        if bias:
            if thresholded:
                predicted_mask = predicted.astype(bool)
            else:
                predicted_mask = positive_mask(pd.Series(predicted), config.get("label_values_or_threshold"),
                                               "label_values_or_threshold")[0]

    if "pre_training_bias" in methods:
        assert label_mask is not None and label_values is not None  # set above for every bias method
        result.analysis["pre_training_bias_metrics"] = {
            "label": cols.label, "label_value_or_threshold": label_text,
            "facets": _facet_reports(frame, cols, bm.PRE_TRAINING, methods["pre_training_bias"].get("methods", "all"),
                                     label_mask, label_values, None)}
    if "post_training_bias" in methods:
        assert label_mask is not None and label_values is not None
        result.analysis["post_training_bias_metrics"] = {
            "label": cols.label, "label_value_or_threshold": label_text,
            "facets": _facet_reports(frame, cols, bm.POST_TRAINING,
                                     methods["post_training_bias"].get("methods", "all"),
                                     label_mask, label_values, predicted_mask)}
    if "shap" in methods:
        assert predict is not None
        headers = (config.get("predictor") or {}).get("label_headers")
        label_name = str(headers[0]) if headers else "label0"
        section, local, base = _shap(config, frame, cols, predict, label_name)
        result.analysis["explanations"] = {"kernel_shap": section}
        result.local_shap, result.baseline = local, base
    return result
