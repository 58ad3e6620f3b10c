"""Timings of the learning side for ``aegis-tui bench``: plain functions, no printing.

Each ``measure_*`` function returns one number per repeat (the caller takes medians and
percentiles). They build what they need from seeded synthetic states
(``synthetic_states.synthetic_examples``), so they run anywhere, offline.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from aegis_tui.bench.synthetic_states import synthetic_examples
from aegis_tui.config import Config, RLSettings
from aegis_tui.events import TrainingFinished
from aegis_tui.paths import DataPaths
from aegis_tui.policy.hrm_policy import HRMPolicy
from aegis_tui.training.example_log import Example, ExampleLog
from aegis_tui.training.rl import RLTrainer
from aegis_tui.training.supervisor import TrainingSupervisor


def hrm_parameter_count() -> int:
    """Parameters of the HRM at its default size."""
    from aegis_tui.policy.hrm import HRM

    return HRM().parameter_count()


def _model(seed: int = 0):  # -> HRM
    from aegis_tui.policy.hrm import build_model

    model = build_model(seed=seed)
    model.eval()
    return model


def measure_hrm_decide_ms(repeats: int) -> list[float]:
    """Milliseconds per ``HRMPolicy.decide`` (featurize, forward, sample), after warm-up."""
    policy = HRMPolicy(_model(), seed=0)
    states = [ex.state for ex in synthetic_examples(200, seed=12)]
    for state in states[:10]:
        policy.decide(state)
    out = []
    for i in range(max(1, repeats)):
        state = states[i % len(states)]
        start = time.perf_counter()
        policy.decide(state)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def measure_rl_update_ms(repeats: int, batch: int = 10) -> list[float]:
    """Milliseconds per ``RLTrainer.update`` on ``batch`` decisions recorded as the agent
    records them (with the policy's carry); recording is not timed."""
    model = _model()
    policy = HRMPolicy(model, seed=0)
    trainer = RLTrainer(model, copy.deepcopy(model), RLSettings(update_every=batch), seed=0)
    examples = synthetic_examples(300, seed=13)
    iteration = 0
    out = []
    for r in range(max(1, repeats) + 3):
        for _ in range(batch):
            ex = examples[iteration % len(examples)]
            decision = policy.decide(ex.state)
            trainer.record(iteration, policy.last_tokens or [], decision.action.class_index,
                           ex.reward, carry=policy.last_carry)
            iteration += 1
        start = time.perf_counter()
        trainer.update()
        if r >= 3:  # the first updates allocate optimizer state
            out.append((time.perf_counter() - start) * 1e3)
    return out


def write_example_log(examples: Sequence[Example], data_dir: Path) -> int:
    """Write ``examples`` as a data dir's example log; returns its size (the end offset)."""
    paths = DataPaths(Path(data_dir)).ensure()
    with ExampleLog(paths.examples, paths.quarantine, fsync_every=1000) as log:
        for ex in examples:
            log.append(ex)
        return log.offset


def measure_train_seconds(examples: Sequence[Example], repeats: int, workdir: Path,
                          *, config: Config | None = None,
                          poll_interval_s: float = 0.02) -> list[float]:
    """Wall seconds of Phase 2 through the real worker subprocess, spawn to finish.

    Each repeat trains from scratch in its own data dir under ``workdir`` with
    ``config`` (default: ``Config()``: 20 epochs, checkpoints every 5). Raises
    ``RuntimeError`` when a run fails.
    """
    config = config or Config()
    config = replace(config, training_timeout_s=max(config.training_timeout_s, 600.0))
    out = []
    for r in range(max(1, repeats)):
        data_dir = Path(workdir) / f"train-run-{r}"
        end = write_example_log(examples, data_dir)
        supervisor = TrainingSupervisor(DataPaths(data_dir), config)
        start = time.perf_counter()
        supervisor.start(end_offset=end, examples=len(examples), forced=False)
        finished: TrainingFinished | None = None
        try:
            while finished is None:
                for event in supervisor.poll():
                    if isinstance(event, TrainingFinished):
                        finished = event
                if finished is None:
                    time.sleep(poll_interval_s)
        finally:
            supervisor.close()
        elapsed = time.perf_counter() - start
        if not finished.ok:
            raise RuntimeError(finished.message)
        out.append(elapsed)
    return out


