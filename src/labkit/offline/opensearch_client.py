"""opensearch-py, pointed at the offline collection: ``*.aoss.amazonaws.com`` goes to the local endpoint.

The workshop's code names the real collection host::

    OpenSearch(hosts=[{"host": f"{collection_id}.{region}.aoss.amazonaws.com", "port": 443}],
               http_auth=AWSV4SignerAuth(credentials, region, "aoss"), use_ssl=True, verify_certs=True,
               connection_class=RequestsHttpConnection)

opensearch-py is not configured by ``AWS_ENDPOINT_URL``, so :mod:`labkit.offline.patches`
wraps the constructors of its ``RequestsHttpConnection`` and ``Urllib3HttpConnection`` (the
two synchronous connection classes; the asyncio one is not patched) with :func:`route`:
while this process uses the offline backend, a connection to
``<id>.<region>.aoss.amazonaws.com`` is made to the local endpoint instead (plain HTTP on
the loopback interface, path prefix ``/_aoss/<id>``), where
:mod:`labkit.offline.aoss.http` serves the collection. The request is still signed by the
learner's auth class, and checked. Any other ``*.amazonaws.com`` host (an OpenSearch Service
domain, say) is refused: nothing leaves the machine. Other hosts (a local OpenSearch) and
every host on the sandbox backend are left alone.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .dispatch import NotEmulatedError

AOSS_SUFFIX = ".aoss.amazonaws.com"
PREFIX = "_aoss"


def endpoint() -> tuple[str, int]:
    """(host, port) of the local endpoint this process's clients use."""
    from . import endpoint_url

    url = endpoint_url()
    parts = urlsplit(url or "")
    if not parts.hostname or not parts.port:
        raise NotEmulatedError("opensearch", "connect", "no local AWS endpoint serves this process; start the offline "
                               "backend with labkit.connect()")
    return parts.hostname, parts.port


def route(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A connection's keyword arguments, pointed at the local endpoint when they name a collection."""
    from . import connected

    host = kwargs.get("host")
    if not connected() or not isinstance(host, str) or not host.endswith(".amazonaws.com"):
        return kwargs
    if not host.endswith(AOSS_SUFFIX):
        raise NotEmulatedError("opensearch", "connect", f"{host}: the offline backend serves OpenSearch Serverless "
                               "collections (*.aoss.amazonaws.com) only; use the sandbox backend for this domain")
    collection_id = host.split(".", 1)[0]
    local_host, port = endpoint()
    prefix = f"/{PREFIX}/{collection_id}"
    if kwargs.get("url_prefix"):
        prefix += "/" + str(kwargs["url_prefix"]).strip("/")
    out = {k: v for k, v in kwargs.items() if k not in ("ssl_context", "ca_certs", "client_cert", "client_key",
                                                         "ssl_assert_hostname", "ssl_assert_fingerprint")}
    out.update(host=local_host, port=port, use_ssl=False, verify_certs=False, url_prefix=prefix, scheme="http",
               ssl_show_warn=False)
    return out
