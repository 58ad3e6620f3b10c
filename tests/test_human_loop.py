"""A person's fair window and late answers, at the agent and database level.

A question on someone's screen is held: it does not expire however fast the world's clock
runs, until it is released or the hold (wall-clock seconds) runs out. An answer that still
comes too late is kept as knowledge, credits no reward, and never disturbs the credit the
asking decision already got (exactly one credit per question).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aegis_tui.agent.questions import AnswerRefused
from aegis_tui.agent.resolutions import (
    ResolutionError,
    answer_or_keep,
    expire_overdue,
    held_questions,
    hold_question,
    release_question,
)
from aegis_tui.cli import main
from aegis_tui.events import Notice, QuestionResolved
from aegis_tui.storage.database import Database
from aegis_tui.storage.records import ANSWERED, EXPIRED, LATE, PENDING
from tests.fakes import ScriptedWorld, make_runtime


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "agent.sqlite3")
    yield database  # type: ignore[misc]
    database.close()


def test_a_held_question_does_not_expire_until_released(db: Database) -> None:
    a = db.add_question("What about regex?", "regex", 1, now=0.0)
    b = db.add_question("What about json?", "json", 2, now=0.0)
    hold_question(db, a, 60.0)
    assert held_questions(db) == {a}
    assert expire_overdue(db, 1000.0, 10.0, 10.0, held=held_questions(db)) == 1
    assert db.question(a).status == PENDING  # type: ignore[union-attr]
    assert db.question(b).status == EXPIRED  # type: ignore[union-attr]
    release_question(db, a)
    assert held_questions(db) == set()
    assert expire_overdue(db, 1000.0, 10.0, 10.0, held=held_questions(db)) == 1
    assert db.question(a).status == EXPIRED  # type: ignore[union-attr]


def test_a_hold_runs_out_in_wall_clock_time(db: Database) -> None:
    a = db.add_question("What about regex?", "regex", 1, now=0.0)
    start = time.time()
    hold_question(db, a, 5.0, now=start)
    assert held_questions(db, now=start + 4.9) == {a}
    assert held_questions(db, now=start + 5.1) == set()
    # Expired holds are dropped when the next one is written; a foreign value is ignored.
    db.set_meta("questions_on_screen", {"x": "y", "7": "soon"})
    assert held_questions(db) == set()


def test_answer_or_keep_answers_a_pending_question_and_refuses_bad_text(db: Database) -> None:
    a = db.add_question("What about regex?", "regex", 1, now=0.0)
    with pytest.raises(AnswerRefused):
        answer_or_keep(db, a, "   ")
    assert answer_or_keep(db, a, "use re.compile") == (ANSWERED, "use re.compile")
    with pytest.raises(ResolutionError, match="already answered"):
        answer_or_keep(db, a, "again")
    with pytest.raises(ResolutionError, match="no question #99"):
        answer_or_keep(db, 99, "hello")


def _settle(runtime, iteration: int):  # type: ignore[no-untyped-def]
    return runtime.agent.executor.settle(iteration)


def _ask(runtime, iteration: int) -> int:  # type: ignore[no-untyped-def]
    db = runtime.agent.db
    db.record_iteration(iteration, 0.0, 1, "teacher", "ask_human", 0.0, 0, True)
    return db.add_question("What matters most about regex?", "regex", iteration,
                           runtime.world.now())


def test_a_late_answer_before_the_expiry_was_credited_counts_once(data_dir: Path) -> None:
    world = ScriptedWorld()
    with make_runtime(data_dir, world=world, question_expiry_s=5) as rt:
        qid = _ask(rt, 1)
        world.clock += 100
        db = rt.agent.db
        expire_overdue(db, world.now(), 5, 1800)  # expired, not yet credited
        assert answer_or_keep(db, qid, "Groups capture text")[0] == LATE
        assert db.question(qid).status == EXPIRED  # type: ignore[union-attr]
        credits, events = _settle(rt, 2)
        assert [(c.iteration, c.reward) for c in credits] == [(1, 0.0)]
        assert any(isinstance(e, QuestionResolved) and e.status == EXPIRED for e in events)
        assert any(isinstance(e, Notice) and "kept as knowledge" in e.message
                   for e in events)
        assert db.metrics_at(1)["delayed_reward"] == 0.0
        texts = [k.text for k in db.latest_knowledge(5)]
        assert "Groups capture text" in texts
        assert _settle(rt, 3) == ([], [])  # nothing twice


def test_a_late_answer_after_the_expiry_was_credited_adds_no_second_credit(
        data_dir: Path) -> None:
    world = ScriptedWorld()
    with make_runtime(data_dir, world=world, question_expiry_s=5) as rt:
        qid = _ask(rt, 1)
        world.clock += 100
        credits, _ = _settle(rt, 2)  # expires and credits the expiry (0)
        assert [(c.iteration, c.reward) for c in credits] == [(1, 0.0)]
        db = rt.agent.db
        questions_answered = rt.agent.state.counters.questions_answered
        assert answer_or_keep(db, qid, "Groups capture text")[0] == LATE
        assert db.question(qid).status == LATE  # type: ignore[union-attr]
        credits, events = _settle(rt, 3)
        assert credits == []  # the asking decision was credited once, with the expiry
        assert not any(isinstance(e, QuestionResolved) for e in events)
        assert any(isinstance(e, Notice) and "kept as knowledge" in e.message
                   for e in events)
        assert "Groups capture text" in [k.text for k in db.latest_knowledge(5)]
        assert db.metrics_at(1)["delayed_reward"] == 0.0
        assert rt.agent.state.counters.questions_answered == questions_answered
        question = db.question(qid)
        assert question is not None and question.credited and question.reward == 0.0
        assert _settle(rt, 4) == ([], [])
        with pytest.raises(ResolutionError, match="already late"):
            answer_or_keep(db, qid, "another try")


def test_the_agent_does_not_expire_a_held_question(data_dir: Path) -> None:
    world = ScriptedWorld()
    with make_runtime(data_dir, world=world, question_expiry_s=5) as rt:
        held, other = _ask(rt, 1), _ask(rt, 2)
        hold_question(rt.agent.db, held, 60)
        world.clock += 100
        _settle(rt, 3)
        db = rt.agent.db
        assert db.question(held).status == PENDING  # type: ignore[union-attr]
        assert db.question(other).status == EXPIRED  # type: ignore[union-attr]


def test_cli_answer_keeps_a_late_answer_and_says_so(data_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    world = ScriptedWorld()
    with make_runtime(data_dir, world=world, question_expiry_s=5) as rt:
        qid = _ask(rt, 1)
        world.clock += 100
        _settle(rt, 2)
    capsys.readouterr()
    assert main(["answer", str(qid), "Groups capture text", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert f"question #{qid}: it had expired, so the answer is kept as knowledge" in out
    db = Database(data_dir / "agent.sqlite3")
    try:
        assert db.question(qid).status == LATE  # type: ignore[union-attr]
    finally:
        db.close()
