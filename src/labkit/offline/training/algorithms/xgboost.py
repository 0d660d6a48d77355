"""The built-in XGBoost algorithm container (``sagemaker-xgboost``), run locally.

Run as ``python -m labkit.offline.training.algorithms.xgboost`` inside a job's host,
it reads the job from the container contract like the real container does:
``input/config/hyperparameters.json`` and ``inputdataconfig.json``, channels ``train``
(required) and ``validation`` (optional) in CSV (label in the first column, no header),
libsvm (the default) or Parquet (label in the first column); writes the booster to
``<model dir>/xgboost-model`` and prints the evaluation log the real container prints
(``[0]\ttrain-auc:...\tvalidation-auc:...``), which the platform matches with the
algorithm's metric definitions (``validation:auc``...).

Differences from the real container: it is the installed xgboost (3.x), not the
container's 1.x, and the model file is in xgboost's UBJSON format (load it with
``xgboost.Booster(model_file=...)`` or ``Booster().load_model``); RecordIO-protobuf input
and distributed (multi-instance) training are not emulated: a job asking for them fails
with a ClientError saying so.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

INT_PARAMS = {"csv_weights", "num_round", "max_depth", "num_class", "early_stopping_rounds", "seed", "max_leaves", "max_bin",
              "num_parallel_tree", "verbosity", "silent", "nthread", "max_cat_to_onehot", "updater_seq"}
FLOAT_PARAMS = {"eta", "learning_rate", "gamma", "min_child_weight", "subsample", "colsample_bytree",
                "colsample_bylevel", "colsample_bynode", "lambda", "reg_lambda", "alpha", "reg_alpha",
                "scale_pos_weight", "max_delta_step", "base_score", "tweedie_variance_power", "sketch_eps",
                "rate_drop", "skip_drop", "lambda_bias"}
STR_PARAMS = {"objective", "eval_metric", "booster", "tree_method", "grow_policy", "sampling_method",
              "process_type", "sample_type", "normalize_type", "dsplit", "interaction_constraints",
              "monotone_constraints", "prob_buffer_row", "refresh_leaf", "one_drop",
              "deterministic_histogram", "save_model_on_termination", "single_precision_histogram",
              "use_dask_gpu_training", "updater"}
IGNORED = {"save_model_on_termination", "single_precision_histogram", "use_dask_gpu_training",
           "deterministic_histogram", "silent", "dsplit", "prob_buffer_row", "_kfold", "_num_cv_round"}


def import_xgboost() -> Any:
    """The ``xgboost`` package, imported without scikit-learn where nothing imported it yet.

    ``import xgboost`` imports scikit-learn for its estimator classes (``xgboost.compat``):
    1 of the 1.5 CPU seconds that import takes, in every job. The algorithm uses
    only the core API (``DMatrix``, ``train``); the libsvm reader imports scikit-learn
    itself when a channel needs it. xgboost falls back to placeholders for the estimator
    classes when scikit-learn cannot be imported, as in a container without it.
    """
    if "xgboost" not in sys.modules and "sklearn" not in sys.modules:
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # an import of it fails: xgboost's fallback
        try:
            import xgboost
        finally:
            del sys.modules["sklearn"]
    import xgboost

    return xgboost


class ClientError(Exception):
    """A problem with the job's input: written to the failure file as ``ClientError: ...``."""


def parse_hyperparameters(raw: dict[str, str]) -> tuple[dict[str, Any], int, int | None]:
    """(xgboost params, num_round, early_stopping_rounds), validated as the container does."""
    params: dict[str, Any] = {}
    known = INT_PARAMS | FLOAT_PARAMS | STR_PARAMS | IGNORED
    for key, value in raw.items():
        if key.startswith("sagemaker_") or key.startswith("_tuning_objective_metric"):
            continue
        if key not in known:
            raise ClientError(f"Hyperparameter Validation Error: {key!r} is not a valid hyperparameter of the "
                              f"XGBoost algorithm. Valid names include: {', '.join(sorted(INT_PARAMS | FLOAT_PARAMS))}, "
                              "objective, eval_metric, booster, tree_method.")
        value = str(value).strip('"')
        try:
            if key in INT_PARAMS:
                params[key] = int(float(value))
            elif key in FLOAT_PARAMS:
                params[key] = float(value)
            elif key not in IGNORED:
                params[key] = value
        except ValueError:
            kind = "an integer" if key in INT_PARAMS else "a number"
            raise ClientError(f"Hyperparameter Validation Error: {key} must be {kind}, got {value!r}.") from None
    if "num_round" not in params:
        raise ClientError("Hyperparameter Validation Error: num_round is a required hyperparameter "
                          "(the number of boosting rounds), e.g. num_round='100'.")
    num_round = params.pop("num_round")
    early = params.pop("early_stopping_rounds", None)
    params.pop("verbosity", None)
    if "eval_metric" in params:
        params["eval_metric"] = [m.strip() for m in params["eval_metric"].split(",") if m.strip()]
    params.setdefault("objective", "reg:squarederror")
    if params["objective"] == "reg:linear":
        params["objective"] = "reg:squarederror"
    return params, num_round, early


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def load_channel(folder: Path, content_type: str | None, csv_weights: bool = False) -> Any:
    """A DMatrix from a channel folder in the container's formats (``csv_weights``: the CSV's
    second column is each row's instance weight, as the container reads it)."""
    import numpy as np

    xgb = import_xgboost()
    kind = (content_type or "libsvm").split(";")[0].strip().lower()
    files = _files(folder)
    if not files:
        raise ClientError(f"No data found in channel {folder.name!r} ({folder}).")
    if kind in ("text/csv", "csv"):
        arrays = []
        for f in files:
            try:
                arrays.append(np.loadtxt(f, delimiter=",", ndmin=2, dtype=np.float32))
            except ValueError as err:
                raise ClientError(f"Unable to parse CSV file {f.name} in channel {folder.name!r}: {err}. "
                                  "The XGBoost algorithm expects numeric CSV with the label in the first "
                                  "column and no header row.") from None
        data = np.vstack(arrays)
        if csv_weights:
            return xgb.DMatrix(data[:, 2:], label=data[:, 0], weight=data[:, 1])
        return xgb.DMatrix(data[:, 1:], label=data[:, 0])
    if kind in ("text/libsvm", "libsvm", "text/x-libsvm"):
        from sklearn.datasets import load_svmlight_files

        parts = load_svmlight_files([str(f) for f in files])
        import scipy.sparse as sp

        X = sp.vstack(parts[0::2])
        y = np.concatenate(parts[1::2])
        return xgb.DMatrix(X, label=y)
    if kind in ("application/x-parquet", "parquet"):
        import pandas as pd

        frame = pd.concat([pd.read_parquet(f) for f in files])
        return xgb.DMatrix(frame.iloc[:, 1:].to_numpy(), label=frame.iloc[:, 0].to_numpy())
    raise ClientError(f"Content type {content_type!r} of channel {folder.name!r} is not supported offline: use "
                      "text/csv, text/libsvm or application/x-parquet (RecordIO-protobuf is not emulated).")


def train(config_dir: Path, data_dir: Path, model_dir: Path) -> Any:
    raw = json.loads((config_dir / "hyperparameters.json").read_text())
    channels = json.loads((config_dir / "inputdataconfig.json").read_text())
    resources = json.loads((config_dir / "resourceconfig.json").read_text())
    if len(resources.get("hosts", [])) > 1:
        raise ClientError("Distributed XGBoost (InstanceCount > 1) is not emulated offline; use InstanceCount=1.")
    params, num_round, early = parse_hyperparameters(raw)
    if "train" not in channels:
        raise ClientError("The XGBoost algorithm needs a 'train' channel (and optionally 'validation').")
    xgb = import_xgboost()

    weighted = bool(params.pop("csv_weights", 0))
    dtrain = load_channel(data_dir / "train", channels["train"].get("ContentType"), weighted)
    evals = [(dtrain, "train")]
    if "validation" in channels:
        evals.append((load_channel(data_dir / "validation", channels["validation"].get("ContentType"), weighted),
                      "validation"))
    if early and len(evals) < 2:
        raise ClientError("early_stopping_rounds needs a 'validation' channel.")
    booster = xgb.train(params, dtrain, num_boost_round=num_round, evals=evals, early_stopping_rounds=early,
                        verbose_eval=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    return booster


def main() -> int:
    env = os.environ
    config_dir = Path(env["SM_INPUT_CONFIG_DIR"])
    failure = Path(env.get("SM_OUTPUT_FAILURE", Path(env["SM_OUTPUT_DIR"]) / "failure"))
    try:
        train(config_dir, Path(env["SM_INPUT_DATA_DIR"]), Path(env["SM_MODEL_DIR"]))
    except ClientError as err:
        print(f"ERROR: ClientError: {err}", file=sys.stderr)
        failure.write_text(f"ClientError: {err}")
        return 2
    except Exception as err:
        print(f"ERROR: AlgorithmError: {err!r}", file=sys.stderr)
        failure.write_text(f"AlgorithmError: {err!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
