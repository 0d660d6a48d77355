"""What the offline engines used, for the cost meter.

Engines record one event per billable use as it happens (a training job's billable
seconds, an endpoint's InService interval, Bedrock tokens...). The meter in
:mod:`labkit.cost` prices these events; it does not need to know how an engine works.

An event is a plain dict with at least ``kind`` (what is billed, e.g.
``"sagemaker:training"``, ``"sagemaker:hosting"``, ``"bedrock:tokens"``), ``resource``
(the name or ARN it belongs to) and the quantities that kind needs, for example
``instance_type``, ``instance_count``, ``seconds``, ``spot``, ``input_tokens``,
``output_tokens``, ``model_id``. ``at`` (epoch seconds) is added.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from . import dispatch, persistence

_lock = threading.Lock()
_events: list[dict[str, Any]] = []


def record(kind: str, resource: str, **fields: Any) -> dict[str, Any]:
    """Append a usage event and return it (callers may update an open interval's fields)."""
    event = {"kind": kind, "resource": resource, "at": time.time(), **fields}
    with _lock:
        _events.append(event)
    return event


@dispatch.backend_function
def events(kind: str | None = None) -> list[dict[str, Any]]:
    """The recorded events (of ``kind``), read where the engines run (the shared backend too)."""
    with _lock:
        return [dict(e) for e in _events if kind is None or e["kind"] == kind]


def reset() -> None:
    with _lock:
        _events.clear()


def _restore(saved: list[dict[str, Any]]) -> None:
    with _lock:
        _events[:] = saved


@persistence.on_restore
def _close_open_intervals(stopped_at: float) -> None:
    """An interval still open when the backend stopped ends then: a stopped backend bills nothing."""
    with _lock:
        for event in _events:
            if "end" in event and event["end"] is None:
                event["end"] = stopped_at


persistence.keep("usage", lambda: events(), _restore)
