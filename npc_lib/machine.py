"""The machine a run ran on, read from the machine itself (CPU model, cores, memory): every time the project
reports is a wall time on a named machine."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what the platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_gb() -> float | None:
    """Physical memory in GB (None where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except (OSError, ValueError):
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict:
    """``{"cpu": model, "cores": logical CPUs this process may use, "memory_gb": ...}``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cores": cores, "memory_gb": memory_gb()}


def describe(m: dict | None = None) -> str:
    """The machine in words: ``AMD EPYC, 2 cores, 23.5 GB``."""
    m = m or machine()
    mem = f", {m['memory_gb']:g} GB" if m.get("memory_gb") else ""
    return f"{m['cpu']}, {m['cores']} cores{mem}"
