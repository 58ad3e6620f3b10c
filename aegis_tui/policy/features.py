"""Turning a ``StateSnapshot`` into the fixed-length token sequence the HRM reads.

The state becomes ``FEATURE_LEN`` (26) token ids, one per slot. Every slot owns its own id
range in one shared vocabulary (``VOCAB_SIZE``), so "3" in the pending slot and "3" in a
counter slot are different tokens and the model never has to infer where a value came from.

Slots, in order (the HRM sums consecutive pairs into one position, so pairs that belong
together sit next to each other; see ``HRMConfig.slots_per_position``):

- ``[POLICY]`` (where the heads read the answer) with pending proposals x pending
  questions (each capped at 3) x fresh ideas (0..3, whether a proposal would say anything
  new): "may I propose/ask at all" is at the readout position.
- two goal words and two topic words: the first keywords of the top active goal and of the
  top curiosity topic, hashed with CRC-32 (stable across processes, unlike ``hash()``)
  into ``WORD_BUCKETS`` buckets, with a "none" id when there is no such word.
- six counters, exact for 0..31 and in half-octave log buckets above, so the teacher's
  thresholds (``>= 20`` iterations, ``>= 3`` fresh items, ``>= 12`` iterations) are exact,
  with a separate id for negatives (``last_search_gain == -1`` means a failed search):
  iterations and knowledge since the last proposal, iterations since the last question,
  the last search's gain, the curiosity queue size and the number of active goals.
- the human's answer rate and the reviewer's approval rate in tenths, with a "never asked"
  id: the teacher ignores them, but a policy that wants to beat it by RL needs them.
- how many of the last five actions were searches and how many of the last five searches
  failed: what a search rate limit counts, so pacing searches is one lookup, not a sum
  over five action slots.
- the last ``MAX_RECENT_ACTIONS`` actions, oldest first, left-padded with a "none" id.

This module imports torch only inside ``featurize_batch``/``tokens_tensor``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aegis_tui.actions import ACTION_NAMES
from aegis_tui.snapshot import MAX_RECENT_ACTIONS, RECENT_WINDOW, StateSnapshot

if TYPE_CHECKING:
    import torch

WORD_BUCKETS = 512
EXACT_COUNTS = 32  # 0..31 are their own tokens
COUNT_IDS = 64  # per counter slot: 1 negative id + exact values + log buckets
RATE_IDS = 12  # tenths 0..10 plus "never"
PENDING_CAP = 3
IDEAS_CAP = 3

_COUNTERS = (
    "iterations_since_proposal",
    "knowledge_since_proposal",
    "iterations_since_question",
    "last_search_gain",
    "curiosity_size",
    "active_goals",
)
_STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how",
    "in", "is", "it", "of", "on", "or", "the", "to", "what", "when", "where", "which",
    "who", "why", "with",
))
_WORD = re.compile(r"[^\W_]+")


def _layout() -> tuple[dict[str, int], int]:
    """Start id of every slot's range (in slot order), and the vocabulary size."""
    starts: dict[str, int] = {}
    next_id = 0

    def take(name: str, size: int) -> None:
        nonlocal next_id
        starts[name] = next_id
        next_id += size

    take("policy", 1)
    take("pending", (PENDING_CAP + 1) ** 2 * (IDEAS_CAP + 1))
    for name in ("goal_word_0", "goal_word_1", "topic_word_0", "topic_word_1"):
        take(name, WORD_BUCKETS + 1)  # + "none"
    for name in _COUNTERS:
        take(name, COUNT_IDS)
    take("answer_rate", RATE_IDS)
    take("approval_rate", RATE_IDS)
    take("recent_searches", RECENT_WINDOW + 1)
    take("recent_failures", RECENT_WINDOW + 1)
    for i in range(MAX_RECENT_ACTIONS):
        take(f"action_{i}", len(ACTION_NAMES) + 1)  # + "none"
    return starts, next_id


_START, VOCAB_SIZE = _layout()
# Bump when the layout or the meaning of any id changes: checkpoints record it.
FEATURE_VERSION = 3
# Id ranges whose values are ordered (counters, rates without "never"): the HRM embeds
# them as running sums so neighbouring values start alike and a threshold is learnt once.
ORDINAL_RANGES: tuple[tuple[int, int], ...] = (
    *((_START[name], COUNT_IDS) for name in _COUNTERS),
    (_START["answer_rate"], RATE_IDS - 1),
    (_START["approval_rate"], RATE_IDS - 1),
    (_START["recent_searches"], RECENT_WINDOW + 1),
    (_START["recent_failures"], RECENT_WINDOW + 1),
)
SLOT_NAMES: tuple[str, ...] = tuple(_START)
FEATURE_LEN = len(SLOT_NAMES)
POLICY_TOKEN = _START["policy"]
_ACTION_ID = {name: i for i, name in enumerate(ACTION_NAMES)}
_ACTION_STARTS = tuple(_START[f"action_{i}"] for i in range(MAX_RECENT_ACTIONS))


def count_bucket(n: int) -> int:
    """0 for negatives, 1 + n for 0..31, then two buckets per octave, capped."""
    if n < 0:
        return 0
    if n < EXACT_COUNTS:
        return 1 + n
    octave = n.bit_length() - 1  # >= 5
    upper_half = 1 if n >= 3 << (octave - 1) else 0
    return min(COUNT_IDS - 1, 1 + EXACT_COUNTS + 2 * (octave - 5) + upper_half)


def word_bucket(word: str) -> int:
    return zlib.crc32(word.encode("utf-8")) % WORD_BUCKETS


def _words(items: Sequence[str], limit: int) -> list[str]:
    out: list[str] = []
    for item in items:
        for word in _WORD.findall(item.casefold()):
            if word not in _STOPWORDS and len(word) > 1 and word not in out:
                out.append(word)
                if len(out) == limit:
                    return out
    return out


def _rate(numerator: int, denominator: int) -> int:
    if denominator <= 0:
        return RATE_IDS - 1
    return min(10, max(0, round(10 * numerator / denominator)))


def featurize(s: StateSnapshot) -> list[int]:
    """The snapshot as ``FEATURE_LEN`` token ids; deterministic across processes."""
    pending = ((min(max(s.fresh_ideas, 0), IDEAS_CAP) * (PENDING_CAP + 1)
                + min(max(s.pending_proposals, 0), PENDING_CAP)) * (PENDING_CAP + 1)
               + min(max(s.pending_questions, 0), PENDING_CAP))
    tokens = [POLICY_TOKEN, _START["pending"] + pending]
    goals = s.active_goals
    goal_words = _words(goals[0].keywords or (goals[0].text,), 2) if goals else []
    topic_words = _words((s.curiosity[0].topic,), 2) if s.curiosity else []
    for prefix, words in (("goal_word", goal_words), ("topic_word", topic_words)):
        for i in range(2):
            bucket = word_bucket(words[i]) if i < len(words) else WORD_BUCKETS
            tokens.append(_START[f"{prefix}_{i}"] + bucket)
    counts = (
        s.iterations_since_proposal,
        s.knowledge_since_proposal,
        s.iterations_since_question,
        s.last_search_gain,
        max(s.curiosity_size, len(s.curiosity)),
        len(goals),
    )
    for name, n in zip(_COUNTERS, counts, strict=True):
        tokens.append(_START[name] + count_bucket(n))
    tokens.append(_START["answer_rate"] + _rate(s.questions_answered, s.questions_asked))
    tokens.append(_START["approval_rate"]
                  + _rate(s.improvements_approved, s.improvements_proposed))
    tokens.append(_START["recent_searches"] + min(max(s.recent_searches, 0), RECENT_WINDOW))
    tokens.append(_START["recent_failures"]
                  + min(max(s.recent_failed_searches, 0), RECENT_WINDOW))
    recent = s.recent_actions[-MAX_RECENT_ACTIONS:]
    pad = MAX_RECENT_ACTIONS - len(recent)
    none = len(ACTION_NAMES)
    for i, start in enumerate(_ACTION_STARTS):
        tokens.append(start + (none if i < pad else _ACTION_ID[recent[i - pad]]))
    return tokens


def action_mask(tokens: Sequence[int]) -> tuple[bool, ...]:
    """Which actions can do anything in the state these feature ids describe (in ACTIONS order).

    Proposing with no fresh idea can only restate an earlier proposal (see
    ``agent/proposals.py``): a certain duplicate, so the HRM never samples it. Every other
    action is always available. The rules teacher follows the same rule.
    """
    pending = tokens[SLOT_NAMES.index("pending")] - _START["pending"]
    fresh = pending // (PENDING_CAP + 1) ** 2
    return tuple(not (name == "propose_improvement" and fresh == 0) for name in ACTION_NAMES)


def featurize_batch(snapshots: Sequence[StateSnapshot]) -> torch.Tensor:
    """A ``LongTensor[len(snapshots), FEATURE_LEN]`` of token ids."""
    import torch

    return torch.tensor([featurize(s) for s in snapshots], dtype=torch.long).reshape(
        -1, FEATURE_LEN
    )


def tokens_tensor(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """Already featurized rows as a ``LongTensor``, checked against the vocabulary."""
    import torch

    out = torch.tensor(list(rows), dtype=torch.long).reshape(-1, FEATURE_LEN)
    if out.numel() and (int(out.min()) < 0 or int(out.max()) >= VOCAB_SIZE):
        raise ValueError("token ids out of the feature vocabulary")
    return out


def describe_count_bucket(bucket: int) -> str:
    """Human-readable range of a counter bucket (for debugging and docs)."""
    if bucket == 0:
        return "<0"
    if bucket <= EXACT_COUNTS:
        return str(bucket - 1)
    k = bucket - 1 - EXACT_COUNTS
    octave, half = 5 + k // 2, k % 2
    low = (1 << octave) if half == 0 else 3 << (octave - 1)
    high = (3 << (octave - 1)) - 1 if half == 0 else (1 << (octave + 1)) - 1
    return f"{low}-{high}" if bucket < COUNT_IDS - 1 else f">={low}"


@dataclass(frozen=True, slots=True)
class FeatureRow:
    """One slot of a featurized state, decoded for people (the decision inspector)."""

    slot: str
    token: int
    meaning: str


def _slot_words(s: StateSnapshot) -> dict[str, str]:
    """The words ``featurize`` hashed into the word slots (the top goal's and topic's)."""
    goals = s.active_goals
    out: dict[str, str] = {}
    goal_words = _words(goals[0].keywords or (goals[0].text,), 2) if goals else []
    topic_words = _words((s.curiosity[0].topic,), 2) if s.curiosity else []
    for prefix, words in (("goal_word", goal_words), ("topic_word", topic_words)):
        for i, word in enumerate(words):
            out[f"{prefix}_{i}"] = word
    return out


def _capped(n: int, cap: int) -> str:
    return f"{n}+" if n == cap else str(n)


def describe_features(tokens: Sequence[int],
                      snapshot: StateSnapshot | None = None) -> list[FeatureRow]:
    """Each of the ``FEATURE_LEN`` token ids as ``(slot, id, meaning)``, the way the HRM
    reads them; with the snapshot they came from, the hashed word slots name their word.

    Raises ``ValueError`` for a sequence of the wrong length or an id outside its slot.
    """
    if len(tokens) != FEATURE_LEN:
        raise ValueError(f"expected {FEATURE_LEN} feature ids, got {len(tokens)}")
    words = _slot_words(snapshot) if snapshot is not None else {}
    ends = [*list(_START.values())[1:], VOCAB_SIZE]
    rows: list[FeatureRow] = []
    for (slot, start), end, token in zip(_START.items(), ends, tokens, strict=True):
        value = token - start
        if not 0 <= token - start < end - start:
            raise ValueError(f"feature id {token} is outside slot {slot}")
        if slot == "policy":
            meaning = "the heads read here"
        elif slot == "pending":
            fresh, rest = divmod(value, (PENDING_CAP + 1) ** 2)
            proposals, questions = divmod(rest, PENDING_CAP + 1)
            meaning = (f"questions {_capped(questions, PENDING_CAP)}, proposals "
                       f"{_capped(proposals, PENDING_CAP)}, ideas {_capped(fresh, IDEAS_CAP)}")
        elif slot.startswith(("goal_word", "topic_word")):
            if value == WORD_BUCKETS:
                meaning = "none"
            elif slot in words:
                meaning = f"{words[slot]!r} (hash bucket {value})"
            else:
                meaning = f"hash bucket {value}"
        elif slot in _COUNTERS:
            meaning = describe_count_bucket(value)
        elif slot in ("answer_rate", "approval_rate"):
            meaning = ("never asked" if slot == "answer_rate" else "never proposed") \
                if value == RATE_IDS - 1 else f"about {value * 10}%"
        elif slot == "recent_searches":
            meaning = f"{value} of the last {RECENT_WINDOW} actions"
        elif slot == "recent_failures":
            meaning = f"{value} of the last {RECENT_WINDOW} searches failed"
        else:  # action_0 (oldest) .. action_9 (latest)
            meaning = "none" if value == len(ACTION_NAMES) else ACTION_NAMES[value]
        rows.append(FeatureRow(slot, int(token), meaning))
    return rows


__all__ = [
    "FEATURE_LEN",
    "FEATURE_VERSION",
    "ORDINAL_RANGES",
    "POLICY_TOKEN",
    "SLOT_NAMES",
    "VOCAB_SIZE",
    "FeatureRow",
    "action_mask",
    "count_bucket",
    "describe_count_bucket",
    "describe_features",
    "featurize",
    "featurize_batch",
    "tokens_tensor",
    "word_bucket",
]
