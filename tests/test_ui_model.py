"""The dashboard's model and metric series, without Textual: coalescing, words, curves."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis_tui.agent.metrics_view import (
    Boundary,
    downsample,
    epochs_from_records,
    read_history,
    read_metrics,
    reward_series,
    rolling_means,
)
from aegis_tui.agent.phases import PHASE_META_KEY
from aegis_tui.events import (
    IterationDone,
    KnowledgeAdded,
    Notice,
    PhaseChanged,
    QuestionAsked,
    RLUpdated,
    RunStateChanged,
    StateChanged,
    TrainingFinished,
    TrainingProgress,
    TrainingStarted,
)
from aegis_tui.snapshot import StateSnapshot
from aegis_tui.storage.database import Database
from aegis_tui.ui.components.action_chart import compact
from aegis_tui.ui.components.bars import bar
from aegis_tui.ui.harness import sim_config
from aegis_tui.ui.model import (
    ACTIONS_PANE,
    GOALS,
    HEADER,
    PAUSED,
    STOPPING,
    TRAINING,
    DashboardModel,
)
from aegis_tui.ui.safe import fit, safe


def _iteration(i: int, action: str = "web_search", policy: str = "teacher") -> IterationDone:
    return IterationDone(iteration=i, action=action, policy=policy, policy_name="rules",
                         reward=1.0, success=True, knowledge_gained=1, detail=f"detail {i}",
                         probs=(0.25, 0.25, 0.25, 0.25), phase=1)


def _state(i: int, examples: int = 0, phase: int = 1, hrm: bool = False,
           threshold: int = 1000) -> StateChanged:
    return StateChanged(snapshot=StateSnapshot(iteration=i), examples=examples, phase=phase,
                        hrm_active=hrm, running=True, phase_title=f"Phase {phase}: x",
                        policy_name="HRM" if hrm else "rules", world="sim (seed 0)",
                        label_counts=(3, 1, 0, 1), threshold=threshold)


def test_a_burst_keeps_only_the_newest_state_and_counts_every_iteration() -> None:
    model = DashboardModel(sim_config(), max_log_lines=10)
    events = []
    for i in range(1, 1001):
        events.append(_iteration(i, "idle" if i % 4 == 0 else "web_search"))
        if i % 100 == 0:
            events.append(_state(i, examples=i))
    batch = model.apply(events)
    assert model.state is not None and model.state.snapshot.iteration == 1000
    assert model.counts["teacher"] == [750, 0, 0, 250]
    assert model.iteration == 1000
    assert {HEADER, GOALS, ACTIONS_PANE} <= batch.changed
    # The log gets at most max_log_lines lines: a "skipped" line and the newest iterations.
    assert len(batch.log) == 10
    assert batch.log[0].level == "skipped" and "991 iteration lines skipped" in batch.log[0].text
    assert batch.log[-1].text.startswith("[iter 1000]")


def test_rare_lines_survive_a_flood_of_iterations() -> None:
    model = DashboardModel(sim_config(), max_log_lines=5)
    events = [_iteration(i) for i in range(1, 500)]
    events.insert(10, Notice("TRAINING TRIGGER: Sufficient data collected!"))
    events.insert(20, Notice("something broke", "error"))
    batch = model.apply(events)
    texts = [line.text for line in batch.log]
    assert any("TRAINING TRIGGER" in t for t in texts)
    assert any(line.level == "error" and "something broke" in line.text for line in batch.log)
    assert batch.errors == ["something broke"]
    assert len(batch.log) <= 5


def test_phase_words_for_each_phase() -> None:
    config = sim_config(imitation={"epochs": 20})
    model = DashboardModel(config)
    model.apply([_state(347, examples=347, threshold=1000)])
    progress = model.phase_progress()
    assert progress.words == "examples collected 347/1000 (34.7%)"
    assert (progress.progress, progress.total) == (347, 1000)

    batch = model.apply([TrainingStarted(examples=1000, epochs=20, forced=False),
                         TrainingProgress(epoch=7, epochs=20, loss=0.41, train_accuracy=0.9,
                                          val_accuracy=0.92, elapsed_s=3.0),
                         _state(400, examples=400, phase=2)])
    assert batch.training_started and TRAINING in batch.changed
    progress = model.phase_progress()
    assert progress.words == "epoch 7/20, loss 0.41, val acc 92%"
    assert (progress.progress, progress.total) == (7, 20)

    model.apply([TrainingFinished(ok=True, val_accuracy=0.8, passed_gate=True, message="ok"),
                 PhaseChanged(old=2, new=3, hrm_active=True, reason="gate"),
                 RLUpdated(update=37, loss=0.1, mean_reward=1.2, entropy=1.0, kl=0.01),
                 _state(500, examples=500, phase=3, hrm=True)])
    progress = model.phase_progress()
    assert progress.words.startswith("RL updates 37, rolling reward HRM")


def test_a_failed_gate_is_mentioned_in_phase_one() -> None:
    model = DashboardModel(sim_config())
    model.apply([TrainingStarted(examples=60, epochs=2, forced=True),
                 TrainingFinished(ok=True, val_accuracy=0.4, passed_gate=False, message="low",
                                  baseline_accuracy=0.38, probe_accuracy=0.39),
                 _state(70, examples=70)])
    words = model.phase_progress().words
    assert ("last training validation accuracy 40.0% is 20.0% below the gate (60%); always "
            "the teacher's most frequent choice scores 38.0%") in words
    assert "barely predictable" in words and "h: adopt the HRM anyway" in words


def test_run_state_and_stopping_is_sticky_until_stopped() -> None:
    model = DashboardModel(sim_config())
    model.apply([RunStateChanged(state="paused")])
    assert model.run_state == PAUSED
    model.set_run_state(STOPPING)
    model.apply([RunStateChanged(state="running")])
    assert model.run_state == STOPPING
    model.apply([RunStateChanged(state="stopped")])
    assert model.run_state == "stopped"


def test_knowledge_newest_first_and_questions_reported() -> None:
    model = DashboardModel(sim_config(), knowledge_keep=3)
    batch = model.apply([KnowledgeAdded(items=(("a", "s1", "t"), ("b", "s2", "t"))),
                         KnowledgeAdded(items=(("c", "s3", "t"), ("d", "s4", "t"))),
                         QuestionAsked(question_id=4, text="why?")])
    assert [k[0] for k in model.knowledge] == ["d", "c", "b"]
    assert [q.question_id for q in batch.questions] == [4]


def test_unknown_actions_and_policies_are_ignored() -> None:
    model = DashboardModel(sim_config())
    model.apply([_iteration(1, action="fly"), _iteration(2, policy="oracle")])
    assert model.counts == {"teacher": [0, 0, 0, 0], "hrm": [0, 0, 0, 0]}


# -- metric series ---------------------------------------------------------------------------
def test_rolling_means_and_downsample() -> None:
    points = [(i, float(i)) for i in range(1, 7)]
    assert rolling_means(points, 3) == [(1, 1.0), (2, 1.5), (3, 2.0), (4, 3.0), (5, 4.0),
                                        (6, 5.0)]
    many = [(i, float(i)) for i in range(1000)]
    picked = downsample(many, 10)
    assert len(picked) == 10 and picked[-1] == (999, 999.0)
    assert downsample(points, 100) == points
    assert downsample(points, 0) == []


def test_reward_series_counts_delayed_rewards_and_marks_phase_changes(data_dir: Path) -> None:
    db = Database(data_dir / "agent.sqlite3")
    try:
        for i in range(1, 21):
            policy = "teacher" if i <= 10 else "hrm"
            db.record_iteration(i, float(i), 1 if i <= 10 else 3, policy, "idle", -0.1, 0, True)
        db.add_delayed_reward(5, 10.0)  # an approval credited later
        db.set_meta(PHASE_META_KEY, {"phase": 3, "history": [
            {"iteration": 10, "phase": 2, "hrm": False, "reason": "training"},
            {"iteration": 11, "phase": 3, "hrm": True, "reason": "gate"},
            {"iteration": "bad", "phase": 3}, "junk"]})
        curves = reward_series(db, policy_window=100, max_points=50)
        assert curves.teacher.x == tuple(float(i) for i in range(1, 11))
        assert curves.teacher.last == pytest.approx((10 * -0.1 + 10.0) / 10)
        assert curves.hrm.last == pytest.approx(-0.1)
        assert curves.boundaries == (Boundary(10, 2, False, "training"),
                                     Boundary(11, 3, True, "gate"))
        assert (curves.first, curves.last) == (1, 20)
        view = read_metrics(db, fallback_window=5)
        assert view.rolling["hrm"] == pytest.approx(-0.1) and view.rolling_counts["hrm"] == 5
        history = read_history(db)
        assert history.action_counts == {"teacher": (0, 0, 0, 10), "hrm": (0, 0, 0, 10)}
    finally:
        db.close()


def test_empty_database_gives_empty_curves(data_dir: Path) -> None:
    db = Database(data_dir / "agent.sqlite3")
    try:
        assert reward_series(db).empty
        assert read_metrics(db).epochs == ()
    finally:
        db.close()


def test_epochs_from_records_skips_malformed_entries() -> None:
    records = [{"epoch": 1, "loss": 1.0, "train_accuracy": 0.5, "val_accuracy": 0.4},
               {"epoch": 2, "loss": "x"}, "junk",
               {"epoch": 3, "loss": float("nan"), "train_accuracy": 0.5, "val_accuracy": 0.4},
               {"epoch": 4, "loss": 0.5, "train_accuracy": 0.7, "val_accuracy": 0.6}]
    assert [e.epoch for e in epochs_from_records(records)] == [1, 4]


# -- small text helpers ----------------------------------------------------------------------
def test_bars_compact_and_safe_text() -> None:
    assert bar(0.5, 4).plain == "██░░"
    assert bar(1.5, 3).plain == "███"
    assert bar(0.0, 3).plain == "░░░"
    assert compact(9999) == "9999" and compact(12_345) == "12.3k" and compact(2_500_000) == "2.5M"
    text = safe("[b]x[/b] \x1b[31mred\x1b[0m", 50)
    assert text.plain == "[b]x[/b] red" and not text.spans
    assert fit(safe("abcdefghij"), 5).plain == "abcd…"


def test_a_policy_that_paused_is_not_drawn_across_the_gap(data_dir: Path) -> None:
    db = Database(data_dir / "agent.sqlite3")
    try:
        for i in range(1, 16):
            policy = "hrm" if 6 <= i <= 10 else "teacher"
            db.record_iteration(i, float(i), 3, policy, "idle", float(i), 0, True)
        curves = reward_series(db, policy_window=1, max_points=100)
        assert curves.teacher.runs() == [((1.0, 2.0, 3.0, 4.0, 5.0), (1.0, 2.0, 3.0, 4.0, 5.0)),
                                         ((11.0, 12.0, 13.0, 14.0, 15.0),
                                          (11.0, 12.0, 13.0, 14.0, 15.0))]
        assert len(curves.hrm.runs()) == 1
    finally:
        db.close()


def test_rl_fallback_words_and_cooldown_bar() -> None:
    from aegis_tui.agent.comparison import Stretch
    from aegis_tui.agent.metrics_view import MetricsView, RewardCurves
    from aegis_tui.agent.phases import PhaseState

    config = sim_config(fallback_cooldown=500)
    model = DashboardModel(config)
    model.apply([_state(700, examples=500, phase=3, hrm=False)])
    state = PhaseState(phase=3, hrm_active=False, hrm_retry_at=900, fallen_back_at=400)
    state.set_reference(Stretch("teacher", 0.9, 1.0, 200, 201, 400), "sim (seed 0)")
    model.set_metrics(MetricsView(curves=RewardCurves(), epochs=(), phase_state=state,
                                  rolling={"teacher": 1.0, "hrm": 0.1},
                                  rolling_counts={"teacher": 200, "hrm": 200}))
    progress = model.phase_progress()
    assert progress.words == (
        "teacher deciding (after a fall-back): measured afresh until iteration 900; "
        "rolling reward HRM +0.10 (its last 200) vs teacher +0.90 (200 decisions, "
        "iterations 201-400)")
    assert (progress.progress, progress.total) == (300, 500)


def test_recent_log_lines_keeps_messages_and_drops_the_rest(tmp_path: Path) -> None:
    from aegis_tui.ui.log_tail import recent_log_lines

    log = tmp_path / "aegis.log"
    log.write_text("2026-01-01 10:00:00,001 INFO world: sim (seed 0)\n"
                   "2026-01-01 10:00:00,002 ERROR iteration 3 failed:\n"
                   "Traceback (most recent call last):\n"
                   "2026-01-01 10:00:00,003 INFO [iter 4] idle by rules: -0.10 idle\n"
                   "2026-01-01 10:00:00,004 WARNING odd \x1b[31m[b]x[/b]\n", encoding="utf-8")
    assert recent_log_lines(log) == [("info", "world: sim (seed 0)"),
                                     ("error", "iteration 3 failed:"),
                                     ("iteration", "[iter 4] idle by rules: -0.10 idle"),
                                     ("warning", "odd [b]x[/b]")]
    assert recent_log_lines(log, limit=1) == [("warning", "odd [b]x[/b]")]
    assert recent_log_lines(tmp_path / "missing.log") == []
