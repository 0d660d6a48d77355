"""Route botocore calls to the offline engines.

moto answers most control-plane calls through its HTTP stubber. Where a call must
*do* something moto does not (run a training job, serve an endpoint, answer Bedrock),
or where moto lacks the operation altogether, an engine registers a handler here:

    @dispatch.operation("sagemaker-runtime", "InvokeEndpoint")
    def invoke_endpoint(params: dict) -> dict: ...

A handler receives the call's parameters exactly as the boto3 client got them (already
validated by botocore against the service model) and returns the response as botocore
would have parsed it from AWS (datetimes, ``StreamingBody`` for payloads), or raises
:class:`AWSError` with AWS's error code. ``after`` hooks may patch a response that moto
produced (for example to drop empty structures AWS never returns).

A last ``before-send`` guard refuses any request that neither an engine nor moto
answered, so nothing ever reaches a real AWS endpoint from the offline backend.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.handlers import BUILTIN_HANDLERS
from botocore.response import StreamingBody

Handler = Callable[[dict[str, Any]], dict[str, Any]]
WSGIApp = Callable[..., Any]
AfterHook = Callable[[dict[str, Any], dict[str, Any]], None]

Validator = Callable[[dict[str, Any]], None]

_handlers: dict[tuple[str, str], Handler] = {}
_validators: dict[tuple[str, str], list[Validator]] = {}
_after: dict[tuple[str, str], list[AfterHook]] = {}
_data_planes: dict[str, WSGIApp] = {}
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


class NotEmulatedError(RuntimeError):
    """A request reached the offline backend that no engine and no moto model answers."""


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


def data_plane(prefix: str) -> Callable[[WSGIApp], WSGIApp]:
    """Register a WSGI app for requests whose path starts with ``/<prefix>/``.

    The local AWS endpoint routes such requests to the app (a service's data plane that is
    not an AWS API call: an OpenSearch Serverless collection's REST API, say).
    """

    def register(app: WSGIApp) -> WSGIApp:
        _data_planes[prefix] = app
        return app

    return register


def handled(service: str, name: str) -> bool:
    return (service, name) in _handlers


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


# --- botocore event handlers -------------------------------------------------------


def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if _enabled:
        context["labkit_params"] = params


def _answer(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any):
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


def _adjust(http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    if not _enabled:
        return
    hooks = _after.get((model.service_model.service_name, model.name))
    if hooks and http_response is not None and getattr(http_response, "status_code", 500) < 300:
        params = dict(context.get("labkit_params") or {})
        for hook in hooks:
            hook(params, parsed)


def _guarded_stubber(stubber: Any) -> Callable[..., Any]:
    """Wrap moto's ``before-send`` stubber: what moto does not answer is refused.

    botocore calls every ``before-send`` handler and takes the first answer, so the
    guard must sit around moto's stubber rather than beside it.
    """

    def before_send(event_name: str, request: Any, **kwargs: Any) -> Any:
        response = stubber(event_name=event_name, request=request, **kwargs)
        if response is not None or not _enabled:
            return response
        url = getattr(request, "url", "")
        if url.startswith(("http://127.0.0.1", "http://localhost")):
            return None
        parts = event_name.split(".")
        service = parts[1] if len(parts) > 2 else "?"
        raise NotEmulatedError(
            f"The offline backend does not emulate {service}.{parts[-1]} "
            f"(request to {url.split('?')[0]}). Nothing was sent to AWS. "
            "Use the sandbox backend (LABKIT_BACKEND=sandbox) for this call, or open an issue "
            "if a lab needs it offline."
        )

    return before_send


_installed = False


def install() -> None:
    """Add the handlers to every botocore session created from now on (idempotent).

    moto's stubber is replaced by a guarded wrapper around it.
    """
    global _installed
    if _installed:
        return
    from moto.core.models import botocore_stubber

    for i, entry in enumerate(BUILTIN_HANDLERS):
        if entry[0] == "before-send" and entry[1] is botocore_stubber:
            BUILTIN_HANDLERS[i] = ("before-send", _guarded_stubber(botocore_stubber))
    BUILTIN_HANDLERS.append(("before-parameter-build", _remember_params))
    BUILTIN_HANDLERS.append(("before-call", _answer))
    BUILTIN_HANDLERS.append(("after-call", _adjust))
    _installed = True
