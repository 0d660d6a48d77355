"""The built-in XGBoost algorithm's model server, as sagemaker-xgboost-container serves it.

Loaded by ``server.py`` (by path) when an XGBoost image has no ``SAGEMAKER_PROGRAM``: the
container's "algorithm mode" (``algorithm_mode/serve.py`` and ``serve_utils.py`` of
aws/sagemaker-xgboost-container). What it does, and so what this module does:

- the model is every top-level file of the model directory (dot files skipped from 1.7-1 on),
  whatever its name (a model trained elsewhere need not be called ``xgboost-model``); each is
  tried as a pickle, then as a native model file; with several files the predictions are the
  ensemble's (mean, or the vote for ``multi:softmax``/``binary:hinge``), unless
  ``SAGEMAKER_INFERENCE_ENSEMBLE=false`` (or an image before 1.3-1) keeps only the first;
- requests: ``text/csv`` (delimiter sniffed from the first line, empty values missing),
  ``text/libsvm`` and ``text/x-libsvm`` (1-based indices shifted to 0), and no Content-Type
  means libsvm; anything else is a 415 with the container's message; an empty body a 204;
- answers: ``Accept`` absent or ``*/*`` means ``$SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, else
  ``text/csv`` (one prediction per line; before the 1.5-1 image, comma-separated whatever the
  ``Accept``); ``application/json`` is
  ``{"predictions": [{"score": ...}]}``; a type outside the supported four is a 406; under
  batch transform (``SAGEMAKER_BATCH``) the predictions are newline-separated;
- a pickled model must have as many features as the request (or one more): else a 400.

Models saved by XGBoost before 1.0 keep the legacy binary format (inside the pickle, too).
The containers up to 1.7-1 load it; XGBoost 3 (this environment, and the 3.0-5 image) no
longer can, so :func:`legacy_model_json` translates it into the JSON model format, tree by
tree, for the images that could load it. Not emulated: ``application/x-recordio-protobuf``
requests, selectable inference output (``SAGEMAKER_INFERENCE_OUTPUT``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
import re
import struct
from typing import Any

CSV, LIBSVM, PARQUET, RECORDIO = "csv", "libsvm", "parquet", "recordio-protobuf"
VALID_CONTENT_TYPES = ["csv", "libsvm", "parquet", "recordio-protobuf", "text/csv", "text/libsvm", "text/x-libsvm",
                       "application/x-parquet", "application/x-recordio-protobuf"]
SUPPORTED_ACCEPTS = ["application/json", "application/jsonlines", "application/x-recordio-protobuf", "text/csv"]
FLASK_500 = ("<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server "
             "Error</h1>\n<p>The server encountered an internal error and was unable to complete your request. "
             "Either the server is overloaded or there is an error in the application.</p>\n")


def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in (content_type or "").split(";")]
    params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    return parts[0].lower(), {k.strip().lower(): v.strip().strip('"') for k, v in params.items()}


def content_kind(content_type: str | None) -> str:
    """The container's ``get_content_type``: ``csv``, ``libsvm``, ``parquet`` or ``recordio-protobuf``."""
    if not content_type:
        return LIBSVM
    media, params = _media_type(content_type)
    if media in ("csv", "text/csv"):
        if params.get("label_size", "1") != "1":
            raise ValueError(f"{content_type} is not an accepted csv ContentType. Optional parameter label_size "
                             "must be equal to 1")
        return CSV
    if media in ("libsvm", "text/libsvm", "text/x-libsvm"):
        return LIBSVM
    if media in ("parquet", "application/x-parquet"):
        return PARQUET
    if media in ("recordio-protobuf", "application/x-recordio-protobuf"):
        return RECORDIO
    raise ValueError(f"{content_type} is not an accepted ContentType: {', '.join(VALID_CONTENT_TYPES)}.")


def csv_dmatrix(text: str) -> Any:
    """The container's ``csv_to_dmatrix``: sniffed delimiter, empty values as missing."""
    import numpy as np
    import xgboost as xgb

    delimiter = csv.Sniffer().sniff(text.split("\n")[0][:512]).delimiter
    delimiter = "," if delimiter.isalnum() else delimiter
    rows = [["nan" if v == "" else v for v in line.split(delimiter)] for line in text.split("\n")]
    return xgb.DMatrix(np.array(rows).astype(float))


def libsvm_dmatrix(text: str) -> Any:
    """The container's libsvm reader: a sparse matrix, 1-based indices shifted to 0."""
    import numpy as np
    import xgboost as xgb
    from scipy.sparse import csr_matrix

    rows, cols, values = [], [], []
    for index, line in enumerate(text.split("\n")):
        for item in line.split(" "):
            if ":" in item:
                col, value = item.split(":")[:2]
                rows.append(index)
                cols.append(int(col))
                values.append(float(value))
    col_array = np.array(cols, dtype=int)
    if len(col_array) and col_array.min() >= 1:
        col_array = col_array - 1
    return xgb.DMatrix(csr_matrix((np.array(values), (np.array(rows), col_array))))


def decode_dmatrix(data: str | bytes, content_type: str) -> Any:
    """The default ``input_fn`` of the XGBoost container with a user module (``encoder.decode``)."""
    from sagemaker_inference.errors import UnsupportedFormatError

    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    media, _ = _media_type(content_type)
    if media == "text/csv":
        return csv_dmatrix(text)
    if media in ("text/libsvm", "text/x-libsvm"):
        return libsvm_dmatrix(text.strip())
    raise UnsupportedFormatError(media)


# --- loading -------------------------------------------------------------------------------------


def image_version(image: str) -> tuple[int, int]:
    """The container version an image tag names (``...:1.7-1`` -> (1, 7), ``:0.90-2`` -> (0, 90)); (3, 0) if none."""
    match = re.search(r":(\d+)\.(\d+)", image or "")
    return (int(match[1]), int(match[2])) if match else (3, 0)


class _LegacyBooster:
    """What ``pickle`` finds of an ``xgboost.core.Booster`` without running XGBoost's own loader."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.state = state


class _BoosterState(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("xgboost.core", "Booster"):
            return _LegacyBooster
        return super().find_class(module, name)


def _read_legacy_pickle(path: str) -> dict[str, Any] | None:
    with open(path, "rb") as f:
        try:
            found = _BoosterState(f).load()
        except Exception:  # noqa: BLE001 - not a pickle of a Booster
            return None
    return found.state if isinstance(found, _LegacyBooster) else None


def load_booster(path: str, legacy_ok: bool) -> tuple[Any, str]:
    """``(booster, "pkl_format" | "xgb_format")``: a pickle first, then a native model file.

    ``legacy_ok``: the image's XGBoost (before 3.0) could read the pre-1.0 binary format.
    """
    import xgboost as xgb

    try:
        with open(path, "rb") as f:
            booster = pickle.load(f)
        fmt = "pkl_format"
    except Exception as pickle_error:  # noqa: BLE001 - as the container: try the native format next
        try:
            booster = xgb.Booster()
            booster.load_model(path)
            fmt = "xgb_format"
        except Exception as native_error:  # noqa: BLE001
            booster, fmt = _load_legacy(path) if legacy_ok else (None, "")
            if booster is None:
                raise RuntimeError(f"Model {path} cannot be loaded:\nPickle load error={pickle_error}"
                                   f"\nXGB load model error={native_error}") from native_error
    booster.set_param("nthread", 1)
    return booster, fmt


def _load_legacy(path: str) -> tuple[Any, str]:
    """A pre-1.0 model (pickled or saved): translated to JSON and loaded by this XGBoost."""
    import xgboost as xgb

    state = _read_legacy_pickle(path)
    if state is not None and isinstance(state.get("handle"), bytes | bytearray):
        raw, fmt = bytes(state["handle"]), "pkl_format"
    else:
        with open(path, "rb") as f:
            raw, fmt = f.read(), "xgb_format"
    try:
        model = legacy_model_json(raw)
    except ValueError:
        return None, ""
    booster = xgb.Booster()
    booster.load_model(bytearray(model))
    if state is not None:
        names = state.get("feature_names")
        if names and len(names) == booster.num_features():
            booster.feature_names = list(names)
        if state.get("best_ntree_limit"):
            # xgboost 2 dropped the attribute; it stays on the object for the prediction below
            booster.best_ntree_limit = state["best_ntree_limit"]  # type: ignore[attr-defined]
    return booster, fmt


class _Reader:
    def __init__(self, raw: bytes):
        self.raw, self.at = raw, 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.raw):
            raise ValueError("truncated legacy XGBoost model")
        values = struct.unpack_from(fmt, self.raw, self.at)
        self.at += size
        return values

    def string(self) -> str:
        (length,) = self.take("<Q")
        if length > len(self.raw):
            raise ValueError("not a legacy XGBoost model")
        return self.take(f"<{length}s")[0].decode("utf-8")


_MARGIN_TO_PROB = {"binary:logistic": lambda m: 1 / (1 + math.exp(-m)), "reg:logistic": lambda m: 1 / (1 + math.exp(-m)),
                   "binary:logitraw": lambda m: 1 / (1 + math.exp(-m)), "count:poisson": math.exp,
                   "reg:gamma": math.exp, "reg:tweedie": math.exp, "survival:cox": math.exp}


def legacy_model_json(raw: bytes) -> bytes:
    """The pre-1.0 binary model format (``Learner::Save`` of XGBoost 0.x) as this XGBoost's JSON model.

    The layout: the learner's parameters (136 bytes; ``base_score`` saved as a margin before
    1.0), the objective's and booster's names, the tree ensemble's parameters (160 bytes), each
    tree (its parameters, 20-byte nodes, 16-byte statistics), then the trees' output groups.
    ``ValueError`` for anything else. Only ``gbtree`` models (not ``gblinear`` or ``dart``).
    """
    import numpy as np
    import xgboost as xgb

    r = _Reader(raw[4:] if raw[:4] == b"binf" else raw)
    base_score, num_feature, num_class, _extra_attrs, _metrics, major = r.take("<fIiiiI")
    r.take("<28i")  # the rest of the 136-byte parameter block
    objective, booster = r.string(), r.string()
    if booster != "gbtree":
        raise ValueError(f"legacy {booster} models are not translated")
    num_trees, _roots, _features, _pad, _pbuffer, num_groups, _leaf_vector = r.take("<iiiiqii")
    r.take("<32i")
    trees = []
    for index in range(num_trees):
        _roots, num_nodes, num_deleted, _depth, tree_features, size_leaf_vector = r.take("<6i")
        r.take("<31i")
        nodes = [r.take("<iiiIf") for _ in range(num_nodes)]
        stats = [r.take("<fffi") for _ in range(num_nodes)]
        if size_leaf_vector:
            (count,) = r.take("<Q")
            r.take(f"<{count}f")
        trees.append({
            "base_weights": [s[2] for s in stats], "categories": [], "categories_nodes": [],
            "categories_segments": [], "categories_sizes": [],
            "default_left": [int(n[3] >> 31) for n in nodes], "id": index,
            "left_children": [n[1] for n in nodes], "loss_changes": [s[0] for s in stats],
            "parents": [n[0] & 0x7FFFFFFF for n in nodes], "right_children": [n[2] for n in nodes],
            "split_conditions": [n[4] for n in nodes], "split_indices": [n[3] & 0x7FFFFFFF for n in nodes],
            "split_type": [0] * num_nodes, "sum_hessian": [s[1] for s in stats],
            "tree_param": {"num_deleted": str(num_deleted), "num_feature": str(tree_features),
                           "num_nodes": str(num_nodes), "size_leaf_vector": "1"}})
    tree_info = list(r.take(f"<{num_trees}i")) if num_trees else []
    # Before 1.0 the base score was saved after the objective's link (a margin); JSON keeps a probability.
    prob = base_score if major >= 1 else _MARGIN_TO_PROB.get(objective, lambda m: m)(base_score)
    params: dict[str, Any] = {"objective": objective, "base_score": prob}
    if num_class > 0:
        params["num_class"] = num_class
    template = xgb.train(params, xgb.DMatrix(np.zeros((2, num_feature)), label=[1.0, 1.0]), num_boost_round=0)
    model = json.loads(template.save_raw("json"))
    groups = max(num_groups, 1)
    model["learner"]["gradient_booster"]["model"].update({
        "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": str(num_trees)},
        "iteration_indptr": list(range(0, num_trees + 1, groups)), "tree_info": tree_info, "trees": trees})
    return json.dumps(model).encode()


# --- serving -------------------------------------------------------------------------------------


def _csv_rows(values: list[Any]) -> str:
    """sagemaker-containers' ``array_to_csv``: one row per prediction."""
    import numpy as np

    array = np.array(values)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(array)
    return out.getvalue()


class AlgorithmModel:
    """The built-in algorithm's ``/invocations``: ``invoke(body, headers) -> (status, body, content type)``."""

    def __init__(self, model_dir: str, image: str = ""):
        self.version = image_version(image)
        files = sorted(f for f in os.listdir(model_dir) if os.path.isfile(os.path.join(model_dir, f))
                       and not (f.startswith(".") and self.version >= (1, 7)))
        if not files:
            raise FileNotFoundError(f"No model file in the model artifact ({model_dir} is empty): the XGBoost "
                                    "container loads the files at the top level of model.tar.gz.")
        if os.environ.get("SAGEMAKER_INFERENCE_ENSEMBLE", "true") != "true" or self.version < (1, 3):
            files = files[:1]
        legacy_ok = self.version < (3, 0)
        loaded = [load_booster(os.path.join(model_dir, f), legacy_ok) for f in files]
        self.boosters = [b for b, _ in loaded]
        self.format = loaded[0][1]
        config = json.loads(self.boosters[0].save_config())
        self.objective = config["learner"]["objective"]["name"]

    def predict(self, dmatrix: Any, kind: str) -> Any:
        import numpy as np

        first = self.boosters[0]
        if self.format == "pkl_format":
            x, y = first.num_features(), dmatrix.num_col()
            if kind == LIBSVM and y > x + 1:
                raise ValueError(f"Feature size of libsvm inference data {y} is larger than feature size of "
                                 f"trained model {x}.")
            if kind == CSV and not (x == y or x == y + 1):
                raise ValueError(f"Feature size of {kind} inference data {y} is not consistent with feature size "
                                 f"of trained model {x}.")
        predictions = []
        for booster in self.boosters:
            best = int(getattr(booster, "best_ntree_limit", 0) or 0)
            predictions.append(booster.predict(dmatrix, validate_features=False,
                                               **({"iteration_range": (0, best)} if best else {})))
        if len(predictions) == 1:
            return predictions[0]
        if self.objective in ("multi:softmax", "binary:hinge"):
            from scipy import stats

            return stats.mode(np.array(predictions), axis=0, keepdims=False).mode
        return np.mean(predictions, axis=0)

    def invoke(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        headers = {k.lower(): v for k, v in headers.items()}
        if not body:
            return 204, b"", "text/html; charset=utf-8"
        try:
            kind = content_kind(headers.get("content-type"))
            text = body.strip().decode("utf-8")
            if kind == CSV:
                try:
                    dmatrix = csv_dmatrix(text)
                except Exception as err:  # noqa: BLE001 - the container's message
                    raise RuntimeError("Loading csv data failed with Exception, please ensure data is in csv "
                                       f"format:\n {type(err)}\n {err}") from err
            elif kind == LIBSVM:
                try:
                    dmatrix = libsvm_dmatrix(text)
                except Exception as err:  # noqa: BLE001
                    raise RuntimeError("Loading libsvm data failed with Exception, please ensure data is in "
                                       f"libsvm format:\n {type(err)}\n {err}") from err
            elif kind == RECORDIO:
                raise RuntimeError("application/x-recordio-protobuf requests are not emulated offline: send "
                                   "text/csv or text/libsvm.")
            else:
                raise RuntimeError(f"Content-type {headers.get('content-type')} is not supported.")
        except Exception as err:  # noqa: BLE001 - 415 with the message, as the container answers
            return 415, str(err).encode(), "text/html; charset=utf-8"
        try:
            predictions = self.predict(dmatrix, kind)
        except Exception as err:  # noqa: BLE001
            return 400, f"Unable to evaluate payload provided: {err}".encode(), "text/html; charset=utf-8"
        values = predictions.tolist()
        if self.version < (1, 5):  # before 1.5-1: comma-separated CSV whatever the Accept
            text = "\n".join(map(str, values)) + "\n" if os.environ.get("SAGEMAKER_BATCH") else ",".join(map(str, values))
            return 200, text.encode("utf-8"), "text/csv; charset=utf-8"
        accept = _media_type(headers.get("accept"))[0]
        if not accept or accept == "*/*":
            accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
        elif accept not in SUPPORTED_ACCEPTS:
            return 406, (f"Accept type {accept} is not supported. Please use supported accept types: "
                         f"{SUPPORTED_ACCEPTS}.").encode(), "text/html; charset=utf-8"
        if os.environ.get("SAGEMAKER_BATCH"):
            text = "\n".join(map(str, values)) + "\n"
        elif accept == "application/json":
            text = json.dumps({"predictions": [{"score": v} for v in values]})
        elif accept == "text/csv":
            text = _csv_rows(values)
        else:  # jsonlines, recordio-protobuf: sagemaker-containers has no encoder for them: Flask's 500
            return 500, FLASK_500.encode(), "text/html; charset=utf-8"
        mimetype = accept + ("; charset=utf-8" if accept.startswith("text/") else "")
        return 200, text.encode("utf-8"), mimetype
