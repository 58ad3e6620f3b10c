"""How many threads torch may use inside the agent's own process.

The agent's torch work is tiny batches (one HRM decision, one RL update of ten decisions,
one LM scoring pass) sharing the machine with the dashboard (in the same process) and, in
Phase 2, a training child that also runs torch.

The count, in order: the ``torch_threads`` setting when it is not 0, else the
``AEGIS_TORCH_THREADS`` environment variable, else ``auto_threads()``. See the README's
"Threads" section for the measurements behind the automatic choice.
"""

from __future__ import annotations

import os

ENV_VAR = "AEGIS_TORCH_THREADS"
_configured: int | None = None


def auto_threads(cores: int | None = None) -> int:
    """One core is left to the dashboard and the training child; at most 4 for the teacher.

    Measured on 2 shared cores (README, Threads): the GPT-2-sized teacher took 1.0-1.1 s a
    decision on one thread and 2.7-3.3 s on two (1.2-1.4 s vs 2.1-5.1 s beside a training
    child), while the dashboard's key latency stayed under 50 ms p95 either way; two
    processes both running multi-thread torch made each step ~25x slower (OpenMP threads
    spin waiting for cores the other process holds). The cap of 4 is not measured.
    """
    cores = cores or os.cpu_count() or 1
    return max(1, min(4, cores - 1))


def wanted_threads(setting: int = 0, *, teacher: bool = False) -> int:
    """The count to use; ``teacher``: an LM teacher runs here (else only the tiny HRM, which
    is fastest on one thread: its matrices are too small to split)."""
    if setting > 0:
        return setting
    text = os.environ.get(ENV_VAR, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return auto_threads() if teacher else 1


def limit_agent_threads(setting: int = 0, *, teacher: bool = False) -> int:
    """Set torch's thread count for this process; returns the count in effect.

    The first call decides (later calls without an explicit setting change nothing), so
    the count chosen for the teacher is not undone by the HRM's default.
    """
    global _configured
    import torch

    threads = wanted_threads(setting, teacher=teacher)
    if _configured is None or (setting > 0 and threads != _configured):
        torch.set_num_threads(threads)
        _configured = threads
    return torch.get_num_threads()
