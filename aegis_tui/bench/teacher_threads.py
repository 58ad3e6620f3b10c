"""The teacher's decision latency at 1..N torch threads, alone and beside a training child.

``aegis-tui bench --only threads`` runs this: it builds the GPT-2-sized teacher
(``build_local_gpt2(size="gpt2")``), times decisions at each thread count with nothing else
of ours running, then starts a real imitation training child (``TrainingSupervisor``, the
same worker Phase 2 runs, on 1000 rules-teacher examples and many epochs) and times them
again while it trains. The numbers are what ``policy.torch_threads.auto_threads`` was chosen
from; they depend on the machine and on whatever else runs on it, so they are measured, not
assumed.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from aegis_tui.bench.pipeline import run_agent
from aegis_tui.bench.synthetic_states import synthetic_examples
from aegis_tui.config import Config, apply_overrides
from aegis_tui.policy.lm_teacher import LMTeacher
from aegis_tui.policy.local_lm import build_local_gpt2
from aegis_tui.policy.rules_teacher import RulesTeacher
from aegis_tui.training.supervisor import TrainingSupervisor


def _time_decisions(teacher: Any, states: list[Any], n: int) -> list[float]:
    for state in states[:2]:
        teacher.decide(state)  # warm-up at this thread count
    out = []
    for state in states[:n]:
        start = time.perf_counter()
        teacher.decide(state)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def _start_training_child(workdir: Path) -> Any:
    """A training worker on 1000 sim examples with epochs enough to outlast the timing."""
    paths = run_agent(workdir / "train-data", 43, RulesTeacher(43), 1000,
                      collect_threshold=10_000_000)
    config = apply_overrides(Config(), {"imitation.epochs": 1000,
                                        "imitation.checkpoint_every": 1000,
                                        "training_timeout_s": 3600})
    supervisor = TrainingSupervisor(paths, config)
    supervisor.start(end_offset=paths.examples.stat().st_size, examples=1000, forced=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until it trains (its first epoch is reported)
        events = supervisor.poll()
        if any(type(e).__name__ == "TrainingProgress" for e in events):
            return supervisor
        if not supervisor.running:
            raise RuntimeError("the training child ended before its first epoch")
        time.sleep(0.1)
    supervisor.cancel()
    raise RuntimeError("the training child reported no epoch within 120 s")


def measure_teacher_threads(workdir: Path, *, decisions: int = 15, device: str = "cpu",
                            max_threads: int | None = None) -> dict[str, Any]:
    """``{"threads": [1, 2, ...], "idle_ms_p50": [...], "training_ms_p50": [...]}``."""
    import torch

    before = torch.get_num_threads()
    counts = list(range(1, min(max_threads or 4, os.cpu_count() or 1) + 1))
    folder = build_local_gpt2(workdir / "gpt2-sized", size="gpt2", seed=0)
    teacher = LMTeacher.load(str(folder), timeout_s=600, seed=0, device=device)
    states = [ex.state for ex in synthetic_examples(decisions + 2, seed=7)]
    out: dict[str, Any] = {"threads": counts, "idle_ms_p50": [], "training_ms_p50": []}
    try:
        for n in counts:
            torch.set_num_threads(n)
            out["idle_ms_p50"].append(statistics.median(
                _time_decisions(teacher, states, decisions)))
        supervisor = _start_training_child(workdir)
        try:
            for n in counts:
                torch.set_num_threads(n)
                out["training_ms_p50"].append(statistics.median(
                    _time_decisions(teacher, states, decisions)))
                supervisor.poll()
        finally:
            supervisor.cancel()
            supervisor.close()
    finally:
        teacher.close()
        torch.set_num_threads(before)
    return out
