"""CloudWatch alarms that really evaluate, and the request checks AWS makes.

moto stores metric data and alarms but never evaluates an alarm: it stays ``OK`` with
"Unchecked: Initial alarm creation" whatever data arrives. Here every metric alarm is
evaluated against the data moto holds after ``PutMetricData`` and ``PutMetricAlarm`` and
before ``DescribeAlarms``/``DescribeAlarmsForMetric``/``DescribeAlarmHistory``, following
the documented rules ("Evaluating an alarm", "How CloudWatch alarms treat missing data"):

- the metric is identified by namespace, name and the *exact* set of dimensions (an alarm
  without the dimensions its data carries watches another metric, which has no data), and
  by ``Unit`` when the alarm gives one;
- data is aggregated per period, periods aligned on multiples of ``Period`` since the epoch,
  with ``Statistic`` (Average, Sum, Minimum, Maximum, SampleCount) or ``ExtendedStatistic``
  ``pNN`` (a percentile of the raw values, linearly interpolated);
- the evaluation range is the ``EvaluationPeriods`` most recent periods up to now; the alarm
  goes to ``ALARM`` when at least ``DatapointsToAlarm`` of them breach, with missing
  periods treated per ``TreatMissingData`` (``missing``: all missing is
  ``INSUFFICIENT_DATA``; ``breaching``/``notBreaching``; ``ignore``: keep the state);
- ``StateReason`` and ``StateReasonData`` read as AWS writes them, and each transition is
  kept in the alarm's history (``DescribeAlarmHistory``, which moto lacks).

Differences, said plainly: AWS evaluates once a minute and may wait for late data; here the
evaluation happens at the calls above and counts the period in progress. Metric-math and
anomaly-detection alarms are stored but not evaluated. Alarm actions (SNS) are not sent.

``GetMetricStatistics`` answers ``Statistics`` and ``ExtendedStatistics`` (percentiles) from the same
per-period aggregation (moto fails on percentiles).

``PutMetricData``, ``PutMetricAlarm`` and ``PutDashboard`` are checked as AWS checks them
(units, the reserved ``AWS/`` namespace, time limits of data points, periods, the
Statistic/ExtendedStatistic choice, ``DatapointsToAlarm``, dashboard widget structure).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from . import dispatch, moto_state, on_reset, persistence
from .dispatch import AWSError

UNITS = ("Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
         "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
         "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
         "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None")
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
OPERATORS = {"GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
             "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
             "LessThanThreshold": (lambda v, t: v < t, "less than"),
             "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to")}
BAND_OPERATORS = ("LessThanLowerOrGreaterThanUpperThreshold", "LessThanLowerThreshold", "GreaterThanUpperThreshold")
MISSING = ("breaching", "notBreaching", "ignore", "missing")
WIDGET_TYPES = ("metric", "text", "log", "alarm", "explorer", "custom")


history: list[dict[str, Any]] = []  # state transitions, newest last
persistence.keep_contents("cloudwatch alarm history", history)


@on_reset
def _reset() -> None:
    history.clear()


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# --- request checks ------------------------------------------------------------------------


def _check_unit(unit: str | None, where: str) -> None:
    if unit is not None and unit not in UNITS:
        raise AWSError("InvalidParameterValue", f"The parameter {where} must be a value in the set "
                       f"[ {', '.join(UNITS)} ] ({unit!r} given; for latency use 'Milliseconds').")


@dispatch.validate("cloudwatch", "PutMetricData")
def check_put_metric_data(params: dict[str, Any]) -> None:
    namespace = params.get("Namespace", "")
    if namespace.startswith("AWS/"):
        raise AWSError("InvalidParameterValue", f"The value {namespace} for parameter Namespace is invalid: "
                       "namespaces starting with 'AWS/' are reserved for AWS services. Use your own, e.g. 'ML/Models'.")
    data = params.get("MetricData") or []
    if len(data) > 1000:
        raise AWSError("InvalidParameterValue", "The collection MetricData must not have a size greater than 1000.")
    now = datetime.now(UTC)
    for i, datum in enumerate(data, start=1):
        _check_unit(datum.get("Unit"), f"MetricData.member.{i}.Unit")
        if len(datum.get("Dimensions") or []) > 30:
            raise AWSError("InvalidParameterValue", f"MetricData.member.{i}.Dimensions: at most 30 dimensions.")
        value = datum.get("Value")
        if value is not None and math.isinf(value):
            raise AWSError("InvalidParameterValue", f"The value {value} for parameter MetricData.member.{i}.Value "
                           "is invalid.")
        ts = datum.get("Timestamp")
        if ts is not None:
            ts = _utc(ts)
            if ts < now - timedelta(days=14):
                raise AWSError("InvalidParameterValue", f"The parameter MetricData.member.{i}.Timestamp must "
                               "specify a time no more than two weeks in the past.")
            if ts > now + timedelta(hours=2):
                raise AWSError("InvalidParameterValue", f"The parameter MetricData.member.{i}.Timestamp must "
                               "specify a time no more than two hours in the future.")


@dispatch.validate("cloudwatch", "PutMetricAlarm")
def check_put_metric_alarm(params: dict[str, Any]) -> None:
    has_stat, has_ext, has_metrics = "Statistic" in params, "ExtendedStatistic" in params, "Metrics" in params
    if has_metrics:
        if has_stat or has_ext or "MetricName" in params:
            raise AWSError("InvalidParameterCombination", "Metrics cannot be combined with MetricName, Statistic "
                           "or ExtendedStatistic: give a metric-math alarm or a single-metric alarm.")
    else:
        if has_stat == has_ext:
            raise AWSError("InvalidParameterCombination", "Exactly one of Statistic or ExtendedStatistic must be "
                           "specified (Statistic='Average', or ExtendedStatistic='p90' for a percentile).")
        if "MetricName" not in params or "Namespace" not in params:
            raise AWSError("ValidationError", "MetricName and Namespace are required for a single-metric alarm.")
        if has_stat and params["Statistic"] not in STATISTICS:
            raise AWSError("InvalidParameterValue", f"Statistic must be one of {', '.join(STATISTICS)}.")
        if has_ext and not _percentile(params["ExtendedStatistic"]):
            raise AWSError("InvalidParameterValue", f"The value {params['ExtendedStatistic']} for parameter "
                           "ExtendedStatistic is not supported (use p0.0 to p100, e.g. p99).")
        period = params.get("Period")
        if period is None:
            raise AWSError("ValidationError", "Period is required for a single-metric alarm.")
        if period not in (10, 20, 30) and period % 60:
            raise AWSError("InvalidParameterValue", f"Period ({period}) must be 10, 20, 30 or a multiple of 60.")
        limit = 7 * 86400 if period >= 3600 else 86400
        if period * params["EvaluationPeriods"] > limit:
            raise AWSError("ValidationError", f"EvaluationPeriods x Period must not exceed {limit} seconds "
                           f"({params['EvaluationPeriods']} x {period} given).")
    op = params.get("ComparisonOperator")
    if op not in OPERATORS and op not in BAND_OPERATORS:
        raise AWSError("InvalidParameterValue", f"ComparisonOperator {op!r} is not valid: use one of "
                       f"{', '.join(OPERATORS)}.")
    if op in OPERATORS and "Threshold" not in params and "ThresholdMetricId" not in params:
        raise AWSError("ValidationError", "Threshold is required for a static-threshold alarm.")
    if params["EvaluationPeriods"] < 1:
        raise AWSError("ValidationError", "EvaluationPeriods must be at least 1.")
    dtoa = params.get("DatapointsToAlarm")
    if dtoa is not None and not 1 <= dtoa <= params["EvaluationPeriods"]:
        raise AWSError("ValidationError", f"DatapointsToAlarm ({dtoa}) must be between 1 and EvaluationPeriods "
                       f"({params['EvaluationPeriods']}): it is the M of 'M out of N' datapoints.")
    if params.get("TreatMissingData", "missing") not in MISSING:
        raise AWSError("ValidationError", f"TreatMissingData must be one of {', '.join(MISSING)}.")
    _check_unit(params.get("Unit"), "Unit")


def _dashboard_errors(body: Any) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    if not isinstance(body, dict):
        return [{"DataPath": "", "Message": "Should be object"}]
    widgets = body.get("widgets")
    if not isinstance(widgets, list):
        return [{"DataPath": "", "Message": "Should have required property 'widgets'"}]
    for i, w in enumerate(widgets):
        path = f"/widgets/{i}"
        if not isinstance(w, dict):
            errors.append({"DataPath": path, "Message": "Should be object"})
            continue
        if w.get("type") not in WIDGET_TYPES:
            errors.append({"DataPath": f"{path}/type", "Message": f"Should be equal to one of the allowed values "
                           f"{list(WIDGET_TYPES)}"})
        for key, low, high in (("width", 1, 24), ("height", 1, 1000), ("x", 0, 23), ("y", 0, 10**6)):
            if key in w and (not isinstance(w[key], int) or not low <= w[key] <= high):
                errors.append({"DataPath": f"{path}/{key}", "Message": f"Should be an integer from {low} to {high}"})
        props = w.get("properties")
        if not isinstance(props, dict):
            errors.append({"DataPath": path, "Message": "Should have required property 'properties'"})
            continue
        if w.get("type") == "metric":
            metrics = props.get("metrics")
            if not isinstance(metrics, list) or not metrics or not all(isinstance(m, list) for m in metrics):
                errors.append({"DataPath": f"{path}/properties", "Message":
                               "Should have required property 'metrics' (a list of [namespace, name, dim, value, ...])"})
            if "region" not in props:
                errors.append({"DataPath": f"{path}/properties", "Message": "Should have required property 'region'"})
        elif w.get("type") == "text" and not isinstance(props.get("markdown"), str):
            errors.append({"DataPath": f"{path}/properties", "Message": "Should have required property 'markdown'"})
        elif w.get("type") == "alarm" and not (isinstance(props.get("alarms"), list) and props["alarms"]):
            errors.append({"DataPath": f"{path}/properties", "Message": "Should have required property 'alarms'"})
    return errors


@dispatch.validate("cloudwatch", "PutDashboard")
def check_put_dashboard(params: dict[str, Any]) -> None:
    try:
        body = json.loads(params.get("DashboardBody", ""))
    except json.JSONDecodeError:
        return  # moto answers AWS's "Body is invalid JSON"
    errors = _dashboard_errors(body)
    if errors:
        listed = ", ".join(json.dumps({"dataPath": e["DataPath"], "message": e["Message"]}) for e in errors)
        raise AWSError("InvalidParameterInput", f"The dashboard body is invalid, there are {len(errors)} "
                       f"validation errors: [{listed}]")


# --- evaluation ---------------------------------------------------------------------------------


def _percentile(text: str) -> float | None:
    if not text.startswith("p"):
        return None
    try:
        q = float(text[1:])
    except ValueError:
        return None
    return q if 0 <= q <= 100 else None


def _statistic(values: list[float], counts: list[float], stat: str) -> float:
    if stat == "SampleCount":
        return float(sum(counts))
    if stat == "Sum":
        return float(sum(values))
    if stat == "Minimum":
        return float(min(values))
    if stat == "Maximum":
        return float(max(values))
    if stat == "Average":
        return float(sum(values) / sum(counts))
    q = _percentile(stat)
    if q is None:
        raise ValueError(f"unknown statistic {stat!r}")
    return float(np.percentile(np.asarray(values), q))


def _same_dimensions(datum: Any, alarm: Any) -> bool:
    return ({(d.name, d.value) for d in datum.dimensions} == {(d.name, d.value) for d in alarm.dimensions})


def _datapoints(alarm: Any, start: datetime) -> dict[datetime, float]:
    """The alarm's statistic per period since ``start``."""
    stat = alarm.extended_statistic or alarm.statistic
    per_period: dict[datetime, tuple[list[float], list[float]]] = {}
    for datum in moto_state.backend("cloudwatch").metric_data:
        if datum.namespace != alarm.namespace or datum.name != alarm.metric_name:
            continue
        if not _same_dimensions(datum, alarm) or (alarm.unit and datum.unit != alarm.unit):
            continue
        ts = _utc(datum.timestamp)
        if ts < start:
            continue
        slot = datetime.fromtimestamp(int(ts.timestamp()) // alarm.period * alarm.period, UTC)
        values, counts = per_period.setdefault(slot, ([], []))
        if hasattr(datum, "value"):
            values.append(float(datum.value))
            counts.append(1.0)
        else:  # StatisticValues: only Sum/Min/Max/SampleCount/Average can be derived
            if _percentile(stat) is not None:
                continue
            values.append({"Sum": datum.sum_stat, "Minimum": datum.min_stat, "Maximum": datum.max_stat,
                           "Average": datum.sum_stat, "SampleCount": datum.sum_stat}[stat])
            counts.append(float(datum.sample_count))
    return {slot: _statistic(values, counts, stat) for slot, (values, counts) in per_period.items() if values}


def _fmt(ts: datetime) -> str:
    return ts.strftime("%d/%m/%y %H:%M:%S")


def evaluate(alarm: Any, now: datetime | None = None) -> tuple[str, str, dict[str, Any]] | None:
    """(state, reason, reason data) for a single-metric alarm now; ``None`` when it is not evaluated here."""
    if alarm.metric_data_queries or not alarm.metric_name or alarm.comparison_operator not in OPERATORS:
        return None
    now = now or datetime.now(UTC)
    period, n = alarm.period, alarm.evaluation_periods
    m = alarm.datapoints_to_alarm or n
    current = datetime.fromtimestamp(int(now.timestamp()) // period * period, UTC)
    slots = [current - timedelta(seconds=period * k) for k in range(n)]  # most recent first
    points = _datapoints(alarm, slots[-1])
    present = [(s, points[s]) for s in slots if s in points]
    test, words = OPERATORS[alarm.comparison_operator]
    breaching = [(s, v) for s, v in present if test(v, alarm.threshold)]
    missing = n - len(present)
    treat = alarm.treat_missing_data or "missing"
    stat = alarm.extended_statistic or alarm.statistic
    data = {"version": "1.0", "queryDate": now.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "startDate": slots[-1].strftime("%Y-%m-%dT%H:%M:%S.000+0000"), "statistic": stat, "period": period,
            "recentDatapoints": [round(v, 6) for _, v in present], "threshold": alarm.threshold,
            "evaluatedDatapoints": [{"timestamp": s.strftime("%Y-%m-%dT%H:%M:%S.000+0000"), "value": round(v, 6)}
                                    for s, v in present]}
    listed = ", ".join(f"{v:g} ({_fmt(s)})" for s, v in present)
    bad = len(breaching) + (missing if treat == "breaching" else 0)
    if not present and treat in ("missing", "ignore"):
        if treat == "ignore" and not alarm.state_reason.startswith("Unchecked"):
            return None  # the state is kept while data is missing
        return "INSUFFICIENT_DATA", f"Insufficient Data: {n} datapoint{'s' if n != 1 else ''} were unknown.", data
    if bad >= m:
        reason = (f"Threshold Crossed: {bad} out of the last {n} datapoints [{listed}] were {words} the threshold "
                  f"({alarm.threshold:g}) (minimum {m} datapoint{'s' if m != 1 else ''} for OK -> ALARM transition).")
        return "ALARM", reason, data
    reason = (f"Threshold Crossed: {len(present)} datapoint{'s' if len(present) != 1 else ''} [{listed}] "
              f"{'was' if len(present) == 1 else 'were'} not {words} the threshold ({alarm.threshold:g}) "
              f"(minimum {m} datapoint{'s' if m != 1 else ''} for ALARM -> OK transition).")
    return "OK", reason, data


def evaluate_all(now: datetime | None = None) -> None:
    """Bring every metric alarm's state up to date with the data (a transition is recorded once)."""
    for alarm in list(moto_state.backend("cloudwatch").alarms.values()):
        if not hasattr(alarm, "metric_name"):
            continue
        result = evaluate(alarm, now)
        if result is None:
            continue
        state, reason, data = result
        if state != alarm.state_value or alarm.state_reason.startswith("Unchecked"):
            old = "INSUFFICIENT_DATA" if alarm.state_reason.startswith("Unchecked") else alarm.state_value
            alarm.update_state(reason, json.dumps(data), state)
            history.append({"AlarmName": alarm.name, "AlarmType": "MetricAlarm", "Timestamp": datetime.now(UTC),
                            "HistoryItemType": "StateUpdate",
                            "HistorySummary": f"Alarm updated from {old} to {state}",
                            "HistoryData": json.dumps({"version": "1.0", "oldState": {"stateValue": old},
                                                       "newState": {"stateValue": state, "stateReason": reason,
                                                                    "stateReasonData": data}})})


def _time(value: Any) -> datetime:
    from botocore.utils import parse_timestamp

    if isinstance(value, datetime):
        return _utc(value)
    return _utc(parse_timestamp(value))


@dispatch.operation("cloudwatch", "GetMetricStatistics")
def get_metric_statistics(params: dict[str, Any]) -> dict[str, Any]:
    """Statistics and percentiles per period of one metric (namespace, name, exact dimensions, unit)."""
    stats, extended = list(params.get("Statistics") or []), list(params.get("ExtendedStatistics") or [])
    if not stats and not extended:
        raise AWSError("InvalidParameterCombination", "Must specify either Statistics or ExtendedStatistics")
    for stat in extended:
        if _percentile(stat) is None:
            raise AWSError("InvalidParameterValue", f"The value {stat} for parameter ExtendedStatistics is not "
                           "supported (use p0.0 to p100, e.g. p99).")
    period = int(params["Period"])
    if period < 1 or (period >= 60 and period % 60):
        raise AWSError("InvalidParameterValue", "The parameter Period must be 1, 5, 10, 30, or a multiple of 60.")
    start, end = _time(params["StartTime"]), _time(params["EndTime"])
    if start >= end:
        raise AWSError("InvalidParameterValue", "The parameter StartTime must be less than the parameter EndTime.")
    wanted = {(d["Name"], d["Value"]) for d in params.get("Dimensions") or []}
    slots: dict[datetime, tuple[list[float], list[float], str]] = {}
    for datum in moto_state.backend("cloudwatch").metric_data:
        if datum.namespace != params["Namespace"] or datum.name != params["MetricName"]:
            continue
        if {(d.name, d.value) for d in datum.dimensions} != wanted:
            continue
        if params.get("Unit") and datum.unit != params["Unit"]:
            continue
        ts = _utc(datum.timestamp)
        if not start <= ts < end:
            continue
        slot = datetime.fromtimestamp(int(ts.timestamp()) // period * period, UTC)
        values, counts, _ = slots.setdefault(slot, ([], [], datum.unit or "None"))
        if hasattr(datum, "value"):
            values.append(float(datum.value))
            counts.append(1.0)
    points = []
    for slot, (values, counts, unit) in sorted(slots.items()):
        if not values:
            continue
        point: dict[str, Any] = {"Timestamp": slot, "Unit": unit}
        point.update({stat: _statistic(values, counts, stat) for stat in stats})
        if extended:
            point["ExtendedStatistics"] = {stat: _statistic(values, counts, stat) for stat in extended}
        points.append(point)
    return {"Label": params["MetricName"], "Datapoints": points}


@dispatch.after("cloudwatch", "PutMetricData")
def _after_data(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    evaluate_all()


@dispatch.after("cloudwatch", "PutMetricAlarm")
def _after_alarm(params: dict[str, Any], parsed: dict[str, Any]) -> None:
    evaluate_all()


@dispatch.validate("cloudwatch", "DescribeAlarms")
def _before_describe(params: dict[str, Any]) -> None:
    evaluate_all()


@dispatch.validate("cloudwatch", "DescribeAlarmsForMetric")
def _before_describe_for_metric(params: dict[str, Any]) -> None:
    evaluate_all()


@dispatch.operation("cloudwatch", "DescribeAlarmHistory")
def describe_alarm_history(params: dict[str, Any]) -> dict[str, Any]:
    """The state transitions the evaluator made (moto has no alarm history)."""
    evaluate_all()
    items = [h for h in history
             if (not params.get("AlarmName") or h["AlarmName"] == params["AlarmName"])
             and (not params.get("HistoryItemType") or h["HistoryItemType"] == params["HistoryItemType"])
             and (not params.get("StartDate") or h["Timestamp"] >= _utc(params["StartDate"]))
             and (not params.get("EndDate") or h["Timestamp"] <= _utc(params["EndDate"]))]
    items.sort(key=lambda h: h["Timestamp"], reverse=params.get("ScanBy", "TimestampDescending") != "TimestampAscending")
    start = int(params.get("NextToken") or 0)
    size = params.get("MaxRecords") or 100
    out: dict[str, Any] = {"AlarmHistoryItems": items[start:start + size]}
    if start + size < len(items):
        out["NextToken"] = str(start + size)
    return out


__all__ = ["evaluate", "evaluate_all"]
