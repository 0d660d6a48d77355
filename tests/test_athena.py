"""Offline Athena: queries over the Glue catalogue run in DuckDB, results land in S3 as Athena writes them."""

from __future__ import annotations

import io

import boto3
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

PARQUET_SD = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}
DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def lake(lab):
    s3, glue = boto3.client("s3"), boto3.client("glue")
    for i, dt in enumerate(DAYS):
        df = pd.DataFrame({"user_id": ["a", "b", "a"], "amount": [1.0 + i, 2.0, 3.0], "n": [1, 2, 3]})
        s3.put_object(Bucket=lab.bucket, Key=f"t/silver/events/dt={dt}/part-0.parquet", Body=_parquet(df))
    s3.put_object(Bucket=lab.bucket, Key="t/silver/events/dt=2024-01-01/_SUCCESS", Body=b"")
    s3.put_object(Bucket=lab.bucket, Key="t/bronze/users/users.csv", Body=b"id,name,age\nu1,Ann,31\nu2,Bob,x\n")
    s3.put_object(Bucket=lab.bucket, Key="t/bronze/clicks/c.json",
                  Body=b'{"user_id": "a", "page": "home", "ms": 12}\n{"user_id": "b", "page": "cart"}\n')
    glue.create_database(DatabaseInput={"Name": "lake"})
    glue.create_table(DatabaseName="lake", TableInput={
        "Name": "events", "TableType": "EXTERNAL_TABLE", "PartitionKeys": [{"Name": "dt", "Type": "string"}],
        "StorageDescriptor": {"Columns": [{"Name": "user_id", "Type": "string"}, {"Name": "amount", "Type": "double"},
                                          {"Name": "n", "Type": "bigint"}, {"Name": "extra", "Type": "string"}],
                              "Location": f"s3://{lab.bucket}/t/silver/events/", **PARQUET_SD}})
    glue.create_table(DatabaseName="lake", TableInput={
        "Name": "users", "Parameters": {"skip.header.line.count": "1", "classification": "csv"},
        "StorageDescriptor": {"Columns": [{"Name": "id", "Type": "string"}, {"Name": "name", "Type": "string"},
                                          {"Name": "age", "Type": "int"}],
                              "Location": f"s3://{lab.bucket}/t/bronze/users/",
                              "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                                            "Parameters": {"field.delim": ","}}}})
    glue.create_table(DatabaseName="lake", TableInput={
        "Name": "clicks", "StorageDescriptor": {
            "Columns": [{"Name": "user_id", "Type": "string"}, {"Name": "page", "Type": "string"},
                        {"Name": "ms", "Type": "int"}],
            "Location": f"s3://{lab.bucket}/t/bronze/clicks/",
            "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"}}})
    return lab


def run(lab, sql: str, database: str | None = "lake") -> dict:
    athena = boto3.client("athena")
    kwargs = {"QueryString": sql, "ResultConfiguration": {"OutputLocation": f"s3://{lab.bucket}/t/athena/"}}
    if database:
        kwargs["QueryExecutionContext"] = {"Database": database}
    qid = athena.start_query_execution(**kwargs)["QueryExecutionId"]
    ex = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
    out = {"id": qid, "state": ex["Status"]["State"], "reason": ex["Status"].get("StateChangeReason"),
           "scanned": ex["Statistics"]["DataScannedInBytes"], "type": ex["StatementType"], "execution": ex}
    if out["state"] == "SUCCEEDED":
        res = athena.get_query_results(QueryExecutionId=qid)["ResultSet"]
        out["rows"] = [[c.get("VarCharValue") for c in r["Data"]] for r in res["Rows"]]
        out["types"] = [c["Type"] for c in res["ResultSetMetadata"]["ColumnInfo"]]
    return out


def test_unregistered_partitions_are_invisible_until_repaired(lake):
    assert run(lake, "SELECT count(*) FROM events")["rows"] == [["_col0"], ["0"]]
    repaired = run(lake, "MSCK REPAIR TABLE events")
    assert repaired["state"] == "SUCCEEDED" and repaired["type"] == "DDL"
    assert run(lake, "SHOW PARTITIONS events")["rows"] == [[f"dt={d}"] for d in DAYS]
    assert run(lake, "SELECT count(*) AS c FROM events")["rows"] == [["c"], ["9"]]


def test_select_types_nulls_and_result_file(lake):
    res = run(lake, "SELECT user_id, sum(amount) AS total, count(*) AS c, max(extra) AS e FROM events "
                    "GROUP BY user_id ORDER BY user_id")
    assert res["rows"] == [["user_id", "total", "c", "e"], ["a", "15.0", "6", None], ["b", "6.0", "3", None]]
    assert res["types"] == ["varchar", "double", "bigint", "varchar"]
    location = res["execution"]["ResultConfiguration"]["OutputLocation"]
    assert location.endswith(f"/t/athena/{res['id']}.csv")
    body = boto3.client("s3").get_object(Bucket=lake.bucket, Key=location.split("/", 3)[3])["Body"].read()
    assert body.decode().splitlines() == ['"user_id","total","c","e"', '"a","15.0","6",', '"b","6.0","3",']


def test_partition_pruning_and_columns_reduce_scanned_bytes(lake):
    everything = run(lake, "SELECT * FROM events")["scanned"]
    one_column = run(lake, "SELECT sum(amount) FROM events")["scanned"]
    one_day = run(lake, "SELECT sum(amount) FROM events WHERE dt = '2024-01-02'")
    assert one_day["rows"][1] == ["7.0"]
    assert 0 < one_day["scanned"] < one_column < everything
    ranged = run(lake, "SELECT count(*) FROM events WHERE dt BETWEEN '2024-01-02' AND '2024-01-03'")
    assert ranged["rows"][1] == ["6"]


def test_csv_and_json_serdes(lake):
    assert run(lake, "SELECT * FROM users ORDER BY id")["rows"] == [
        ["id", "name", "age"], ["u1", "Ann", "31"], ["u2", "Bob", None]]  # unparseable int -> NULL, as Hive
    assert run(lake, "SELECT user_id, page, ms FROM clicks ORDER BY 1")["rows"][1:] == [
        ["a", "home", "12"], ["b", "cart", None]]


def test_ctas_writes_partitioned_parquet_and_registers_it(lake):
    res = run(lake, f"CREATE TABLE gold_daily WITH (format = 'PARQUET', external_location = "
                    f"'s3://{lake.bucket}/t/gold/daily/', partitioned_by = ARRAY['dt']) AS "
                    "SELECT user_id, sum(amount) AS total, dt FROM events GROUP BY user_id, dt")
    assert res["state"] == "SUCCEEDED", res["reason"]
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=lake.bucket, Prefix="t/gold/daily/")["Contents"]]
    assert sorted({k.split("/")[3] for k in keys}) == [f"dt={d}" for d in DAYS]
    table = boto3.client("glue").get_table(DatabaseName="lake", Name="gold_daily")["Table"]
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == ["user_id", "total"]
    assert table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    assert len(boto3.client("glue").get_partitions(DatabaseName="lake", TableName="gold_daily")["Partitions"]) == 3
    assert run(lake, "SELECT total FROM gold_daily WHERE user_id = 'a' AND dt = '2024-01-03'")["rows"][1] == ["6.0"]
    again = run(lake, f"CREATE TABLE other WITH (external_location = 's3://{lake.bucket}/t/gold/daily/') AS SELECT 1 AS x")
    assert again["state"] == "FAILED" and again["reason"].startswith("HIVE_PATH_ALREADY_EXISTS")
    order = run(lake, "CREATE TABLE bad WITH (partitioned_by = ARRAY['dt']) AS SELECT dt, user_id FROM events")
    assert order["state"] == "FAILED" and "HIVE_COLUMN_ORDER_MISMATCH" in order["reason"]


def test_failures_are_query_states_not_api_errors(lake):
    assert run(lake, "SELECT * FROM nope")["reason"] == "TABLE_NOT_FOUND: Table 'awsdatacatalog.lake.nope' does not exist"
    assert run(lake, "SELECT * FROM nodb.x")["reason"].startswith("SCHEMA_NOT_FOUND")
    assert run(lake, "SELECT nosuchcolumn FROM events")["reason"].startswith("COLUMN_NOT_FOUND")
    ddl = run(lake, "CREATE EXTERNAL TABLE x (a string) LOCATION 's3://b/x/'")
    assert ddl["state"] == "FAILED" and "glue.create_table" in ddl["reason"]
    with pytest.raises(ClientError) as err:
        boto3.client("athena").get_query_results(QueryExecutionId=run(lake, "SELECT * FROM nope")["id"])
    assert err.value.response["Error"]["Code"] == "InvalidRequestException"


def test_parquet_type_mismatch_is_hive_bad_data(lake):
    glue = boto3.client("glue")
    glue.create_table(DatabaseName="lake", TableInput={
        "Name": "events_wrong", "StorageDescriptor": {
            "Columns": [{"Name": "amount", "Type": "bigint"}],
            "Location": f"s3://{lake.bucket}/t/silver/events/dt=2024-01-01/", **PARQUET_SD}})
    res = run(lake, "SELECT amount FROM events_wrong")
    assert res["state"] == "FAILED" and res["reason"].startswith("HIVE_BAD_DATA: Field amount's type double")


def test_output_location_is_required(lake):
    with pytest.raises(ClientError) as err:
        boto3.client("athena").start_query_execution(QueryString="SELECT 1")
    assert err.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "No output location provided" in err.value.response["Error"]["Message"]


def test_list_and_paging(lake):
    run(lake, "SELECT 1")
    athena = boto3.client("athena")
    ids = athena.list_query_executions()["QueryExecutionIds"]
    assert len(ids) >= 2
    qid = run(lake, "SELECT user_id FROM events ORDER BY 1")["id"]
    first = athena.get_query_results(QueryExecutionId=qid, MaxResults=4)
    assert len(first["ResultSet"]["Rows"]) == 4 and "NextToken" in first
    rest = athena.get_query_results(QueryExecutionId=qid, NextToken=first["NextToken"])
    assert len(rest["ResultSet"]["Rows"]) == 6  # header + 9 rows in all
