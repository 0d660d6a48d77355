"""The SageMaker Python SDK's waiting, made prompt while the offline backend runs.

Both SDK generations poll with fixed sleeps sized for AWS, where a job or an endpoint
takes minutes: ``TrainingJob.wait(poll=5)``, ``Endpoint.wait_for_status(poll=5)``,
``ModelBuilder.deploy`` through ``_wait_until(poll=30)`` (and a 30 s sleep before it
reports a failed endpoint), v2's ``Session.wait_for_endpoint(poll=30)``,
``PipelineExecution.wait(delay=30)``, and v2's ``fit(logs=...)``, which re-reads the job's
status only every 30 s. Offline a state changes within milliseconds, so while
:func:`labkit.offline.running` is true each of those waits lasts at most :data:`POLL_S`.
Timing only: the learner's calls, their arguments and their validation are unchanged,
and with the backend stopped the SDK waits as written.

Both SDKs also validate their defaults config (the one ``labkit.connect`` writes to opt out
of telemetry) against its JSON schema on every config lookup, re-checking the constant
schema each time: 0.2-0.4 s per lookup for v3, seconds per ``ModelBuilder.build()``, and
about 1.3 s for v2 on a loaded machine, several per ``fit``. The schema is checked once;
every config is still validated against it.

The patches are applied to modules already imported and, through a small import hook,
to those imported later (the SDK is usually imported after ``connect()``). Engines may
also ask to be told when an SDK module begins to import (:func:`on_import`): hosting
starts its model servers' zygote when ``sagemaker.serve`` (``ModelBuilder``) does, so the
zygote's imports run beside the SDK's instead of after them.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import time
import types
from collections.abc import Callable
from typing import Any

POLL_S = 0.05
# Modules whose ``time.sleep`` calls are status polls (v3 resources, session helper, transformer; v2 session).
POLLING_MODULES = ("sagemaker.core.resources", "sagemaker.core.helper.session_helper",
                   "sagemaker.core.transformer", "sagemaker.session")
_lock = threading.Lock()
_on_import: dict[str, list[Callable[[], None]]] = {}


def _offline() -> bool:
    from . import running

    return running()


class PromptTime(types.ModuleType):
    """The ``time`` module as a polling SDK module sees it: the same, but ``sleep`` is capped offline."""

    def __init__(self) -> None:
        super().__init__("time", time.__doc__)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, POLL_S) if _offline() else seconds)


_prompt_time = PromptTime()


def _patch_polling(module: types.ModuleType) -> None:
    if getattr(module, "time", None) is time:
        module.time = _prompt_time


def _patch_deployment_progress(module: types.ModuleType) -> None:
    fn = getattr(module, "_live_logging_deploy_done_with_progress", None)
    if fn is None or getattr(fn, "_labkit_prompt", False):
        return

    def prompt(sagemaker_client: Any, endpoint_name: str, paginator: Any, paginator_config: Any, poll: float,
               *args: Any, **kwargs: Any) -> Any:
        if _offline():
            poll = min(poll, POLL_S)
        return fn(sagemaker_client, endpoint_name, paginator, paginator_config, poll, *args, **kwargs)

    prompt._labkit_prompt = True  # type: ignore[attr-defined]
    prompt.__doc__, prompt.__wrapped__ = fn.__doc__, fn  # type: ignore[attr-defined]
    module._live_logging_deploy_done_with_progress = prompt


def _checked_once(original: Callable[..., None], module: types.ModuleType) -> Callable[..., None]:
    """``validate_sagemaker_config`` that checks the (constant) schema once, then only the config."""
    checked: dict[int, Any] = {}

    def validate_sagemaker_config(sagemaker_config: dict | None = None) -> None:
        import jsonschema

        schema = module.SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA
        validator = checked.get(id(schema))
        if validator is None:
            original(sagemaker_config)  # the full check, schema included
            checked[id(schema)] = jsonschema.validators.validator_for(schema)(schema)
            return
        error = jsonschema.exceptions.best_match(validator.iter_errors(sagemaker_config))
        if error is not None:
            raise error

    validate_sagemaker_config._labkit_prompt = True  # type: ignore[attr-defined]
    validate_sagemaker_config.__doc__ = original.__doc__
    return validate_sagemaker_config


def _patch_config_manager(module: types.ModuleType) -> None:
    """SDK v3: ``SageMakerConfig.validate_sagemaker_config``, a static method."""
    cls = getattr(module, "SageMakerConfig", None)
    original = getattr(cls, "validate_sagemaker_config", None)
    if original is None or getattr(original, "_labkit_prompt", False):
        return
    cls.validate_sagemaker_config = staticmethod(_checked_once(original, module))


def _patch_v2_config(module: types.ModuleType) -> None:
    """SDK v2: the module function ``sagemaker.config.config.validate_sagemaker_config`` (about 1.3 s
    a call on a loaded machine, several calls per ``fit``)."""
    original = getattr(module, "validate_sagemaker_config", None)
    if original is None or getattr(original, "_labkit_prompt", False) or not hasattr(
            module, "SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA"):
        return
    module.validate_sagemaker_config = _checked_once(original, module)


def _patch_v2_logs(module: types.ModuleType) -> None:
    """v2 ``fit(logs=...)``: wait for the job to end (polling Describe), then show its whole log."""
    fn = getattr(module, "_logs_for_job", None)
    if fn is None or getattr(fn, "_labkit_prompt", False):
        return

    def prompt(sagemaker_session: Any, job_name: str, wait: bool = False, *args: Any, **kwargs: Any) -> Any:
        if _offline() and wait:
            client = sagemaker_session.sagemaker_client
            while client.describe_training_job(TrainingJobName=job_name)["TrainingJobStatus"] in (
                    "InProgress", "Stopping"):
                time.sleep(POLL_S)
        return fn(sagemaker_session, job_name, wait, *args, **kwargs)

    prompt._labkit_prompt = True  # type: ignore[attr-defined]
    prompt.__doc__, prompt.__wrapped__ = fn.__doc__, fn  # type: ignore[attr-defined]
    module._logs_for_job = prompt


PIPELINE_POLL_S = 0.25


def _patch_pipeline_wait(module: types.ModuleType) -> None:
    """v3 ``PipelineExecution.wait(delay=30)`` (a botocore waiter): the same budget, polled often."""
    cls = getattr(module, "PipelineExecution", None)
    wait = getattr(cls, "wait", None)
    if wait is None or getattr(wait, "_labkit_prompt", False):
        return

    def prompt(self: Any, delay: int = 30, max_attempts: int = 60, _wait: Any = wait) -> Any:
        if not _offline():
            return _wait(self, delay=delay, max_attempts=max_attempts)
        budget = delay * max_attempts
        short = min(delay, PIPELINE_POLL_S)
        return _wait(self, delay=short, max_attempts=max(max_attempts, int(budget / short)))

    prompt._labkit_prompt = True  # type: ignore[attr-defined]
    prompt.__doc__ = wait.__doc__
    cls.wait = prompt


_PATCHES: dict[str, list[Callable[[types.ModuleType], None]]] = {name: [_patch_polling] for name in POLLING_MODULES}
_PATCHES["sagemaker.session"].append(_patch_v2_logs)
_PATCHES["sagemaker.serve.deployment_progress"] = [_patch_deployment_progress]
_PATCHES["sagemaker.core.config.config_manager"] = [_patch_config_manager]
_PATCHES["sagemaker.config.config"] = [_patch_v2_config]
_PATCHES["sagemaker.mlops.workflow.pipeline"] = [_patch_pipeline_wait]


def patch(name: str, module: types.ModuleType) -> None:
    with _lock:
        for fn in _PATCHES[name]:
            fn(module)


def on_import(name: str, fn: Callable[[], None]) -> None:
    """Call ``fn`` (offline only) when module ``name`` begins to import."""
    _on_import.setdefault(name, []).append(fn)


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then the module's patch; anything else goes to the real loader."""

    def __init__(self, name: str, loader: Any) -> None:
        self._name, self._loader = name, loader

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._loader, attr)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        patch(self._name, module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the watched SDK modules as the other finders do, with a patching loader."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname in _on_import and _offline():
            for fn in _on_import[fullname]:
                fn()
        if fullname not in _PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(fullname, spec.loader)
                return spec
        return None


_finder = _Finder()


def install() -> None:
    """Patch the watched modules already imported, and those imported from now on (idempotent)."""
    for name in _PATCHES:
        module = sys.modules.get(name)
        if module is not None:
            patch(name, module)
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


install()
