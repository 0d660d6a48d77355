"""Cost: the dated price catalogue, the meter that bills each lab, and the sandbox guard.

- :mod:`labkit.cost.catalogue`: prices from ``data/pricing/`` with source and date.
- :mod:`labkit.cost.meter`: ``bill_for(lab)`` prices what a lab used (a :class:`Bill`).
- :mod:`labkit.cost.guard`: spending cap, quota and model-access checks before anything
  billed is created on a real account.
- :mod:`labkit.cost.cleanup`: finds and deletes what labs left behind, by the
  ``labkit:lab`` tag.

The package gives data and the meter; the calculators of the cost lab are the learner's.
"""

from __future__ import annotations

from typing import Any

__all__ = ["bill_for", "cleanup_lab"]


def bill_for(lab: Any, show: bool = True) -> Any:
    """The :class:`~labkit.cost.meter.Bill` of ``lab``; shown (table and chart) when ``show``."""
    from .meter import bill_for as _bill_for

    return _bill_for(lab, show=show)


def cleanup_lab(lab: Any, dry_run: bool = False) -> list[str]:
    """Delete (or with ``dry_run`` only list) the billed resources tagged with ``lab``'s name."""
    from .cleanup import cleanup_lab as _cleanup_lab

    return _cleanup_lab(lab, dry_run=dry_run)
