"""opensearch-py, pointed at the offline collection: ``*.aoss.amazonaws.com`` goes to the local endpoint.

The workshop's code names the real collection host::

    OpenSearch(hosts=[{"host": f"{collection_id}.{region}.aoss.amazonaws.com", "port": 443}],
               http_auth=AWSV4SignerAuth(credentials, region, "aoss"), use_ssl=True, verify_certs=True,
               connection_class=RequestsHttpConnection)

:func:`install` wraps the constructors of opensearch-py's ``RequestsHttpConnection`` and
``Urllib3HttpConnection`` (the two synchronous connection classes; the asyncio one is not
patched): while the offline backend is on, a connection to ``<id>.<region>.aoss.amazonaws.com``
is made to the local endpoint instead (plain HTTP on the loopback interface, path prefix
``/_aoss/<id>``), where :mod:`.http` serves the collection. The request is still signed by the
learner's auth class, and checked. Any other ``*.amazonaws.com`` host (an OpenSearch Service
domain, say) is refused: nothing leaves the machine. Other hosts (a local OpenSearch) are left alone.

The local endpoint is the one of this process when it serves the data planes itself (the
embedded backend: a loopback server on a port the OS chooses, started on first use), else
the shared local endpoint named by ``AWS_ENDPOINT_URL`` (a loopback URL).
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any
from urllib.parse import urlparse

from .. import dispatch

AOSS_SUFFIX = ".aoss.amazonaws.com"
_server: Any = None
_lock = threading.Lock()
_installed = False


def _router(environ: dict[str, Any], start_response: Any) -> Any:
    """Hands each request to the data plane registered for its first path segment."""
    prefix = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
    app = dispatch._data_planes.get(prefix)
    if app is None:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"message": "no data plane at this path"}']
    return app(environ, start_response)


def _private_endpoint() -> tuple[str, int]:
    """This process's loopback server of the registered data planes (started once)."""
    global _server
    with _lock:
        if _server is None:
            from werkzeug.serving import WSGIRequestHandler, make_server

            class Quiet(WSGIRequestHandler):
                def log_request(self, *args: Any, **kwargs: Any) -> None:
                    pass

            _server = make_server("127.0.0.1", 0, _router, threaded=True, request_handler=Quiet)
            threading.Thread(target=_server.serve_forever, name="labkit-data-planes", daemon=True).start()
        return "127.0.0.1", _server.server_port


def endpoint() -> tuple[str, int]:
    """(host, port) of the local endpoint that serves OpenSearch Serverless collections."""
    from .http import current

    if dispatch._data_planes.get("_aoss") is not None and current.serverless is not None:
        return _private_endpoint()
    url = urlparse(os.environ.get("AWS_ENDPOINT_URL", ""))
    if url.hostname in ("127.0.0.1", "localhost") and url.port:
        return url.hostname, url.port
    raise dispatch.NotEmulatedError("No local AWS endpoint serves OpenSearch Serverless collections in this process; "
                                    "nothing was sent to AWS. Start the offline backend (labkit.connect()).")


def route(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A connection's keyword arguments, pointed at the local endpoint when they name a collection."""
    host = kwargs.get("host")
    if not dispatch._enabled or not isinstance(host, str) or not host.endswith(".amazonaws.com"):
        return kwargs
    if not host.endswith(AOSS_SUFFIX):
        raise dispatch.NotEmulatedError(f"The offline backend does not emulate {host} (only OpenSearch Serverless "
                                        "collections, *.aoss.amazonaws.com). Nothing was sent to AWS; use the "
                                        "sandbox backend for this.")
    collection_id = host.split(".", 1)[0]
    local_host, port = endpoint()
    prefix = f"/_aoss/{collection_id}"
    if kwargs.get("url_prefix"):
        prefix += "/" + str(kwargs["url_prefix"]).strip("/")
    out = {k: v for k, v in kwargs.items() if k not in ("ssl_context", "ca_certs", "client_cert", "client_key",
                                                         "ssl_assert_hostname", "ssl_assert_fingerprint")}
    out.update(host=local_host, port=port, use_ssl=False, verify_certs=False, url_prefix=prefix, scheme="http",
               ssl_show_warn=False)
    return out


def _wrap(cls: Any) -> None:
    original = cls.__init__
    if getattr(original, "_labkit_routed", False):
        return

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:  # host and port given positionally
            names = ("host", "port", "http_auth", "use_ssl")
            kwargs.update(dict(zip(names, args, strict=False)))
            args = ()
        original(self, **route(kwargs))

    __init__._labkit_routed = True  # type: ignore[attr-defined]
    cls.__init__ = __init__


def install() -> None:
    """Route opensearch-py's synchronous connections (idempotent; nothing if opensearch-py is absent)."""
    global _installed
    if _installed:
        return
    try:
        from opensearchpy import RequestsHttpConnection, Urllib3HttpConnection
    except ImportError:  # pragma: no cover - opensearch-py is pinned
        return
    _wrap(RequestsHttpConnection)
    _wrap(Urllib3HttpConnection)
    _installed = True
