"""Feature groups, their online store and their offline store (plain classes, no HTTP).

The **online store** keeps the latest record per record identifier: a PutRecord whose
event time is older than the stored one does not replace it (the offline store still
gets it), a soft or hard DeleteRecord removes it, and a record whose time to live
(``TtlDuration``) has passed is no longer returned.

The **offline store** is what AWS writes to S3: every PutRecord and DeleteRecord as a row
of a Parquet file, the features plus ``api_invocation_time``, ``write_time`` and
``is_deleted``, under the documented layout
``<S3Uri>/<account>/sagemaker/<region>/offline-store/<group>-<creation epoch>/data/
year=YYYY/month=MM/day=DD/hour=HH/<YYYYMMDDTHHMMSSZ>_<16 random>.parquet``, partitioned by
the record's event time. AWS buffers rows and writes within about 15 minutes; here rows
are written at the latest :data:`FLUSH_SECONDS` after they arrive (or when
:meth:`OfflineStore.flush` is called), so a lab that waits for its rows sees them quickly.
Features are typed as in the Glue table AWS creates: Integral -> int64, Fractional ->
double, String -> string.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import secrets
import string
import threading
from dataclasses import dataclass, field
from typing import Any

from ... import s3_location

FLUSH_SECONDS = 1.0
MAX_BUFFER = 2000
RESERVED = ("is_deleted", "write_time", "api_invocation_time")
NAME = re.compile(r"^[a-zA-Z0-9]([_-]*[a-zA-Z0-9]){0,63}$")
FEATURE_NAME = re.compile(r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}$")
TTL_UNITS = {"Seconds": 1, "Minutes": 60, "Hours": 3600, "Days": 86400, "Weeks": 604800}
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")


class FeatureStoreError(ValueError):
    """A request the service refuses: ``code`` is its error code (``ValidationError``...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def parse_event_time(value: str, kind: str, feature: str) -> dt.datetime:
    """An event time as the service reads it: ISO 8601 (String) or Unix seconds (Fractional)."""
    if kind == "Fractional":
        try:
            seconds = float(value)
        except ValueError as err:
            raise FeatureStoreError("ValidationError", f"Event time feature {feature} is Fractional: give Unix "
                                                       f"seconds, not {value!r}.") from err
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    if not _ISO.match(value):
        raise FeatureStoreError("ValidationError", f"Event time {value!r} of feature {feature} is not in an allowed "
                                                   "format: use yyyy-MM-ddTHH:mm:ssZ or yyyy-MM-ddTHH:mm:ss.SSSZ "
                                                   "(UTC), e.g. 2024-05-01T12:00:00Z.")
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def typed(value: str, kind: str, feature: str) -> Any:
    try:
        if kind == "Integral":
            if not re.match(r"^[+-]?\d+$", value.strip()):
                raise ValueError(value)
            return int(value)
        if kind == "Fractional":
            number = float(value)
            if math.isnan(number) or math.isinf(number):
                raise ValueError(value)
            return number
    except ValueError as err:
        raise FeatureStoreError("ValidationError", f"Feature {feature} is {kind}: {value!r} is not a valid "
                                                   f"{kind.lower()} value.") from err
    return value


def ttl_seconds(ttl: dict[str, Any] | None) -> int | None:
    if not ttl:
        return None
    if ttl.get("Unit") not in TTL_UNITS or int(ttl.get("Value", 0)) < 1:
        raise FeatureStoreError("ValidationError", f"TtlDuration {ttl} is invalid: Unit one of "
                                                   f"{', '.join(TTL_UNITS)}, Value a positive integer.")
    return TTL_UNITS[ttl["Unit"]] * int(ttl["Value"])


@dataclass
class OnlineRecord:
    values: dict[str, str]
    event_time: dt.datetime
    expires_at: dt.datetime | None


class OfflineStore:
    """Rows buffered for S3 and written as Parquet files (``put`` writes one object)."""

    def __init__(self, resolved_uri: str, types: dict[str, str], put: Any):
        self.resolved_uri = resolved_uri.rstrip("/")
        self.types = types
        self._put = put
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.files: list[str] = []

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= MAX_BUFFER
            if self._timer is None and not full:
                self._timer = threading.Timer(FLUSH_SECONDS, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self.flush()

    def flush(self) -> list[str]:
        """Write every buffered row now; returns the S3 URIs written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self._lock:
            rows, self._rows = self._rows, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if not rows:
            return []
        arrow = {"Integral": pa.int64(), "Fractional": pa.float64(), "String": pa.string()}
        schema = pa.schema([*(pa.field(n, arrow[t]) for n, t in self.types.items()),
                            pa.field("api_invocation_time", pa.timestamp("ms", tz="UTC")),
                            pa.field("write_time", pa.timestamp("ms", tz="UTC")),
                            pa.field("is_deleted", pa.bool_())])
        partitions: dict[str, list[tuple[dt.datetime, dict[str, Any]]]] = {}
        for row in rows:
            t = row.pop("__event_time__")
            partitions.setdefault(f"year={t:%Y}/month={t:%m}/day={t:%d}/hour={t:%H}", []).append((t, row))
        written = []
        write_time = dt.datetime.now(dt.UTC)
        for prefix, items in partitions.items():
            latest = max(t for t, _ in items)
            table = pa.Table.from_pylist([{**r, "write_time": write_time} for _, r in items], schema=schema)
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            suffix = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))
            uri = f"{self.resolved_uri}/{prefix}/{latest:%Y%m%dT%H%M%SZ}_{suffix}.parquet"
            self._put(uri, buffer.getvalue())
            written.append(uri)
        self.files += written
        return written

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


@dataclass
class FeatureGroup:
    """One feature group: its definition, online records and offline store."""

    name: str
    arn: str
    record_identifier: str
    event_time_feature: str
    definitions: list[dict[str, str]]
    online_config: dict[str, Any] | None
    offline_config: dict[str, Any] | None
    role_arn: str | None
    description: str | None
    tags: list[dict[str, str]]
    throughput: dict[str, Any] | None
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    online: dict[str, OnlineRecord] = field(default_factory=dict)
    offline: OfflineStore | None = None
    last_modified: dt.datetime | None = None

    @property
    def types(self) -> dict[str, str]:
        return {d["FeatureName"]: d["FeatureType"] for d in self.definitions}

    @property
    def online_enabled(self) -> bool:
        return bool((self.online_config or {}).get("EnableOnlineStore"))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "FeatureGroupArn": self.arn, "FeatureGroupName": self.name,
            "RecordIdentifierFeatureName": self.record_identifier, "EventTimeFeatureName": self.event_time_feature,
            "FeatureDefinitions": self.definitions, "CreationTime": self.created, "FeatureGroupStatus": "Created",
            "ThroughputConfig": self.throughput or {"ThroughputMode": "OnDemand"}, "NextToken": "",
        }
        if self.last_modified:
            out["LastModifiedTime"] = self.last_modified
        if self.online_config:
            out["OnlineStoreConfig"] = self.online_config
        if self.offline_config:
            out["OfflineStoreConfig"] = self.offline_config
            out["OfflineStoreStatus"] = {"Status": "Active"}
        if self.role_arn:
            out["RoleArn"] = self.role_arn
        if self.description:
            out["Description"] = self.description
        return out

    # --- records ---------------------------------------------------------------
    def _check_record(self, record: list[dict[str, str]]) -> dict[str, str]:
        values: dict[str, str] = {}
        types = self.types
        for item in record:
            name = item["FeatureName"]
            if name not in types:
                raise FeatureStoreError("ValidationError", f"Feature {name} is not defined in feature group "
                                                           f"{self.name} (features: {', '.join(types)}).")
            if name in values:
                raise FeatureStoreError("ValidationError", f"Feature {name} appears more than once in the record.")
            if "ValueAsString" not in item:
                raise FeatureStoreError("ValidationError", f"Feature {name} needs ValueAsString (collection "
                                                           "types are not emulated offline).")
            typed(item["ValueAsString"], types[name], name)
            values[name] = item["ValueAsString"]
        for required in (self.record_identifier, self.event_time_feature):
            if required not in values:
                raise FeatureStoreError("ValidationError", f"The record must contain feature {required} (the "
                                                           "record identifier and the event time are required).")
        return values

    def _stores(self, targets: list[str] | None) -> tuple[bool, bool]:
        online, offline = self.online_enabled, self.offline is not None
        if targets:
            if "OnlineStore" in targets and not online:
                raise FeatureStoreError("ValidationError", f"Feature group {self.name} has no online store: drop "
                                                           "OnlineStore from TargetStores.")
            if "OfflineStore" in targets and not offline:
                raise FeatureStoreError("ValidationError", f"Feature group {self.name} has no offline store: drop "
                                                           "OfflineStore from TargetStores.")
            online, offline = "OnlineStore" in targets, "OfflineStore" in targets
        return online, offline

    def put(self, record: list[dict[str, str]], targets: list[str] | None = None,
            ttl: dict[str, Any] | None = None, now: dt.datetime | None = None) -> None:
        now = now or dt.datetime.now(dt.UTC)
        values = self._check_record(record)
        event = parse_event_time(values[self.event_time_feature], self.types[self.event_time_feature],
                                 self.event_time_feature)
        to_online, to_offline = self._stores(targets)
        seconds = ttl_seconds(ttl) if ttl else ttl_seconds((self.online_config or {}).get("TtlDuration"))
        if to_online:
            current = self.online.get(values[self.record_identifier])
            if current is None or event >= current.event_time:
                expires = event + dt.timedelta(seconds=seconds) if seconds else None
                self.online[values[self.record_identifier]] = OnlineRecord(values, event, expires)
        if to_offline and self.offline is not None:
            row: dict[str, Any] = {n: typed(values[n], t, n) if n in values else None for n, t in self.types.items()}
            row.update(api_invocation_time=now, is_deleted=False, __event_time__=event)
            self.offline.add(row)

    def get(self, identifier: str, names: list[str] | None = None,
            now: dt.datetime | None = None) -> OnlineRecord | None:
        if not self.online_enabled:
            raise FeatureStoreError("ValidationError", f"Feature group {self.name} has no online store: GetRecord "
                                                       "reads the online store (query the offline store in S3).")
        now = now or dt.datetime.now(dt.UTC)
        for name in names or []:
            if name not in self.types:
                raise FeatureStoreError("ValidationError", f"Feature {name} is not defined in feature group "
                                                           f"{self.name}.")
        current = self.online.get(identifier)
        if current is None or (current.expires_at is not None and current.expires_at <= now):
            return None
        if names:
            return OnlineRecord({k: v for k, v in current.values.items() if k in names}, current.event_time,
                                current.expires_at)
        return current

    def delete(self, identifier: str, event_time: str, targets: list[str] | None = None,
               mode: str = "SoftDelete", now: dt.datetime | None = None) -> None:
        now = now or dt.datetime.now(dt.UTC)
        if mode not in ("SoftDelete", "HardDelete"):
            raise FeatureStoreError("ValidationError", f"DeletionMode {mode!r}: use SoftDelete or HardDelete.")
        event = parse_event_time(event_time, self.types[self.event_time_feature], self.event_time_feature)
        to_online, to_offline = self._stores(targets)
        if to_online:
            current = self.online.get(identifier)
            if current is not None and event >= current.event_time:
                del self.online[identifier]
        if to_offline and self.offline is not None:
            row: dict[str, Any] = {n: None for n in self.types}
            row[self.record_identifier] = typed(identifier, self.types[self.record_identifier], self.record_identifier)
            row[self.event_time_feature] = typed(event_time, self.types[self.event_time_feature],
                                                 self.event_time_feature)
            row.update(api_invocation_time=now, is_deleted=True, __event_time__=event)
            self.offline.add(row)


def validate_definition(params: dict[str, Any]) -> None:
    """CreateFeatureGroup's checks (beyond botocore's): names, types, stores."""
    name = params["FeatureGroupName"]
    if not NAME.match(name):
        raise FeatureStoreError("ValidationException", f"FeatureGroupName {name!r} is invalid: up to 64 letters, "
                                                       "digits, '-' or '_', starting and ending with a letter or digit.")
    definitions = params["FeatureDefinitions"]
    names = [d["FeatureName"] for d in definitions]
    for feature in names:
        if feature.lower() in RESERVED:
            raise FeatureStoreError("ValidationException", f"Feature name {feature} is reserved ({', '.join(RESERVED)} "
                                                           "are columns of the offline store).")
        if not FEATURE_NAME.match(feature):
            raise FeatureStoreError("ValidationException", f"Feature name {feature!r} is invalid: letters, digits, "
                                                           "'-' and '_', starting and ending with a letter or digit.")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FeatureStoreError("ValidationException", f"Feature names must be unique: {', '.join(duplicates)}.")
    types = {d["FeatureName"]: d["FeatureType"] for d in definitions}
    for key in ("RecordIdentifierFeatureName", "EventTimeFeatureName"):
        if params[key] not in types:
            raise FeatureStoreError("ValidationException", f"{key} {params[key]} must be one of the "
                                                           f"FeatureDefinitions ({', '.join(names)}).")
    if types[params["RecordIdentifierFeatureName"]] not in ("Integral", "String"):
        raise FeatureStoreError("ValidationException", "The record identifier feature must be of type Integral or "
                                                       "String.")
    if types[params["EventTimeFeatureName"]] not in ("Fractional", "String"):
        raise FeatureStoreError("ValidationException", "The event time feature must be of type Fractional (Unix "
                                                       "seconds) or String (ISO 8601).")
    online = (params.get("OnlineStoreConfig") or {}).get("EnableOnlineStore")
    offline = params.get("OfflineStoreConfig")
    if not online and not offline:
        raise FeatureStoreError("ValidationException", "Enable the online store (OnlineStoreConfig.EnableOnlineStore) "
                                                       "or give an OfflineStoreConfig, or both.")
    if offline is not None:
        uri = (offline.get("S3StorageConfig") or {}).get("S3Uri", "")
        try:
            s3_location.parse(uri)
        except s3_location.InvalidS3Location as err:
            raise FeatureStoreError("ValidationException", f"OfflineStoreConfig.S3StorageConfig.S3Uri: {err}") from err
        if offline.get("TableFormat", "Glue") not in ("Glue", "Iceberg", "Default"):
            raise FeatureStoreError("ValidationException", f"TableFormat {offline['TableFormat']}: use Glue or Iceberg.")
    ttl_seconds((params.get("OnlineStoreConfig") or {}).get("TtlDuration"))
