"""The two reports: the status overview and the training report, as data and as text.

Both read only: the database is opened read-only and the example log is scanned without
repair, so they work from another terminal while an agent is running, and on a directory
no agent has touched yet. The CLI prints them (``status``, ``training``, ``--json``) and the
dashboard shows the same text.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from typing import Any

from aegis_tui.actions import ACTION_NAMES
from aegis_tui.agent.phases import (
    PHASE_META_KEY,
    Phase,
    PhaseMachine,
    PhaseState,
    gate_verdict,
    phase_title,
)
from aegis_tui.agent.state import CURIOSITY_RECOVERY, STATE_META_KEY, Counters
from aegis_tui.config import Config, ConfigError, apply_overrides, config_keys, upgrade_keys
from aegis_tui.paths import DataPaths
from aegis_tui.storage.database import Database, DatabaseError
from aegis_tui.storage.lock import read_holder
from aegis_tui.storage.records import PENDING
from aegis_tui.text import clean
from aegis_tui.training.example_log import ExampleLogError, read_examples

RUN_META_KEY = "run"
CONFIG_META_KEY = "config"


@dataclass(slots=True)
class Sources:
    """Everything a report reads, gathered once."""

    paths: DataPaths
    config: Config
    meta: dict[str, Any]
    db: Database | None
    examples: int
    label_counts: list[int]
    knowledge_from_examples: int
    example_warnings: list[str]
    holder: dict[str, object] | None


def gather(paths: DataPaths, config: Config) -> Sources:
    db: Database | None = None
    meta: dict[str, Any] = {}
    warnings: list[str] = []
    if paths.database.exists():
        try:
            db = Database(paths.database, readonly=True)
            meta = db.all_meta()
        except (DatabaseError, sqlite3.Error) as exc:
            # The agent repairs a damaged database when it starts; a report only says so.
            warnings.append(f"{paths.database.name} is unreadable ({exc}); the agent "
                            "quarantines and rebuilds it on its next start")
            db = None
    stored = meta.get(CONFIG_META_KEY)
    if isinstance(stored, dict):
        # Thresholds the running agent was started with beat this terminal's defaults.
        known = set(config_keys())
        with contextlib.suppress(ConfigError):
            config = apply_overrides(config, {k: v for k, v in upgrade_keys(stored).items()
                                              if k in known and k != "rewards"})
    labels = [0] * len(ACTION_NAMES)
    knowledge = count = 0
    try:
        scan = read_examples(paths.examples)
        count = scan.count
        for ex in scan.examples:
            labels[ex.label] += 1
            knowledge += ex.outcome.knowledge_gained
        warnings.extend(scan.warnings)
        if scan.corrupt_spans:
            warnings.append("the example log has damaged bytes; the agent repairs it on start")
    except (ExampleLogError, OSError) as exc:
        warnings.append(str(exc))
    return Sources(paths=paths, config=config, meta=meta, db=db, examples=count,
                   label_counts=labels, knowledge_from_examples=knowledge,
                   example_warnings=warnings, holder=read_holder(paths.lock))


def _phase(src: Sources) -> dict[str, Any]:
    state = PhaseState.from_meta(src.meta.get(PHASE_META_KEY))
    run = src.meta.get(RUN_META_KEY) or {}
    label = run.get("teacher_label") or "GPT-2"
    return {
        "number": state.phase,
        "title": phase_title(state.phase, str(label)),
        "hrm_in_use": state.phase == Phase.RL and state.hrm_active,
        "training_attempts": state.training_attempts,
        "validation_accuracy": state.last_val_accuracy,
        "passed_gate": state.passed_gate,
        "last_training_message": state.last_training_message,
        "rl_updates": state.rl_updates,
        "fallbacks": state.fallbacks,
        "teacher_baseline": state.teacher_baseline,
        "state": state,
    }


def _rolling(src: Sources) -> dict[str, float | None]:
    if src.db is None:
        return {"teacher": None, "hrm": None}
    window = src.config.fallback_window
    return {p: src.db.rolling_reward(p, window)[0] for p in ("teacher", "hrm")}


def status_data(src: Sources) -> dict[str, Any]:
    counters = Counters.from_meta(src.meta.get(STATE_META_KEY))
    phase = _phase(src)
    phase.pop("state")
    db = src.db
    complete_at = src.config.goal_complete_at
    settings = src.meta.get("settings")
    if isinstance(settings, dict) and isinstance(settings.get("goal_complete_at"), int):
        complete_at = settings["goal_complete_at"]
    run = src.meta.get(RUN_META_KEY) or {}
    return {
        "data_dir": str(src.paths.root),
        "agent_running": src.holder is not None,
        "agent": src.holder,
        "world": run.get("world"),
        "teacher": run.get("teacher"),
        "teacher_device": run.get("teacher_device"),
        "teacher_revision": run.get("teacher_revision") or None,
        "phase": phase,
        "operation": {
            "iterations": counters.iteration,
            "web_searches": counters.web_searches,
            "failed_searches": counters.failed_searches,
            "questions_asked": counters.questions_asked,
            "questions_answered": counters.questions_answered,
            "improvements_proposed": counters.improvements_proposed,
            "improvements_approved": counters.improvements_approved,
            "duplicate_proposals": counters.duplicate_proposals,
            "goals_completed": counters.goals_completed,
        },
        "knowledge": {
            "items": db.knowledge_count() if db else 0,
            "sources": db.knowledge_sources() if db else {},
            "latest": [{"title": k.title, "source": k.source, "topic": k.topic}
                       for k in (db.latest_knowledge(5) if db else [])],
        },
        "state": {
            "goals": [{"text": g.text, "progress": round(g.progress(complete_at), 3),
                       "completed": g.completed} for g in (db.goals() if db else [])],
            "curiosity_size": db.topic_count() if db else 0,
            "curiosity": [{"topic": t.topic, "priority": round(t.priority, 3),
                           "times_searched": t.times_searched}
                          for t in (db.topics(10, iteration=counters.iteration,
                                              recovery=CURIOSITY_RECOVERY) if db else [])],
            "pending_questions": db.count_questions(PENDING) if db else 0,
            "pending_proposals": db.count_proposals(PENDING) if db else 0,
            "recent_actions": counters.recent_actions,
        },
        "hrm": {
            "examples": src.examples,
            "threshold": src.config.collect_threshold,
            "rolling_reward": _rolling(src),
        },
        "warnings": src.example_warnings,
    }


def training_data(src: Sources) -> dict[str, Any]:
    phase = _phase(src)
    state: PhaseState = phase.pop("state")
    total = sum(src.label_counts) or 1
    threshold = src.config.collect_threshold
    runs = src.db.training_runs(5) if src.db else []
    last = runs[0] if runs else None
    if state.phase == Phase.COLLECTION and state.keep_teacher:
        milestone = ("none automatic: the teacher was kept by hand (aegis-tui train forces a "
                     "run, aegis-tui adopt hands over to the trained HRM)")
    elif state.phase == Phase.COLLECTION:
        needed = PhaseMachine(state, src.config).examples_needed()
        left = max(0, needed - src.examples)
        milestone = (f"training triggers at the next check (every {src.config.check_every} "
                     f"iterations)" if left == 0 else
                     f"training triggers at {needed} examples ({left} to go)")
    elif state.phase == Phase.IMITATION:
        epoch = len(last.epochs) if last else 0
        milestone = f"imitation training running (epoch {epoch}/{src.config.imitation.epochs})"
    elif state.hrm_active:
        milestone = (f"RL update every {src.config.rl.update_every} iterations; "
                     f"{state.rl_updates} done")
    else:
        milestone = f"teacher deciding after a fall-back; HRM retries at iteration " \
                    f"{state.hrm_retry_at}"
    return {
        "phase": phase,
        "examples": src.examples,
        "threshold": threshold,
        "progress": round(min(1.0, src.examples / max(1, threshold)), 4),
        "action_distribution": {
            name: {"count": n, "share": round(n / total, 4)}
            for name, n in zip(ACTION_NAMES, src.label_counts, strict=True)
        },
        "avg_knowledge_per_example": round(src.knowledge_from_examples / total, 4)
        if src.examples else 0.0,
        "next_milestone": milestone,
        "hrm_in_use": phase["hrm_in_use"],
        "validation_accuracy": phase["validation_accuracy"],
        "accuracy_gate": src.config.accuracy_gate,
        "gate": _gate(state, src.config),
        "training_runs": [
            {"id": r.id, "status": r.status, "examples": r.examples, "forced": r.forced,
             "val_accuracy": r.val_accuracy, "train_accuracy": r.train_accuracy,
             "epochs": len(r.epochs), "message": r.message}
            for r in runs
        ],
        "epochs": last.epochs if last else [],
        "rl": {"updates": state.rl_updates, "fallbacks": state.fallbacks,
               "rolling_reward": _rolling(src), "teacher_baseline": state.teacher_baseline},
        "checkpoints": sorted(p.name for p in src.paths.checkpoints.glob("*.pt"))
        if src.paths.checkpoints.is_dir() else [],
        "warnings": src.example_warnings,
    }


def _fmt(value: float | None, spec: str = "+.3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _bar(fraction: float, width: int = 30) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


RULE = "=" * 60


def _teacher_line(d: dict[str, Any]) -> str:
    """``gpt2 on cuda (bfloat16, NVIDIA H200), commit 607a30d`` (what the last run used)."""
    line = clean(str(d.get("teacher") or "n/a"), 80)
    if d.get("teacher_device"):
        line += f" on {clean(str(d['teacher_device']), 60)}"
    if d.get("teacher_revision"):
        line += f", commit {clean(str(d['teacher_revision']), 40)[:7]}"
    return line


def format_status(d: dict[str, Any]) -> str:
    op, kn, st, hrm, ph = d["operation"], d["knowledge"], d["state"], d["hrm"], d["phase"]
    agent = d.get("agent") or {}
    running = (f"running (pid {agent.get('pid')})" if d["agent_running"] else "not running")
    lines = [
        RULE, "AEGIS STATUS", RULE,
        f"Data directory:  {d['data_dir']}",
        f"Agent:           {running}",
        f"World:           {d.get('world') or 'n/a'}",
        f"Teacher:         {_teacher_line(d)}",
        "",
        "OPERATION STATISTICS",
        f"  Iterations:             {op['iterations']}",
        f"  Web searches:           {op['web_searches']} ({op['failed_searches']} failed)",
        f"  Questions asked:        {op['questions_asked']} "
        f"({op['questions_answered']} answered)",
        f"  Improvements proposed:  {op['improvements_proposed']} "
        f"({op['improvements_approved']} approved, {op['duplicate_proposals']} duplicates)",
        f"  Goals completed:        {op['goals_completed']}",
        "",
        "KNOWLEDGE BASE",
        f"  Items:                  {kn['items']}",
    ]
    for item in kn["latest"]:
        lines.append(f"    - {clean(item['title'], 70)}  [{clean(item['source'], 50)}]")
    lines += ["", "AGENT STATE", "  Goals:"]
    for g in st["goals"]:
        mark = "✓" if g["completed"] else " "
        lines.append(f"    [{mark}] {clean(g['text'], 60)} ({g['progress']:.0%})")
    lines.append(f"  Curiosity queue:        {st['curiosity_size']} topics")
    for t in st["curiosity"][:5]:
        lines.append(f"    - {clean(t['topic'], 50)} (priority {t['priority']:.2f})")
    lines += [
        f"  Pending questions:      {st['pending_questions']}",
        f"  Pending proposals:      {st['pending_proposals']}",
        f"  Recent actions:         {', '.join(st['recent_actions'][-5:]) or 'none'}",
        "",
        "HRM TRAINING STATUS",
        f"  {ph['title']}",
        f"  Examples collected:     {hrm['examples']}/{hrm['threshold']}",
        f"  HRM in use:             {'yes' if ph['hrm_in_use'] else 'no'}",
        f"  Validation accuracy:    {_fmt(ph['validation_accuracy'], '.1%')}",
        f"  RL updates:             {ph['rl_updates']}",
        f"  Rolling reward:         teacher {_fmt(hrm['rolling_reward']['teacher'])}, "
        f"HRM {_fmt(hrm['rolling_reward']['hrm'])}",
        RULE,
    ]
    lines += [f"warning: {w}" for w in d.get("warnings", [])]
    return "\n".join(lines)


def _gate(state: PhaseState, config: Config) -> dict[str, Any]:
    """The last imitation run against the gate and its yardsticks, and who decided since."""
    return {"baseline_accuracy": state.last_baseline_accuracy,
            "probe_accuracy": state.last_probe_accuracy,
            "teacher_decisiveness": state.last_teacher_decisiveness,
            "verdict": gate_verdict(state, config.accuracy_gate),
            "runs_below_gate": state.gate_failures,
            "adopted_by": state.adopted_by, "reward_trial": state.trial,
            "teacher_kept_by_hand": state.keep_teacher}


def format_training(d: dict[str, Any]) -> str:
    ph = d["phase"]
    gate = d["gate"]
    lines = [
        RULE, "HRM TRAINING REPORT", RULE,
        f"Phase:               {ph['title']}",
        f"Examples collected:  {d['examples']}/{d['threshold']}",
        f"Progress:            {_bar(d['progress'])} {d['progress']:.1%}",
        f"HRM in use:          {'yes' if d['hrm_in_use'] else 'no'}",
        "",
        "ACTION DISTRIBUTION (teacher labels)",
    ]
    for name, v in d["action_distribution"].items():
        lines.append(f"  {name:<20} {v['count']:>6}  {_bar(v['share'], 20)} {v['share']:.1%}")
    lines += [
        "",
        f"Average knowledge per example: {d['avg_knowledge_per_example']:.3f}",
        f"Validation accuracy: {_fmt(d['validation_accuracy'], '.1%')} "
        f"(gate {d['accuracy_gate']:.0%}); majority baseline "
        f"{_fmt(gate['baseline_accuracy'], '.1%')}, linear probe "
        f"{_fmt(gate['probe_accuracy'], '.1%')}, teacher decisiveness "
        f"{_fmt(gate['teacher_decisiveness'], '.2f')}",
        f"Last run:            {gate['verdict']}",
    ]
    if gate["adopted_by"]:
        lines.append(f"HRM adopted by:      {gate['adopted_by']}")
    elif gate["reward_trial"]:
        lines.append("HRM on a reward trial (it stays unless measurably worse than the teacher)")
    elif gate["runs_below_gate"] and not gate["teacher_kept_by_hand"]:
        lines.append("Way forward:         aegis-tui adopt (the HRM anyway) or aegis-tui "
                     "keep-teacher; h on the dashboard")
    if d["epochs"]:
        lines.append("Last training run:")
        for e in d["epochs"]:
            lines.append(f"  epoch {e['epoch']:>3}: loss {e['loss']:.4f}  train "
                         f"{e['train_accuracy']:.1%}  val {e['val_accuracy']:.1%}")
    for r in d["training_runs"][:3]:
        acc = _fmt(r["val_accuracy"], ".1%")
        lines.append(f"  run #{r['id']}: {r['status']} on {r['examples']} examples, val {acc}"
                     + (f" ({clean(r['message'], 80)})" if r["message"] else ""))
    rl = d["rl"]
    lines += [
        f"RL updates:          {rl['updates']} (fall-backs: {rl['fallbacks']})",
        f"Rolling reward:      teacher {_fmt(rl['rolling_reward']['teacher'])}, "
        f"HRM {_fmt(rl['rolling_reward']['hrm'])}",
        f"Checkpoints:         {', '.join(d['checkpoints']) or 'none'}",
        f"Next milestone:      {d['next_milestone']}",
        RULE,
    ]
    lines += [f"warning: {w}" for w in d.get("warnings", [])]
    return "\n".join(lines)


def close(src: Sources) -> None:
    if src.db is not None:
        src.db.close()
