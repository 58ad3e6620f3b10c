"""The sim world: determinism, diminishing returns, rate limits, the human and the reviewer."""

from __future__ import annotations

import dataclasses

import pytest

from aegis_tui.agent.topics import keywords, matches_goal
from aegis_tui.config import DEFAULT_GOALS, Config
from aegis_tui.world.sim import SIM_EPOCH, THEMES, SimParams, SimWorld

QUIET = SimParams(base_failure_rate=0.0)  # no random network errors: only the rate limit


def _script(world: SimWorld) -> list[object]:
    """A fixed sequence of calls; returns everything the world said."""
    out: list[object] = []
    queries = [DEFAULT_GOALS[0], "event loop", "json", "regular expressions", "Learn Rust"]
    knowledge = 0
    for i in range(1, 121):
        world.advance(i)
        resolved = world.poll(i)
        out.append((i, resolved.answers, resolved.reviews))
        if i % 3 == 0:
            response = world.search(queries[i % len(queries)], 5)
            knowledge += len(response.results)
            out.append(response)
        elif i % 7 == 0:
            world.question_asked(i, "What about coroutines?", "coroutines", i)
        elif i % 11 == 0:
            world.proposal_made(i, "setting", "raise results_per_search", i, knowledge)
    return out


def test_same_seed_same_outputs_different_seed_different() -> None:
    a, b, c = (SimWorld(Config(), seed=s) for s in (3, 3, 4))
    run_a, run_b, run_c = _script(a), _script(b), _script(c)
    assert run_a == run_b
    assert run_a != run_c
    polled = [x for x in run_a if isinstance(x, tuple)]
    assert any(answers for _, answers, _ in polled)  # the script exercises every part
    assert any(reviews for _, _, reviews in polled)


def test_graph_depends_on_seed_but_covers_every_theme() -> None:
    a, b = SimWorld(Config(), seed=1), SimWorld(Config(), seed=2)
    assert set(a.graph) == set(b.graph)
    assert [t.related for t in a.graph.values()] != [t.related for t in b.graph.values()]
    for theme, (_, names) in THEMES.items():
        assert all(a.graph[n].theme == theme for n in names)
    for topic in a.graph.values():
        graph_links = [r for r in topic.related if r in a.graph]
        subtopics = [r for r in topic.related if r not in a.graph]
        assert QUIET.related_min <= len(graph_links) <= QUIET.related_max
        assert len(subtopics) == QUIET.subtopic_links
        assert all(s.startswith(topic.name + " ") for s in subtopics)
        assert topic.name not in topic.related
        assert QUIET.pool_min <= topic.pool <= QUIET.pool_max


def test_clock_is_virtual() -> None:
    world = SimWorld(Config(), seed=0)
    world.advance(0)
    assert world.now() == SIM_EPOCH
    world.advance(42)
    assert world.now() == SIM_EPOCH + 42


def test_goal_text_maps_to_relevant_topics_and_results_match_goal() -> None:
    world = SimWorld(Config(), seed=5, params=QUIET)
    expected = ["garbage collection", "event loop", "regular expressions", "json"]
    total = 0
    for i, (goal, topic) in enumerate(zip(DEFAULT_GOALS, expected, strict=True)):
        targets = world.topic_for(goal)
        assert targets[0][0].name == topic
        world.advance(10 * i)
        response = world.search(goal, 5)
        assert response.ok and len(response.results) == 5
        hits = sum(matches_goal(keywords(goal), f"{r.title} {r.body}") for r in response.results)
        assert hits >= 1
        total += hits
    # Items mention their theme's goal words with probability 0.6: about 12 of 20 expected.
    assert total >= 9


def test_unknown_query_gets_a_stable_adhoc_topic() -> None:
    a, b = SimWorld(Config(), seed=1, params=QUIET), SimWorld(Config(), seed=1, params=QUIET)
    ta, tb = a.topic_for("Learn Zig comptime"), b.topic_for("Learn Zig comptime")
    assert ta[0][0] == tb[0][0]
    assert ta[0][0].theme is None and ta[0][0].name == "zig comptime"
    assert a.topic_for("the and of") == []
    assert not a.search("the and of", 5).ok


def test_repeated_topic_gives_diminishing_new_items() -> None:
    fixed_pools = dataclasses.replace(QUIET, publish_every_min=0, publish_every_max=0)
    world = SimWorld(Config(), seed=7, params=fixed_pools)
    pool = world.graph["coroutines"].pool
    seen: set[str] = set()
    gains = []
    for i in range(12):
        world.advance(10 * i)  # well spaced: never rate limited
        response = world.search("coroutines", 5)
        assert response.ok
        urls = [r.url for r in response.results]
        assert len(set(urls)) == len(urls)  # distinct items within one response
        assert all(u.startswith("sim://coroutines/") for u in urls)
        gains.append(len(set(urls) - seen))
        seen.update(urls)
    assert gains[0] == min(5, pool)
    assert sum(gains[6:]) < sum(gains[:6])
    assert len(seen) <= pool


def test_subtopics_are_real_topics_and_the_space_keeps_growing() -> None:
    world = SimWorld(Config(), seed=3, params=QUIET)
    sub = next(r for r in world.graph["json"].related if r not in world.graph)
    topic = world.topic_for(sub)[0][0]
    assert topic.name == sub and topic.theme == "serialization"
    results = world.search(sub, 5).results
    assert results and all(r.url.startswith(f"sim://{sub.replace(' ', '-')}/") for r in results)
    deeper = [r for r in topic.related if r.startswith(sub + " ")]
    assert deeper, "a first-level subtopic names second-level ones"
    assert world.topic_for(deeper[0])[0][0].name == deeper[0]
    # Same name, same topic: a restart (a new world) finds the same pool.
    again = SimWorld(Config(), seed=3, params=QUIET).topic_for(sub)[0][0]
    assert again == topic


def test_new_material_keeps_a_revisited_topic_paying() -> None:
    world = SimWorld(Config(), seed=7, params=QUIET)
    topic = world.graph["coroutines"]
    assert topic.publish_every > 0
    seen: set[str] = set()
    for i in range(30):  # exhaust what is there now
        world.advance(i * 3)
        seen.update(r.url for r in world.search("coroutines", 5).results)
    world.advance(90 + topic.publish_every * topic.pool)  # a whole pool's worth later
    fresh = {r.url for r in world.search("coroutines", 5).results} - seen
    assert len(fresh) == 5, "after a long pause a topic has new items again"


def test_results_carry_related_topics() -> None:
    world = SimWorld(Config(), seed=2, params=QUIET)
    response = world.search("asyncio", 5)
    topic = world.graph["asyncio"]
    assert response.ok
    for result in response.results:
        index = int(result.url.rsplit("/", 1)[1]) - 1
        allowed = set(topic.related) | {world.emerging(topic, index)}
        assert result.topics and set(result.topics) <= allowed
        assert "asyncio" in result.title.lower() and "asyncio" in result.body.lower()


def test_later_material_names_topics_earlier_material_never_named() -> None:
    world = SimWorld(Config(), seed=4, params=QUIET)
    topic = world.graph["json"]
    names = [world.emerging(topic, i) for i in range(0, 600, QUIET.emerge_every)]
    assert all(n and n.startswith("json ") for n in names)
    assert len(set(names[:20])) == 20  # a new one each time, for a long while
    # Each one is a real topic that renews in turn (its own items name narrower ones).
    subs = [world.topic_for(n)[0][0] for n in names]
    assert all(t.name == n and t.theme == "serialization"
               for t, n in zip(subs, names, strict=True))
    sub = next(t for t in subs if len(t.aspects) == 1)
    deeper = world.emerging(sub, 0)
    assert deeper is not None and deeper.startswith(sub.name + " ")
    assert world.topic_for(deeper)[0][0].name == deeper
    # As narrow as it gets: siblings emerge instead, so the walk never ends.
    assert world.emerging(world.topic_for(deeper)[0][0], 0) not in (None, deeper)
    # Searching a topic over time reveals more and more different topics.
    seen_early: set[str] = set()
    seen_late: set[str] = set()
    for i in range(40):
        world.advance(i * 7)
        seen_early.update(t for r in world.search("json", 5).results for t in r.topics)
    for i in range(40):
        world.advance(20_000 + i * 7)
        seen_late.update(t for r in world.search("json", 5).results for t in r.topics)
    assert seen_late - seen_early, "new material brings up new topics"


def test_without_emergence_hints_come_from_the_related_list_only() -> None:
    params = SimParams(base_failure_rate=0.0, emerge_every=0)
    world = SimWorld(Config(), seed=2, params=params)
    related = set(world.graph["asyncio"].related)
    for result in world.search("asyncio", 5).results:
        assert result.topics and set(result.topics) <= related


def _failures(world: SimWorld, iterations: list[int]) -> int:
    failed = 0
    for i in iterations:
        world.advance(i)
        failed += not world.search("json", 5).ok
    return failed


def test_bursts_hit_the_rate_limit_spaced_searches_do_not() -> None:
    burst = _failures(SimWorld(Config(), seed=1, params=QUIET), list(range(1, 41)))
    spaced = _failures(SimWorld(Config(), seed=1, params=QUIET), list(range(2, 82, 2)))
    assert spaced == 0
    assert burst >= 25
    strict = dataclasses.replace(QUIET, rate_limited_failure=1.0)
    world = SimWorld(Config(), seed=1, params=strict)
    outcomes = []
    for i in range(1, 7):
        world.advance(i)
        outcomes.append(world.search("json", 5))
    assert [r.ok for r in outcomes] == [True, True, True, True, False, False]
    assert "rate limited" in outcomes[4].error


def test_base_failure_rate_applies() -> None:
    world = SimWorld(Config(), seed=1, params=SimParams(base_failure_rate=1.0))
    world.advance(1)
    response = world.search("json", 5)
    assert not response.ok and response.error


def test_human_answers_only_when_available() -> None:
    params = dataclasses.replace(QUIET, answer_prob_available=1.0, answer_prob_away=0.0)
    world = SimWorld(Config(), seed=9, params=params)
    due: dict[int, int] = {}
    asked_available = set()
    for i in range(160):
        world.advance(i)
        if world.human_available(i):
            asked_available.add(i)
        world.question_asked(i, f"q{i}", "event loop", i)
        for answer in world.poll(i).answers:
            due[answer.question_id] = i
    for i in range(160, 200):
        for answer in world.poll(i).answers:
            due[answer.question_id] = i
    assert 0.3 < len(asked_available) / 160 < 0.5
    assert set(due) == asked_available
    for qid, when in due.items():
        assert params.answer_delay_min <= when - qid <= params.answer_delay_max


def test_questions_asked_away_wait_for_the_next_window() -> None:
    params = dataclasses.replace(QUIET, answer_prob_available=0.0, answer_prob_away=1.0)
    world = SimWorld(Config(), seed=9, params=params)
    away = [i for i in range(80) if not world.human_available(i)]
    for i in away:
        world.question_asked(i, "q", "json", i)
    answered = {a.question_id: 300 for a in world.poll(300).answers}
    assert set(answered) == set(away)
    world2 = SimWorld(Config(), seed=9, params=params)
    first = away[0]
    world2.question_asked(first, "q", "json", first)
    start = world2.next_window_start(first)
    assert world2.human_available(start) and not world2.human_available(start - 1)
    assert not world2.poll(start + params.answer_delay_min - 1).answers
    assert world2.poll(start + params.answer_delay_max).answers


def test_answer_mentions_topic_and_a_related_topic() -> None:
    params = dataclasses.replace(QUIET, answer_prob_available=1.0, answer_prob_away=1.0)
    world = SimWorld(Config(), seed=4, params=params)
    world.question_asked(1, "What should I know about json?", "json", 0)
    (answer,) = world.poll(10_000).answers
    assert answer.question_id == 1
    assert "json" in answer.text.lower()
    assert any(r in answer.text for r in world.graph["json"].related)


def test_reviewer_approval_depends_on_fresh_knowledge() -> None:
    world = SimWorld(Config(), seed=11)
    fresh_approved = stale_approved = 0
    knowledge = 0
    trials = 200
    for pid in range(trials):
        knowledge += 10
        world.proposal_made(2 * pid, "setting", "x", 0, knowledge)  # 10 new items
        world.proposal_made(2 * pid + 1, "setting", "x", 0, knowledge)  # none since
    reviews = world.poll(1000).reviews
    assert len(reviews) == 2 * trials
    for review in reviews:
        if review.proposal_id % 2 == 0:
            fresh_approved += review.approved
        else:
            stale_approved += review.approved
    assert fresh_approved / trials > 0.7
    assert stale_approved / trials < 0.25


def test_review_arrives_after_a_delay() -> None:
    world = SimWorld(Config(), seed=1)
    world.proposal_made(1, "setting", "x", 100, 50)
    assert not world.poll(100 + QUIET.review_delay_min - 1).reviews
    reviews = world.poll(100 + QUIET.review_delay_max).reviews
    assert [r.proposal_id for r in reviews] == [1]
    assert world.pending() == 0


@pytest.mark.parametrize(("query", "expected"), [
    ("", "empty query"), ("   ", "empty query"), ("\"", "no results"), ("NEAR(", "no results"),
    ("x" * 10_000, "no results"), ("\x00\x1b[2J", "results")])
def test_odd_queries_get_an_answer_not_an_exception(query: str, expected: str) -> None:
    response = SimWorld(Config(), seed=0).search(query, 5)
    if expected == "results":  # the control characters go, "2J" is a word like any other
        assert response.ok and response.results and not response.error
    else:
        assert not response.ok and not response.results and response.error == expected


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        SimParams(pool_min=10, pool_max=5)
    with pytest.raises(ValueError):
        SimParams(approve_prob_fresh=1.5)
