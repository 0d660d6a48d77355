"""Offline Model Monitor: the analyzer image's computations and monitoring schedules.

:mod:`.statistics` computes statistics, suggested constraints and violations (plain
functions); :mod:`.analyzer` is the program a processing job of the
``sagemaker-model-monitor-analyzer`` image runs; :mod:`.api` answers the monitoring
schedule calls.
"""

from __future__ import annotations
