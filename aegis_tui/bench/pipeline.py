"""One unattended run of the whole pipeline on the sim world, as the bench measures it.

``run_pipeline`` opens the real agent (``AgentRuntime``: loop, executor, delayed credit,
phase machine, training child, RL) on a sim world with the default thresholds, lets it run
``iterations`` iterations untouched, and reads back what happened: when the HRM first
decided, every imitation run against the gate (accuracy, majority baseline, linear probe),
the in-run reward per window with the proposal, approval and duplicate counts beside it,
and the fall-backs. The loop waits while the training child trains (``wait_for_training``),
so the result depends on the seeds alone, not on how fast this machine trains.

``window_stats`` reads the same per-window figures from any data directory (the
teacher-alone runs of the long-run section use it too).
"""

from __future__ import annotations

import collections
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aegis_tui.agent.phases import PHASE_META_KEY, PhaseState
from aegis_tui.agent.runtime import AgentRuntime
from aegis_tui.config import Config, apply_overrides
from aegis_tui.events import Event, EventBus, TrainingFinished
from aegis_tui.paths import DataPaths
from aegis_tui.policy.base import Policy
from aegis_tui.policy.rules_teacher import RulesTeacher
from aegis_tui.storage.database import Database
from aegis_tui.world.sim import SimParams, SimWorld


@dataclass(frozen=True, slots=True)
class GateRun:
    """One imitation run as the gate saw it."""

    val_accuracy: float | None
    baseline_accuracy: float | None
    probe_accuracy: float | None
    teacher_decisiveness: float | None
    passed: bool


@dataclass(slots=True)
class Window:
    """What happened in one window of iterations."""

    first: int
    last: int
    reward: float  # mean total reward per iteration (delayed rewards included)
    hrm_share: float  # share of the decisions the HRM made
    proposals: int
    approved: int
    duplicates: int
    failed_searches: int


@dataclass(slots=True)
class PipelineRun:
    seed: int
    iterations: int
    hrm_from: int | None  # the first iteration the HRM decided (None: never)
    adopted_by: str  # "gate", "reward" (a trial after failed gates) or "user"; "" if not
    gate_runs: list[GateRun] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    fallbacks: int = 0
    paths: DataPaths | None = None


def bench_config(seed: int, **overrides: Any) -> Config:
    """The bench's settings: the defaults, on the sim, as fast as the machine goes."""
    settings: dict[str, Any] = {"world": "sim", "seed": seed, "think_interval": 0,
                                "wait_for_training": True}
    settings.update(overrides)
    return apply_overrides(Config(), settings)


def run_agent(workdir: Path, seed: int, policy: Policy, iterations: int, *,
              params: SimParams | None = None, listen: Callable[[Event], None] | None = None,
              **overrides: Any) -> DataPaths:
    """``iterations`` iterations of the real agent on a fresh sim world; its data directory."""
    if workdir.exists():
        shutil.rmtree(workdir)
    paths = DataPaths(workdir)
    bus = EventBus(maxlen=1000)
    if listen is not None:
        bus.subscribe(listen)
    _drive(paths, bench_config(seed, **overrides), seed, params, policy, bus, iterations)
    return paths


def _drive(paths: DataPaths, config: Config, seed: int, params: SimParams | None,
           teacher: Policy, bus: EventBus, iterations: int) -> None:
    """Open the real agent on ``paths`` and a fresh sim world, run it, close it."""
    runtime = AgentRuntime.open(config, paths, bus=bus, world=SimWorld(config, seed, params),
                                teacher=teacher)
    try:
        runtime.agent.run(max_iterations=iterations)
    finally:
        runtime.close()


def run_phase3(workdir: Path, seed: int, trained: Path, iterations: int, *,
               params: SimParams | None = None, **overrides: Any) -> DataPaths:
    """Phase 3 alone, straight from an imitation checkpoint (no teacher reference, so no
    fall-back): the real RL path for ``iterations`` iterations. Its data directory."""
    if workdir.exists():
        shutil.rmtree(workdir)
    paths = DataPaths(workdir).ensure()
    shutil.copyfile(trained, paths.trained_checkpoint)
    db = Database(paths.database, quarantine_dir=paths.quarantine)
    try:
        db.set_meta(PHASE_META_KEY, PhaseState(phase=3, hrm_active=True).to_meta())
    finally:
        db.close()
    _drive(paths, bench_config(seed, collect_threshold=10_000_000, **overrides), seed, params,
           RulesTeacher(seed), EventBus(maxlen=1000), iterations)
    return paths


def run_pipeline(workdir: Path, seed: int, teacher: Policy, iterations: int, *,
                 params: SimParams | None = None, window: int = 1000,
                 **overrides: Any) -> PipelineRun:
    """The three phases, unattended, from a fresh data directory."""
    gate_runs: list[GateRun] = []

    def listen(event: Event) -> None:
        if isinstance(event, TrainingFinished) and event.ok:
            gate_runs.append(GateRun(event.val_accuracy, event.baseline_accuracy,
                                     event.probe_accuracy, event.teacher_decisiveness,
                                     event.passed_gate))

    paths = run_agent(workdir, seed, teacher, iterations, params=params, listen=listen,
                      **overrides)
    db = Database(paths.database, readonly=True)
    try:
        state = PhaseState.from_meta(db.get_meta(PHASE_META_KEY))
    finally:
        db.close()
    windows = window_stats(paths, window)
    return PipelineRun(seed=seed, iterations=iterations, hrm_from=first_hrm_iteration(paths),
                       adopted_by=state.adopted_by, gate_runs=gate_runs, windows=windows,
                       fallbacks=state.fallbacks, paths=paths)


def _connect(paths: DataPaths) -> sqlite3.Connection:
    return sqlite3.connect(f"{paths.database.absolute().as_uri()}?mode=ro", uri=True)


def first_hrm_iteration(paths: DataPaths) -> int | None:
    conn = _connect(paths)
    try:
        row = conn.execute("SELECT min(iteration) FROM metrics WHERE policy='hrm'").fetchone()
    finally:
        conn.close()
    return int(row[0]) if row and row[0] is not None else None


def mean_reward(paths: DataPaths, first: int, last: int) -> float:
    """Mean total reward per iteration over ``first..last`` (delayed rewards included)."""
    conn = _connect(paths)
    try:
        row = conn.execute("SELECT avg(reward + delayed_reward) FROM metrics WHERE "
                           "iteration BETWEEN ? AND ?", (first, last)).fetchone()
    finally:
        conn.close()
    return float(row[0]) if row and row[0] is not None else 0.0


def window_stats(paths: DataPaths, window: int) -> list[Window]:
    """Reward, HRM share and proposal outcomes per ``window`` iterations."""
    conn = _connect(paths)
    try:
        metrics = conn.execute("SELECT iteration, policy, action, reward + delayed_reward, "
                               "success FROM metrics ORDER BY iteration").fetchall()
        proposals = conn.execute("SELECT iteration, status FROM proposals").fetchall()
    finally:
        conn.close()
    outcomes: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for iteration, status in proposals:
        outcomes[(iteration - 1) // window][status] += 1
    rows: dict[int, list[tuple[str, str, float, int]]] = collections.defaultdict(list)
    for iteration, policy, action, reward, success in metrics:
        rows[(iteration - 1) // window].append((policy, action, reward, success))
    out = []
    for k in sorted(rows):
        got = rows[k]
        n = len(got)
        out.append(Window(
            first=k * window + 1, last=(k + 1) * window,
            reward=sum(r for _, _, r, _ in got) / n,
            hrm_share=sum(p == "hrm" for p, _, _, _ in got) / n,
            proposals=sum(a == "propose_improvement" for _, a, _, _ in got),
            approved=outcomes[k]["approved"], duplicates=outcomes[k]["duplicate"],
            failed_searches=sum(a == "web_search" and not s for _, a, _, s in got)))
    return out
