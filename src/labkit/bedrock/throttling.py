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
loop themselves, which is what they teach.
"""

from __future__ import annotations

import os
import threading

from .errors import throttled

_lock = threading.Lock()
_remaining = 0
throttled_calls = 0


def throttle(calls: int) -> None:
    """Make the next ``calls`` Bedrock runtime calls raise ThrottlingException (0: off)."""
    global _remaining
    if not isinstance(calls, int) or calls < 0:
        raise ValueError(f"throttle(calls) takes a whole number >= 0, got {calls!r}")
    with _lock:
        _remaining = calls


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
