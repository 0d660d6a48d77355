"""Route AWS calls to the offline engines.

moto answers most control-plane calls. Where a call must *do* something moto does not
(run a training job, serve an endpoint, answer Bedrock), or where moto lacks the
operation altogether, an engine registers a handler here:

    @dispatch.operation("sagemaker-runtime", "InvokeEndpoint")
    def invoke_endpoint(params: dict) -> dict: ...

A handler receives the call's parameters exactly as the boto3 client got them (already
validated by botocore against the service model) and returns the response as botocore
would have parsed it from AWS (datetimes, ``StreamingBody`` for payloads), or raises
:class:`AWSError` with AWS's error code. ``validate`` hooks check a request before moto
records it; ``after`` hooks may patch a response that moto produced (for example to drop
empty structures AWS never returns).

The same registrations answer both ways a call arrives: in-process, through botocore
event handlers (installed by :mod:`labkit.offline.patches`), and over HTTP, through the
local endpoint (:mod:`labkit.offline.endpoint`), which runs each such request through the
same in-process path. Engines never see which. Two more kinds of registration:

- :func:`data_plane`: a WSGI app for requests that are not botocore APIs (an OpenSearch
  collection's REST calls), served under ``/<prefix>/`` on the endpoint;
- :func:`backend_function`: a function a kernel may call that must run where the engines
  run (a test harness switch such as simulating a spot interruption, the meter's usage).

What neither an engine nor moto answers is refused (:class:`NotEmulatedError`), never sent to AWS.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.response import StreamingBody

Handler = Callable[[dict[str, Any]], dict[str, Any]]
AfterHook = Callable[[dict[str, Any], dict[str, Any]], None]
Validator = Callable[[dict[str, Any]], None]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_handlers: dict[tuple[str, str], Handler] = {}
_validators: dict[tuple[str, str], list[Validator]] = {}
_after: dict[tuple[str, str], list[AfterHook]] = {}
_data_planes: dict[str, WSGIApp] = {}
_backend_functions: dict[str, Callable[..., Any]] = {}
_P = ParamSpec("_P")
_R = TypeVar("_R")
_enabled = False


class AWSError(Exception):
    """An error the offline backend answers with, shaped as AWS shapes it.

    ``code`` is AWS's error code (``ValidationException``, ``ResourceNotFound``...);
    ``status`` the HTTP status AWS uses for it; ``extra`` any further top-level
    response fields (``OriginalStatusCode`` of a SageMaker ``ModelError``, say).
    """

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra


NOT_EMULATED_CODE, NOT_EMULATED_STATUS = "NotImplemented", 501


def refusal(service: str, operation: str, detail: str = "") -> str:
    """The message of every refused call: what was asked, that nothing left, what to do."""
    detail = f" ({detail})" if detail else ""
    return (f"The offline backend does not emulate {service}.{operation}{detail}. Nothing was sent to AWS. "
            "Use the sandbox backend (LABKIT_BACKEND=sandbox) for this call, or open an issue "
            "if a lab needs it offline.")


class NotEmulatedError(ClientError):
    """A request reached the offline backend that no engine and no moto model answers.

    A ``ClientError`` with code ``NotImplemented`` (HTTP 501), so code that handles AWS
    errors sees the same thing whether the call was answered in-process or over HTTP.
    """

    def __init__(self, service: str, operation: str, detail: str = "", *, message: str = ""):
        response = {"Error": {"Code": NOT_EMULATED_CODE, "Message": message or refusal(service, operation, detail)},
                    "ResponseMetadata": _response_metadata(NOT_EMULATED_STATUS)}
        super().__init__(response, operation)


def operation(service: str, name: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the offline answer to ``service``'s operation ``name``.

    ``service`` is the name given to ``boto3.client`` (``"sagemaker-runtime"``);
    ``name`` the operation's API name (``"InvokeEndpoint"``).
    """

    def register(fn: Handler) -> Handler:
        _handlers[(service, name)] = fn
        return fn

    return register


def validate(service: str, name: str) -> Callable[[Validator], Validator]:
    """Register ``fn(params)`` to check a request before moto records it.

    For operations moto implements but validates less strictly than AWS: ``fn`` raises
    :class:`AWSError` with AWS's code and message, or returns to let the call through.
    """

    def register(fn: Validator) -> Validator:
        _validators.setdefault((service, name), []).append(fn)
        return fn

    return register


def after(service: str, name: str) -> Callable[[AfterHook], AfterHook]:
    """Register ``fn(params, parsed)`` to adjust a response in place after moto answered."""

    def register(fn: AfterHook) -> AfterHook:
        _after.setdefault((service, name), []).append(fn)
        return fn

    return register


def handled(service: str, name: str) -> bool:
    return (service, name) in _handlers


def answers(service: str, name: str) -> bool:
    """Whether an engine takes part in the call (handler, validator or after hook)."""
    key = (service, name)
    return key in _handlers or key in _validators or key in _after


def registrations() -> list[tuple[str, str, str]]:
    """``(service, operation, registering module)`` of every handler, validator and after hook."""
    out = [(service, name, fn.__module__) for (service, name), fn in _handlers.items()]
    for table in (_validators, _after):
        out += [(service, name, fn.__module__) for (service, name), fns in table.items() for fn in fns]
    return out


def data_plane(prefix: str) -> Callable[[WSGIApp], WSGIApp]:
    """Register a WSGI app for the endpoint's requests whose path starts with ``/<prefix>/``.

    For data planes that are not botocore APIs (an OpenSearch Serverless collection's
    REST calls): the app gets the request as it arrived, full path included.
    """

    def register(app: WSGIApp) -> WSGIApp:
        _data_planes[prefix.strip("/")] = app
        return app

    return register


def data_plane_for(path: str) -> WSGIApp | None:
    """The data-plane app whose prefix starts ``path``, if any."""
    first = path.lstrip("/").split("/", 1)[0]
    return _data_planes.get(first) if path.startswith(f"/{first}/") else None


def backend_function(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Make ``fn`` run where the engines run, whichever process calls it.

    In a process whose engines run here (the embedded backend, the shared backend's
    own process) ``fn`` is called directly. In a kernel attached to the shared backend
    the call goes to the backend through the endpoint's control API. Arguments and the
    result must be JSON (plain values, lists, dicts and TypedDicts), so that the result
    has the type ``fn`` declares either way.
    """
    name = f"{fn.__module__}.{fn.__qualname__}"
    _backend_functions[name] = fn

    @functools.wraps(fn)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        from . import endpoint, running

        if running():
            return fn(*args, **kwargs)
        return endpoint.call_backend_function(name, list(args), kwargs)

    return call


def run_backend_function(name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Run a registered backend function here (the control API calls this); JSON-ready result.
    Its module is imported first if this process has not loaded it yet (an engine loads on its
    first request, and a kernel may call a function of an engine no request has reached)."""
    if name not in _backend_functions and name.startswith("labkit."):
        import importlib

        module = name.rsplit(".", 1)[0]
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    if name not in _backend_functions:
        raise KeyError(f"no backend function {name!r}")
    result = _backend_functions[name](*args, **kwargs)
    json.dumps(result)  # fail here, with the function's name, rather than in the server
    return result


def enable() -> None:
    global _enabled
    _enabled = True


def disable() -> None:
    global _enabled
    _enabled = False


def streaming_body(data: bytes) -> StreamingBody:
    """A ``StreamingBody`` as botocore hands out for blob payloads (``Body``)."""
    return StreamingBody(io.BytesIO(data), len(data))


def _response_metadata(status: int) -> dict[str, Any]:
    return {
        "RequestId": "labkit-offline",
        "HTTPStatusCode": status,
        "HTTPHeaders": {"x-amzn-requestid": "labkit-offline"},
        "RetryAttempts": 0,
    }


def _http(status: int, url: str) -> AWSResponse:
    return AWSResponse(url, status, {}, io.BytesIO(b""))


# --- botocore event handlers (installed by labkit.offline.patches) -----------------


def remember_params(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    """``before-parameter-build``: keep the call's parameters and service for later handlers."""
    context["labkit_service"] = model.service_model.service_name
    if _enabled:
        context["labkit_params"] = params


def answer(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any):
    """``before-call``: an engine's answer (or a validator's error) short-circuits the request."""
    if not _enabled:
        return None
    key = (model.service_model.service_name, model.name)
    handler = _handlers.get(key)
    validators = _validators.get(key, [])
    if handler is None and not validators:
        return None
    url = params.get("url", "") if isinstance(params, dict) else ""
    api_params = dict(context.get("labkit_params") or {})
    try:
        for check in validators:
            check(api_params)
        if handler is None:
            return None
        parsed = handler(api_params)
    except AWSError as err:
        body = {
            "Error": {"Code": err.code, "Message": err.message},
            "ResponseMetadata": _response_metadata(err.status),
            **err.extra,
        }
        if err.extra:
            body["Error"].update({k: v for k, v in err.extra.items() if isinstance(v, str | int)})
        return _http(err.status, url), body
    status = parsed.pop("_status", 200)
    parsed.setdefault("ResponseMetadata", _response_metadata(status))
    return _http(status, url), parsed


def adjust(http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    """``after-call``: the engines' after hooks adjust what moto answered."""
    if not _enabled:
        return
    hooks = _after.get((model.service_model.service_name, model.name))
    if hooks and http_response is not None and getattr(http_response, "status_code", 500) < 300:
        params = dict(context.get("labkit_params") or {})
        for hook in hooks:
            hook(params, parsed)
