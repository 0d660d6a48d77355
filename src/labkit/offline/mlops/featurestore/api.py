"""SageMaker Feature Store's API offline: feature groups and featurestore-runtime.

moto's CreateFeatureGroup crashes without an ``OfflineStoreConfig`` and moto has no
featurestore-runtime at all, so both are answered here from :mod:`.store`:
CreateFeatureGroup, DescribeFeatureGroup, ListFeatureGroups, DeleteFeatureGroup, and the
runtime's PutRecord, GetRecord, DeleteRecord and BatchGetRecord. Creating a group with an
offline store also creates its Glue table (database ``sagemaker_featurestore``) unless
``DisableGlueTableCreation``, as AWS does, so SQL engines that read the Glue catalogue
can find the Parquet files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from typing import Any

from ... import ACCOUNT_ID, REGION, dispatch, on_reset, s3_location, storage
from ...dispatch import AWSError
from .store import FeatureGroup, FeatureStoreError, OfflineStore, validate_definition

RUNTIME = "sagemaker-featurestore-runtime"
GLUE_DATABASE = "sagemaker_featurestore"
GLUE_TYPES = {"Integral": "bigint", "Fractional": "double", "String": "string"}

groups: dict[str, FeatureGroup] = {}
_lock = threading.Lock()


def _error(err: FeatureStoreError) -> AWSError:
    return AWSError(err.code, err.message)


def _group(name_or_arn: str) -> FeatureGroup:
    name = name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn
    group = groups.get(name.lower())
    if group is None:
        raise AWSError("ResourceNotFound", f"Resource Not Found: Amazon SageMaker can't find a FeatureGroup with name "
                                           f"{name}")
    return group


def _put_object(uri: str, data: bytes) -> None:
    bucket, key = s3_location.split(uri)
    storage.s3().put_object(Bucket=bucket, Key=key, Body=data)


def _glue_table(group: FeatureGroup, catalog: dict[str, str], location: str) -> None:
    import boto3

    glue = boto3.session.Session().client("glue", region_name=REGION)
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_database(DatabaseInput={"Name": catalog["Database"]})
    columns = [{"Name": n.lower(), "Type": GLUE_TYPES[t]} for n, t in group.types.items()]
    columns += [{"Name": "write_time", "Type": "timestamp"}, {"Name": "api_invocation_time", "Type": "timestamp"},
                {"Name": "is_deleted", "Type": "boolean"}]
    glue.create_table(DatabaseName=catalog["Database"], TableInput={
        "Name": catalog["TableName"], "TableType": "EXTERNAL_TABLE",
        "PartitionKeys": [{"Name": k, "Type": "string"} for k in ("year", "month", "day", "hour")],
        "StorageDescriptor": {
            "Columns": columns, "Location": location,
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}},
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"}})


@dispatch.operation("sagemaker", "CreateFeatureGroup")
def create_feature_group(params: dict[str, Any]) -> dict[str, Any]:
    try:
        validate_definition(params)
    except FeatureStoreError as err:
        raise _error(err) from err
    name = params["FeatureGroupName"]
    with _lock:
        if name.lower() in groups:
            raise AWSError("ResourceInUse", f"Resource Already Exists: FeatureGroup with name {name} already exists. "
                                            "Choose a different name.")
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:feature-group/{name.lower()}"
        group = FeatureGroup(name=name, arn=arn, record_identifier=params["RecordIdentifierFeatureName"],
                             event_time_feature=params["EventTimeFeatureName"],
                             definitions=[dict(d) for d in params["FeatureDefinitions"]],
                             online_config=params.get("OnlineStoreConfig"), offline_config=None,
                             role_arn=params.get("RoleArn"), description=params.get("Description"),
                             tags=params.get("Tags") or [], throughput=params.get("ThroughputConfig"))
        offline = params.get("OfflineStoreConfig")
        if offline is not None:
            epoch = int(group.created.timestamp())
            s3 = dict(offline["S3StorageConfig"])
            s3["ResolvedOutputS3Uri"] = (f"{s3_location.canonical(s3['S3Uri']).rstrip('/')}/{ACCOUNT_ID}/sagemaker/{REGION}/offline-store/"
                                         f"{name}-{epoch}/data")
            config = {**offline, "S3StorageConfig": s3}
            if not offline.get("DisableGlueTableCreation"):
                catalog = dict(offline.get("DataCatalogConfig") or {
                    "TableName": f"{name.replace('-', '_').lower()}_{epoch}", "Catalog": "AwsDataCatalog",
                    "Database": GLUE_DATABASE})
                config["DataCatalogConfig"] = catalog
                _glue_table(group, catalog, s3["ResolvedOutputS3Uri"])
            group.offline_config = config
            group.offline = OfflineStore(s3["ResolvedOutputS3Uri"], group.types, _put_object)
        groups[name.lower()] = group
    return {"FeatureGroupArn": group.arn}


@dispatch.operation("sagemaker", "DescribeFeatureGroup")
def describe_feature_group(params: dict[str, Any]) -> dict[str, Any]:
    return _group(params["FeatureGroupName"]).describe()


@dispatch.operation("sagemaker", "ListFeatureGroups")
def list_feature_groups(params: dict[str, Any]) -> dict[str, Any]:
    items = [g for g in groups.values() if not params.get("NameContains") or params["NameContains"] in g.name]
    items.sort(key=lambda g: g.created if params.get("SortBy", "CreationTime") == "CreationTime" else g.name,
               reverse=params.get("SortOrder", "Descending") == "Descending")
    summaries = [{"FeatureGroupName": g.name, "FeatureGroupArn": g.arn, "CreationTime": g.created,
                  "FeatureGroupStatus": "Created", **({"OfflineStoreStatus": {"Status": "Active"}} if g.offline else {})}
                 for g in items]
    return {"FeatureGroupSummaries": summaries[: int(params.get("MaxResults") or 100)]}


@dispatch.operation("sagemaker", "DeleteFeatureGroup")
def delete_feature_group(params: dict[str, Any]) -> dict[str, Any]:
    group = _group(params["FeatureGroupName"])
    if group.offline is not None:
        group.offline.flush()
        group.offline.close()
    with _lock:
        groups.pop(group.name.lower(), None)
    return {}


# --- featurestore-runtime ------------------------------------------------------------------


def _record(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"FeatureName": k, "ValueAsString": v} for k, v in values.items()]


def _expires(when: dt.datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z" if when else None


@dispatch.operation(RUNTIME, "PutRecord")
def put_record(params: dict[str, Any]) -> dict[str, Any]:
    group = _group(params["FeatureGroupName"])
    try:
        group.put(params["Record"], params.get("TargetStores"), params.get("TtlDuration"))
    except FeatureStoreError as err:
        raise _error(err) from err
    return {}


@dispatch.operation(RUNTIME, "GetRecord")
def get_record(params: dict[str, Any]) -> dict[str, Any]:
    group = _group(params["FeatureGroupName"])
    try:
        found = group.get(params["RecordIdentifierValueAsString"], params.get("FeatureNames"))
    except FeatureStoreError as err:
        raise _error(err) from err
    if found is None:
        return {}
    out: dict[str, Any] = {"Record": _record(found.values)}
    if params.get("ExpirationTimeResponse") == "Enabled" and found.expires_at:
        out["ExpiresAt"] = _expires(found.expires_at)
    return out


@dispatch.operation(RUNTIME, "DeleteRecord")
def delete_record(params: dict[str, Any]) -> dict[str, Any]:
    group = _group(params["FeatureGroupName"])
    try:
        group.delete(params["RecordIdentifierValueAsString"], params["EventTime"], params.get("TargetStores"),
                     params.get("DeletionMode", "SoftDelete"))
    except FeatureStoreError as err:
        raise _error(err) from err
    return {}


@dispatch.operation(RUNTIME, "BatchGetRecord")
def batch_get_record(params: dict[str, Any]) -> dict[str, Any]:
    records, errors = [], []
    for ident in params["Identifiers"]:
        name = ident["FeatureGroupName"]
        try:
            group = _group(name)
        except AWSError as err:
            errors += [{"FeatureGroupName": name, "RecordIdentifierValueAsString": rid, "ErrorCode": err.code,
                        "ErrorMessage": err.message} for rid in ident["RecordIdentifiersValueAsString"]]
            continue
        for rid in ident["RecordIdentifiersValueAsString"]:
            try:
                found = group.get(rid, ident.get("FeatureNames"))
            except FeatureStoreError as err:
                errors.append({"FeatureGroupName": name, "RecordIdentifierValueAsString": rid,
                               "ErrorCode": err.code, "ErrorMessage": err.message})
                continue
            if found is not None:
                item: dict[str, Any] = {"FeatureGroupName": group.name, "RecordIdentifierValueAsString": rid,
                                        "Record": _record(found.values)}
                if params.get("ExpirationTimeResponse") == "Enabled" and found.expires_at:
                    item["ExpiresAt"] = _expires(found.expires_at)
                records.append(item)
    return {"Records": records, "Errors": errors, "UnprocessedIdentifiers": []}


def flush_offline_stores() -> list[str]:
    """Write every buffered offline-store row now (tests; AWS's own delay is minutes)."""
    written = []
    for group in list(groups.values()):
        if group.offline is not None:
            written += group.offline.flush()
    return written


@on_reset
def _reset() -> None:
    with _lock:
        for group in groups.values():
            if group.offline is not None:
                group.offline.close()
        groups.clear()
