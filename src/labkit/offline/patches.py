"""Every change the offline backend makes to another library's behaviour, in one place.

Nothing else in labkit patches botocore, moto or the SageMaker SDK: each patch is
listed here, :func:`install` applies them all (idempotent) and :func:`uninstall` undoes
them. Each one is a no-op unless the offline backend is in use by this process, so a
patched library behaves as written on the sandbox backend. What they are, and why:

botocore event handlers (every session created after :func:`install`):
    - ``before-parameter-build``, ``before-call``, ``after-call``: the engines' handlers,
      validators and after hooks (:mod:`labkit.offline.dispatch`), in a process whose
      engines run here;
    - ``before-send``: moto's stubber, wrapped. A request addressed to this process's own
      local endpoint is answered in-process by moto (the URL is mapped back to the
      service's AWS address moto recognises), an operation moto lacks is refused with
      :class:`~labkit.offline.dispatch.NotEmulatedError`, and, in a kernel attached to the
      shared backend, any request for a non-loopback address is refused: nothing reaches AWS.
botocore waiters: ``Waiter.wait`` polls a few endpoint and transform waiters every 50 ms
    instead of every 15-30 s (same total budget): offline a state changes in milliseconds.
botocore's client classes: the methods of a service's client class are built once per session
    (one per operation: 30 ms for EC2), and each client still gets a class of its own.
botocore's service models: whether a service has an endpoint discovery operation is read from the
    model's JSON instead of an ``OperationModel`` per operation (a third of an EC2 client's CPU).
botocore's loaders: each data file (a service model, endpoints, partitions) is read, unzipped and
    parsed once per process, into plain dicts, not ``OrderedDict`` (twice as fast), and kept
    pickled (unpickling is twice as fast again); every loader still gets objects of its own (the
    same data whatever the backend, so this applies in every mode once installed).
SageMaker SDK modules (patched when imported, through an import hook):
    - polling sleeps capped to :data:`POLL_S` (``TrainingJob.wait(poll=5)``,
      ``Endpoint.wait_for_status``, ``ModelBuilder.deploy``'s 30 s polls, v2's
      ``Session.wait_for_endpoint``, v2 ``fit(logs=...)``, v3 ``PipelineExecution.wait``);
    - the config schema checked once (both SDKs re-validate a constant schema on every
      config lookup: 0.2-0.4 s each for v3, about 1.3 s for v2 on a loaded machine, several
      per ``fit``); every config is still validated against it;
    - ``sts_regional_endpoint``: both SDK generations build their STS client with an
      explicit regional ``endpoint_url``, which overrides ``AWS_ENDPOINT_URL``; offline it
      answers the local endpoint.
moto's answers: empty structures AWS leaves out (``VpcConfig: {}``...) are dropped from
    SageMaker describes, because SDK v3's pydantic resources reject them.
moto's models (patched when imported, through the same import hook):
    - Application Auto Scaling: registering a target and putting a policy on an endpoint
      variant make SageMaker's checks first (:mod:`labkit.offline.hosting.autoscaling`), and
      deregistering a target deletes its policies and scheduled actions, as AWS does;
    - SSM's public parameters: the DLAMI and Neuron parameters under ``/aws/service/`` load
      on first use, as moto loads its own (:mod:`labkit.offline.ec2_cluster`);
    - EC2's public AMIs (and their snapshots) are made when a Region's images or snapshots
      are first read, not whenever a Region's EC2 is first touched (0.1 s each); the tagging
      API's walk of a Region's resources does not make them (they carry no tags).
opensearch-py (patched when imported): its synchronous connections to an OpenSearch
    Serverless collection (``*.aoss.amazonaws.com``), which ``AWS_ENDPOINT_URL`` does not
    reach, are made to the local endpoint (:mod:`labkit.offline.opensearch_client` says where).
The SDK's container driver files: :func:`rewrite_sdk_drivers` points the ``/opt/ml`` paths
    in SDK v3's ``sm_drivers`` channel at the job's host folder, as a chroot would.
Handlers of both backends, added through :func:`add_botocore_handlers` and removed through
    :func:`remove_botocore_handlers` (outside :func:`install`, because they also serve the
    sandbox): the sandbox backend's ``labkit:lab`` tag and spending guard, and Bedrock's
    client-side throttle (:mod:`labkit.bedrock.throttling`).

Not here, because it runs in another process: a job's own Python processes remap
``/opt/ml`` in their file functions (``training/container/sitecustomize.py``, the
container's view of its file system). Not here, because it must come before anything
imports jsonschema: ``import labkit`` defers the IRI grammar jsonschema's format checker
builds at import to its first use (:mod:`labkit.deferred`).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import dispatch
from .dispatch import NotEmulatedError

POLL_S = 0.05
PIPELINE_POLL_S = 0.25
# Modules whose ``time.sleep`` calls are status polls (v3 resources, session helper, transformer; v2 session).
POLLING_MODULES = ("sagemaker.core.resources", "sagemaker.core.helper.session_helper",
                   "sagemaker.core.transformer", "sagemaker.session",
                   # v3 Processor.run(wait=True) (Clarify, Model Monitor) polls through _wait_until here
                   "sagemaker.core.common_utils")
# Modules that define ``sts_regional_endpoint`` (v3, v2).
STS_ENDPOINT_MODULES = ("sagemaker.core.helper.session_helper", "sagemaker.core.common_utils",
                        "sagemaker.session", "sagemaker.utils")
# ObjectExists: an asynchronous endpoint's answer appears in S3 as soon as it is computed.
FAST_WAITERS = {"EndpointInService", "EndpointDeleted", "TransformJobCompletedOrStopped", "ObjectExists",
                "StackCreateComplete", "StackUpdateComplete", "StackDeleteComplete", "StackRollbackComplete",
                "ChangeSetCreateComplete"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

_lock = threading.RLock()
_installed = False
_originals: list[tuple[Any, str, Any]] = []  # (object, attribute, original value), in the order set
_ABSENT = object()  # an attribute the patched object did not have of its own (deleted again on uninstall)
_on_import: dict[str, list[Callable[[], object]]] = {}


def _connected() -> bool:
    from . import connected

    return connected()


def _set(obj: Any, attr: str, value: Any) -> None:
    """Replace ``obj.attr``, remembering the original for :func:`uninstall` (once)."""
    if not any(o is obj and a == attr for o, a, _ in _originals):
        _originals.append((obj, attr, vars(obj).get(attr, _ABSENT)))
    setattr(obj, attr, value)


# --- botocore: the engines' handlers and the guard around every request ------------------


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def _operation(event_name: str) -> tuple[str, str]:
    parts = event_name.split(".")
    return (parts[1] if len(parts) > 2 else "?"), parts[-1]


def _moto_stubber() -> Any:
    """moto's stubber, if moto is imported (a kernel attached to the shared backend never imports it)."""
    models = sys.modules.get("moto.core.models")
    return getattr(models, "botocore_stubber", None)


def before_send(event_name: str, request: Any, **kwargs: Any) -> Any:
    """botocore's ``before-send``: answer in-process (engines here), or guard (attached kernel).

    botocore calls every ``before-send`` handler and takes the first answer, so this
    replaces moto's stubber in the handler list rather than sitting beside it.
    """
    from . import endpoint, endpoint_url, running

    stubber = _moto_stubber()
    context = getattr(request, "context", None) or {}
    service = context.get("labkit_service") or _operation(event_name)[0]
    operation = _operation(event_name)[1]
    url = getattr(request, "url", "")
    if not running():
        if _connected() and not is_loopback(url):
            raise NotEmulatedError(service, operation, message=(
                f"{service}.{operation} was addressed to {urlsplit(url).hostname}, not to the offline backend "
                f"({endpoint_url()}), and was refused: nothing was sent to AWS. Create the client without an "
                "explicit endpoint_url (AWS_ENDPOINT_URL points it here), or use the sandbox backend "
                "(LABKIT_BACKEND=sandbox) to reach AWS."))
        return stubber(event_name=event_name, request=request, **kwargs) if stubber else None
    own = endpoint_url()
    if own and (url == own or url.startswith(own + "/") or url.startswith(own + "?")):
        aws_url = endpoint.aws_url(service, url, request.headers)
        if aws_url is None:
            raise NotEmulatedError(service, operation)
        request.url = url = aws_url
    try:
        response = stubber(event_name=event_name, request=request, **kwargs)
    except NotImplementedError as err:  # moto knows the service but not this operation
        raise NotEmulatedError(service, operation, str(err) or "moto lacks it") from None
    if response is not None:
        if response.status_code == 404 and response.raw.getvalue() == b"Not yet implemented":
            raise NotEmulatedError(service, operation)
        return response
    if is_loopback(url):
        return None  # a local server of the learner's or of an engine
    raise NotEmulatedError(service, operation, f"request to {url.split('?')[0]}")


def _handlers() -> list[tuple[str, Callable[..., Any]]]:
    return [("before-parameter-build", dispatch.remember_params), ("before-call", dispatch.answer),
            ("after-call", dispatch.adjust)]


def _install_botocore_handlers() -> None:
    from botocore.handlers import BUILTIN_HANDLERS

    stubber = _moto_stubber()
    replaced = False
    for i, entry in enumerate(BUILTIN_HANDLERS):
        if stubber is not None and entry[0] == "before-send" and entry[1] is stubber:
            BUILTIN_HANDLERS[i] = ("before-send", before_send)
            replaced = True
    if not replaced and ("before-send", before_send) not in BUILTIN_HANDLERS:
        BUILTIN_HANDLERS.append(("before-send", before_send))
    for entry in _handlers():
        if entry not in BUILTIN_HANDLERS:
            BUILTIN_HANDLERS.append(entry)


def _uninstall_botocore_handlers() -> None:
    from botocore.handlers import BUILTIN_HANDLERS

    stubber = _moto_stubber()
    for i, entry in enumerate(BUILTIN_HANDLERS):
        if entry == ("before-send", before_send):
            BUILTIN_HANDLERS[i] = ("before-send", stubber)
    while ("before-send", None) in BUILTIN_HANDLERS:
        BUILTIN_HANDLERS.remove(("before-send", None))
    for entry in _handlers():
        while entry in BUILTIN_HANDLERS:
            BUILTIN_HANDLERS.remove(entry)


def add_botocore_handlers(entries: list[tuple[str, Callable[..., Any]]], *, default_session: bool = False) -> None:
    """Register ``(event, handler)`` pairs for every botocore session created from now on.

    With ``default_session``, on boto3's current default session too (a client takes its
    session's handlers when it is created). The sandbox backend's tagging and spending
    guard and Bedrock's client-side throttle register through here, so this module stays
    the one place that changes botocore's handler list.
    """
    from botocore.handlers import BUILTIN_HANDLERS

    with _lock:
        for entry in entries:
            if entry not in BUILTIN_HANDLERS:
                BUILTIN_HANDLERS.append(entry)
    if default_session:
        import boto3

        session = boto3.DEFAULT_SESSION
        if session is not None:
            for event, handler in entries:
                session.events.register(event, handler, unique_id=f"labkit-{event}-{handler.__qualname__}")


def remove_botocore_handlers(entries: list[tuple[str, Callable[..., Any]]]) -> None:
    from botocore.handlers import BUILTIN_HANDLERS

    for entry in entries:
        while entry in BUILTIN_HANDLERS:
            BUILTIN_HANDLERS.remove(entry)


def _install_fast_waiters() -> None:
    import botocore.waiter

    original = botocore.waiter.Waiter.wait
    if getattr(original, "_labkit_prompt", False):
        return

    def wait(self: botocore.waiter.Waiter, **kwargs: Any) -> None:
        if _connected() and self.name in FAST_WAITERS:
            config = dict(kwargs.get("WaiterConfig") or {})
            if "Delay" not in config:
                total = self.config.delay * config.get("MaxAttempts", self.config.max_attempts)
                config["Delay"] = POLL_S
                config["MaxAttempts"] = int(total / POLL_S)
            kwargs["WaiterConfig"] = config
        return original(self, **kwargs)

    wait._labkit_prompt = True  # type: ignore[attr-defined]
    wait.__doc__ = original.__doc__
    _set(botocore.waiter.Waiter, "wait", wait)


# --- botocore: each data file read once per process, parsed fast ------------------------------

_parsed_files: dict[str, bytes] = {}  # file path -> its parsed data, pickled
_service_lists: dict[tuple[str, tuple[str, ...], type], tuple[str, ...]] = {}  # (type, search paths, file loader)


def _install_fast_model_loading() -> None:
    """botocore caches a parsed model per loader, and every session has its own loader: moto's
    backends, its availability-zone tables, the engines' validators, the cost tools and the
    learner's clients each read, unzipped and parsed the same large JSON files again (EC2's
    model up to six times in lab 00, about a quarter of its CPU). Each data file is now read,
    unzipped and parsed once per process, into plain dicts (no code of botocore, boto3, moto or
    the SDK needs botocore's ``OrderedDict`` hook: dicts keep their order), and kept pickled: a
    loader unpickles its copy, about twice as fast as parsing the JSON again (four times as fast
    as with the hook); the services a loader finds in its search paths are listed once too. Every
    loader still gets objects of its own: botocore edits a session's
    models in place (S3's request URIs lose their ``{Bucket}`` when an S3 client is created),
    which must not reach moto's router. The same data whatever the backend, so this applies in
    every mode once installed; :func:`preload_models` reads files ahead (the grader's warm
    process does, for its kernels)."""
    import json
    import pickle

    import botocore.loaders

    file_loader = botocore.loaders.JSONFileLoader
    original = file_loader.load_file
    openers = getattr(botocore.loaders, "_JSON_OPEN_METHODS", None)
    if getattr(original, "_labkit_shared", False) or not isinstance(openers, dict):
        return

    def load_file(self: botocore.loaders.JSONFileLoader, file_path: str) -> Any:
        kept = _parsed_files.get(file_path)
        if kept is None:
            for ext, open_method in openers.items():
                if os.path.isfile(file_path + ext):
                    with open_method(file_path + ext, "rb") as handle:
                        data = json.loads(handle.read().decode("utf-8"))
                    _parsed_files[file_path] = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
                    return data
            return None
        return pickle.loads(kept)

    load_file._labkit_shared = True  # type: ignore[attr-defined]
    load_file.__doc__ = original.__doc__
    _set(file_loader, "load_file", load_file)

    # Each loader also lists the data folders (about 400 services) before it loads a model.
    loader = botocore.loaders.Loader
    list_services = loader.list_available_services

    def list_available_services(self: botocore.loaders.Loader, type_name: str) -> list[str]:
        key = (type_name, tuple(self.search_paths), type(self.file_loader))
        found = _service_lists.get(key)
        if found is None:
            found = _service_lists[key] = tuple(list_services(self, type_name))
        return list(found)

    list_available_services.__doc__ = list_services.__doc__
    _set(loader, "list_available_services", list_available_services)


# --- botocore: a client class's methods built once per session and service ----------------------

_client_methods: weakref.WeakKeyDictionary[Any, dict[tuple[str, str, tuple[str, ...]], dict[str, Any]]] = (
    weakref.WeakKeyDictionary())


def _install_client_method_cache() -> None:
    """botocore builds a new client class for every client, with one method and one docstring
    object per operation of the service (about 700 for EC2: 30 ms of CPU per EC2 client, and lab
    00's tests make two dozen). The methods depend only on the service's model and the session's
    event emitter (they call ``self._make_api_call(operation_name, kwargs)``), so they are built
    once per emitter, service, API version and operation list, and every class gets a copy of the
    dict: each client still has a class of its own, made by ``type()`` after the session's
    ``creating-client-class`` handlers ran on that copy, exactly as before. Applies in every mode
    once installed (the same classes whatever the backend)."""
    import botocore.client

    creator = botocore.client.ClientCreator
    original = creator._create_methods
    if getattr(original, "_labkit_prompt", False):
        return

    def _create_methods(self: botocore.client.ClientCreator, service_model: Any) -> dict[str, Any]:
        key = (service_model.service_name, service_model.api_version, tuple(service_model.operation_names))
        try:
            built = _client_methods.setdefault(self._event_emitter, {})
        except TypeError:  # an emitter that cannot be referenced weakly: build as botocore does
            return original(self, service_model)
        methods = built.get(key)
        if methods is None:
            methods = built[key] = original(self, service_model)
        return dict(methods)

    _create_methods._labkit_prompt = True  # type: ignore[attr-defined]
    _create_methods.__doc__ = original.__doc__
    _set(creator, "_create_methods", _create_methods)


# --- botocore: endpoint discovery looked up in the model, not in an object per operation ---------


def _install_fast_endpoint_discovery() -> None:
    """Every client asks its service model whether any operation is the service's endpoint
    discovery operation, and botocore answers by building an ``OperationModel`` for every
    operation (about 750 for EC2: a third of the CPU of creating an EC2 client). The answer
    reads one flag of each operation's JSON (``endpointoperation``), so it is read there; the
    operation model it returns is botocore's own (``operation_model``). Same answer, same
    caching (per service model); applies in every mode once installed."""
    import botocore.model
    from botocore.utils import CachedProperty

    service_model = botocore.model.ServiceModel
    original = vars(service_model).get("endpoint_discovery_operation")
    if getattr(getattr(original, "_fget", None), "_labkit_prompt", False):
        return

    def endpoint_discovery_operation(self: botocore.model.ServiceModel) -> Any:
        for name, operation in self._service_description.get("operations", {}).items():
            if operation.get("endpointoperation", False):
                return self.operation_model(name)
        return None

    endpoint_discovery_operation._labkit_prompt = True  # type: ignore[attr-defined]
    _set(service_model, "endpoint_discovery_operation", CachedProperty(endpoint_discovery_operation))


PRELOADED_DATA = ("endpoints", "partitions", "sdk-default-configuration", "_retry")
PRELOADED_TYPES = ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2")


def preload_models(services: list[str]) -> int:
    """Read the model files of ``services`` (and botocore's own data files) ahead, for every loader
    of this process and of those it forks (installing the patch); how many files were read.

    moto's own parsed models (``moto.core.utils.get_service_model``, one per service and process,
    used to parse requests) are made here too when moto is imported, so that forked kernels find
    them made."""
    import botocore.exceptions
    import botocore.loaders

    with _lock:
        _install_fast_model_loading()
    loader = botocore.loaders.create_loader()
    before = len(_parsed_files)
    for name in PRELOADED_DATA:
        with contextlib.suppress(botocore.exceptions.DataNotFoundError):
            loader.load_data(name)
    for service in services:
        for kind in PRELOADED_TYPES:
            with contextlib.suppress(botocore.exceptions.DataNotFoundError, botocore.exceptions.UnknownServiceError):
                loader.load_service_model(service, kind)
    moto_utils = sys.modules.get("moto.core.utils")
    if moto_utils is not None:
        for service in services:
            with contextlib.suppress(Exception):  # a service moto does not know: it parses nothing for it
                moto_utils.get_service_model(service)
    return len(_parsed_files) - before


# --- moto's answers ------------------------------------------------------------------------

_EMPTY_WHEN_UNSET = ("VpcConfig", "DataCaptureConfig", "AsyncInferenceConfig", "ExplainerConfig",
                     "ShadowProductionVariants", "DebugHookConfig", "TensorBoardOutputConfig",
                     "ProfilerConfig", "CheckpointConfig", "ExperimentConfig", "RetryStrategy",
                     "InferenceExecutionConfig")


def drop_empty(parsed: dict[str, Any], keys: tuple[str, ...] = _EMPTY_WHEN_UNSET) -> None:
    """Remove the structures moto returns empty where AWS leaves them out."""
    for key in keys:
        if key in parsed and parsed[key] in ({}, [], None):
            del parsed[key]


for _op in ("DescribeTrainingJob", "DescribeModel", "DescribeEndpointConfig", "DescribeEndpoint",
            "DescribeProcessingJob", "DescribeTransformJob"):
    dispatch.after("sagemaker", _op)(lambda params, parsed: drop_empty(parsed))


# --- the SageMaker SDK -----------------------------------------------------------------------


class PromptTime(types.ModuleType):
    """The ``time`` module as a polling SDK module sees it: the same, but ``sleep`` is capped offline."""

    def __init__(self) -> None:
        super().__init__("time", time.__doc__)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, POLL_S) if _connected() else seconds)


_prompt_time = PromptTime()


def _patch_polling(module: types.ModuleType) -> None:
    if getattr(module, "time", None) is time:
        _set(module, "time", _prompt_time)


def _wrap(owner: Any, name: str, make: Callable[[Any], Callable[..., Any]]) -> None:
    """Replace function ``owner.name`` (of a module or a class) by ``make(original)`` once."""
    fn = getattr(owner, name, None)
    if fn is None or getattr(fn, "_labkit_prompt", False):
        return
    new = make(fn)
    new._labkit_prompt = True  # type: ignore[attr-defined]
    new.__doc__, new.__wrapped__ = fn.__doc__, fn  # type: ignore[attr-defined]
    _set(owner, name, new)


def _patch_deployment_progress(module: types.ModuleType) -> None:
    def make(fn: Any) -> Callable[..., Any]:
        def prompt(sagemaker_client: Any, endpoint_name: str, paginator: Any, paginator_config: Any, poll: float,
                   *args: Any, **kwargs: Any) -> Any:
            if _connected():
                poll = min(poll, POLL_S)
            return fn(sagemaker_client, endpoint_name, paginator, paginator_config, poll, *args, **kwargs)

        return prompt

    _wrap(module, "_live_logging_deploy_done_with_progress", make)


def _patch_v2_logs(module: types.ModuleType) -> None:
    """v2 ``fit(logs=...)``: wait for the job to end (polling Describe), then show its whole log."""

    def make(fn: Any) -> Callable[..., Any]:
        def prompt(sagemaker_session: Any, job_name: str, wait: bool = False, *args: Any, **kwargs: Any) -> Any:
            if _connected() and wait:
                client = sagemaker_session.sagemaker_client
                while client.describe_training_job(TrainingJobName=job_name)["TrainingJobStatus"] in (
                        "InProgress", "Stopping"):
                    time.sleep(POLL_S)
            return fn(sagemaker_session, job_name, wait, *args, **kwargs)

        return prompt

    _wrap(module, "_logs_for_job", make)


def _patch_sts_endpoint(module: types.ModuleType) -> None:
    def make(fn: Any) -> Callable[..., Any]:
        def sts_regional_endpoint(region: str) -> str:
            from . import endpoint_url

            url = endpoint_url() if _connected() else None
            return url or fn(region)

        return sts_regional_endpoint

    _wrap(module, "sts_regional_endpoint", make)


_checked_schemas: dict[int, tuple[Any, Any]] = {}  # id(schema) -> (the schema, its validator), once checked


def _checked_once(original: Callable[..., None], module: types.ModuleType) -> Callable[..., None]:
    """``validate_sagemaker_config`` that checks the (constant) schema once, then only the config
    (once per process: v3's two copies of the function share one schema object)."""

    def validate_sagemaker_config(sagemaker_config: dict | None = None) -> None:
        import jsonschema

        schema = module.SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA
        validator = _checked_schemas.get(id(schema), (None, None))[1]
        if validator is None:
            original(sagemaker_config)  # the full check, schema included
            _checked_schemas[id(schema)] = (schema, jsonschema.validators.validator_for(schema)(schema))
            return
        error = jsonschema.exceptions.best_match(validator.iter_errors(sagemaker_config))
        if error is not None:
            raise error

    validate_sagemaker_config._labkit_prompt = True  # type: ignore[attr-defined]
    validate_sagemaker_config.__doc__ = original.__doc__
    return validate_sagemaker_config


def check_sdk_config_schemas() -> int:
    """Check the SageMaker SDKs' (constant) config schemas now, for this process and those it
    forks (the grader's warm process does): ``validate_sagemaker_config`` then checks configs only.
    How many schemas were checked."""
    import jsonschema

    count = 0
    for name in ("sagemaker.core.config.config_schema", "sagemaker.config.config_schema"):
        schema = getattr(sys.modules.get(name), "SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA", None)
        if schema is None or id(schema) in _checked_schemas:
            continue
        validator = jsonschema.validators.validator_for(schema)
        validator.check_schema(schema)
        _checked_schemas[id(schema)] = (schema, validator(schema))
        count += 1
    return count


def _patch_config_manager(module: types.ModuleType) -> None:
    """SDK v3: the static method ``SageMakerConfig.validate_sagemaker_config``."""
    cls = getattr(module, "SageMakerConfig", None)
    original = getattr(cls, "validate_sagemaker_config", None)
    if original is None or getattr(original, "_labkit_prompt", False):
        return
    _set(cls, "validate_sagemaker_config", staticmethod(_checked_once(original, module)))


def _patch_config_module(module: types.ModuleType) -> None:
    """The module function ``validate_sagemaker_config``: SDK v2's ``sagemaker.config.config`` and
    v3's ``sagemaker.core.config.config`` (which v3's resources and trainers load their defaults
    through, besides ``SageMakerConfig``)."""
    original = getattr(module, "validate_sagemaker_config", None)
    if (original is None or getattr(original, "_labkit_prompt", False)
            or not hasattr(module, "SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA")):
        return
    _set(module, "validate_sagemaker_config", _checked_once(original, module))


def _patch_pipeline_wait(module: types.ModuleType) -> None:
    """v3 ``PipelineExecution.wait(delay=30)`` (a botocore waiter): the same budget, polled often."""
    cls = getattr(module, "PipelineExecution", None)
    wait = getattr(cls, "wait", None)
    if wait is None or getattr(wait, "_labkit_prompt", False):
        return

    def prompt(self: Any, delay: int = 30, max_attempts: int = 60, _wait: Any = wait) -> Any:
        if not _connected():
            return _wait(self, delay=delay, max_attempts=max_attempts)
        budget = delay * max_attempts
        short = min(delay, PIPELINE_POLL_S)
        return _wait(self, delay=short, max_attempts=max(max_attempts, int(budget / short)))

    prompt._labkit_prompt = True  # type: ignore[attr-defined]
    prompt.__doc__ = wait.__doc__
    _set(cls, "wait", prompt)


# --- moto's models ------------------------------------------------------------------------------


def _patch_application_autoscaling(module: types.ModuleType) -> None:
    """SageMaker's checks on endpoint-variant targets and policies; deregistering cascades."""
    from .hosting import autoscaling

    backend = module.ApplicationAutoscalingBackend

    def register(fn: Any) -> Callable[..., Any]:
        def register_scalable_target(self: Any, namespace: str, r_id: str, dimension: str, min_capacity: int | None,
                                     max_capacity: int | None, role_arn: str | None, suspended_state: Any) -> Any:
            autoscaling.check_target(namespace, r_id, dimension, min_capacity, max_capacity)
            return fn(self, namespace, r_id, dimension, min_capacity, max_capacity, role_arn, suspended_state)

        return register_scalable_target

    def put(fn: Any) -> Callable[..., Any]:
        def put_scaling_policy(self: Any, policy_name: str, service_namespace: str, resource_id: str,
                               scalable_dimension: str, policy_body: dict[str, Any] | None,
                               policy_type: str | None) -> Any:
            autoscaling.check_policy(policy_name, service_namespace, resource_id, scalable_dimension, policy_body,
                                     policy_type)
            return fn(self, policy_name, service_namespace, resource_id, scalable_dimension, policy_body, policy_type)

        return put_scaling_policy

    def deregister(fn: Any) -> Callable[..., Any]:
        def deregister_scalable_target(self: Any, namespace: str, r_id: str, dimension: str) -> None:
            fn(self, namespace, r_id, dimension)
            autoscaling.forget_target(self, namespace, r_id, dimension)

        return deregister_scalable_target

    _wrap(backend, "register_scalable_target", register)
    _wrap(backend, "put_scaling_policy", put)
    _wrap(backend, "deregister_scalable_target", deregister)


def _patch_ssm_public_parameters(module: types.ModuleType) -> None:
    """The DLAMI and Neuron parameters join moto's public ``/aws/service/`` parameters on first use."""
    from . import ec2_cluster

    def make(fn: Any) -> Callable[..., Any]:
        def _check_loading_status(self: Any, key: str) -> None:
            fn(self, key)
            ec2_cluster.load_dlami_parameters(self, key)

        return _check_loading_status

    _wrap(module.ParameterDict, "_check_loading_status", make)


def _patch_lazy_amis(module: types.ModuleType) -> None:
    """moto's public AMIs are made when a Region's EC2 is first asked about images or snapshots.

    moto builds every Region's EC2 backend with its ~1,300 public AMIs, each with an EBS
    snapshot: 0.1 s of CPU per Region, spent by every kernel that merely lists instance type
    offerings in four Regions (lab 00). The same AMIs and snapshots appear, only later: reading
    ``amis`` or ``snapshots`` first makes them, so nothing a request sees changes.
    """
    backend = module.AmiBackend
    load = backend._load_amis
    if isinstance(vars(backend).get("amis"), property):
        return

    def defer(self: Any) -> None:
        self.__dict__["_labkit_amis_pending"] = True

    def amis(self: Any) -> dict[str, Any]:
        if not getattr(_tag_walk, "active", False) and self.__dict__.pop("_labkit_amis_pending", False):
            load(self)
        return self.__dict__["amis"]

    def set_amis(self: Any, value: dict[str, Any]) -> None:
        self.__dict__["amis"] = value

    def snapshots(self: Any) -> dict[str, Any]:
        if not getattr(_tag_walk, "active", False) and self.__dict__.get("_labkit_amis_pending"):
            self.amis  # noqa: B018 (makes the AMIs, and with them their snapshots)
        return self.__dict__["snapshots"]

    def set_snapshots(self: Any, value: dict[str, Any]) -> None:
        self.__dict__["snapshots"] = value

    from moto.ec2.models.elastic_block_store import EBSBackend

    _set(backend, "_load_amis", defer)
    _set(backend, "amis", property(amis, set_amis))
    _set(EBSBackend, "snapshots", property(snapshots, set_snapshots))


_tag_walk = threading.local()  # active: this thread's tagging walk reads a Region's AMIs as they are


def _patch_tag_walk_without_public_amis(module: types.ModuleType) -> None:
    """The tagging API's walk of a Region's EC2 resources leaves out public AMIs not made yet.

    ``GetResources`` (every lab's clean-up calls it) reads each resource's tags, and reading a
    Region's AMIs would make its ~1,300 public ones (:func:`_patch_lazy_amis`). They and their
    snapshots carry no tags, and ``GetResources`` skips a resource without tags, so the walk
    reads the AMIs and snapshots made so far instead: the same answer. The flag is per thread: a
    ``DescribeImages`` in another thread at the same moment still makes them.
    """
    backend = module.EC2Backend
    original = backend.iter_tagged_resources
    if getattr(original, "_labkit_prompt", False):
        return

    def iter_tagged_resources(self: Any) -> Iterator[Any]:
        resources = original(self)
        _tag_walk.active = True
        try:  # the walk reads every collection before it yields its first resource
            first = next(resources, _ABSENT)
        finally:
            _tag_walk.active = False
        if first is not _ABSENT:
            yield first
            yield from resources

    iter_tagged_resources._labkit_prompt = True  # type: ignore[attr-defined]
    _set(backend, "iter_tagged_resources", iter_tagged_resources)


# --- opensearch-py ------------------------------------------------------------------------------


def _patch_opensearch_connection(class_name: str) -> Callable[[types.ModuleType], None]:
    """A connection class's constructor, routed by :func:`labkit.offline.opensearch_client.route`."""

    def patch(module: types.ModuleType) -> None:
        from . import opensearch_client

        def make(fn: Any) -> Callable[..., Any]:
            def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
                if args:  # host, port, http_auth, use_ssl given positionally
                    kwargs.update(dict(zip(("host", "port", "http_auth", "use_ssl"), args, strict=False)))
                fn(self, **opensearch_client.route(kwargs))

            return __init__

        _wrap(getattr(module, class_name), "__init__", make)

    return patch


# --- which module gets which patches -----------------------------------------------------------

_MODULE_PATCHES: dict[str, list[Callable[[types.ModuleType], None]]] = {}
for _name in POLLING_MODULES:
    _MODULE_PATCHES.setdefault(_name, []).append(_patch_polling)
for _name in STS_ENDPOINT_MODULES:
    _MODULE_PATCHES.setdefault(_name, []).append(_patch_sts_endpoint)
_MODULE_PATCHES["sagemaker.session"].append(_patch_v2_logs)
_MODULE_PATCHES["sagemaker.serve.deployment_progress"] = [_patch_deployment_progress]
_MODULE_PATCHES["sagemaker.core.config.config_manager"] = [_patch_config_manager]
_MODULE_PATCHES["sagemaker.config.config"] = [_patch_config_module]
_MODULE_PATCHES["sagemaker.core.config.config"] = [_patch_config_module]
_MODULE_PATCHES["sagemaker.mlops.workflow.pipeline"] = [_patch_pipeline_wait]
_MODULE_PATCHES["moto.applicationautoscaling.models"] = [_patch_application_autoscaling]
_MODULE_PATCHES["moto.ssm.models"] = [_patch_ssm_public_parameters]
_MODULE_PATCHES["moto.ec2.models.amis"] = [_patch_lazy_amis]
_MODULE_PATCHES["moto.ec2.models"] = [_patch_tag_walk_without_public_amis]
# The two synchronous connection classes; the asyncio one is not routed.
_MODULE_PATCHES["opensearchpy.connection.http_requests"] = [_patch_opensearch_connection("RequestsHttpConnection")]
_MODULE_PATCHES["opensearchpy.connection.http_urllib3"] = [_patch_opensearch_connection("Urllib3HttpConnection")]


def _patch_module(name: str, module: types.ModuleType) -> None:
    with _lock:
        for fn in _MODULE_PATCHES[name]:
            fn(module)


def on_import(name: str, fn: Callable[[], object]) -> None:
    """Call ``fn`` (offline only) when module ``name`` begins to import (hosting warms its zygote)."""
    _on_import.setdefault(name, []).append(fn)


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then the module's patches; anything else goes to the real loader."""

    def __init__(self, name: str, loader: Any) -> None:
        self._name, self._loader = name, loader

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._loader, attr)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        _patch_module(self._name, module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the patched modules as the other finders do, with a patching loader."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname in _on_import and _connected():
            from . import running

            if running():
                for fn in _on_import[fullname]:
                    fn()
        if fullname not in _MODULE_PATCHES:
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


# --- the SDK's container driver files (per job, not a library in memory) -----------------------

CONTAINER_ROOT = "/opt/ml"
# SDK v3's environment.py names the rendezvous host as the container's /etc/hosts does.
_SDK_MASTER_ADDR = re.compile(r"""^(SM_MASTER_ADDR\s*=\s*)["']algo-1["']""", re.M)
_SDK_MASTER_PORT = re.compile(r"^(SM_MASTER_PORT\s*=\s*)\d+", re.M)


def rewrite_sdk_drivers(folder: Path, root: Path, master: tuple[str, int] | None = None) -> None:
    """Point the SDK's own driver files at this host's root instead of ``/opt/ml``.

    SDK v3 ships its container drivers (``sm_train.sh``, ``environment.py``...) in the
    ``sm_drivers`` channel with ``/opt/ml`` written into them; they are the SDK's files,
    not the learner's, so the offline container remaps them as a chroot would. With
    ``master`` (address, port), the drivers' rendezvous host ``algo-1:7777``, which the
    container's ``/etc/hosts`` resolves on AWS, becomes the job's own address and port.
    """
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".sh", ".py", ".json", ""):
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            new = text.replace(CONTAINER_ROOT, str(root))
            if master is not None:
                new = _SDK_MASTER_ADDR.sub(lambda m: f'{m.group(1)}"{master[0]}"', new)
                new = _SDK_MASTER_PORT.sub(lambda m: f"{m.group(1)}{master[1]}", new)
            if new != text:
                path.write_text(new)


# --- install / uninstall -----------------------------------------------------------------------


def install() -> None:
    """Apply every patch (idempotent): botocore handlers, waiters, modules now and on import."""
    global _installed
    with _lock:
        _install_botocore_handlers()
        _install_fast_waiters()
        _install_fast_model_loading()
        _install_client_method_cache()
        _install_fast_endpoint_discovery()
        for name in _MODULE_PATCHES:
            module = sys.modules.get(name)
            if module is not None:
                _patch_module(name, module)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
        _installed = True


def uninstall() -> None:
    """Undo every patch: the libraries behave as written again (sessions made later)."""
    global _installed
    with _lock:
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        _uninstall_botocore_handlers()
        for obj, attr, original in reversed(_originals):
            if original is _ABSENT:
                delattr(obj, attr)
            else:
                setattr(obj, attr, original)
        _originals.clear()
        _installed = False


def installed() -> bool:
    return _installed
