"""OpenSearch Serverless offline: the control plane, and each collection's REST API on a real ANN index.

* :mod:`.collections`: encryption, network and data access policies; collections (plain classes).
* :mod:`.engine`: indexes, documents, the query DSL, k-NN on faiss HNSW (plain classes).
* :mod:`.http`: a collection's REST API as a WSGI app of the local endpoint (``/_aoss/<id>/...``).
* :mod:`.api`: the ``opensearchserverless`` operations, registered with :mod:`labkit.offline.dispatch`.

:mod:`labkit.offline.opensearch_client` sends opensearch-py's requests for
``*.aoss.amazonaws.com`` to the local endpoint (in every process that uses the backend).

Bedrock Knowledge Bases with ``OPENSEARCH_SERVERLESS`` storage write to and search these
indexes (:mod:`labkit.bedrock.knowledge_bases`).
"""

from __future__ import annotations

from .. import ACCOUNT_ID, REGION, on_reset, persistence
from . import api  # noqa: F401  (registers the operations; .http registers the data plane)
from .collections import Serverless
from .engine import Store
from .http import current


def _fresh() -> None:
    current.serverless = Serverless(ACCOUNT_ID, REGION)
    current.store = Store()
    current.tags = {}


def _restore(saved: tuple[Serverless, Store, dict]) -> None:
    current.serverless, current.store, current.tags = saved


_fresh()
on_reset(_fresh)
# Collections, policies and the indexes' documents and vectors (knowledge bases' storage).
persistence.keep("opensearch serverless", lambda: (current.serverless, current.store, current.tags), _restore)
