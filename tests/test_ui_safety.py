"""Outside text is shown literally everywhere: no markup, no links, no actions, no escapes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rich.segment import Segment

from aegis_tui.events import (
    IterationDone,
    KnowledgeAdded,
    Notice,
    ProposalMade,
    QuestionAsked,
    StateChanged,
)
from aegis_tui.paths import DataPaths
from aegis_tui.snapshot import GoalView, StateSnapshot, TopicView
from aegis_tui.storage.database import Database
from aegis_tui.storage.records import PENDING, KnowledgeItem
from aegis_tui.ui.app import AegisApp
from aegis_tui.ui.harness import (
    copy_data_dir,
    prepare_data_dir,
    sim_config,
    wait_painted,
    wait_ready,
    wait_until,
)
from aegis_tui.ui.screens.proposal import ProposalScreen
from aegis_tui.ui.screens.question import QuestionScreen
from aegis_tui.ui.screens.report import ReportScreen

MARKUP = ("[link=x]y[/]", "[@click=app.quit]q[/]", "[b]", "[red]")
ANSI = "\x1b[31m"


def hostile(tag: str) -> str:
    return f"{tag} {' '.join(MARKUP)} {ANSI}after-ansi"


@pytest.fixture
def paths(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> DataPaths:
    root = tmp_path_factory.mktemp("prepared") / "data"
    prepare_data_dir(root, 30)
    return copy_data_dir(root, tmp_path / "data")


def screen_lines(app: AegisApp) -> tuple[list[str], list[Segment]]:
    strips = app.screen._compositor.render_strips()
    segments = [segment for strip in strips for segment in strip]
    return ["".join(s.text for s in strip) for strip in strips], segments


def assert_literal(app: AegisApp, tags: list[str]) -> list[str]:
    lines, segments = screen_lines(app)
    for segment in segments:
        style = segment.style
        assert "\x1b" not in segment.text
        if style is not None:
            assert not style.link, f"a link was created: {segment!r}"
            assert "@click" not in (style.meta or {}), f"an action was created: {segment!r}"
    for tag in tags:
        line = next((ln for ln in lines if tag in ln), None)
        assert line is not None, f"{tag} is not on screen"
        for markup in MARKUP:
            assert markup in line, f"{markup!r} is not shown literally next to {tag}"
        assert "after-ansi" in line and "[31m" not in line
    return lines


async def test_hostile_strings_in_every_pane_and_modal_stay_literal(paths: DataPaths) -> None:
    db = Database(paths.database)
    for q in db.questions(PENDING):  # ours must be the first (and only) one the modal shows
        db.resolve_question(q.id, "answered", "ok", time.time())
    qid = db.add_question(hostile("QTEXT"), "topic", 30, time.time())
    pid = db.add_proposal(hostile("PKIND"), {}, hostile("PTEXT"), "norm-x", PENDING, 30,
                          time.time())
    db.add_knowledge([("k-hostile", KnowledgeItem(topic="t", title=hostile("KREPORT"),
                                                  text="x", source="s", created_at=1e12,
                                                  iteration=30))])
    db.close()
    app = AegisApp(sim_config(), paths, start_paused=True)
    async with app.run_test(size=(220, 60), notifications=True) as pilot:
        await wait_ready(app)
        snapshot = StateSnapshot(
            iteration=31,
            goals=(GoalView(text=hostile("GOAL"), keywords=(), progress=0.5, completed=False),
                   GoalView(text=hostile("DONE"), keywords=(), progress=1.0, completed=True)),
            curiosity=(TopicView(topic=hostile("TOPIC"), priority=0.9, times_searched=1,
                                 provenance="x"),),
            curiosity_size=1, pending_questions=1, pending_proposals=1)
        for event in (
            StateChanged(snapshot=snapshot, examples=30, phase=1, hrm_active=False,
                         running=False, phase_title=hostile("TITLE"),
                         policy_name="[b]rules[/b]", world=f"[red]sim{ANSI}[/red]",
                         label_counts=(1, 1, 1, 1), threshold=1000),
            KnowledgeAdded(items=((hostile("KTITLE"), "s", "t"),
                                  ("short", "[link=file:///etc]src[/]", "t"))),
            Notice(hostile("NOTICE"), "error"),
            IterationDone(iteration=31, action="web_search", policy="teacher",
                          policy_name="rules", reward=1.0, success=True, knowledge_gained=1,
                          detail=hostile("DETAIL"), probs=(1.0, 0.0, 0.0, 0.0), phase=1),
            ProposalMade(proposal_id=pid, kind="add_goal", text=hostile("PMADE"),
                         duplicate=False),
            QuestionAsked(question_id=qid, text=hostile("QASKED")),
        ):
            app.bus.publish(event)
        await wait_until(lambda: app.model.iteration >= 31, what="the events")
        await wait_painted(app)
        lines = assert_literal(app, ["GOAL", "DONE", "TOPIC", "KTITLE", "NOTICE", "DETAIL",
                                     "PMADE"])
        text = "\n".join(lines)
        assert "[b]rules[/b]" in text and "[red]sim[/red]" in text
        assert "[link=file:///etc]src[/]" in text
        assert any("QASKED" in m and "[@click=app.quit]q[/]" in m
                   for m in (n.message for n in app._notifications))
        # Click right on the would-be action: nothing happens.
        row = next(i for i, ln in enumerate(lines) if "GOAL" in ln)
        await pilot.click(offset=(lines[row].index("[@click=app.quit]") + 18, row))
        await pilot.pause()
        assert app.is_running and not app._exit

        await pilot.press("a")
        await wait_until(lambda: isinstance(app.screen, QuestionScreen), what="question")
        assert_literal(app, ["QTEXT"])
        await pilot.press(*"[@click=app.quit]q[/] [b]")
        await pilot.press("enter")
        await wait_until(lambda: not isinstance(app.screen, QuestionScreen), what="answered")

        await pilot.press("r")
        await wait_until(lambda: isinstance(app.screen, ProposalScreen), what="proposal")
        assert_literal(app, ["PTEXT"])
        lines, _ = screen_lines(app)
        assert any("PKIND [link=x]y[/]" in ln for ln in lines)
        await pilot.press("l")
        await wait_until(lambda: not isinstance(app.screen, ProposalScreen), what="later")

        await pilot.press("s")
        await wait_until(lambda: isinstance(app.screen, ReportScreen) and app.screen.text,
                         what="reports")
        await pilot.pause(0.1)
        assert_literal(app, ["KREPORT"])
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running
    db = Database(paths.database)
    try:
        question = db.question(qid)
        assert question is not None and question.answer == "[@click=app.quit]q[/] [b]"
    finally:
        db.close()
