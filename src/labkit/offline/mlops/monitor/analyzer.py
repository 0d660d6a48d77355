"""The ``sagemaker-model-monitor-analyzer`` container's program, offline.

A processing job whose image is the Model Monitor analyzer runs ``python -m`` this module
with the container's environment contract (the variables the SDK's ``DefaultModelMonitor``
and monitoring schedules set):

- ``dataset_format``: ``{"csv": {"header": true}}``, ``{"json": {"lines": true}}``,
  ``{"parquet": {}}`` or ``{"sagemakerCaptureJson": {"captureIndexNames": [...]}}``;
- ``dataset_source``: the folder with the data (every file under it is read);
- ``output_path``: where ``statistics.json`` and ``constraints.json`` (baseline), or
  ``statistics.json`` and ``constraint_violations.json`` (monitoring) are written;
- ``baseline_statistics`` / ``baseline_constraints``: given for a monitoring run;
- ``start_time`` / ``end_time``: the analysis window for captured data (ISO 8601).

Captured data: each JSON line's ``captureData.endpointInput`` (CSV or JSON requests, one
or several records per request) is the dataset; the endpoint's output is not a feature.
A ``record_preprocessor_script`` or ``post_analytics_processor_script`` is refused with a
message (not emulated). The computations are in :mod:`.statistics`.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import statistics as st

CONTAINER_ROOT = "/opt/ml"


def local(path: str) -> Path:
    """A container path on this host (the job's root replaces ``/opt/ml``)."""
    root = os.environ.get("LABKIT_CONTAINER_ROOT", "")
    if root and (path == CONTAINER_ROOT or path.startswith(CONTAINER_ROOT + "/")):
        return Path(root + path[len(CONTAINER_ROOT):])
    return Path(path)


def _files(folder: Path) -> list[Path]:
    if folder.is_file():
        return [folder]
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _csv_rows(text: str) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(text)) if row]


def _columns(rows: list[list[Any]], names: list[str] | None) -> dict[str, list[Any]]:
    width = max((len(r) for r in rows), default=len(names or []))
    names = list(names or [])
    names += [f"_c{i}" for i in range(len(names), width)]
    return {name: [r[i] if i < len(r) else None for r in rows] for i, name in enumerate(names)}


def read_tabular(files: list[Path], fmt: dict[str, Any]) -> tuple[dict[str, list[Any]], bool]:
    """``({column: values}, has_header)`` of CSV, JSON or Parquet files."""
    if "csv" in fmt:
        header = bool((fmt["csv"] or {}).get("header", False))
        rows: list[list[Any]] = []
        names: list[str] | None = None
        for path in files:
            part = _csv_rows(path.read_text())
            if header and part:
                names = names or part[0]
                part = part[1:]
            rows += part
        return _columns(rows, names), header
    if "json" in fmt:
        records: list[dict[str, Any]] = []
        for path in files:
            text = path.read_text()
            if (fmt["json"] or {}).get("lines", True):
                records += [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                doc = json.loads(text)
                records += doc if isinstance(doc, list) else [doc]
        names = list(dict.fromkeys(k for r in records for k in r))
        return {n: [r.get(n) for r in records] for n in names}, True
    if "parquet" in fmt:
        import pandas as pd

        frame = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
        return {c: frame[c].tolist() for c in frame.columns}, True
    raise ValueError(f"dataset_format {json.dumps(fmt)} is not supported: use csv, json, parquet or "
                     "sagemakerCaptureJson.")


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _decode(block: dict[str, Any]) -> tuple[str, str]:
    data = block.get("data", "")
    if block.get("encoding") == "BASE64":
        data = base64.b64decode(data).decode("utf-8", errors="replace")
    return data, block.get("encoding", "CSV")


def read_capture(files: list[Path], start: dt.datetime | None, end: dt.datetime | None) -> dict[str, list[Any]]:
    """The requests an endpoint captured within ``[start, end]``, one row per record."""
    rows: list[list[Any]] = []
    dicts: list[dict[str, Any]] = []
    for path in files:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            when = _parse_time((event.get("eventMetadata") or {}).get("inferenceTime"))
            if when is not None and ((start and when < start) or (end and when > end)):
                continue
            block = (event.get("captureData") or {}).get("endpointInput")
            if not block:
                continue
            data, encoding = _decode(block)
            content = block.get("observedContentType", "")
            if encoding == "JSON" or "json" in content:
                doc = json.loads(data)
                doc = doc.get("instances", doc.get("inputs", doc)) if isinstance(doc, dict) else doc
                items = doc if isinstance(doc, list) else [doc]
                for item in items:
                    if isinstance(item, dict):
                        dicts.append(item)
                    else:
                        rows.append(item if isinstance(item, list) else [item])
            else:
                rows += _csv_rows(data)
    if dicts:
        names = list(dict.fromkeys(k for r in dicts for k in r))
        return {n: [r.get(n) for r in dicts] for n in names}
    return _columns(rows, None)


def _by_position(columns: dict[str, list[Any]], constraints: dict[str, Any]) -> dict[str, list[Any]]:
    names = [f["name"] for f in constraints.get("features", [])]
    out = {}
    for i, (name, values) in enumerate(columns.items()):
        out[names[i] if i < len(names) else name] = values
    return out


def main() -> int:
    env = os.environ
    for unsupported in ("record_preprocessor_script", "post_analytics_processor_script"):
        if env.get(unsupported):
            print(f"ClientError: {unsupported} is not emulated by the offline analyzer; the sandbox backend runs "
                  "it. Preprocess the data before capture or baselining instead.", file=sys.stderr)
            return 2
    analysis = env.get("analysis_type", "DATA_QUALITY")
    if analysis not in ("", "DATA_QUALITY"):
        print(f"ClientError: analysis_type {analysis} (model quality, bias, explainability) is not emulated "
              "offline; the analyzer computes data quality.", file=sys.stderr)
        return 2
    fmt = json.loads(env.get("dataset_format") or '{"csv": {"header": true}}')
    source = local(env.get("dataset_source", "/opt/ml/processing/input"))
    output = local(env.get("output_path", "/opt/ml/processing/output"))
    output.mkdir(parents=True, exist_ok=True)
    files = _files(source)
    if not files:
        print(f"ClientError: no data found under {env.get('dataset_source')}: the dataset (or, for a monitoring "
              "run, the captured traffic in the analysis window) is empty.", file=sys.stderr)
        return 2
    baseline_constraints = env.get("baseline_constraints")
    baseline_statistics = env.get("baseline_statistics")
    constraints = json.loads(local(baseline_constraints).read_text()) if baseline_constraints else None
    base_stats = json.loads(local(baseline_statistics).read_text()) if baseline_statistics else None
    if "sagemakerCaptureJson" in fmt:
        columns = read_capture(files, _parse_time(env.get("start_time")), _parse_time(env.get("end_time")))
        header = False
    else:
        columns, header = read_tabular(files, fmt)
    if not columns or not any(columns.values()):
        print("ClientError: the dataset has no records in the analysis window.", file=sys.stderr)
        return 2
    if constraints is not None and not header:
        columns = _by_position(columns, constraints)
    kinds = {f["name"]: f["inferred_type"] for f in (constraints or {}).get("features", [])}
    current = st.statistics(columns, kinds if constraints is not None else None)
    (output / "statistics.json").write_text(json.dumps(current, indent=2))
    if constraints is None:
        (output / "constraints.json").write_text(json.dumps(st.suggest_constraints(current), indent=2))
        print(f"Baseline: {current['dataset']['item_count']} records, {len(columns)} features: statistics.json "
              "and constraints.json written.")
        return 0
    violations = st.check(columns, base_stats or {"features": []}, constraints)
    (output / "constraint_violations.json").write_text(json.dumps({"violations": violations}, indent=2))
    if violations:
        print(f"CompletedWithViolations: Job completed successfully with {len(violations)} violations.")
    else:
        print("Completed: Job completed successfully with no violations.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
