"""The HRM's input: fixed length, per-slot id ranges, exact thresholds, stable hashing."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from aegis_tui.policy import features
from aegis_tui.policy.features import (
    FEATURE_LEN,
    ORDINAL_RANGES,
    SLOT_NAMES,
    VOCAB_SIZE,
    action_mask,
    count_bucket,
    describe_count_bucket,
    featurize,
    featurize_batch,
    tokens_tensor,
    word_bucket,
)
from aegis_tui.snapshot import GoalView, StateSnapshot, TopicView


def _state(**kw: object) -> StateSnapshot:
    base = StateSnapshot(
        iteration=5,
        goals=(GoalView("Learn asyncio event loops", ("asyncio", "loops"), 0.2, False),),
        curiosity=(TopicView("garbage collection", 0.8, 1, "search"),),
        curiosity_size=3,
        recent_actions=("web_search", "idle"),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _slot(tokens: list[int], name: str) -> int:
    return tokens[SLOT_NAMES.index(name)]


def test_shape_and_vocabulary() -> None:
    tokens = featurize(_state())
    assert len(tokens) == FEATURE_LEN == len(SLOT_NAMES)
    assert 16 <= FEATURE_LEN <= 32
    assert all(0 <= t < VOCAB_SIZE for t in tokens)
    assert tokens[0] == features.POLICY_TOKEN


def test_slots_have_disjoint_ranges() -> None:
    # Every slot's ids lie in its own range: collect the ids each slot takes over many states.
    from aegis_tui.bench.synthetic_states import synthetic_examples

    seen: dict[int, set[int]] = {i: set() for i in range(FEATURE_LEN)}
    for ex in synthetic_examples(300, seed=4):
        for i, t in enumerate(featurize(ex.state)):
            seen[i].add(t)
    for i in range(FEATURE_LEN):
        for j in range(i + 1, FEATURE_LEN):
            assert not seen[i] & seen[j], (SLOT_NAMES[i], SLOT_NAMES[j])


def test_counts_exact_below_32_then_log_buckets() -> None:
    assert [count_bucket(n) for n in range(32)] == list(range(1, 33))
    assert count_bucket(-1) == 0
    assert count_bucket(32) == count_bucket(47) != count_bucket(48)
    assert count_bucket(10**12) == features.COUNT_IDS - 1
    assert describe_count_bucket(count_bucket(20)) == "20"
    assert describe_count_bucket(count_bucket(40)) == "32-47"
    buckets = [count_bucket(n) for n in range(0, 5000)]
    assert buckets == sorted(buckets)  # monotone: ordinal embeddings rely on it


@pytest.mark.parametrize(
    ("field", "below", "at"),
    [("iterations_since_proposal", 19, 20), ("knowledge_since_proposal", 2, 3),
     ("iterations_since_question", 11, 12)],
)
def test_teacher_thresholds_are_representable(field: str, below: int, at: int) -> None:
    a = featurize(_state(**{field: below}))
    b = featurize(_state(**{field: at}))
    assert _slot(a, field) != _slot(b, field)


def test_failed_search_has_its_own_token() -> None:
    failed = featurize(_state(last_search_gain=-1))
    nothing = featurize(_state(last_search_gain=0))
    assert _slot(failed, "last_search_gain") != _slot(nothing, "last_search_gain")


def test_recent_searches_and_failures_count_what_a_rate_limit_counts() -> None:
    from aegis_tui.policy.features import describe_features

    older = ("web_search",) * 5  # outside the last five: not counted
    recent = ("idle", "web_search", "ask_human", "web_search", "web_search")
    tokens = featurize(_state(recent_actions=older + recent, recent_failed_searches=2))
    rows = {r.slot: r.meaning for r in describe_features(tokens)}
    assert rows["recent_searches"] == "3 of the last 5 actions"
    assert rows["recent_failures"] == "2 of the last 5 searches failed"
    counts = {featurize(_state(recent_actions=("web_search",) * n))[
        SLOT_NAMES.index("recent_searches")] for n in range(6)}
    assert len(counts) == 6


def test_recent_actions_padded_oldest_first() -> None:
    tokens = featurize(_state(recent_actions=("ask_human",)))
    actions = tokens[SLOT_NAMES.index("action_0"):]
    assert len(actions) == 10
    assert len(set(actions[:9]) & set(featurize(_state(recent_actions=()))[-10:])) == 9
    longer = featurize(_state(recent_actions=("web_search",) * 9 + ("ask_human",)))
    assert longer[-1] == tokens[-1]  # the newest action is always the last slot


@pytest.mark.parametrize("pending", [0, 1, 3, 9])
def test_proposing_is_unavailable_only_without_a_fresh_idea(pending: int) -> None:
    for fresh in range(5):
        tokens = featurize(_state(fresh_ideas=fresh, pending_proposals=pending,
                                  pending_questions=pending))
        assert action_mask(tokens) == (True, True, fresh > 0, True), (fresh, pending)


def test_pending_and_rates() -> None:
    none = featurize(_state())
    asked = featurize(_state(questions_asked=4, questions_answered=1, pending_questions=2))
    assert _slot(none, "pending") != _slot(asked, "pending")
    assert _slot(none, "answer_rate") != _slot(asked, "answer_rate")


def test_words_hashed_stably_and_case_insensitively() -> None:
    a = featurize(_state(goals=(GoalView("x", ("Asyncio",), 0.0, False),)))
    b = featurize(_state(goals=(GoalView("y", ("asyncio",), 0.0, False),)))
    assert _slot(a, "goal_word_0") == _slot(b, "goal_word_0")
    # The same word hashes to the same bucket in a fresh interpreter (no salted hash()).
    code = "from aegis_tui.policy.features import word_bucket; print(word_bucket('asyncio'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert int(out.stdout) == word_bucket("asyncio")


def test_no_goals_or_topics_use_none_tokens() -> None:
    empty = featurize(StateSnapshot(iteration=0))
    full = featurize(_state())
    for name in ("goal_word_0", "goal_word_1", "topic_word_0"):
        assert _slot(empty, name) != _slot(full, name)
    # Completed goals are not "active".
    done = featurize(_state(goals=(GoalView("Learn x", ("x",), 1.0, True),)))
    assert _slot(done, "goal_word_0") == _slot(empty, "goal_word_0")


def test_hostile_text_is_fine() -> None:
    weird = _state(goals=(GoalView("\x1b[31m" + "ü" * 5000, ("\x00\x07",), 0.0, False),),
                   curiosity=(TopicView("🙂 " * 1000, 1.0, 0, "x"),))
    tokens = featurize(weird)
    assert len(tokens) == FEATURE_LEN and all(0 <= t < VOCAB_SIZE for t in tokens)


def test_deterministic_and_batched() -> None:
    states = [_state(iteration=i, iterations_since_proposal=i) for i in range(5)]
    batch = featurize_batch(states)
    assert batch.shape == (5, FEATURE_LEN)
    assert batch.tolist() == [featurize(s) for s in states]
    assert featurize_batch([]).shape == (0, FEATURE_LEN)
    assert tokens_tensor([featurize(states[0])]).tolist() == [featurize(states[0])]
    with pytest.raises(ValueError):
        tokens_tensor([[VOCAB_SIZE] * FEATURE_LEN])


def test_ordinal_ranges_inside_vocabulary() -> None:
    for start, length in ORDINAL_RANGES:
        assert start > 0 and start + length <= VOCAB_SIZE
