"""The local AWS endpoint: one WSGI app that every client of the offline backend reaches.

AWS's own tools (boto3, the SageMaker SDK, the ``aws`` CLI, a job's or a model server's
boto3) are pointed here by ``AWS_ENDPOINT_URL`` and the shared config file's
``endpoint_url`` (:func:`labkit.offline.configure_clients`). Each request is answered so:

1. ``/_labkit/...``: the control API (status, reset, stop, backend functions), which needs
   the backend's token in ``X-Labkit-Token``.
2. ``/<prefix>/...`` of a data plane registered with :func:`labkit.offline.dispatch.data_plane`:
   that WSGI app, with the full path.
3. Otherwise the service is found from the SigV4 credential scope's signing name (``bedrock``
   signs bedrock, bedrock-runtime, bedrock-agent and bedrock-agent-runtime; ``sagemaker`` its
   runtime and feature store too) and the operation by moto's routers over botocore's
   service models (``X-Amz-Target``, ``Action``, or path and method).
4. When an engine takes part in that operation (:func:`~labkit.offline.dispatch.answers`), the
   request is parsed into parameters by moto's protocol parsers, run through an in-process
   boto3 client, which is exactly the path of a call made in the backend's own process
   (validators, handler, moto, after hooks), and the result or error is written back by
   moto's protocol serializers (blobs, event streams, each protocol's error shape).
5. Everything else goes to moto's own server application, as moto's server routes it.

An operation that nothing emulates is answered ``501 NotImplemented`` with
:func:`~labkit.offline.dispatch.refusal`'s message.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import io
import json
import os
import re
import threading
import time
import uuid
import warnings
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from . import dispatch
from .dispatch import NOT_EMULATED_CODE, NOT_EMULATED_STATUS, refusal

CONTROL_PREFIX = "/_labkit/"
# The status asked for without counting as a use of the backend (its idle timer goes on): what
# `labkit backend status` asks. A plain "status" (connect() checking that it answers) is a use.
PASSIVE_STATUS = "status/passive"
TOKEN_HEADER = "X-Labkit-Token"
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")


# --- which service and operation a request is for ---------------------------------------------


@functools.cache
def service_metadata() -> dict[str, dict[str, Any]]:
    """``{service name: metadata}`` of botocore's service models, read from each file's head."""
    import botocore

    root = Path(botocore.__file__).parent / "data"
    decoder = json.JSONDecoder()
    out: dict[str, dict[str, Any]] = {}
    for folder in sorted(root.iterdir()):
        versions = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        model = next((v / name for v in reversed(versions) for name in ("service-2.json.gz", "service-2.json")
                      if (v / name).is_file()), None)
        if model is None:
            continue
        raw = model.read_bytes()
        head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, 65536) if model.suffix == ".gz" else raw
        text = head.decode("utf-8", "replace")
        at = text.find('"metadata"')
        if at < 0:
            continue
        try:
            out[folder.name] = decoder.raw_decode(text, text.index("{", at))[0]
        except ValueError:
            continue
    return out


@functools.cache
def services_signing_as() -> dict[str, list[str]]:
    """``{signing name: [service names]}``: the services one credential scope may mean."""
    out: dict[str, list[str]] = defaultdict(list)
    for name, meta in service_metadata().items():
        out[(meta.get("signingName") or meta.get("endpointPrefix") or name).lower()].append(name)
    return dict(out)


def credential_scope(headers: Any, query: Any = None) -> tuple[str, str] | None:
    """``(region, signing name)`` of a SigV4-signed request (header or presigned URL)."""
    auth = headers.get("Authorization", "") or ""
    match = _SCOPE.search(auth.decode("latin-1") if isinstance(auth, bytes) else auth)
    if match:
        return match.group(1), match.group(2)
    credential = (query or {}).get("X-Amz-Credential") or ""
    parts = credential.split("/")
    return (parts[2], parts[3]) if len(parts) >= 5 else None


@dataclass
class Target:
    """What a request asks for: botocore service name, moto's operation model, URI labels, region."""

    service: str
    operation: Any
    uri_params: dict[str, Any]
    region: str


def _specificity(operation: Any) -> int:
    """How specific a matched operation's route is (REST candidates of one signing name compete)."""
    uri = (operation.http or {}).get("requestUri")
    if not uri:
        return 1_000_000  # RPC protocols: matched by X-Amz-Target or Action, exactly
    path, _, query = uri.partition("?")
    return len(re.sub(r"\{[^}]*\}", "", path)) * 10 + (5 if query else 0)


def resolve(request: Any) -> Target | None:
    """The service and operation of a moto/werkzeug ``request``, or None when unsigned or unknown."""
    from moto.core.routing import get_service_router

    scope = credential_scope(request.headers, request.args)
    if scope is None:
        return None
    region, signing_name = scope
    best: tuple[int, str, Any, dict[str, Any]] | None = None
    for service in services_signing_as().get(signing_name.lower(), []):
        try:
            operation, params = get_service_router(service).match(request)
        except Exception:  # NotFound, an unsupported protocol for this content type...
            continue
        score = _specificity(operation)
        if best is None or score > best[0]:
            best = (score, service, operation, params)
    if best is None:
        return None
    return Target(best[1], best[2], best[3], region)


@functools.cache
def moto_backend(service: str, region: str) -> tuple[str, str] | None:
    """``(AWS host, moto backend)`` that moto's own routing gives ``service``, if moto has it."""
    import moto.backend_index as backend_index

    prefix = service_metadata().get(service, {}).get("endpointPrefix", service)
    for host in (f"{prefix}.{region}.amazonaws.com", f"{prefix}.amazonaws.com", f"{prefix}.{region}.api.aws"):
        for backend, pattern in backend_index.backend_url_patterns:
            if pattern.match(f"https://{host}"):
                return host, backend
    return None


def aws_url(service: str, url: str, headers: Any) -> str | None:
    """``url`` (addressed to the local endpoint) at the AWS address moto recognises for ``service``."""
    from . import REGION

    scope = credential_scope(headers, None)
    found = moto_backend(service, scope[0] if scope else REGION)
    if found is None:
        return None
    parts = urlsplit(url)
    return f"https://{found[0]}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")


# --- answering through the engines, in-process -------------------------------------------------


class _Reported(Exception):
    """An AWS error answered in-process, for moto's serializers (code, message, modeled fields)."""

    def __init__(self, code: str, message: str, fields: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.message = code, message
        for key, value in (fields or {}).items():
            setattr(self, key, value)


def _as_sent(params: dict[str, Any], operation: Any) -> dict[str, Any]:
    """``params`` as the caller gave them: moto's parser reads a list or map of the query string or
    the headers that the request did not carry as ``[]`` or ``{}`` (FeatureStore's GetRecord without
    ``FeatureNames``), which validation then refuses as too short; a request cannot send one empty
    there, so it is left out, as are None values."""
    members = operation.input_shape.members if operation.input_shape is not None else {}
    absent = {name for name, shape in members.items()
              if shape.serialization.get("location") in ("querystring", "header", "headers")
              and shape.type_name in ("list", "map") and params.get(name) in ([], {})}
    return _without_none({k: v for k, v in params.items() if k not in absent})


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def _client(service: str, region: str) -> Any:
    """An in-process client (no retries: the caller retries as it chooses)."""
    with _clients_lock:
        key = (service, region)
        if key not in _clients:
            import botocore.session
            from botocore.config import Config

            config = Config(retries={"total_max_attempts": 1}, read_timeout=3600, connect_timeout=60)
            _clients[key] = botocore.session.get_session().create_client(service, region_name=region, config=config)
        return _clients[key]


def forget_clients() -> None:
    with _clients_lock:
        _clients.clear()


Response = tuple[int, dict[str, str], Iterable[bytes]]


def _serializer(target: Target, protocol: str) -> Any:
    from moto.core.serialize import SerializationContext, get_serializer_class

    cls = get_serializer_class(target.service, protocol)
    return cls(target.operation, context=SerializationContext(str(uuid.uuid4())))


def _error(serializer: Any, code: str, message: str, status: int, fields: dict[str, Any] | None = None) -> Response:
    with warnings.catch_warnings():  # moto warns of error codes its models lack (ours, NotImplemented)
        warnings.simplefilter("ignore")
        resp = serializer.serialize(_Reported(code, message, fields))
    body = resp["body"]
    return status, dict(resp["headers"]), [body.encode() if isinstance(body, str) else body]


def refuse(target: Target, protocol: str, detail: str = "") -> Response:
    message = refusal(target.service, target.operation.name, detail)
    return _error(_serializer(target, protocol), NOT_EMULATED_CODE, message, NOT_EMULATED_STATUS)


def _modelled_content_type(output_shape: Any, result: dict[str, Any]) -> dict[str, str]:
    """The ``Content-Type`` an output models as a member (InvokeEndpoint's ``ContentType``, the model's own).

    moto's REST serializers write their protocol's type over it whenever there is a body; AWS sends the
    member, and the SDKs pick their deserializer by it (a model's ``application/x-npy`` is not JSON).
    """
    for name, member in (output_shape.members.items() if output_shape is not None else ()):
        serialization = member.serialization
        if (serialization.get("location") == "header" and serialization.get("name", "").lower() == "content-type"
                and result.get(name)):
            return {"Content-Type": result[name]}
    return {}


def _event_stream_body(serializer: Any, output_shape: Any, result: dict[str, Any], events: Any) -> Iterator[bytes]:
    """The event stream as AWS sends it, an error inside the stream included."""
    from botocore.exceptions import EventStreamError
    from moto.core.eventstream import EventStream, EventStreamEncoder

    failure: list[EventStreamError] = []

    def items() -> Iterator[Any]:
        try:
            yield from events
        except EventStreamError as err:
            failure.append(err)

    encoder = EventStreamEncoder()
    stream = EventStream({**result, output_shape.event_stream_name: items()}, output_shape,
                         serializer._event_stream_serializer)
    for message in stream:
        yield encoder.encode_event(message)
    for err in failure:
        error = err.response.get("Error", {})
        yield encoder.encode_message(
            {":message-type": "exception", ":exception-type": error.get("Code", "InternalServerException"),
             ":content-type": "application/json"},
            json.dumps({"message": error.get("Message", "")}).encode())


def call_in_process(target: Target, request: Any) -> Response:
    """Parse ``request``, run it through the engines in this process, serialize the answer."""
    from botocore.exceptions import ClientError
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.request import determine_request_protocol

    service_model = target.operation.service_model
    protocol = determine_request_protocol(service_model, request.content_type)
    serializer = _serializer(target, protocol)
    params = PROTOCOL_PARSERS[protocol](target.operation).parse({
        "method": request.method, "values": request.values, "headers": request.headers,
        "body": request.get_data(), "url_path": request.path, "url_params": target.uri_params})
    try:
        parsed = _client(target.service, target.region)._make_api_call(target.operation.name,
                                                                       _as_sent(params, target.operation))
    except ClientError as err:
        error = dict(err.response.get("Error") or {})
        fields = {k: v for k, v in err.response.items() if k not in ("Error", "ResponseMetadata")}
        fields.update({k: v for k, v in error.items() if k not in ("Code", "Message")})
        status = (err.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 400
        return _error(serializer, error.get("Code", "InternalFailure"), error.get("Message", ""), status, fields)
    meta = parsed.pop("ResponseMetadata", {}) or {}
    status = meta.get("HTTPStatusCode") or 200
    output_shape = target.operation.output_shape
    stream_member = getattr(output_shape, "event_stream_name", None) if output_shape is not None else None
    events = parsed.pop(stream_member, None) if stream_member else None
    for key, value in list(parsed.items()):
        if hasattr(value, "read"):  # a StreamingBody payload
            parsed[key] = value.read()
    resp = serializer._serialize_result(serializer._create_default_response(), parsed)
    headers = {**resp["headers"], **_modelled_content_type(output_shape, parsed)}
    # Headers an engine sends beyond the modelled ones (Bedrock's token counts, x-labkit-stand-in).
    taken = {k.lower() for k in headers} | {"content-length", "content-type", "transfer-encoding", "date"}
    headers.update({k: v for k, v in (meta.get("HTTPHeaders") or {}).items() if k.lower() not in taken})
    if stream_member:
        headers["Content-Type"] = "application/vnd.amazon.eventstream"
        return status, headers, _event_stream_body(serializer, output_shape, parsed, events or [])
    body = resp["body"]
    return status, headers, [body.encode() if isinstance(body, str) else body]


# --- the WSGI application ----------------------------------------------------------------------


def _moto_app_factory() -> Any:
    """moto's server application, where an unimplemented operation is refused, not a 500."""
    from moto.backends import SERVICE_NAMES
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    def create_app(backend: Any) -> Any:
        app = create_backend_app(backend)
        app.register_error_handler(NotImplementedError, _refuse_unimplemented)
        return app

    class MotoApp(DomainDispatcherApplication):
        def app_for(self, backend: str) -> Any:
            with self.lock:
                app = self.app_instances.get(backend)
                if app is None:
                    # a moto service name: the caller checked it against moto's list of modules
                    app = self.app_instances[backend] = self.create_app(cast(SERVICE_NAMES, backend))
                return app

    return MotoApp(create_app)


def _refuse_unimplemented(err: NotImplementedError) -> Any:
    from flask import Response as FlaskResponse
    from flask import request
    from moto.core.request import determine_request_protocol

    target = resolve(request)
    if target is None:
        return FlaskResponse(refusal("?", "?", str(err)), status=NOT_EMULATED_STATUS)
    try:
        protocol = determine_request_protocol(target.operation.service_model, request.content_type)
    except NotImplementedError:
        protocol = target.operation.service_model.protocol
    status, headers, body = refuse(target, protocol, str(err) or "moto lacks it")
    return FlaskResponse(b"".join(body), status=status, headers=headers)


class Endpoint:
    """The WSGI app of the local endpoint (see the module docstring for the routing)."""

    def __init__(self, token: str, *, on_stop: Callable[[], None] | None = None):
        self.token = token
        self._on_stop = on_stop
        self._moto = _moto_app_factory()
        self.last_request = time.monotonic()  # the shared backend stops after idling (shared.serve)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path != CONTROL_PREFIX + PASSIVE_STATUS:  # `labkit backend status` looking: not a use
            self.last_request = time.monotonic()
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response, path[len(CONTROL_PREFIX):])
        data_plane = dispatch.data_plane_for(path)
        if data_plane is not None:
            return data_plane(environ, start_response)
        self._buffer_body(environ)
        from moto.core.request import Request

        request = Request(dict(environ, **{"wsgi.input": io.BytesIO(environ["labkit.body"])}))
        target = resolve(request)
        if target is None:
            return self._moto(environ, start_response)  # unsigned: moto's own inference (S3 by default)
        try:
            from moto.core.request import determine_request_protocol

            protocol = determine_request_protocol(target.operation.service_model, request.content_type)
        except NotImplementedError:
            protocol = target.operation.service_model.protocol
        if dispatch.answers(target.service, target.operation.name):
            try:
                status, headers, body = call_in_process(target, request)
            except Exception as err:  # an engine's bug: say so, as AWS says an internal failure
                status, headers, body = _error(_serializer(target, protocol), "InternalFailure",
                                               f"offline backend error: {type(err).__name__}: {err}", 500)
            return self._respond(start_response, status, headers, body)
        found = moto_backend(target.service, target.region)
        backend = found[1] if found else target.service.replace("-", "")
        from moto.backends import list_of_moto_modules

        if backend not in list_of_moto_modules():
            return self._respond(start_response, *refuse(target, protocol))
        return self._moto.app_for(backend)(environ, start_response)

    @staticmethod
    def _buffer_body(environ: dict[str, Any]) -> None:
        """Read the body once, so that routing and then moto may both read it."""
        stream = environ.get("wsgi.input")
        length = environ.get("CONTENT_LENGTH") or ""
        if stream is None:
            body = b""
        elif length.isdigit():
            body = stream.read(int(length))
        elif environ.get("wsgi.input_terminated"):
            body = stream.read()
        else:
            body = b""
        environ["labkit.body"] = body
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))

    @staticmethod
    def _respond(start_response: Callable[..., Any], status: int, headers: dict[str, str],
                 body: Iterable[bytes]) -> Iterable[bytes]:
        from werkzeug.http import HTTP_STATUS_CODES

        headers = {k: str(v) for k, v in headers.items()}
        headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))
        if isinstance(body, list):
            headers["Content-Length"] = str(sum(len(b) for b in body))
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}", list(headers.items()))
        return body

    # --- the control API ------------------------------------------------------------------

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any], action: str) -> Iterable[bytes]:
        from werkzeug.wrappers import Request

        request = Request(environ)
        if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, ""), self.token):
            return self._json(start_response, 403, {"error": "a valid X-Labkit-Token is required"})
        try:
            if action in ("status", PASSIVE_STATUS) and request.method == "GET":
                from . import status

                return self._json(start_response, 200, status())
            if action == "reset" and request.method == "POST":
                from . import reset, status

                reset()
                return self._json(start_response, 200, status())
            if action == "stop" and request.method == "POST":
                if self._on_stop is None:
                    return self._json(start_response, 400, {"error": "this backend stops with its process"})
                threading.Thread(target=self._on_stop, name="labkit-stop", daemon=True).start()
                return self._json(start_response, 202, {"stopping": True})
            if action.startswith("call/") and request.method == "POST":
                payload = json.loads(request.get_data() or b"{}")
                result = dispatch.run_backend_function(action[len("call/"):], payload.get("args") or [],
                                                       payload.get("kwargs") or {})
                return self._json(start_response, 200, {"result": result})
        except Exception as err:
            return self._json(start_response, 500, {"error": f"{type(err).__name__}: {err}"})
        return self._json(start_response, 404, {"error": f"no control action {action!r}"})

    def _json(self, start_response: Callable[..., Any], status: int, payload: Any) -> Iterable[bytes]:
        body = json.dumps(payload, default=str).encode()
        return self._respond(start_response, status, {"Content-Type": "application/json"}, [body])


# --- serving -------------------------------------------------------------------------------------


def _request_handler() -> Any:
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietHandler(MotoRequestHandler):
        """moto's handler (S3 metadata headers keep their underscores), without a log line per request."""

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    return QuietHandler


class Server:
    """The endpoint served on a loopback port (0: the OS picks one) by a thread of this process."""

    def __init__(self, app: Endpoint, port: int = 0, host: str = "127.0.0.1"):
        from werkzeug.serving import make_server

        self.app = app
        self._server = make_server(host, port, app, threaded=True, request_handler=_request_handler())
        self.port = int(self._server.socket.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="labkit-endpoint", daemon=True)

    def start(self) -> Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# --- the kernel's side of the control API --------------------------------------------------------


def control(url: str, token: str, action: str, payload: Any = None, *, timeout: float = 30.0) -> Any:
    """Call the control API of the endpoint at ``url``; the decoded JSON answer."""
    import urllib.request

    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(f"{url}{CONTROL_PREFIX}{action}", data=data, method="GET" if data is None else "POST",
                                 headers={TOKEN_HEADER: token, "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    try:
        with opener.open(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", "replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("error", detail)
        raise RuntimeError(f"the offline backend at {url} answered {err.code} to {action}: {detail}") from None


def call_backend_function(name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Run backend function ``name`` in the shared backend this kernel is attached to."""
    from . import attachment

    attached = attachment()
    if attached is None:
        raise RuntimeError(f"{name} runs where the offline engines run, and this process has none: "
                           "call labkit.connect() first.")
    answer = control(attached["url"], attached["token"], f"call/{name}", {"args": args, "kwargs": kwargs},
                     timeout=float(os.environ.get("LABKIT_CONTROL_TIMEOUT", "600")))
    return answer["result"]
