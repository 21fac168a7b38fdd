"""The peak resident memory of this process, and of nothing before it."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

__all__ = ["own_peak_rss_mb"]


def own_peak_rss_mb() -> float:
    """Peak resident set size of this process in MB.

    On Linux, ``VmHWM`` of ``/proc/self/status``: the high-water mark of this process's own
    memory. ``getrusage``'s ``ru_maxrss`` also keeps the peak of the image a process was started
    from (the kernel carries it across ``exec``), so a benchmark cell spawned by a bench that had
    loaded every dataset reported the bench's 1,009 MB whatever it used. Elsewhere ``ru_maxrss``
    (KiB on Linux, bytes on macOS).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
