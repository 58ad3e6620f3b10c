"""``aegis-tui export --format json``: the example log as the seed's ``hrm_training_data.json``.

Each example carries the state before the decision, the teacher's action and probabilities,
the outcome and the reward; ``reward`` includes delayed credit (an answer, an approval)
recorded in the agent database since the example was logged, and ``immediate_reward`` is
what was known at decision time. ``metadata.warnings`` names what could not be read (damaged
bytes, records of the wrong shape, an unreadable database); the file itself is never changed.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from aegis_tui import __version__
from aegis_tui.actions import ACTION_NAMES
from aegis_tui.paths import DataPaths
from aegis_tui.storage.database import Database, DatabaseError
from aegis_tui.training.example_log import FORMAT_VERSION, read_examples


def _delayed_rewards(paths: DataPaths, warnings: list[str]) -> dict[int, float]:
    if not paths.database.exists():
        return {}
    try:
        db = Database(paths.database, readonly=True)
        try:
            return db.delayed_rewards()
        finally:
            db.close()
    except (DatabaseError, sqlite3.Error) as exc:
        warnings.append(f"{paths.database.name} is unreadable ({exc}); rewards are exported "
                        "without the delayed credit it holds")
    return {}


def export_json(paths: DataPaths) -> dict[str, Any]:
    """The export document; raises ``ExampleLogError`` for a log from a newer aegis-tui."""
    scan = read_examples(paths.examples)
    warnings = list(scan.warnings)
    if scan.corrupt_spans:
        bad = sum(b - a for a, b in scan.corrupt_spans)
        warnings.append(f"{paths.examples.name} has {bad} unreadable bytes in "
                        f"{len(scan.corrupt_spans)} place(s); the examples there are skipped "
                        "(the agent repairs the file on its next start)")
    delayed = _delayed_rewards(paths, warnings)
    examples = []
    models: dict[tuple[str, str], int] = {}
    for ex in scan.examples:
        if ex.teacher_model:
            key = (ex.teacher_model, ex.teacher_revision)
            models[key] = models.get(key, 0) + 1
        extra = delayed.get(ex.iteration, 0.0)
        examples.append({
            "timestamp": ex.time,
            "iteration": ex.iteration,
            "state": ex.state.to_dict(),
            "action": ex.action,
            "action_probs": dict(zip(ACTION_NAMES, ex.probs, strict=True)),
            "teacher": ex.policy,
            "teacher_model": ex.teacher_model or None,
            "teacher_revision": ex.teacher_revision or None,
            "outcome": {"success": ex.outcome.success,
                        "knowledge_gained": ex.outcome.knowledge_gained,
                        "details": ex.outcome.details},
            "reward": round(ex.reward + extra, 6),
            "immediate_reward": ex.reward,
        })
    return {
        "metadata": {
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "aegis_tui_version": __version__,
            "format_version": FORMAT_VERSION,
            "source": str(paths.examples),
            "total_examples": len(examples),
            "skipped_records": scan.skipped,
            "teacher_models": [{"model": m, "revision": r or None, "examples": n}
                               for (m, r), n in models.items()],
            "warnings": warnings,
        },
        "examples": examples,
    }
