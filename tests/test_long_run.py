"""Long unattended runs: the idea supply renews, and the same seeds give the same run.

Both drive the real agent headless in this process (the bench's ``run_agent`` and
``run_phase3``) on the sim world.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aegis_tui.bench.pipeline import run_agent, run_phase3, window_stats
from aegis_tui.config import ImitationSettings
from aegis_tui.paths import DataPaths
from aegis_tui.policy.hrm import HRMConfig
from aegis_tui.policy.rules_teacher import RulesTeacher
from aegis_tui.training.example_log import read_examples
from aegis_tui.training.imitation import train_imitation

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def new_topics(paths: DataPaths, first: int, last: int) -> int:
    """Topics whose first knowledge item was learnt in iterations ``first..last``."""
    conn = sqlite3.connect(f"{paths.database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT count(*) FROM (SELECT topic, min(iteration) AS seen FROM "
                           "knowledge GROUP BY topic) WHERE seen BETWEEN ? AND ?",
                           (first, last)).fetchone()
    finally:
        conn.close()
    return int(row[0])


def test_a_proposing_teacher_does_not_run_out_of_fresh_ideas(tmp_path: Path) -> None:
    """The teacher alone, 4000 iterations: its late approvals hold up against its early ones.

    Before the supply renewed, approvals fell to zero as every topic the queue could reach
    had been proposed (the last windows all duplicates).
    """
    paths = run_agent(tmp_path / "run", 21, RulesTeacher(21), 4000,
                      collect_threshold=10_000_000)
    windows = window_stats(paths, 1000)
    assert len(windows) == 4
    early, late = windows[0], windows[-1]
    assert early.approved > 0
    assert late.approved >= 0.6 * early.approved
    assert late.duplicates < late.approved
    assert late.reward >= 0.8 * early.reward
    # Topics never seen before are still being learnt about late in the run.
    assert new_topics(paths, 3001, 4000) >= 0.5 * new_topics(paths, 1, 1000) > 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("collect")
    paths = run_agent(root / "run", 5, RulesTeacher(5), 300, collect_threshold=10_000_000)
    settings = ImitationSettings(epochs=3, checkpoint_every=3,
                                 model=HRMConfig(d_model=32, n_heads=2, expansion=2.0))
    out = root / "hrm_trained.pt"
    train_imitation(read_examples(paths.examples).examples, settings, checkpoint_dir=root,
                    output=out)
    return out


def decisions(paths: DataPaths) -> list[tuple]:
    conn = sqlite3.connect(f"{paths.database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT iteration, policy, action, reward, delayed_reward "
                            "FROM metrics ORDER BY iteration").fetchall()
    finally:
        conn.close()


def test_the_same_seeds_give_the_same_rl_run(trained: Path, tmp_path: Path) -> None:
    """Phase 3 twice from the same checkpoint and seed: every decision and reward equal.

    The HRM samples its actions and RL updates it every ten iterations, so any unseeded
    randomness (the minibatch order, the sampling, the world) would show within a few
    hundred iterations.
    """
    first = run_phase3(tmp_path / "a", 8, trained, 400)
    second = run_phase3(tmp_path / "b", 8, trained, 400)
    got = decisions(first)
    assert len(got) == 400 and {row[1] for row in got} == {"hrm"}
    assert got == decisions(second)
    assert first.rl_checkpoint.exists()
    # A different seed is a different run (the test could not fail otherwise).
    assert decisions(run_phase3(tmp_path / "c", 9, trained, 400)) != got
