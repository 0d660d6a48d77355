"""A switch that makes Bedrock calls throttle, so labs can teach retries with backoff.

    import labkit.bedrock
    labkit.bedrock.throttle(3)      # the next 3 runtime calls raise ThrottlingException
    labkit.bedrock.throttle(0)      # off again

or, before the backend starts, ``LABKIT_BEDROCK_THROTTLE=3`` in the environment (read on
every ``labkit.connect()``). It applies to ``bedrock-runtime`` (InvokeModel,
InvokeModelWithResponseStream, Converse, ConverseStream, ApplyGuardrail) and
``bedrock-agent-runtime`` (Retrieve, RetrieveAndGenerate), with AWS's code, message and
HTTP status 429.

One difference from AWS: offline, botocore's own retry handler does not see the error
(the offline backend answers before botocore's retry loop), so a throttled call raises
on its first attempt whatever the client's ``retries`` config. Labs write the backoff
loop themselves, which is what they teach, and create their clients with
``Config(retries={"total_max_attempts": 1})`` so that on AWS too their loop is the only
one retrying.

On the sandbox backend AWS cannot be made to throttle on demand, so the switch throttles
on the client side: a ``before-call`` handler answers the same operations with the same
429 ThrottlingException before the request is sent (nothing reaches AWS, nothing is
billed). It is registered when this module is imported, on boto3's default session and
on sessions created later; a client takes its session's handlers when it is created, so
a client made before ``import labkit.bedrock`` does not throttle on the sandbox.
"""

from __future__ import annotations

import io
import os
import threading
from typing import Any

from .errors import throttled

_lock = threading.Lock()
_remaining = 0
throttled_calls = 0


# The operations that throttle (offline: the engines check; sandbox: the client-side handler).
OPERATIONS = {"bedrock-runtime": ("InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream",
                                  "ApplyGuardrail"),
              "bedrock-agent-runtime": ("Retrieve", "RetrieveAndGenerate")}


def throttle(calls: int) -> None:
    """Make the next ``calls`` Bedrock runtime calls raise ThrottlingException (0: off)."""
    global _remaining
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
        raise ValueError(f"throttle(calls) takes a whole number >= 0, got {calls!r}")
    with _lock:
        _remaining = calls
    if calls:
        install_client_side()


def remaining() -> int:
    return _remaining


def check() -> None:
    """Raise ThrottlingException if a throttled call is due (called by every runtime operation)."""
    global _remaining, throttled_calls
    with _lock:
        if _remaining <= 0:
            return
        _remaining -= 1
        throttled_calls += 1
    raise throttled()


def reset_from_environment() -> None:
    value = os.environ.get("LABKIT_BEDROCK_THROTTLE", "").strip()
    try:
        throttle(int(value) if value else 0)
    except ValueError as err:
        raise ValueError(f"LABKIT_BEDROCK_THROTTLE must be a whole number of calls, got {value!r}") from err


# --- the sandbox backend: throttling on the client side ------------------------------------


def _offline_running() -> bool:
    from labkit import offline

    return offline.running()


def client_side_answer(model: Any, **_: Any) -> Any:
    """``before-call`` handler: a 429 ThrottlingException for a due call when the offline backend is not running.

    Offline, the engines throttle (and count) the calls themselves, so this stays out.
    """
    global _remaining, throttled_calls
    service = model.service_model.service_name
    if model.name not in OPERATIONS.get(service, ()) or _offline_running():
        return None
    with _lock:
        if _remaining <= 0:
            return None
        _remaining -= 1
        throttled_calls += 1
    from botocore.awsrequest import AWSResponse

    err = throttled()
    parsed = {"Error": {"Code": err.code, "Message": err.message},
              "ResponseMetadata": {"RequestId": "labkit-client-side-throttle", "HTTPStatusCode": err.status,
                                   "HTTPHeaders": {}, "RetryAttempts": 0}}
    return AWSResponse("", err.status, {}, io.BytesIO(b"")), parsed


def install_client_side() -> None:
    """Register :func:`client_side_answer` on boto3's default session and future sessions (idempotent)."""
    from labkit.offline import patches

    patches.add_botocore_handlers([(f"before-call.{service}", client_side_answer) for service in OPERATIONS],
                                  default_session=True)


# Clients take their session's handlers when they are created: register now, so that a
# client made after ``import labkit.bedrock`` obeys a later ``throttle(n)`` on any backend.
install_client_side()
