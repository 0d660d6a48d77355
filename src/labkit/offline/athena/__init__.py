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

The package follows moto's split: :mod:`.tables` (the catalogue's tables read from S3),
:mod:`.sql` (the query's shape, Athena's value formats) and :mod:`.engine` (the
:class:`~.engine.Athena` engine) hold the behaviour; :mod:`.api` is the protocol layer.
"""

from __future__ import annotations

from typing import Any

from . import api
from .engine import Athena
from .tables import Execution, QueryFailed


def __getattr__(name: str) -> Any:
    if name == "engine":  # the current engine: a backend reset replaces it
        return api.engine
    raise AttributeError(name)


__all__ = ["Athena", "Execution", "QueryFailed", "api"]
