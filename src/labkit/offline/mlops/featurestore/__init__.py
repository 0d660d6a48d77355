"""Offline SageMaker Feature Store: :mod:`.store` (behaviour) and :mod:`.api` (protocol)."""

from __future__ import annotations
