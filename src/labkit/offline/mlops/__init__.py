"""The offline MLOps engines: Pipelines, Model Registry, Model Monitor and Feature Store.

Importing this package (:mod:`labkit.offline.engines` does) registers their handlers:

- :mod:`.pipelines`: pipeline executions that run their steps' jobs for real;
- :mod:`.registry`: the Model Registry's approval flow and deployment from a model package;
- :mod:`.monitor`: the Model Monitor analyzer image (baselines, data-quality runs) and
  monitoring schedules over captured endpoint traffic;
- :mod:`.featurestore`: feature groups, the featurestore-runtime API (online store) and
  the offline store written to S3 as Parquet.
"""

from __future__ import annotations

from . import pipelines, registry  # noqa: F401
from .featurestore import api as featurestore_api  # noqa: F401
from .monitor import api as monitor_api  # noqa: F401

__all__ = ["pipelines", "registry"]
