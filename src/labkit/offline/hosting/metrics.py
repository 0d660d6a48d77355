"""The invocation metrics SageMaker publishes to CloudWatch, from the endpoints' real requests.

For every request a model served, SageMaker publishes in the ``AWS/SageMaker`` namespace
(Amazon SageMaker AI metrics in Amazon CloudWatch, "Endpoint invocation metrics"):

- ``Invocations`` (1, Count), ``Invocation4XXErrors`` and ``Invocation5XXErrors`` (1 when the
  model answered with that class of status, else 0, Count: their Average is the error rate),
- ``ModelLatency`` (Microseconds) and ``InvocationsPerInstance`` (1 / the variant's instance
  count, Count),

each twice: with the dimensions ``EndpointName, VariantName`` and with ``EndpointName,
VariantName, EndpointConfigName``, the second telling the old fleet from the new one during a
blue/green deployment. Here they are recorded by :func:`record`, which the hosting engine calls
after each request that reached a model (:attr:`HostingEngine.observers`), into moto's CloudWatch
store, where ``GetMetricStatistics``, ``ListMetrics`` and the alarms see them.

Said plainly: ``ModelLatency`` is measured around the call to the model server process, so it
includes the local hop to that process (well under a millisecond); ``OverheadLatency`` and the
instance metrics (``CPUUtilization``...) are not published offline. AWS aggregates per minute
before publishing; here each request is one datum, which gives the same statistics.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .. import moto_state

NAMESPACE = "AWS/SageMaker"



def data(endpoint: str, variant: str, config: str, status: int, seconds: float, instance_count: int = 1,
         when: datetime | None = None) -> list[dict[str, Any]]:
    """The metric data of one request that reached a model and got HTTP ``status``, in PutMetricData's shape."""
    when = (when or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)  # moto keeps naive UTC times
    values = [("Invocations", 1.0, "Count"),
              ("Invocation4XXErrors", float(400 <= status < 500), "Count"),
              ("Invocation5XXErrors", float(status >= 500), "Count"),
              ("ModelLatency", round(seconds * 1e6, 1), "Microseconds"),
              ("InvocationsPerInstance", 1.0 / max(1, instance_count), "Count")]
    base = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    with_config = [*base, {"Name": "EndpointConfigName", "Value": config}]
    return [{"MetricName": name, "Dimensions": dims, "Value": value, "Unit": unit, "Timestamp": when}
            for dims in (base, with_config) for name, value, unit in values]


def record(endpoint: Any, variant: Any, status: int, seconds: float) -> None:
    """Publish one served request (a hosting engine observer: ``Endpoint``, ``Variant``, status, seconds)."""
    count = 1 if variant.serverless is not None else variant.instance_count
    config = variant.config_name or endpoint.config_name
    moto_state.backend("cloudwatch").put_metric_data(NAMESPACE, data(endpoint.name, variant.name, config, status, seconds, count))
