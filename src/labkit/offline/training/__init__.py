"""Offline SageMaker training: jobs that really run the learner's code.

Importing this package registers the engine's handlers with the offline dispatcher:
training jobs (:mod:`.api`, :mod:`.jobs`), processing jobs (:mod:`.processing`) and
hyperparameter tuning (:mod:`.tuning`). The container a job sees is described once in
:mod:`.environment`; what a host runs is decided in :mod:`.runner`.

Offline test harness (not an AWS API, never in learner code): :func:`simulate_spot_interruption`,
which stands in for AWS reclaiming a managed spot instance.
"""

from __future__ import annotations

from . import api, processing, tuning  # noqa: F401  (register the training, processing and tuning APIs)
from .jobs import SPOT_DISCOUNT, simulate_spot_interruption

__all__ = ["SPOT_DISCOUNT", "simulate_spot_interruption"]
