"""What a lab works with: the :class:`Lab` that ``labkit.connect()`` returns, the backends'
names and the error a backend raises when it cannot start.

Its own module, below :mod:`labkit.connect` and the backends, so that a backend
(:mod:`labkit.sandbox`) builds a ``Lab`` without importing ``connect``, which chooses and
starts the backends: the import graph has no cycle through them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

OFFLINE, SANDBOX = "offline", "sandbox"
BACKENDS = (OFFLINE, SANDBOX)


class BackendError(RuntimeError):
    """The backend cannot start; the message says why and what to do."""


@dataclass
class Lab:
    """What a lab works with, on whichever backend it runs."""

    name: str
    backend: str
    region: str
    account_id: str
    role_arn: str
    bucket: str
    started_at: float = field(default_factory=time.time)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def offline(self) -> bool:
        return self.backend == OFFLINE

    def s3_uri(self, *parts: str) -> str:
        """``s3://<bucket>/<lab>/<parts...>``: where this lab keeps its objects."""
        key = "/".join(p.strip("/") for p in (self.name, *parts) if p)
        return f"s3://{self.bucket}/{key}"

    def bill(self, *, show: bool = True):
        """What this lab's resources would cost on AWS (see :mod:`labkit.cost`)."""
        from .cost import bill_for

        return bill_for(self, show=show)

    def cleanup(self, *, dry_run: bool = False) -> list[str]:
        """Delete what this lab created that is still billed; returns what it removed."""
        from .cost import cleanup_lab

        return cleanup_lab(self, dry_run=dry_run)

    def __repr__(self) -> str:
        return (f"Lab({self.name!r}, backend={self.backend!r}, region={self.region!r}, "
                f"account={self.account_id!r}, bucket={self.bucket!r})")
