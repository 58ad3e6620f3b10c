"""The bench's ``long_run`` section: what one long unattended run looks like, window by window.

A frozen score over 1000 iterations on a fresh world cannot see what happens in hour three
of a run: ideas running out, a policy that rises and then sinks, a fall-back that keeps
firing. So, on held-out seeds of the default sim and on each variant
(``bench.variants``), two 20,000-iteration runs with the default thresholds:

- the teacher alone (training never triggers), which shows whether the world itself is
  stationary: its last 2000 iterations against its first 2000;
- the whole pipeline (Phase 1, imitation, Phase 3), compared window by window with the
  teacher-alone run of the same world: the teacher's level at the same point of the run.

Both report reward, proposals, approvals, duplicates and failed searches per 1000
iterations. The offline world's corpus is measured too: with the rules teacher alone,
the iteration at which 80% of the corpus is known and the new items per search until then.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from aegis_tui.agent.runtime import AgentRuntime
from aegis_tui.bench.pipeline import Window, run_agent, run_pipeline, window_stats
from aegis_tui.bench.variants import DEFAULT, VARIANTS, Variant, variant
from aegis_tui.config import Config, apply_overrides
from aegis_tui.events import EventBus
from aegis_tui.paths import DataPaths
from aegis_tui.policy.rules_teacher import RulesTeacher
from aegis_tui.world.offline import OfflineWorld

LONG_SEEDS = (9201, 9202)  # default world
VARIANT_SEED = 9211  # each variant
QUICK_SEEDS = (5,)  # a development seed: a --quick run must not spend a held-out one


@dataclass(frozen=True, slots=True)
class LongRunSettings:
    iterations: int = 20_000
    window: int = 1000
    offline_iterations: int = 6000
    seeds: tuple[int, ...] = LONG_SEEDS
    variants: tuple[str, ...] = tuple(v.name for v in VARIANTS)


def _pairs(windows: list[Window], size: int) -> list[float]:
    """Rewards per ``size`` iterations from per-window rewards (windows of equal length)."""
    out = []
    for k in range(0, len(windows) - size + 1, size):
        out.append(statistics.fmean(w.reward for w in windows[k:k + size]))
    return out


def compare(teacher: list[Window], pipeline: list[Window], hrm_from: int | None,
            window: int) -> dict[str, Any]:
    """The targets' figures: per-2000 ratios of the pipeline to the teacher alone."""
    per = max(1, 2000 // window)
    t2, p2 = _pairs(teacher, per), _pairs(pipeline, per)
    first_hrm_block = ((hrm_from - 1) // (per * window) + 1) if hrm_from else None
    ratios = [p / t if t > 0 else None for p, t in zip(p2, t2, strict=False)]
    after = [r for k, r in enumerate(ratios)
             if first_hrm_block is not None and k >= first_hrm_block and r is not None]
    return {
        "teacher_first_2000": t2[0] if t2 else None,
        "teacher_last_2000": t2[-1] if t2 else None,
        "teacher_last_over_first": t2[-1] / t2[0] if len(t2) > 1 and t2[0] > 0 else None,
        "pipeline_per_2000": p2, "teacher_per_2000": t2, "ratio_per_2000": ratios,
        "hrm_from": hrm_from,
        "min_ratio_after_takeover": min(after) if after else None,
        "last_ratio": ratios[-1] if ratios else None,
    }


def offline_coverage(workdir: Path, iterations: int) -> dict[str, Any]:
    """The rules teacher alone on the offline world: how fast the corpus becomes known."""
    paths = DataPaths(workdir).ensure()
    config = apply_overrides(Config(), {"world": "offline", "think_interval": 0,
                                        "collect_threshold": 10_000_000})
    world = OfflineWorld(config, workdir.parent / "offline_corpus.sqlite3",
                         paging_path=workdir / "offline_paging.sqlite3")
    documents = world.prepare().documents
    runtime = AgentRuntime.open(config, paths, bus=EventBus(maxlen=100), world=world,
                                teacher=RulesTeacher(3))
    try:
        runtime.agent.run(max_iterations=iterations)
    finally:
        runtime.close()
    conn = sqlite3.connect(f"{paths.database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        learnt = dict(conn.execute(
            "SELECT iteration, count(*) FROM knowledge WHERE source NOT LIKE 'human://%' "
            "GROUP BY iteration").fetchall())
        searches = conn.execute("SELECT iteration, knowledge_gained FROM metrics WHERE "
                                "action='web_search' ORDER BY iteration").fetchall()
    finally:
        conn.close()
    known, reached, gained, count = 0, None, 0, 0
    for iteration, gain in searches:
        if reached is None:
            gained += gain
            count += 1
        known += learnt.get(iteration, 0)
        if reached is None and known >= 0.8 * documents:
            reached = iteration
    return {"documents": documents, "known": known, "iteration_80_percent": reached,
            "new_items_per_search_until_then": gained / count if count else None,
            "iterations": iterations}


def run_world(workdir: Path, variant: Variant, seed: int, settings: LongRunSettings,
              log: Callable[[str], None]) -> dict[str, Any]:
    where = workdir / f"{variant.name}-{seed}"
    alone = run_agent(where / "teacher", seed, RulesTeacher(seed), settings.iterations,
                      params=variant.params, collect_threshold=10_000_000, **variant.config)
    teacher = window_stats(alone, settings.window)
    run = run_pipeline(where / "pipeline", seed, RulesTeacher(seed), settings.iterations,
                       params=variant.params, window=settings.window, **variant.config)
    out = {"world": variant.name, "description": variant.description, "seed": seed,
           **compare(teacher, run.windows, run.hrm_from, settings.window),
           "fallbacks": run.fallbacks, "adopted_by": run.adopted_by,
           "teacher_windows": [asdict(w) for w in teacher],
           "pipeline_windows": [asdict(w) for w in run.windows]}
    log(f"long_run: {variant.name} seed {seed}: teacher first/last 2000 "
        f"{_f(out['teacher_first_2000'])}/{_f(out['teacher_last_2000'])}, pipeline/teacher "
        f"min after takeover {_f(out['min_ratio_after_takeover'])}, last "
        f"{_f(out['last_ratio'])}, {run.fallbacks} fall-backs")
    return out


def _f(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def run_long(workdir: Path, settings: LongRunSettings | None = None,
             log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    settings = settings or LongRunSettings()
    worlds = [run_world(workdir, DEFAULT, seed, settings, log) for seed in settings.seeds]
    worlds += [run_world(workdir, variant(name), VARIANT_SEED, settings, log)
               for name in settings.variants]
    offline = offline_coverage(workdir / "offline", settings.offline_iterations)
    log(f"long_run: offline corpus 80% known at iteration {offline['iteration_80_percent']}, "
        f"{_f(offline['new_items_per_search_until_then'])} new items per search until then")
    return {"settings": asdict(settings), "worlds": worlds, "offline": offline}


def quick_settings() -> LongRunSettings:
    return replace(LongRunSettings(), iterations=3000, offline_iterations=600,
                   seeds=QUICK_SEEDS, variants=())
