"""The offline CloudFormation engine: stacks whose resources are made by the same API calls a program makes.

Importing this package (:mod:`labkit.offline.engines` does) registers the CloudFormation
operations of :mod:`.api`. :mod:`.template` parses and resolves templates, :mod:`.resources`
creates, updates, reads and deletes each supported resource type through its service's API
(so a stack's endpoint is served by the hosting engine, its alarm evaluated by the CloudWatch
engine), :mod:`.stacks` runs stack operations, change sets and drift detection.
"""

from __future__ import annotations

from .api import engine
from .resources import PROVIDERS

__all__ = ["PROVIDERS", "engine"]
