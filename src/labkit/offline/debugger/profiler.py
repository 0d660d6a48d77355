"""The profiler's system metrics, sampled from a training job's own processes.

On AWS the profiler agent on each instance records every core's and GPU's utilisation and
the memory in use, every ``ProfilingIntervalInMilliseconds`` (500 ms by default), to
``<S3OutputPath>/<job>/profiler-output/system/incremental/<YYYYMMDDHH>/<epoch>.algo-N.json``,
one JSON record per line. Offline the instance is this machine, shared with the notebook
and everything else, so :class:`SystemMonitor` measures what the job itself uses: the CPU
time of each host's process tree (psutil), as a percentage of this machine's cores
(``CPUUtilization``, name ``cpu``), and its resident memory as a percentage of this
machine's memory (``MemoryUsedPercent``). GPU utilisation is read from ``nvidia-smi`` when
the machine has one (``GPUUtilization``, names ``gpu0``...); a CPU-only machine has none, as
a CPU instance has none.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

import psutil


class SystemMonitor:
    def __init__(self, interval_ms: int = 500):
        self.interval = max(0.1, interval_ms / 1000)
        self.records: list[dict[str, Any]] = []
        self._procs: dict[int, psutil.Process] = {}
        self._last = 0.0
        self._gpu = shutil.which("nvidia-smi") is not None
        self._cores = psutil.cpu_count() or 1
        self._memory = psutil.virtual_memory().total

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            root = self._procs.setdefault(pid, psutil.Process(pid))
            out = [root]
            for child in root.children(recursive=True):
                out.append(self._procs.setdefault(child.pid, child))
            return out
        except psutil.Error:
            return []

    def sample(self, hosts: dict[str, int], now: float | None = None) -> None:
        """Record one data point per host (``{host: pid}``) if the interval has passed."""
        now = time.time() if now is None else now
        if now - self._last < self.interval:
            return
        self._last = now
        for host, pid in hosts.items():
            cpu = rss = 0.0
            for proc in self._tree(pid):
                try:
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.records.append({"Name": "cpu", "Dimension": "CPUUtilization", "Type": "cpu", "Hostname": host,
                                 "Timestamp": now, "Value": round(cpu / self._cores, 2)})
            self.records.append({"Name": "memory", "Dimension": "MemoryUsedPercent", "Type": "memory",
                                 "Hostname": host, "Timestamp": now, "Value": round(100 * rss / self._memory, 3)})
            for i, util in enumerate(self._gpus()):
                self.records.append({"Name": f"gpu{i}", "Dimension": "GPUUtilization", "Type": "gpu",
                                     "Hostname": host, "Timestamp": now, "Value": util})

    def _gpus(self) -> list[float]:
        if not self._gpu:
            return []
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5).stdout
            return [float(v) for v in out.split()]
        except (OSError, subprocess.SubprocessError, ValueError):
            return []
