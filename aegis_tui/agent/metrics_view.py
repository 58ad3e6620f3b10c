"""Series for the dashboard's plots: rolling reward per policy, phase boundaries, epochs.

Everything here is read from ``agent.sqlite3``, never from events, so the curves include
rewards that arrive later (an approval's +10 lands in ``delayed_reward`` long after the
decision) and survive a restart. No Textual: the dashboard calls ``read_metrics`` from a
thread worker on its own read-only connection and only draws what comes back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from aegis_tui.actions import ACTION_NAMES
from aegis_tui.agent.phases import PHASE_META_KEY, PhaseState
from aegis_tui.storage.database import Database

POLICIES = ("teacher", "hrm")


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a plot: ``x`` are iterations (or epochs), ``y`` the values.

    ``starts`` are the indices where a new run begins: a policy that did not decide for a
    while (the teacher while the HRM decides) must not be drawn as a line across the gap.
    """

    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    starts: tuple[int, ...] = (0,)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def last(self) -> float | None:
        return self.y[-1] if self.y else None

    def runs(self) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
        """The unbroken stretches, each as ``(x, y)``."""
        if not self.x:
            return []
        bounds = [*self.starts, len(self.x)]
        return [(self.x[a:b], self.y[a:b]) for a, b in pairwise(bounds) if b > a]


@dataclass(frozen=True, slots=True)
class Boundary:
    """A phase change (or a switch between teacher and HRM) at ``iteration``."""

    iteration: int
    phase: int
    hrm: bool
    reason: str


@dataclass(frozen=True, slots=True)
class RewardCurves:
    """Rolling mean total reward per policy over the most recent iterations."""

    teacher: Series = field(default_factory=Series)
    hrm: Series = field(default_factory=Series)
    boundaries: tuple[Boundary, ...] = ()  # only those inside [first, last]
    first: int = 0
    last: int = 0
    window: int = 0

    @property
    def empty(self) -> bool:
        return not self.teacher and not self.hrm


@dataclass(frozen=True, slots=True)
class EpochPoint:
    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float


@dataclass(frozen=True, slots=True)
class MetricsView:
    """Everything the dashboard's slow-changing panes need, read in one go."""

    curves: RewardCurves
    epochs: tuple[EpochPoint, ...]  # the latest training run's epochs
    phase_state: PhaseState
    rolling: dict[str, float | None]  # the fall-back comparison: mean over fallback_window
    rolling_counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class History:
    """What the live panes start from before the first event arrives (read once at start)."""

    action_counts: dict[str, tuple[int, ...]]  # policy -> decisions per action, ACTIONS order
    latest_knowledge: tuple[tuple[str, str, str], ...]  # (title, source, topic), newest first


def rolling_means(points: Sequence[tuple[int, float]], window: int) -> list[tuple[int, float]]:
    """Mean of the last ``window`` values at every point (fewer at the start)."""
    window = max(1, window)
    out: list[tuple[int, float]] = []
    total = 0.0
    for i, (x, value) in enumerate(points):
        total += value
        if i >= window:
            total -= points[i - window][1]
        out.append((x, total / min(i + 1, window)))
    return out


def downsample(points: Sequence[tuple[int, float]], max_points: int) -> list[tuple[int, float]]:
    """At most ``max_points`` points: the last point of each equal-width bucket.

    Keeping the bucket's last point (not its mean) keeps the curve's final value exact,
    which is the number the phase pane prints next to it.
    """
    n = len(points)
    if max_points <= 0:
        return []
    if n <= max_points:
        return list(points)
    step = n / max_points
    picks = sorted({min(n - 1, math.ceil((k + 1) * step) - 1) for k in range(max_points)})
    return [points[i] for i in picks]


def _runs(points: Sequence[tuple[int, float]]) -> list[list[tuple[int, float]]]:
    """Split at every gap in the iterations (another policy decided in between)."""
    runs: list[list[tuple[int, float]]] = []
    for point in points:
        if runs and point[0] == runs[-1][-1][0] + 1:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def phase_boundaries(db: Database) -> tuple[Boundary, ...]:
    """Phase changes and teacher/HRM switches from the persisted phase history."""
    state = PhaseState.from_meta(db.get_meta(PHASE_META_KEY))
    return _boundaries(state.history)


def _boundaries(history: Sequence[Any]) -> tuple[Boundary, ...]:
    out: list[Boundary] = []
    for entry in history:
        if not isinstance(entry, dict):
            continue
        iteration, phase = entry.get("iteration"), entry.get("phase")
        if not isinstance(iteration, int) or isinstance(iteration, bool):
            continue
        if not isinstance(phase, int) or isinstance(phase, bool):
            continue
        reason = entry.get("reason")
        out.append(Boundary(iteration=iteration, phase=phase, hrm=entry.get("hrm") is True,
                            reason=reason if isinstance(reason, str) else ""))
    return tuple(out)


def reward_series(db: Database, policy_window: int = 50, max_points: int = 300,
                  history: int = 5000, *,
                  boundaries: Sequence[Boundary] | None = None) -> RewardCurves:
    """Rolling mean of ``reward + delayed_reward`` per policy over the last ``history`` rows.

    Each policy's mean runs over its own last ``policy_window`` decisions, so a teacher
    curve that pauses while the HRM decides picks up where it left off.
    """
    rows = db.recent_metrics(history)
    if not rows:
        return RewardCurves(window=policy_window)
    per_policy: dict[str, list[tuple[int, float]]] = {p: [] for p in POLICIES}
    for row in rows:
        policy = row["policy"]
        if policy in per_policy:
            per_policy[policy].append((int(row["iteration"]),
                                       float(row["reward"]) + float(row["delayed_reward"])))
    total = sum(len(points) for points in per_policy.values()) or 1
    series: dict[str, Series] = {}
    for policy, points in per_policy.items():
        means = rolling_means(points, policy_window)
        xs: list[float] = []
        ys: list[float] = []
        starts: list[int] = []
        for run in _runs(means):
            # Each stretch gets its share of the point budget (at least its two ends).
            budget = max(2, round(max_points * len(run) / total))
            starts.append(len(xs))
            for x, y in downsample(run, budget):
                xs.append(float(x))
                ys.append(y)
        series[policy] = Series(tuple(xs), tuple(ys), tuple(starts) or (0,))
    first, last = int(rows[0]["iteration"]), int(rows[-1]["iteration"])
    if boundaries is None:
        boundaries = phase_boundaries(db)
    inside = tuple(b for b in boundaries if first <= b.iteration <= last)
    return RewardCurves(teacher=series["teacher"], hrm=series["hrm"], boundaries=inside,
                        first=first, last=last, window=policy_window)


def training_series(db: Database) -> tuple[EpochPoint, ...]:
    """The latest training run's per-epoch loss and accuracies (malformed entries skipped)."""
    runs = db.training_runs(limit=1)
    if not runs:
        return ()
    return epochs_from_records(runs[0].epochs)


def epochs_from_records(records: Sequence[Any]) -> tuple[EpochPoint, ...]:
    out: list[EpochPoint] = []
    for record in records:
        if not isinstance(record, dict):
            continue
        try:
            point = EpochPoint(epoch=int(record["epoch"]), loss=float(record["loss"]),
                               train_accuracy=float(record["train_accuracy"]),
                               val_accuracy=float(record["val_accuracy"]))
        except (KeyError, TypeError, ValueError):
            continue
        if all(math.isfinite(v) for v in (point.loss, point.train_accuracy,
                                          point.val_accuracy)):
            out.append(point)
    return tuple(out)


def read_metrics(db: Database, *, fallback_window: int = 200, max_points: int = 300,
                 history: int = 5000) -> MetricsView:
    """One read of everything the dashboard's plots and phase pane show.

    "Rolling reward" means one thing everywhere: the mean total reward of a policy's last
    ``fallback_window`` decisions. The curves plot it, the legend and the phase pane quote
    it, and the fall-back compares it.
    """
    state = PhaseState.from_meta(db.get_meta(PHASE_META_KEY))
    curves = reward_series(db, fallback_window, max_points, history,
                           boundaries=_boundaries(state.history))
    rolling: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    for policy in POLICIES:
        rolling[policy], counts[policy] = db.rolling_reward(policy, fallback_window)
    return MetricsView(curves=curves, epochs=training_series(db), phase_state=state,
                       rolling=rolling, rolling_counts=counts)


def read_history(db: Database, knowledge_items: int = 20) -> History:
    """Decisions per policy and action so far, and the latest knowledge items."""
    counts: dict[str, tuple[int, ...]] = {}
    for policy in POLICIES:
        by_action = db.action_counts(policy)
        counts[policy] = tuple(int(by_action.get(name, 0)) for name in ACTION_NAMES)
    latest = tuple((k.title, k.source, k.topic) for k in db.latest_knowledge(knowledge_items))
    return History(action_counts=counts, latest_knowledge=latest)
