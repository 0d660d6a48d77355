"""Offline Amazon Athena: SQL over the Glue Data Catalog, executed by DuckDB.

moto records ``StartQueryExecution`` and answers every query with an empty result. Here a
query really runs: the tables it names are looked up in the Glue Data Catalog (the
databases, tables, columns, SerDe and partitions that moto's Glue keeps), their objects are
read from S3 into a private folder (moto's S3 lives in this process, DuckDB cannot reach it
over HTTP), each table becomes a DuckDB view with the catalogue's columns and types, and
DuckDB runs the SQL. The result is written to the output location as Athena writes it
(``<OutputLocation>/<QueryExecutionId>.csv``, every value double-quoted, NULL empty) and
served by ``GetQueryResults`` in Athena's shape (a header row, ``VarCharValue`` cells,
``ColumnInfo`` with Athena's type names).

What Athena does and this engine does too:
- only *registered* partitions are read (data under a prefix that is not a partition in the
  catalogue is invisible until ``MSCK REPAIR TABLE`` or ``BatchCreatePartition`` adds it);
  partition column values come from the catalogue, not from the files;
- Parquet columns are matched by name; a catalogue column missing from a file reads NULL; a
  column whose Parquet type cannot be read as the catalogue type fails the query with
  ``HIVE_BAD_DATA``; CSV (LazySimpleSerDe, OpenCSVSerde) and JSON SerDe tables are read with
  the declared columns, unparseable values becoming NULL as in Hive;
- a missing database or table fails the *query* (``SCHEMA_NOT_FOUND``, ``TABLE_NOT_FOUND``),
  not the API call; no output location anywhere is an ``InvalidRequestException``;
- ``CREATE TABLE ... WITH (format = 'PARQUET', external_location = ..., partitioned_by =
  ARRAY[...]) AS SELECT`` (CTAS) writes Snappy Parquet (Hive-style ``key=value/`` folders
  for the partitions) and registers the table and its partitions in Glue;
  ``MSCK REPAIR TABLE`` and ``SHOW PARTITIONS`` work on Hive-style layouts.

What differs, said plainly:
- the SQL dialect is DuckDB's, which is close to Athena's (Trino) for SELECT, joins, CTEs,
  window functions and aggregates, but not identical (``approx_percentile`` is provided;
  other Trino-only functions fail with the DuckDB message). On the sandbox backend Athena
  itself runs the query;
- ``DataScannedInBytes`` is computed, not measured: the compressed bytes of the Parquet
  column chunks of the columns the query names (all of them for ``*``), in the partitions
  left after pruning on ``=``, ``IN``, ``BETWEEN`` and range predicates of the WHERE
  clauses; whole objects for CSV and JSON. Athena's own figure is close to this but not equal;
- queries run synchronously (``SUCCEEDED`` or ``FAILED`` when ``StartQueryExecution``
  returns); Hive DDL (``CREATE EXTERNAL TABLE``) is refused with a message: create tables
  through the Glue API (or CTAS) offline.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import REGION, dispatch, moto_state, on_reset, s3_location, usage
from .dispatch import AWSError

ENGINE_VERSION = {"SelectedEngineVersion": "AUTO", "EffectiveEngineVersion": "Athena engine version 3"}
CATALOG = "awsdatacatalog"
USER_ERROR = 2  # AthenaError.ErrorCategory: 1 system, 2 user, 3 other

# Hive / Glue column types -> DuckDB types.
_SIMPLE_TYPES = {"string": "VARCHAR", "varchar": "VARCHAR", "char": "VARCHAR", "int": "INTEGER",
                 "integer": "INTEGER", "bigint": "BIGINT", "smallint": "SMALLINT", "tinyint": "TINYINT",
                 "double": "DOUBLE", "float": "FLOAT", "real": "FLOAT", "boolean": "BOOLEAN", "date": "DATE",
                 "timestamp": "TIMESTAMP", "binary": "BLOB"}
# DuckDB result types -> Athena's type names in ColumnInfo.
_ATHENA_TYPES = {"VARCHAR": "varchar", "BIGINT": "bigint", "INTEGER": "integer", "SMALLINT": "smallint",
                 "TINYINT": "tinyint", "DOUBLE": "double", "FLOAT": "real", "BOOLEAN": "boolean", "DATE": "date",
                 "TIMESTAMP": "timestamp", "HUGEINT": "bigint", "UBIGINT": "bigint", "UINTEGER": "bigint",
                 "USMALLINT": "integer", "UTINYINT": "smallint", "BLOB": "varbinary", "TIMESTAMP WITH TIME ZONE":
                 "timestamp with time zone", "INTERVAL": "interval day to second", "NULL": "unknown"}
# Athena (result) type -> Glue type, for tables that CTAS creates.
_GLUE_TYPES = {"varchar": "string", "integer": "int", "real": "float"}
# Parquet physical/logical families a catalogue type can read.
_PARQUET_FAMILIES = {"VARCHAR": ("string", "large_string"), "INTEGER": ("int8", "int16", "int32"),
                     "BIGINT": ("int8", "int16", "int32", "int64"), "SMALLINT": ("int8", "int16"),
                     "TINYINT": ("int8",), "DOUBLE": ("float", "double", "halffloat"), "FLOAT": ("float", "halffloat"),
                     "BOOLEAN": ("bool",), "DATE": ("date32[day]",), "BLOB": ("binary", "large_binary")}
PARQUET_SERDES = ("parquet",)
JSON_SERDES = ("jsonserde", "json")
CSV_SERDES = ("lazysimpleserde", "opencsvserde")


class QueryFailed(Exception):
    """A query that Athena accepts but that fails when it runs (state ``FAILED``)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Execution:
    """One query execution and, once it ran, its result."""

    id: str
    query: str
    database: str | None
    catalog: str
    workgroup: str
    output_location: str | None
    statement_type: str = "DML"
    state: str = "QUEUED"
    reason: str | None = None
    submitted: datetime = field(default_factory=lambda: datetime.now(UTC))
    completed: datetime | None = None
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, athena type)
    rows: list[list[str | None]] = field(default_factory=list)
    scanned: int = 0
    engine_ms: int = 0
    result_key: str | None = None
    billable: bool = False  # SELECT/WITH and CTAS are billed by bytes scanned; DDL and utility statements are free

    def describe(self) -> dict[str, Any]:
        status: dict[str, Any] = {"State": self.state, "SubmissionDateTime": self.submitted}
        if self.completed:
            status["CompletionDateTime"] = self.completed
        if self.reason:
            status["StateChangeReason"] = self.reason
            status["AthenaError"] = {"ErrorCategory": USER_ERROR, "Retryable": False, "ErrorMessage": self.reason}
        out: dict[str, Any] = {
            "QueryExecutionId": self.id, "Query": self.query, "StatementType": self.statement_type,
            "Status": status, "WorkGroup": self.workgroup, "EngineVersion": dict(ENGINE_VERSION),
            "Statistics": {"EngineExecutionTimeInMillis": self.engine_ms, "DataScannedInBytes": self.scanned,
                           "TotalExecutionTimeInMillis": self.engine_ms, "QueryQueueTimeInMillis": 0,
                           "ServicePreProcessingTimeInMillis": 0, "QueryPlanningTimeInMillis": 0,
                           "ServiceProcessingTimeInMillis": 0},
            "QueryExecutionContext": {k: v for k, v in (("Database", self.database), ("Catalog", self.catalog))
                                      if v},
        }
        if self.output_location:
            out["ResultConfiguration"] = {"OutputLocation": self.result_key or self.output_location}
        return out


# --- S3 and Glue, through the offline AWS -------------------------------------------------


def _split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):  # Athena takes s3:// locations only, unlike SageMaker
        raise QueryFailed(f"HIVE_INVALID_METADATA: location {uri!r} is not an s3:// URI")
    return s3_location.split(uri)


def _clients() -> tuple[Any, Any]:
    import boto3

    return boto3.client("s3", region_name=REGION), boto3.client("glue", region_name=REGION)


def _data_objects(s3: Any, uri: str) -> list[tuple[str, str, int]]:
    """(bucket, key, size) of the data files under ``uri``: Hive skips ``_``/``.`` files and folder markers."""
    bucket, prefix = _split(uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"].rsplit("/", 1)[-1]
            if not name or name.startswith(("_", ".")) or name.endswith("_$folder$") or obj["Size"] == 0:
                continue
            out.append((bucket, obj["Key"], obj["Size"]))
    return out


def _glue_table(glue: Any, database: str, name: str) -> dict[str, Any]:
    try:
        glue.get_database(Name=database)
    except glue.exceptions.EntityNotFoundException:
        raise QueryFailed(f"SCHEMA_NOT_FOUND: Schema '{database}' does not exist") from None
    try:
        return glue.get_table(DatabaseName=database, Name=name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        raise QueryFailed(f"TABLE_NOT_FOUND: Table '{CATALOG}.{database}.{name}' does not exist") from None


def _glue_partitions(glue: Any, database: str, name: str) -> list[dict[str, Any]]:
    out = []
    for page in glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=name):
        out.extend(page["Partitions"])
    return out


def _duck_type(hive_type: str) -> str:
    t = hive_type.strip().lower()
    base = t.split("(")[0]
    if base == "decimal":
        return t.upper()
    if base in ("varchar", "char"):
        return "VARCHAR"
    if base in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[base]
    raise QueryFailed(f"NOT_SUPPORTED: column type {hive_type!r} is not read by the offline Athena engine "
                      "(it reads primitive types; use the sandbox backend for arrays, maps and structs)")


def _format(table: dict[str, Any]) -> str:
    sd = table.get("StorageDescriptor") or {}
    serde = ((sd.get("SerdeInfo") or {}).get("SerializationLibrary") or "").lower()
    input_format = (sd.get("InputFormat") or "").lower()
    classification = ((table.get("Parameters") or {}).get("classification") or "").lower()
    if any(s in serde for s in PARQUET_SERDES) or "parquet" in input_format or classification == "parquet":
        return "parquet"
    if any(s in serde for s in JSON_SERDES) or classification == "json":
        return "json"
    if any(s in serde for s in CSV_SERDES) or "textinputformat" in input_format or classification == "csv":
        return "opencsv" if "opencsv" in serde else "csv"
    raise QueryFailed(f"HIVE_UNSUPPORTED_FORMAT: table {table['Name']!r} has SerDe {serde or 'none'!r} and "
                      f"InputFormat {input_format or 'none'!r}; the offline engine reads Parquet, CSV and JSON")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- reading one table ------------------------------------------------------------------


@dataclass
class TableScan:
    """How one catalogue table is read: files per partition and their sizes."""

    database: str
    name: str
    fmt: str
    columns: list[tuple[str, str]]  # (name, duckdb type)
    partition_keys: list[tuple[str, str]]
    parts: list[tuple[dict[str, str], list[Path]]]  # (partition values, local files)
    table: dict[str, Any]

    def column_bytes(self, path: Path) -> dict[str, int]:
        import pyarrow.parquet as pq

        sizes: dict[str, int] = {}
        meta = pq.ParquetFile(path).metadata
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for c in range(group.num_columns):
                chunk = group.column(c)
                name = chunk.path_in_schema.split(".")[0].lower()
                sizes[name] = sizes.get(name, 0) + chunk.total_compressed_size
        return sizes


def _check_parquet_schema(path: Path, columns: list[tuple[str, str]], table: str) -> set[str]:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    present = {}
    for f in schema:
        present[f.name.lower()] = f
    for name, duck in columns:
        f = present.get(name.lower())
        if f is None:
            continue
        arrow = str(f.type)
        if arrow.startswith("dictionary<values="):
            arrow = arrow[len("dictionary<values="):].split(",")[0]
        if duck.startswith("DECIMAL"):
            ok = arrow.startswith("decimal")
        elif duck == "TIMESTAMP":
            ok = arrow.startswith("timestamp")
        else:
            ok = arrow in _PARQUET_FAMILIES.get(duck, (arrow,))
        if not ok:
            raise QueryFailed(f"HIVE_BAD_DATA: Field {name}'s type {arrow} in parquet file {path.name} is "
                              f"incompatible with type {duck.lower()} defined in table schema of {table}")
    return set(present)


def _file_select(scan: TableScan, files: list[Path], values: dict[str, str]) -> str:
    listed = "[" + ", ".join(_literal(str(p)) for p in files) + "]"
    pcols = [f"CAST({_literal(values[k])} AS {t}) AS {_quote(k)}" if values.get(k) is not None
             else f"CAST(NULL AS {t}) AS {_quote(k)}" for k, t in scan.partition_keys]
    if scan.fmt == "parquet":
        present: set[str] = set()
        for p in files:
            present |= _check_parquet_schema(p, scan.columns, f"{scan.database}.{scan.name}")
        cols = [f"CAST({_quote(n)} AS {t}) AS {_quote(n)}" if n.lower() in present
                else f"CAST(NULL AS {t}) AS {_quote(n)}" for n, t in scan.columns]
        source = f"read_parquet({listed}, union_by_name = true, hive_partitioning = false)"
    else:
        sd = scan.table.get("StorageDescriptor") or {}
        serde_params = (sd.get("SerdeInfo") or {}).get("Parameters") or {}
        table_params = scan.table.get("Parameters") or {}
        names = {n: "VARCHAR" for n, _ in scan.columns}
        spec = "{" + ", ".join(f"{_literal(n)}: 'VARCHAR'" for n in names) + "}"
        if scan.fmt == "json":
            source = f"read_json({listed}, format = 'newline_delimited', columns = {spec})"
            cols = [f"TRY_CAST({_quote(n)} AS {t}) AS {_quote(n)}" for n, t in scan.columns]
        else:
            delim = serde_params.get("separatorChar" if scan.fmt == "opencsv" else "field.delim",
                                     "," if scan.fmt == "opencsv" else "\x01")
            skip = int(table_params.get("skip.header.line.count", "0") or 0)
            quote = _literal(serde_params.get("quoteChar", '"')) if scan.fmt == "opencsv" else "''"
            source = (f"read_csv({listed}, delim = {_literal(delim)}, header = false, skip = {skip}, "
                      f"quote = {quote}, columns = {spec}, null_padding = true, ignore_errors = true)")
            cols = [f"TRY_CAST(NULLIF({_quote(n)}, '') AS {t}) AS {_quote(n)}" if t != "VARCHAR"
                    else f"{_quote(n)}" for n, t in scan.columns]
    return f"SELECT {', '.join(cols + pcols)} FROM {source}"


# --- the SQL's shape, from DuckDB's own parser -------------------------------------------


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _parse(con: Any, sql: str) -> dict[str, Any]:
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    if tree.get("error"):
        raise QueryFailed(f"SYNTAX_ERROR: {tree.get('error_message', 'the query does not parse')}")
    return tree


def _tables(tree: dict[str, Any], default_db: str | None) -> list[tuple[str, str]]:
    ctes = {item["key"].lower() for n in _walk(tree) if isinstance(n.get("cte_map"), dict)
            for item in n["cte_map"].get("map", [])}
    found: list[tuple[str, str]] = []
    for n in _walk(tree):
        if n.get("type") != "BASE_TABLE" or "table_name" not in n:
            continue
        schema, name, catalog = n.get("schema_name") or "", n["table_name"].lower(), n.get("catalog_name") or ""
        if catalog and catalog.lower() != CATALOG:
            raise QueryFailed(f"CATALOG_NOT_FOUND: Catalog '{catalog}' does not exist (offline: {CATALOG} only)")
        if not schema and name in ctes:
            continue
        database = (schema or default_db or "").lower()
        if not database:
            raise QueryFailed(f"SCHEMA_NOT_FOUND: no database for table '{name}': set QueryExecutionContext."
                              "Database or qualify the name (database.table)")
        if (database, name) not in found:
            found.append((database, name))
    return found


def _referenced_columns(tree: dict[str, Any]) -> set[str] | None:
    """Column names the query names; ``None`` when it selects ``*`` (every column is read)."""
    names: set[str] = set()
    for n in _walk(tree):
        if n.get("class") == "STAR":
            return None
        if n.get("class") == "COLUMN_REF":
            names.add(n["column_names"][-1].lower())
    return names


def _constant(node: dict[str, Any]) -> str | None:
    if node.get("class") != "CONSTANT":
        return None
    lit = node.get("literal") or node.get("value") or {}
    if isinstance(lit, dict):
        for key in ("text", "value"):
            if key in lit and lit[key] is not None:
                return str(lit[key])
    return None


def _predicates(tree: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(column, operator, constants) of the conjuncts of every WHERE clause."""
    out: list[tuple[str, str, list[str]]] = []

    def conjuncts(expr: dict[str, Any]):
        if expr.get("type") == "CONJUNCTION_AND":
            for child in expr.get("children", []):
                yield from conjuncts(child)
        else:
            yield expr

    for n in _walk(tree):
        where = n.get("where_clause") if isinstance(n, dict) else None
        if not isinstance(where, dict):
            continue
        for c in conjuncts(where):
            kind = c.get("type", "")
            if c.get("class") == "COMPARISON" and c["left"].get("class") == "COLUMN_REF":
                value = _constant(c["right"])
                if value is not None:
                    out.append((c["left"]["column_names"][-1].lower(), kind, [value]))
            elif kind == "COMPARE_IN" and c["children"][0].get("class") == "COLUMN_REF":
                values = [_constant(x) for x in c["children"][1:]]
                if all(v is not None for v in values):
                    out.append((c["children"][0]["column_names"][-1].lower(), kind, values))  # type: ignore[arg-type]
            elif kind == "COMPARE_BETWEEN" and c.get("input", {}).get("class") == "COLUMN_REF":
                low, high = _constant(c.get("lower", {})), _constant(c.get("upper", {}))
                if low is not None and high is not None:
                    out.append((c["input"]["column_names"][-1].lower(), kind, [low, high]))
    return out


def _cmp(a: str, b: str) -> int:
    try:
        x, y = float(a), float(b)
        return (x > y) - (x < y)
    except ValueError:
        return (a > b) - (a < b)


def _holds(v: str, op: str, consts: list[str]) -> bool:
    """Whether a partition value satisfies one predicate (unknown operators keep the partition)."""
    first = _cmp(v, consts[0])
    return {"COMPARE_EQUAL": first == 0, "COMPARE_NOTEQUAL": first != 0, "COMPARE_LESSTHAN": first < 0,
            "COMPARE_LESSTHANOREQUALTO": first <= 0, "COMPARE_GREATERTHAN": first > 0,
            "COMPARE_GREATERTHANOREQUALTO": first >= 0,
            "COMPARE_IN": any(_cmp(v, c) == 0 for c in consts),
            "COMPARE_BETWEEN": first >= 0 and len(consts) > 1 and _cmp(v, consts[1]) <= 0}.get(op, True)


def _keeps(values: dict[str, str], predicates: list[tuple[str, str, list[str]]]) -> bool:
    lowered = {k.lower(): v for k, v in values.items()}
    return all(_holds(lowered[c], op, consts) for c, op, consts in predicates if lowered.get(c) is not None)


# --- values as Athena prints them ----------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value == value else "NaN"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    if isinstance(value, date | Decimal):
        return str(value)
    return str(value)


def _athena_names(con: Any, sql: str, names: list[str]) -> list[str]:
    """Athena names an unaliased expression ``_col<i>`` (DuckDB would say ``count_star()``)."""
    try:
        node = _parse(con, sql)["statements"][0]["node"]
    except (QueryFailed, KeyError, IndexError):
        return names
    while node.get("type") == "SET_OPERATION_NODE":
        node = node.get("left") or {}
    items = node.get("select_list") or []
    if len(items) != len(names) or any(i.get("class") == "STAR" for i in items):
        return names
    out = []
    for i, (item, name) in enumerate(zip(items, names, strict=True)):
        if item.get("alias") or item.get("class") == "COLUMN_REF":
            out.append(name)
        else:
            out.append(f"_col{i}")
    return out


def _athena_type(duck_type: str) -> str:
    t = str(duck_type).upper().strip('"')
    if t.startswith("DECIMAL"):
        return "decimal"
    return _ATHENA_TYPES.get(t, t.lower())


# --- the engine ------------------------------------------------------------------------------


CTAS = re.compile(r"^\s*CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w\".]+)\s*"
                  r"(?:WITH\s*\((?P<props>(?:[^()]|\([^()]*\))*)\)\s*)?AS\s+(?P<query>.+?)"
                  r"(?:\s+WITH\s+(?P<nodata>NO\s+)?DATA)?\s*$", re.IGNORECASE | re.DOTALL)
MSCK = re.compile(r"^\s*MSCK\s+REPAIR\s+TABLE\s+(?P<name>[\w\".]+)\s*$", re.IGNORECASE)
SHOW_PARTITIONS = re.compile(r"^\s*SHOW\s+PARTITIONS\s+(?P<name>[\w\".]+)\s*$", re.IGNORECASE)
DML = re.compile(r"^\s*(\(\s*)*(SELECT|WITH|VALUES|TABLE)\b", re.IGNORECASE)
PROP = re.compile(r"(\w+)\s*=\s*(ARRAY\s*\[(?P<array>[^\]]*)\]|'(?P<str>(?:[^']|'')*)'|(?P<num>\d+))", re.IGNORECASE)


class Athena:
    """Query executions of one account; each query runs when it is submitted."""

    def __init__(self) -> None:
        self.executions: dict[str, Execution] = {}
        self.lock = threading.Lock()

    # -- entry points --

    def start(self, query: str, database: str | None, catalog: str | None, output: str | None,
              workgroup: str) -> Execution:
        ex = Execution(id=str(uuid.uuid4()), query=query, database=database.lower() if database else None,
                       catalog=catalog or CATALOG, workgroup=workgroup, output_location=output)
        with self.lock:
            self.executions[ex.id] = ex
        self.run(ex)
        return ex

    def run(self, ex: Execution) -> None:
        ex.state = "RUNNING"
        started = time.perf_counter()
        workdir = Path(tempfile.mkdtemp(prefix=f"labkit-athena-{ex.id[:8]}-"))
        try:
            self._dispatch(ex, workdir)
            if ex.output_location and ex.statement_type == "DML":
                self._write_result(ex)
            ex.state = "SUCCEEDED"
            if ex.billable:  # the meter bills it: rounded up to the MB, 10 MB minimum (failed queries are free)
                usage.record("athena:query", ex.id, workgroup=ex.workgroup, bytes_scanned=ex.scanned,
                             statement_type=ex.statement_type)
        except QueryFailed as err:
            ex.state, ex.reason = "FAILED", err.message
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            ex.engine_ms = int((time.perf_counter() - started) * 1000)
            ex.completed = datetime.now(UTC)

    # -- statement kinds --

    def _dispatch(self, ex: Execution, workdir: Path) -> None:
        sql = ex.query.strip().rstrip(";").strip()
        if m := CTAS.match(sql):
            ex.statement_type = "DDL"
            ex.billable = True
            self._ctas(ex, m, workdir)
        elif m := MSCK.match(sql):
            ex.statement_type = "DDL"
            self._msck(ex, m.group("name"))
        elif m := SHOW_PARTITIONS.match(sql):
            ex.statement_type = "UTILITY"
            db, name = self._name(ex, m.group("name"))
            _, glue = _clients()
            table = _glue_table(glue, db, name)
            keys = [k["Name"] for k in table.get("PartitionKeys") or []]
            if not keys:
                raise QueryFailed(f"NOT_SUPPORTED: Table '{db}.{name}' is not partitioned")
            ex.columns = [("partition", "varchar")]
            ex.rows = [["/".join(f"{k}={v}" for k, v in zip(keys, p["Values"], strict=False))]
                       for p in sorted(_glue_partitions(glue, db, name), key=lambda p: p["Values"])]
        elif DML.match(sql):
            ex.statement_type = "DML"
            ex.billable = True
            con, scanned = self._prepare(sql, ex.database, workdir)
            ex.scanned = scanned
            self._select(ex, con, sql)
        else:
            first = sql.split(None, 2)[:2]
            raise QueryFailed(f"NOT_SUPPORTED: the offline Athena engine runs SELECT/WITH queries, CREATE TABLE AS "
                              f"SELECT, MSCK REPAIR TABLE and SHOW PARTITIONS, not {' '.join(first).upper()!r}. "
                              "Create tables with the Glue API (glue.create_table) offline; the sandbox backend "
                              "runs every Athena statement.")

    def _name(self, ex: Execution, raw: str) -> tuple[str, str]:
        parts = [p.strip('"').lower() for p in raw.split(".")]
        if parts[0] == CATALOG and len(parts) == 3:
            parts = parts[1:]
        if len(parts) == 2:
            return parts[0], parts[1]
        if not ex.database:
            raise QueryFailed(f"SCHEMA_NOT_FOUND: no database for table '{parts[-1]}': set "
                              "QueryExecutionContext.Database or qualify the name")
        return ex.database, parts[-1]

    def _prepare(self, sql: str, database: str | None, workdir: Path) -> tuple[Any, int]:
        """A DuckDB connection with a view per catalogue table the query names; bytes scanned."""
        import duckdb

        con = duckdb.connect(":memory:", config={"threads": 2})
        con.execute(f"ATTACH ':memory:' AS {CATALOG}")
        con.execute(f"USE {CATALOG}")
        con.execute("CREATE TEMP MACRO approx_percentile(x, p) AS quantile_cont(x, p)")
        tree = _parse(con, sql)
        s3, glue = _clients()
        referenced = _referenced_columns(tree)
        predicates = _predicates(tree)
        scanned = 0
        for db, name in _tables(tree, database):
            scan = self._scan(s3, glue, db, name, workdir)
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {CATALOG}.{_quote(db)}")
            pieces = []
            for values, files in scan.parts:
                if not files:
                    continue
                pieces.append(_file_select(scan, files, values))
                if not _keeps(values, predicates):
                    continue
                for path in files:
                    if scan.fmt == "parquet":
                        sizes = scan.column_bytes(path)
                        scanned += sum(v for k, v in sizes.items() if referenced is None or k in referenced)
                    else:
                        scanned += path.stat().st_size
            if not pieces:
                empty = ", ".join(f"CAST(NULL AS {t}) AS {_quote(n)}" for n, t in scan.columns + scan.partition_keys)
                pieces = [f"SELECT {empty} WHERE false"]
            con.execute(f"CREATE VIEW {CATALOG}.{_quote(db)}.{_quote(name)} AS " + " UNION ALL ".join(pieces))
        if database:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {CATALOG}.{_quote(database)}")
            con.execute(f"USE {CATALOG}.{_quote(database)}")
        return con, scanned

    def _scan(self, s3: Any, glue: Any, db: str, name: str, workdir: Path) -> TableScan:
        table = _glue_table(glue, db, name)
        sd = table.get("StorageDescriptor") or {}
        columns = [(c["Name"].lower(), _duck_type(c["Type"])) for c in sd.get("Columns") or []]
        keys = [(k["Name"].lower(), _duck_type(k.get("Type", "string"))) for k in table.get("PartitionKeys") or []]
        if not columns:
            raise QueryFailed(f"HIVE_INVALID_METADATA: table '{db}.{name}' has no columns in the catalogue")
        fmt = _format(table)
        if keys:
            locations = [({k: v for (k, _), v in zip(keys, p["Values"], strict=False)},
                          (p.get("StorageDescriptor") or {}).get("Location")
                          or sd["Location"].rstrip("/") + "/" + "/".join(
                              f"{k}={v}" for (k, _), v in zip(keys, p["Values"], strict=False)))
                         for p in _glue_partitions(glue, db, name)]
        else:
            if not sd.get("Location"):
                raise QueryFailed(f"HIVE_INVALID_METADATA: table '{db}.{name}' has no StorageDescriptor.Location")
            locations = [({}, sd["Location"])]
        parts = []
        folder = workdir / db / name
        for i, (values, location) in enumerate(locations):
            files = []
            for j, (bucket, key, _size) in enumerate(_data_objects(s3, location)):
                local = folder / f"p{i:05d}" / f"{j:05d}-{Path(key).name}"
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                files.append(local)
            parts.append((values, files))
        return TableScan(db, name, fmt, columns, keys, parts, table)

    def _select(self, ex: Execution, con: Any, sql: str) -> None:
        import duckdb

        try:
            rel = con.sql(sql)
            if rel is None:
                raise QueryFailed("NOT_SUPPORTED: the statement returns no rows")
            names, types = rel.columns, [str(t) for t in rel.types]
            rows = rel.fetchall()
        except duckdb.CatalogException as err:
            raise QueryFailed(f"TABLE_NOT_FOUND: {str(err).splitlines()[0]}") from None
        except duckdb.BinderException as err:
            raise QueryFailed(f"COLUMN_NOT_FOUND: {str(err).splitlines()[0]}") from None
        except duckdb.ParserException as err:
            raise QueryFailed(f"SYNTAX_ERROR: {str(err).splitlines()[0]}") from None
        except duckdb.Error as err:
            raise QueryFailed(f"GENERIC_USER_ERROR: {str(err).splitlines()[0]} (offline Athena runs the query "
                              "with DuckDB, whose SQL is close to Athena's Trino SQL but not identical)") from None
        names = _athena_names(con, sql, names)
        ex.columns = [(n, _athena_type(t)) for n, t in zip(names, types, strict=True)]
        ex.rows = [[_text(v) for v in row] for row in rows]
        ex._duck_types = types  # type: ignore[attr-defined]
        ex._raw = rows  # type: ignore[attr-defined]

    def _write_result(self, ex: Execution) -> None:
        s3, _ = _clients()
        bucket, prefix = _split(ex.output_location or "")
        key = (prefix.rstrip("/") + "/" if prefix.strip("/") else "") + f"{ex.id}.csv"
        buf = io.StringIO()
        writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow([n for n, _ in ex.columns])
        for row in ex.rows:
            buf.write(",".join("" if v is None else '"' + v.replace('"', '""') + '"' for v in row) + "\n")
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue().encode())
        except s3.exceptions.NoSuchBucket:
            raise QueryFailed(f"Unable to verify/create output bucket {bucket}") from None
        ex.result_key = f"s3://{bucket}/{key}"

    # -- CTAS, MSCK --

    def _ctas(self, ex: Execution, m: re.Match, workdir: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        db, name = self._name(ex, m.group("name"))
        props = {}
        for pm in PROP.finditer(m.group("props") or ""):
            key = pm.group(1).lower()
            if pm.group("array") is not None:
                props[key] = [v.strip().strip("'").lower() for v in pm.group("array").split(",") if v.strip()]
            else:
                props[key] = pm.group("str") if pm.group("str") is not None else pm.group("num")
        fmt = str(props.get("format", "PARQUET")).upper()
        if fmt != "PARQUET":
            raise QueryFailed(f"NOT_SUPPORTED: CTAS format {fmt!r} is not written offline (Parquet is)")
        if "bucketed_by" in props or "bucket_count" in props:
            raise QueryFailed("NOT_SUPPORTED: bucketed CTAS tables are not written offline")
        compression = str(props.get("write_compression", props.get("parquet_compression", "SNAPPY"))).upper()
        s3, glue = _clients()
        try:
            glue.get_database(Name=db)
        except glue.exceptions.EntityNotFoundException:
            raise QueryFailed(f"SCHEMA_NOT_FOUND: Schema '{db}' does not exist") from None
        try:
            glue.get_table(DatabaseName=db, Name=name)
            if m.group(1):
                return
            raise QueryFailed(f"ALREADY_EXISTS: Table '{CATALOG}.{db}.{name}' already exists")
        except glue.exceptions.EntityNotFoundException:
            pass
        location = props.get("external_location") or (
            f"{(ex.output_location or '').rstrip('/')}/tables/{ex.id}" if ex.output_location else None)
        if not location:
            raise QueryFailed("NOT_SUPPORTED: CTAS needs external_location or a query output location")
        location = str(location).rstrip("/") + "/"
        if _data_objects(s3, location):
            raise QueryFailed(f"HIVE_PATH_ALREADY_EXISTS: Target directory for table '{db}.{name}' already exists: "
                              f"{location}. You may need to manually clean the data at location '{location}' "
                              "before retrying.")
        query = m.group("query")
        con, scanned = self._prepare(query, ex.database, workdir)
        ex.scanned = scanned
        self._select(ex, con, query)
        names = [n.lower() for n, _ in ex.columns]
        partitioned = list(props.get("partitioned_by") or [])
        if partitioned and names[-len(partitioned):] != partitioned:
            raise QueryFailed("HIVE_COLUMN_ORDER_MISMATCH: Partition keys must be the last columns in the table and "
                              f"in the same order as the table properties: {partitioned}")
        arrow = con.sql(query).to_arrow_table() if not m.group("nodata") else None
        data_cols = [(n, t) for n, t in ex.columns if n.lower() not in partitioned]
        groups: dict[tuple[str, ...], Any] = {}
        if arrow is not None and arrow.num_rows:
            if partitioned:
                import pyarrow.compute as pc

                keys = sorted({tuple(_text(v) for v in row) for row in zip(
                    *[arrow.column(k).to_pylist() for k in partitioned], strict=True)})
                for key in keys:
                    mask = None
                    for col, val in zip(partitioned, key, strict=True):
                        cond = pc.is_null(arrow.column(col)) if val is None else pc.equal(
                            pc.cast(arrow.column(col), pa.string()), val)
                        mask = cond if mask is None else pc.and_(mask, cond)
                    groups[key] = arrow.filter(mask).drop_columns(partitioned)
            else:
                groups[()] = arrow
        bucket, prefix = _split(location)
        for i, (key, part) in enumerate(groups.items()):
            sub = "".join(f"{c}={'__HIVE_DEFAULT_PARTITION__' if v is None else v}/"
                          for c, v in zip(partitioned, key, strict=True))
            local = workdir / f"ctas-{i}.parquet"
            pq.write_table(part, local, compression=compression.lower() if compression != "NONE" else None)
            s3.put_object(Bucket=bucket, Key=f"{prefix}{sub}{ex.id}_{i:05d}.parquet", Body=local.read_bytes())
        hive = {n: _GLUE_TYPES.get(t, t) for n, t in ex.columns}
        for n, t in ex.columns:
            if t == "decimal":
                hive[n] = "decimal(38,9)"
        parquet_sd = {"InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                      "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                      "SerdeInfo": {"SerializationLibrary":
                                    "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}}
        glue.create_table(DatabaseName=db, TableInput={
            "Name": name, "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "parquet.compression": compression},
            "PartitionKeys": [{"Name": k, "Type": hive[k]} for k in partitioned],
            "StorageDescriptor": {"Columns": [{"Name": n, "Type": hive[n]} for n, _ in data_cols],
                                  "Location": location, **parquet_sd}})
        if partitioned and groups:
            inputs = [{"Values": ["__HIVE_DEFAULT_PARTITION__" if v is None else v for v in key],
                       "StorageDescriptor": {"Location": location + "".join(
                           f"{c}={v}/" for c, v in zip(partitioned, key, strict=True)),
                           "Columns": [{"Name": n, "Type": hive[n]} for n, _ in data_cols], **parquet_sd}}
                      for key in groups]
            for start in range(0, len(inputs), 100):
                glue.batch_create_partition(DatabaseName=db, TableName=name,
                                            PartitionInputList=inputs[start:start + 100])
        ex.columns, ex.rows = [("rows", "bigint")], [[str(arrow.num_rows if arrow is not None else 0)]]

    def _msck(self, ex: Execution, raw: str) -> None:
        db, name = self._name(ex, raw)
        s3, glue = _clients()
        table = _glue_table(glue, db, name)
        keys = [k["Name"].lower() for k in table.get("PartitionKeys") or []]
        if not keys:
            raise QueryFailed(f"NOT_SUPPORTED: Table '{db}.{name}' is not partitioned")
        location = table["StorageDescriptor"]["Location"].rstrip("/") + "/"
        known = {tuple(p["Values"]) for p in _glue_partitions(glue, db, name)}
        found: dict[tuple[str, ...], str] = {}
        _, prefix = _split(location)
        for _bucket, key, _size in _data_objects(s3, location):
            segments = key[len(prefix):].split("/")[:-1]
            pairs = [s.split("=", 1) for s in segments[:len(keys)]]
            if len(pairs) == len(keys) and all(len(p) == 2 and p[0].lower() == k for p, k in zip(pairs, keys, strict=True)):
                values = tuple(p[1] for p in pairs)
                found.setdefault(values, location + "/".join(segments[:len(keys)]) + "/")
        new = [v for v in sorted(found) if v not in known]
        sd = dict(table["StorageDescriptor"])
        for start in range(0, len(new), 100):
            glue.batch_create_partition(DatabaseName=db, TableName=name, PartitionInputList=[
                {"Values": list(v), "StorageDescriptor": {**sd, "Location": found[v]}} for v in new[start:start + 100]])
        ex.columns = [("result", "varchar")]
        ex.rows = [[f"Repair: Added partition to metastore {name}:" + "/".join(
            f"{k}={x}" for k, x in zip(keys, v, strict=True))] for v in new]


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


__all__ = ["Athena", "Execution", "QueryFailed", "engine"]
