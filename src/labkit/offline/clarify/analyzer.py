"""The ``sagemaker-clarify-processing`` container's program, offline.

A processing job whose image is Clarify's (``image_uris.retrieve("clarify", region)``)
runs ``python -m`` this module with the container's layout, the one the SDK's
``SageMakerClarifyProcessor`` sets up:

- ``/opt/ml/processing/input/config/analysis_config.json``: what to compute;
- ``/opt/ml/processing/input/data``: the dataset (``dataset_type`` ``text/csv`` or
  ``application/x-parquet``; every file under the folder is read, in name order);
- ``/opt/ml/processing/output``: where ``analysis.json``, ``report.ipynb``,
  ``explanations_shap/out.csv`` (local SHAP values) and ``explanations_shap/baseline.csv``
  are written.

The shadow endpoint: on AWS the container creates an endpoint from ``predictor.model_name``,
sends it the dataset and deletes it. Offline the processing engine starts that endpoint on
the container's behalf (:mod:`labkit.offline.clarify`) and gives this program its model
server's address in ``LABKIT_CLARIFY_PREDICTOR_URL``; requests are the same CSV or JSON
Lines batches, answered by the same model code. Errors end the job with a ``ClientError``
line, as Clarify reports a bad configuration.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .analysis import ConfigError, analyze
from .report import notebook

CONTAINER_ROOT = "/opt/ml"
CONFIG = "/opt/ml/processing/input/config/analysis_config.json"
DATA = "/opt/ml/processing/input/data"
OUTPUT = "/opt/ml/processing/output"
MAX_PAYLOAD = 5 * 1024 * 1024  # stay under InvokeEndpoint's 6 MB


def local(path: str) -> Path:
    root = os.environ.get("LABKIT_CONTAINER_ROOT", "")
    if root and (path == CONTAINER_ROOT or path.startswith(CONTAINER_ROOT + "/")):
        return Path(root + path[len(CONTAINER_ROOT):])
    return Path(path)


def read_dataset(config: dict[str, Any], folder: Path) -> pd.DataFrame:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ConfigError(f"no dataset files under {DATA}")
    kind = config.get("dataset_type", "text/csv")
    headers = config.get("headers")
    if kind == "application/x-parquet":
        frame = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
        if headers:
            frame.columns = headers
        return frame
    if kind != "text/csv":
        raise ConfigError(f"dataset_type {kind!r} is not emulated offline: use text/csv or application/x-parquet")
    frames = []
    for path in files:
        text = path.read_text()
        first = next(csv.reader([text.split("\n", 1)[0]]), [])
        if headers:
            if [c.strip() for c in first] == [str(h) for h in headers]:
                raise ConfigError(f"{path.name} starts with a header row and 'headers' was given too: Clarify then "
                                  "reads the header as a data row. Write the CSV without a header "
                                  "(to_csv(index=False, header=False)), or leave 'headers' out.")
            frames.append(pd.read_csv(io.StringIO(text), header=None, names=headers))
        else:
            frames.append(pd.read_csv(io.StringIO(text)))
    return pd.concat(frames, ignore_index=True)


class ShadowEndpoint:
    """Sends feature rows to the model server and reads one score per row back."""

    def __init__(self, url: str, predictor: dict[str, Any]):
        self.url = url
        self.content_type = predictor.get("content_type", "text/csv")
        self.accept = predictor.get("accept_type", self.content_type)
        self.probability = predictor.get("probability")
        self.label = predictor.get("label")
        self.requests = 0

    def _body(self, frame: pd.DataFrame) -> bytes:
        if self.content_type == "text/csv":
            return frame.to_csv(index=False, header=False).encode()
        if self.content_type == "application/jsonlines":
            return "\n".join(json.dumps({"features": row}) for row in frame.to_numpy().tolist()).encode()
        raise ConfigError(f"predictor content_type {self.content_type!r}: use text/csv or application/jsonlines")

    def _pick(self, value: Any) -> float:
        key = self.probability if self.probability is not None else self.label
        if isinstance(value, dict):
            if key is None:
                raise ConfigError("the model answers JSON objects: set ModelPredictedLabelConfig(probability=...) "
                                  "or label=... to say which field is the prediction")
            value = value[key]
        elif isinstance(value, list):
            value = value[int(key or 0)]
        return float(value)

    def _parse(self, body: str) -> list[float]:
        text = body.strip()
        if text.startswith("{") or text.startswith("["):
            try:
                data = json.loads(text)
            except ValueError:
                data = [json.loads(line) for line in text.splitlines() if line.strip()]
            if isinstance(data, dict):
                data = data.get("predictions", [data])
            return [self._pick(v) for v in data]
        rows = [r for r in csv.reader(io.StringIO(text)) if r]
        if len(rows) == 1 and len(rows[0]) > 1 and self.probability is None and self.label is None:
            return [float(v) for v in rows[0]]  # one line of comma-separated scores
        return [self._pick(r if len(r) > 1 else r[0]) for r in rows]

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        out: list[float] = []
        sample = frame.head(50)
        per_row = max(1.0, len(self._body(sample)) / max(len(sample), 1))
        step = max(1, int(MAX_PAYLOAD // per_row))
        for start in range(0, len(frame), step):
            chunk = frame.iloc[start:start + step]
            request = urllib.request.Request(self.url, data=self._body(chunk), method="POST",
                                             headers={"Content-Type": self.content_type, "Accept": self.accept})
            for attempt in range(3):
                try:
                    with urllib.request.urlopen(request, timeout=60) as resp:
                        body = resp.read().decode()
                    break
                except urllib.error.HTTPError as err:  # the model answered with an error: no retry
                    detail = err.read().decode(errors="replace").strip().splitlines()
                    raise ConfigError(f"the shadow endpoint answered {err.code}: "
                                      f"{detail[-1] if detail else err.reason}") from err
                except OSError as err:
                    if attempt == 2:
                        raise ConfigError(f"the shadow endpoint did not answer: {err}") from err
                    time.sleep(0.5)
            self.requests += 1
            scores = self._parse(body)
            if len(scores) != len(chunk):
                raise ConfigError(f"the model returned {len(scores)} predictions for {len(chunk)} rows "
                                  f"(accept {self.accept}); check ModelPredictedLabelConfig")
            out += scores
        return np.asarray(out, dtype=float)


def json_safe(value: Any) -> Any:
    """Infinite values as the strings Clarify writes ("Infinity", "-Infinity"); NaN as null."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def main() -> int:
    started = time.time()
    try:
        config = json.loads(local(CONFIG).read_text())
        frame = read_dataset(config, local(DATA))
        print(f"Clarify (offline): {len(frame)} rows, columns {list(frame.columns)}", flush=True)
        predictor = None
        if config.get("predictor"):
            url = os.environ.get("LABKIT_CLARIFY_PREDICTOR_URL")
            if not url:
                raise ConfigError("the predictor's shadow endpoint is not available to this job")
            predictor = ShadowEndpoint(url, config["predictor"])
        result = analyze(config, frame, predictor)
    except (ConfigError, KeyError, ValueError) as err:
        print(f"ClientError: {err}", flush=True)
        return 1
    out = local(OUTPUT)
    out.mkdir(parents=True, exist_ok=True)
    (out / "analysis.json").write_text(json.dumps(json_safe(result.analysis), indent=1))
    if "report" in (config.get("methods") or {}):
        (out / "report.ipynb").write_text(notebook(result.analysis, config["methods"]["report"].get("title")))
    if result.local_shap is not None:
        folder = out / "explanations_shap"
        folder.mkdir(exist_ok=True)
        if config["methods"]["shap"].get("save_local_shap_values", True):
            result.local_shap.to_csv(folder / "out.csv", index=False)
        assert result.baseline is not None
        result.baseline.to_csv(folder / "baseline.csv", index=False, header=False)
    calls = f", {predictor.requests} requests to the shadow endpoint" if predictor else ""
    print(f"Clarify (offline): analysis.json written in {time.time() - started:.1f} s{calls}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
