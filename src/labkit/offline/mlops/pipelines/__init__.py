"""Offline SageMaker Pipelines: StartPipelineExecution runs the definition's steps.

:mod:`.definition` parses and checks a definition, :mod:`.expressions` evaluates its
references and conditions, :mod:`.execution` runs an execution (plain classes, no
HTTP); :mod:`.api` is the thin protocol layer registered with the dispatcher.
"""

from __future__ import annotations

from . import api
from .api import wait_for_execution
from .definition import DefinitionError, parse

__all__ = ["DefinitionError", "api", "parse", "wait_for_execution"]
