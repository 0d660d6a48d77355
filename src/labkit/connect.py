"""``labkit.connect()``: the first cell of every lab.

It picks the backend (``offline`` unless ``sandbox`` is chosen explicitly), prepares it
and returns a :class:`Lab` that names what the lab may use: region, account, execution
role and default bucket. Nothing else in a lab knows which backend is behind it: the
learner's boto3 and SageMaker SDK calls are the ones that run on AWS.

Offline, the kernel attaches to the user's shared backend (started on first use, its state
kept across notebooks until ``labkit backend reset``), or, with
``LABKIT_OFFLINE_MODE=embedded`` (grading, tests, ``labkit run``), starts a private, empty
backend in this process (see :mod:`labkit.offline`).
"""

from __future__ import annotations

import os

from .lab import BACKENDS, OFFLINE, SANDBOX, BackendError, Lab

__all__ = ["BACKENDS", "OFFLINE", "SANDBOX", "BackendError", "Lab", "connect", "current"]


def _chosen_backend(backend: str | None) -> str:
    chosen = (backend or os.environ.get("LABKIT_BACKEND") or OFFLINE).strip().lower()
    if chosen not in BACKENDS:
        raise BackendError(f"Unknown backend {chosen!r}: choose one of {', '.join(BACKENDS)} "
                           "(argument backend= or the LABKIT_BACKEND environment variable).")
    return chosen


def _lab_name(lab: str | None) -> str:
    if lab:
        return lab
    return os.environ.get("LABKIT_LAB") or "scratch"


def connect(lab: str | None = None, backend: str | None = None, *, quiet: bool = False) -> Lab:
    """Start the chosen backend and return the :class:`Lab` description.

    ``backend`` defaults to ``$LABKIT_BACKEND`` or ``offline``. ``sandbox`` uses the real
    account of the credentials in the environment and is never picked implicitly.
    """
    chosen = _chosen_backend(backend)
    name = _lab_name(lab)
    if chosen == OFFLINE:
        from . import offline

        try:
            offline_mode = offline.mode()
        except ValueError as err:
            raise BackendError(str(err)) from None
        if offline_mode == offline.EMBEDDED:
            offline.start()
        else:
            from .offline import shared

            try:
                state = shared.ensure_running()
            except shared.BackendStartError as err:
                raise BackendError(str(err)) from None
            if state.get("replaced") and not quiet:
                print(f"labkit: {state['replaced']}.")
            offline.attach({**state, "config_dir": str(shared.home())})
            from .offline import user_config

            written = user_config.ensure_default_region(offline.REGION)
            if written and not quiet:
                print(f"labkit: wrote {written} with region {offline.REGION} only (you had no AWS config): "
                      "SDK steps that start Python without an environment read their region there.")
        result = Lab(name=name, backend=OFFLINE, region=offline.REGION, account_id=offline.ACCOUNT_ID,
                     role_arn=offline.ROLE_ARN, bucket=offline.BUCKET)
    else:
        from . import sandbox

        result = sandbox.start(name, quiet=quiet)
    _current[0] = result
    if not quiet:
        print(f"labkit: {result.backend} backend, region {result.region}, account {result.account_id}, "
              f"bucket {result.bucket}")
    return result


_current: list[Lab | None] = [None]


def current() -> Lab | None:
    """The lab of the last ``connect()`` in this process."""
    return _current[0]
