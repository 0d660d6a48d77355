"""Athena's tables: the Glue Data Catalog's types and SerDes, objects from S3, one table read by DuckDB."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import REGION, s3_location

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


