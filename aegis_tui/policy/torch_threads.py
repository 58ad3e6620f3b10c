"""How many threads torch may use inside the agent's own process.

The agent's torch work is tiny batches (one HRM decision, one RL update of ten decisions,
one LM scoring pass) sharing a small machine with the UI and, in Phase 2, a training child
that also runs torch. Measured on 2 cores: two processes both running 2-thread torch made
each step ~25x slower (OpenMP threads spin waiting for cores the other process holds),
while one thread costs at most ~1.6x when the machine is idle. So the agent process uses
one intra-op thread, unless ``AEGIS_TORCH_THREADS`` says otherwise.
"""

from __future__ import annotations

import os

_configured = False


def limit_agent_threads() -> int:
    """Set torch's thread count for this process once; returns the count in effect."""
    global _configured
    import torch

    if not _configured:
        wanted = os.environ.get("AEGIS_TORCH_THREADS", "").strip()
        threads = int(wanted) if wanted.isdigit() and int(wanted) > 0 else 1
        torch.set_num_threads(threads)
        _configured = True
    return torch.get_num_threads()
