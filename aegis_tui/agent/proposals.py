"""Typed improvements the agent proposes to itself, and how an approved one is applied.

A proposal is data, never code: one of three kinds with a small payload, checked again when
it is applied (a row edited by hand in the database cannot smuggle in anything else):

- ``add_goal``: add a goal about a topic the agent has been exploring;
- ``drop_topic``: drop a stale curiosity topic (searched repeatedly, now low priority);
- ``set_setting``: change a bounded setting (``config.TUNABLE_SETTINGS``), e.g. the number
  of results per search, within its bounds.

The drafter skips ideas that were already proposed; when the state offers nothing new,
what is left is a restatement of an earlier proposal: a duplicate, which the reward table
punishes. So proposing pays only after something new has happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aegis_tui.config import TUNABLE_SETTINGS
from aegis_tui.snapshot import StateSnapshot
from aegis_tui.text import clean, normalize

KINDS = ("add_goal", "drop_topic", "set_setting")
MAX_GOAL_TEXT = 200


@dataclass(frozen=True, slots=True)
class ProposalDraft:
    kind: str
    payload: dict[str, Any]
    text: str

    @property
    def norm(self) -> str:
        return normalize(self.text)


class InvalidProposal(ValueError):
    """The proposal is not one of the allowed kinds or leaves the allowed bounds."""


def draft_proposal(snapshot: StateSnapshot, settings: dict[str, int], search_gains: list[int],
                   proposed_before: Callable[[str], bool] = lambda norm: False) -> ProposalDraft:
    """Pick a useful change the state suggests that was not proposed before.

    Kinds take turns (by how many proposals were made) so one kind does not crowd out the
    others. ``proposed_before(norm)`` says whether a text was already proposed; when every
    idea was, the first one comes back, and the caller scores it as a duplicate.
    """
    ordered = proposal_ideas(snapshot, settings, search_gains)
    for draft in ordered:
        if not proposed_before(draft.norm):
            return draft
    if ordered:
        return ordered[0]
    value = settings["results_per_search"]
    return ProposalDraft("set_setting", {"key": "results_per_search", "value": value},
                         f"Keep results per search at {value}")


def proposal_ideas(snapshot: StateSnapshot, settings: dict[str, int],
                   search_gains: list[int]) -> list[ProposalDraft]:
    """Every change the state suggests, kinds taking turns, best first."""
    ideas = [_add_goal(snapshot), _drop_topic(snapshot), _tune(settings, search_gains)]
    start = snapshot.improvements_proposed % len(ideas)
    return [draft for k in range(len(ideas)) for draft in ideas[(start + k) % len(ideas)]]


def count_fresh_ideas(snapshot: StateSnapshot, settings: dict[str, int],
                      search_gains: list[int], proposed_before: Callable[[str], bool],
                      cap: int = 3) -> int:
    """How many ideas (up to ``cap``) were never proposed: what a proposal could say now."""
    n = 0
    for draft in proposal_ideas(snapshot, settings, search_gains):
        if not proposed_before(draft.norm):
            n += 1
            if n >= cap:
                break
    return n


def _add_goal(s: StateSnapshot) -> list[ProposalDraft]:
    goal_norms = {normalize(g.text) for g in s.goals}
    out = []
    for topic in s.curiosity:
        if topic.times_searched < 1:
            continue
        text = clean(f"Learn about {topic.topic}", MAX_GOAL_TEXT)
        if normalize(text) not in goal_norms:
            out.append(ProposalDraft("add_goal", {"text": text}, f"Add goal: {text}"))
    return out


def _drop_topic(s: StateSnapshot) -> list[ProposalDraft]:
    stale = sorted((t for t in s.curiosity if t.times_searched >= 2),
                   key=lambda t: (t.priority, -t.times_searched, t.topic))
    # The count is not part of the text: dropping the same topic again is the same idea.
    return [ProposalDraft("drop_topic", {"topic": t.topic},
                          f"Drop stale curiosity topic '{t.topic}'") for t in stale]


def _tune(settings: dict[str, int], gains: list[int]) -> list[ProposalDraft]:
    valid = [g for g in gains if g >= 0]
    if len(valid) < 3:
        return []
    per_search = settings["results_per_search"]
    mean = sum(valid) / len(valid)
    low, high = TUNABLE_SETTINGS["results_per_search"]
    if mean >= 0.8 * per_search and per_search < high:
        value = per_search + 1
        why = "searches keep finding new items"
    elif mean <= 0.2 * per_search and per_search > low:
        value = per_search - 1
        why = "searches find little that is new"
    else:
        return []
    return [ProposalDraft("set_setting", {"key": "results_per_search", "value": value},
                          f"Set results per search to {value} ({why})")]


def validate_payload(kind: str, payload: Any) -> dict[str, Any]:
    """Check a stored proposal before applying it; raises ``InvalidProposal``."""
    if kind not in KINDS:
        raise InvalidProposal(f"unknown proposal kind {kind!r}")
    if not isinstance(payload, dict):
        raise InvalidProposal("proposal payload is not a map")
    if kind == "add_goal":
        text = payload.get("text")
        if not isinstance(text, str) or not clean(text, MAX_GOAL_TEXT):
            raise InvalidProposal("add_goal needs a non-empty goal text")
        return {"text": clean(text, MAX_GOAL_TEXT)}
    if kind == "drop_topic":
        topic = payload.get("topic")
        if not isinstance(topic, str) or not topic.strip():
            raise InvalidProposal("drop_topic needs a topic")
        return {"topic": topic}
    key, value = payload.get("key"), payload.get("value")
    if key not in TUNABLE_SETTINGS:
        raise InvalidProposal(f"setting {key!r} cannot be changed by a proposal")
    low, high = TUNABLE_SETTINGS[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidProposal(f"{key} must be an integer within {low}..{high}")
    return {"key": key, "value": value}
