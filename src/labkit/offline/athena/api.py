"""Athena's API, offline: the operations registered with :mod:`labkit.offline.dispatch` over :class:`~.engine.Athena`."""

from __future__ import annotations

from typing import Any

from .. import dispatch, moto_state, on_reset
from ..dispatch import AWSError
from .engine import Athena
from .tables import Execution

engine = Athena()


@on_reset
def _reset() -> None:
    global engine
    engine = Athena()


# --- the API ---------------------------------------------------------------------------------


def _workgroup(name: str) -> dict[str, Any]:
    backend = moto_state.backend("athena")
    wg = backend.work_groups.get(name)
    if wg is None:
        raise AWSError("InvalidRequestException", f"WorkGroup {name} is not found.")
    config = getattr(wg, "configuration", None) or {}
    if getattr(wg, "state", "ENABLED") != "ENABLED":
        raise AWSError("InvalidRequestException", f"WorkGroup {name} is disabled.")
    return config


def _execution(qid: str) -> Execution:
    ex = engine.executions.get(qid)
    if ex is None:
        raise AWSError("InvalidRequestException", f"QueryExecution {qid} was not found")
    return ex


@dispatch.operation("athena", "StartQueryExecution")
def start_query_execution(params: dict[str, Any]) -> dict[str, Any]:
    workgroup = params.get("WorkGroup") or "primary"
    config = _workgroup(workgroup)
    wg_output = (config.get("ResultConfiguration") or {}).get("OutputLocation")
    output = wg_output if config.get("EnforceWorkGroupConfiguration") and wg_output else (
        (params.get("ResultConfiguration") or {}).get("OutputLocation") or wg_output)
    if not output:
        raise AWSError("InvalidRequestException", "No output location provided. An output location is required "
                       "either through the Workgroup result configuration setting or as an API input.")
    context = params.get("QueryExecutionContext") or {}
    ex = engine.start(params["QueryString"], context.get("Database"), context.get("Catalog"), output, workgroup)
    return {"QueryExecutionId": ex.id}


@dispatch.operation("athena", "GetQueryExecution")
def get_query_execution(params: dict[str, Any]) -> dict[str, Any]:
    return {"QueryExecution": _execution(params["QueryExecutionId"]).describe()}


@dispatch.operation("athena", "BatchGetQueryExecution")
def batch_get_query_execution(params: dict[str, Any]) -> dict[str, Any]:
    found, missing = [], []
    for qid in params["QueryExecutionIds"]:
        ex = engine.executions.get(qid)
        if ex:
            found.append(ex.describe())
        else:
            missing.append({"QueryExecutionId": qid, "ErrorCode": "INVALID_INPUT",
                            "ErrorMessage": f"QueryExecution {qid} was not found"})
    return {"QueryExecutions": found, "UnprocessedQueryExecutionIds": missing}


@dispatch.operation("athena", "ListQueryExecutions")
def list_query_executions(params: dict[str, Any]) -> dict[str, Any]:
    workgroup = params.get("WorkGroup") or "primary"
    ids = [e.id for e in sorted(engine.executions.values(), key=lambda e: e.submitted, reverse=True)
           if e.workgroup == workgroup]
    start = int(params.get("NextToken") or 0)
    size = params.get("MaxResults") or 50
    out: dict[str, Any] = {"QueryExecutionIds": ids[start:start + size]}
    if start + size < len(ids):
        out["NextToken"] = str(start + size)
    return out


@dispatch.operation("athena", "StopQueryExecution")
def stop_query_execution(params: dict[str, Any]) -> dict[str, Any]:
    _execution(params["QueryExecutionId"])  # a finished query stays as it ended, as on AWS
    return {}


@dispatch.operation("athena", "GetQueryResults")
def get_query_results(params: dict[str, Any]) -> dict[str, Any]:
    ex = _execution(params["QueryExecutionId"])
    if ex.state != "SUCCEEDED":
        raise AWSError("InvalidRequestException", f"Query has not yet finished. Current state: {ex.state}"
                       if ex.state in ("QUEUED", "RUNNING") else
                       f"Query did not finish successfully. Final query state: {ex.state}\n{ex.reason or ''}".strip())
    size = params.get("MaxResults") or 1000
    if not 1 <= size <= 1000:
        raise AWSError("InvalidRequestException", "MaxResults must be between 1 and 1000.")
    table = ([[n for n, _ in ex.columns]] if ex.statement_type == "DML" else []) + ex.rows
    start = int(params.get("NextToken") or 0)
    page = table[start:start + size]
    out: dict[str, Any] = {
        "UpdateCount": 0,
        "ResultSet": {
            "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in page],
            "ResultSetMetadata": {"ColumnInfo": [
                {"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": n, "Label": n, "Type": t,
                 "Precision": 2147483647 if t == "varchar" else 17 if t == "double" else 19 if t == "bigint"
                 else 10 if t == "integer" else 0, "Scale": 0, "Nullable": "UNKNOWN", "CaseSensitive": t == "varchar"}
                for n, t in ex.columns]},
        },
    }
    if start + size < len(table):
        out["NextToken"] = str(start + size)
    return out

