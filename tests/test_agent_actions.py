"""Each action's real effects and rewards, and delayed credit reaching its decision."""

from __future__ import annotations

import pytest

from aegis_tui.actions import Action
from aegis_tui.agent.resolutions import answer_question, review_proposal
from aegis_tui.storage.database import Database
from aegis_tui.storage.records import ANSWERED, APPROVED, DUPLICATE, EXPIRED, PENDING
from tests.fakes import ScriptedWorld, make_runtime


def act(runtime, action: Action, iteration: int | None = None):  # type: ignore[no-untyped-def]
    agent = runtime.agent
    i = iteration if iteration is not None else agent.iteration + 1
    agent.world.advance(i)
    agent.executor.settle(i)
    snap = agent.state.snapshot(i)
    result = agent.executor.execute(action, snap, i)
    agent.state.record_action(action.value)
    agent.state.counters.iteration = i
    agent.db.record_iteration(i, 0.0, 1, "teacher", action.value, result.reward,
                              result.knowledge_gained, result.success)
    return result


def test_search_pays_only_for_new_knowledge_and_feeds_curiosity(data_dir):
    world = ScriptedWorld(results_per_query=3)
    with make_runtime(data_dir, world=world) as rt:
        first = act(rt, Action.WEB_SEARCH)
        assert first.success and first.knowledge_gained == 3 and first.reward == 3.0
        # The first query was a goal (the queue was empty); its results named new topics.
        assert world.queries[0] == rt.config.goals[0]
        topics = rt.agent.state.snapshot(2).curiosity
        assert topics, "search results must feed the curiosity queue"
        # The next search takes the top topic and lowers its priority afterwards.
        top = topics[0]
        second = act(rt, Action.WEB_SEARCH)
        assert world.queries[1] == top.topic
        assert second.knowledge_gained == 3
        after = {t.topic: t for t in rt.agent.state.snapshot(3).curiosity}
        assert after[top.topic].times_searched == 1
        # Just searched: its effective priority drops and recovers over the next iterations,
        # to a little less than before (curiosity partly satisfied).
        assert after[top.topic].priority < top.priority / 10
        later = {t.topic: t for t in rt.agent.state.snapshot(2 + 100).curiosity}
        assert later[top.topic].priority == pytest.approx(top.priority * 0.85, abs=1e-3)
        assert rt.agent.db.knowledge_count() == 6


def test_repeated_results_are_deduplicated(data_dir):
    world = ScriptedWorld(results_per_query=2)
    with make_runtime(data_dir, world=world, goals=["only one goal about sorting"]) as rt:
        rt.agent.db.trim_topics(0)
        assert act(rt, Action.WEB_SEARCH).knowledge_gained == 2
        rt.agent.db.trim_topics(0)  # force the same goal query again
        again = act(rt, Action.WEB_SEARCH)
        assert again.success and again.knowledge_gained == 0 and again.reward == 0.0


def test_failed_search_is_penalised_not_raised(data_dir):
    world = ScriptedWorld(failing={"*"})
    with make_runtime(data_dir, world=world) as rt:
        result = act(rt, Action.WEB_SEARCH)
        assert not result.success
        assert result.reward == rt.config.rewards.search_failed
        assert "scripted failure" in result.detail
        assert rt.agent.state.counters.failed_searches == 1
        assert rt.agent.state.counters.last_search_gain == -1


def test_goal_progress_and_completion(data_dir):
    world = ScriptedWorld(results_per_query=2)
    goal = "Learn about widget frobnication"
    with make_runtime(data_dir, world=world, goals=[goal], goal_complete_at=4) as rt:
        rt.agent.db.trim_topics(0)
        act(rt, Action.WEB_SEARCH)
        goals = rt.agent.db.goals()
        assert not goals[0].completed and goals[0].progress(4) == 0.5


def test_goal_completion(data_dir):
    world = ScriptedWorld(results_per_query=5)
    goal = "Learn about widget frobnication"
    with make_runtime(data_dir, world=world, goals=[goal], goal_complete_at=4) as rt:
        rt.agent.db.trim_topics(0)
        result = act(rt, Action.WEB_SEARCH)
        assert result.knowledge_gained == 5
        goals = rt.agent.db.goals()
        assert goals[0].completed, "5 matching items complete a goal that needs 4"
        assert rt.agent.state.counters.goals_completed == 1


def test_ask_human_answer_is_credited_to_the_asking_decision(data_dir):
    world = ScriptedWorld()
    with make_runtime(data_dir, world=world) as rt:
        asked = act(rt, Action.ASK_HUMAN)
        assert asked.pending and asked.reward == 0.0
        qid, _text, _topic, iteration = world.asked[0]
        assert rt.agent.db.question(qid).status == PENDING
        world.answer_next(qid, "Reference counting frees most objects [b]at once[/b]")
        before = rt.agent.db.knowledge_count()
        act(rt, Action.IDLE)
        q = rt.agent.db.question(qid)
        assert q.status == ANSWERED and q.credited and q.reward == 0.5
        assert rt.agent.db.knowledge_count() == before + 1
        row = rt.agent.db.recent_metrics(10)[0]
        assert row["iteration"] == iteration and row["delayed_reward"] == 0.5
        assert rt.agent.state.counters.questions_answered == 1


def test_answer_from_another_connection_reaches_the_agent(data_dir):
    with make_runtime(data_dir) as rt:
        act(rt, Action.ASK_HUMAN)
        qid = rt.agent.db.questions(PENDING)[0].id
        other = Database(rt.paths.database)  # as `aegis-tui answer` in another terminal
        answer_question(other, qid, "Use the gc module to inspect cycles.")
        other.close()
        act(rt, Action.IDLE)
        assert rt.agent.db.question(qid).credited


def test_unanswered_questions_expire(data_dir):
    with make_runtime(data_dir, question_expiry_s=5) as rt:
        act(rt, Action.ASK_HUMAN, iteration=1)
        qid = rt.agent.db.questions(PENDING)[0].id
        act(rt, Action.IDLE, iteration=3)
        assert rt.agent.db.question(qid).status == PENDING
        act(rt, Action.IDLE, iteration=7)
        q = rt.agent.db.question(qid)
        assert q.status == EXPIRED and q.credited and q.reward == 0.0


def test_proposal_pending_approved_applied_and_duplicate(data_dir):
    world = ScriptedWorld()
    with make_runtime(data_dir, world=world) as rt:
        act(rt, Action.WEB_SEARCH)
        act(rt, Action.WEB_SEARCH)  # searched topics make an add_goal proposal possible
        proposed = act(rt, Action.PROPOSE_IMPROVEMENT)
        assert proposed.success and proposed.pending and proposed.reward == 1.0
        pid, kind, _text, iteration, _ = world.proposed[0]
        assert kind == "add_goal"
        goals_before = len(rt.agent.db.goals())
        world.review_next(pid, approved=True)
        act(rt, Action.IDLE)
        p = rt.agent.db.proposal(pid)
        assert p.status == APPROVED and p.credited and p.reward == 10.0
        assert len(rt.agent.db.goals()) == goals_before + 1, "an approved goal is applied"
        assert rt.agent.state.counters.improvements_approved == 1
        rows = {r["iteration"]: r for r in rt.agent.db.recent_metrics(20)}
        assert rows[iteration]["delayed_reward"] == 10.0
        # Re-proposing the same text is a duplicate, scored as such and never reviewed.
        rt.agent.db.add_proposal("add_goal", {"text": "x"}, "Add goal: again",
                                 "add goal again", PENDING, 99, 0.0)
        from aegis_tui.agent.proposals import ProposalDraft

        draft = ProposalDraft("add_goal", {"text": "again"}, "Add goal: again")
        assert rt.agent.db.proposal_exists(draft.norm)


def test_duplicate_proposal_is_penalised(data_dir):
    world = ScriptedWorld()
    with make_runtime(data_dir, world=world, goals=["a single goal"]) as rt:
        first = act(rt, Action.PROPOSE_IMPROVEMENT)
        second = act(rt, Action.PROPOSE_IMPROVEMENT)
        assert first.reward == 1.0
        assert not second.success and second.reward == rt.config.rewards.duplicate_proposal
        statuses = [p.status for p in rt.agent.db.proposals()]
        assert DUPLICATE in statuses
        assert len(world.proposed) == 1, "a duplicate is never sent for review"


def test_rejected_and_invalid_proposals_pay_nothing(data_dir):
    with make_runtime(data_dir) as rt:
        db = rt.agent.db
        bad = db.add_proposal("set_setting", {"key": "think_interval", "value": 0}, "bad",
                              "bad", PENDING, 0, 0.0)
        rejected = db.add_proposal("add_goal", {"text": "x y"}, "Add goal: x y", "x y",
                                   PENDING, 0, 0.0)
        review_proposal(db, bad, True)
        review_proposal(db, rejected, False)
        act(rt, Action.IDLE)
        assert db.proposal(bad).reward == 0.0 and "not applied" in db.proposal(bad).applied
        assert db.proposal(rejected).reward == 0.0
        assert rt.agent.state.settings["results_per_search"] == rt.config.results_per_search


def test_idle_costs_a_little(data_dir):
    with make_runtime(data_dir) as rt:
        result = act(rt, Action.IDLE)
        assert result.reward == rt.config.rewards.idle == -0.1


def test_trimmed_topic_rediscovered_keeps_its_history(data_dir):
    with make_runtime(data_dir) as rt:
        db = rt.agent.db
        db.upsert_topic("os stat", "os stat", 0.9, "search: os", 0.0)
        db.mark_searched("os stat", 5)
        db.mark_searched("os stat", 9)
        db.upsert_topic("other", "other", 0.8, "search: x", 0.0)
        assert db.trim_topics(1, iteration=10, recovery=100) == 1
        assert [t.topic for t in db.topics()] == ["other"]
        # Found again in later results: back in the queue, but not as a fresh topic.
        assert db.upsert_topic("os stat", "os stat", 1.0, "search: y", 0.0) is True
        again = {t.topic: t for t in db.topics(iteration=11, recovery=100)}
        assert again["os stat"].times_searched == 2
        assert again["os stat"].priority < 0.1, "recently searched: low effective priority"


def test_drafter_skips_ideas_already_proposed_and_counts_fresh_ones(data_dir):
    world = ScriptedWorld()
    with make_runtime(data_dir, world=world) as rt:
        act(rt, Action.WEB_SEARCH)
        act(rt, Action.WEB_SEARCH)
        before = rt.agent.state.snapshot(3)
        assert before.fresh_ideas >= 1
        for i in range(4, 10):
            fresh = rt.agent.state.snapshot(i).fresh_ideas
            result = act(rt, Action.PROPOSE_IMPROVEMENT, iteration=i)
            # A new idea while any is left; a duplicate only once they have run out.
            assert result.success == (fresh > 0)
        texts = [p.text for p in rt.agent.db.proposals() if p.status != "duplicate"]
        assert len(set(texts)) == len(texts) >= 1


def test_rules_teacher_only_proposes_with_something_new_to_say():
    from aegis_tui.policy.rules_teacher import rule_action
    from aegis_tui.snapshot import StateSnapshot

    ready = StateSnapshot(iteration=50, iterations_since_proposal=30,
                          knowledge_since_proposal=9, fresh_ideas=2,
                          recent_actions=("web_search",))
    assert rule_action(ready) is Action.PROPOSE_IMPROVEMENT
    from dataclasses import replace

    assert rule_action(replace(ready, fresh_ideas=0)) is not Action.PROPOSE_IMPROVEMENT
