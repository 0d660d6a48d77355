"""The Athena engine: runs a query (SELECT, CTAS, MSCK REPAIR TABLE, SHOW PARTITIONS) and keeps its execution; no HTTP, no botocore."""

from __future__ import annotations

import csv
import io
import re
import shutil
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import usage
from .sql import _athena_names, _athena_type, _keeps, _parse, _predicates, _referenced_columns, _tables, _text
from .tables import (
    _GLUE_TYPES,
    CATALOG,
    Execution,
    QueryFailed,
    TableScan,
    _clients,
    _data_objects,
    _duck_type,
    _file_select,
    _format,
    _glue_partitions,
    _glue_table,
    _quote,
    _split,
)

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
        props: dict[str, Any] = {}
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
        groups: dict[tuple[str | None, ...], Any] = {}
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

