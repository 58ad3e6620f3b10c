"""The text a language-model teacher reads: the state as a short paragraph, and the four answers.

``build_prompt`` turns a ``StateSnapshot`` into a compact description ending in the cue
``"Next action:"``; ``CONTINUATIONS`` holds the text scored after that cue for each action.

Everything taken from the state (goal texts, curiosity topics, action names) is untrusted: it
goes through ``aegis_tui.text.clean`` (no ANSI, no control characters, no newlines, so a goal
cannot forge a line of the prompt) and each piece is bounded, so a huge state still gives a
prompt of bounded size. The output is a pure function of the snapshot (no clock, no randomness).

Why these continuations: each is a short imperative phrase that reads naturally after
"Next action:" and is exactly three GPT-2 tokens (``" search"," the"," web"``,
``" ask"," the"," human"``, ``" propose"," an"," improvement"``, ``" wait"," for"," now"``).
Equal lengths mean the per-token mean log-likelihood the LM teacher uses compares like with
like, and plain phrases (rather than identifiers such as ``" web_search"``, which GPT-2 splits
into rare pieces like ``"_"``) let the model's sense of English, and of the state above,
decide. The header lists the same phrases, and recent actions are written with them, so the
model sees each option in context before it scores it.
"""

from __future__ import annotations

import math

from aegis_tui.actions import Action
from aegis_tui.snapshot import GoalView, StateSnapshot
from aegis_tui.text import clean

CONTINUATIONS: dict[Action, str] = {
    Action.WEB_SEARCH: " search the web",
    Action.ASK_HUMAN: " ask the human",
    Action.PROPOSE_IMPROVEMENT: " propose an improvement",
    Action.IDLE: " wait for now",
}

CUE = "Next action:"
MAX_PROMPT_GOALS = 4
MAX_PROMPT_TOPICS = 3
MAX_PROMPT_RECENT = 5
GOAL_CHARS = 80
TOPIC_CHARS = 48
ACTION_CHARS = 24

_HEADER = (
    "AEGIS is an autonomous research agent. At each step it picks one action: "
    "search the web, ask the human, propose an improvement, or wait for now."
)


def action_phrase(action: str) -> str:
    """The phrase for an action name (``"web_search"`` -> ``"search the web"``)."""
    try:
        return CONTINUATIONS[Action(action)].strip()
    except ValueError:
        return clean(action, ACTION_CHARS) or "?"


def _goal_line(goal: GoalView) -> str:
    # Progress is a fraction (storage.records.Goal.progress); a NaN from a foreign record reads 0.
    progress = min(1.0, max(0.0, goal.progress)) if math.isfinite(goal.progress) else 0.0
    # Quoted so goal text reads as data, not as more of the prompt.
    return f'- "{clean(goal.text, GOAL_CHARS)}" ({round(progress * 100)}% done)'


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _last_search(s: StateSnapshot) -> str:
    if s.web_searches == 0:
        return "no searches yet"
    if s.last_search_gain < 0:
        return "the last search failed"
    if s.last_search_gain == 0:
        return "the last search found nothing new"
    return f"the last search found {_plural(s.last_search_gain, 'new item')}"


def build_prompt(snapshot: StateSnapshot) -> str:
    """Describe ``snapshot`` in a few lines, ending with ``"Next action:"`` (no trailing space)."""
    s = snapshot
    lines = [_HEADER]

    active = s.active_goals
    if active:
        lines.append("Goals:")
        lines.extend(_goal_line(g) for g in active[:MAX_PROMPT_GOALS])
        if len(active) > MAX_PROMPT_GOALS:
            lines.append(f"- and {len(active) - MAX_PROMPT_GOALS} more")
    else:
        lines.append("Goals: none active.")

    topics = [t for t in (clean(t.topic, TOPIC_CHARS) for t in s.curiosity) if t]
    shown = topics[:MAX_PROMPT_TOPICS]
    if shown:
        more = max(s.curiosity_size, len(topics)) - len(shown)
        tail = f" (and {more} more)" if more > 0 else ""
        lines.append(f"Curious about: {'; '.join(shown)}{tail}.")
    else:
        lines.append("Curious about: nothing yet.")

    lines.append(
        f"Knowledge: {_plural(s.knowledge_count, 'item')}, "
        f"{s.knowledge_since_proposal} new since the last proposal."
    )
    lines.append(
        f"Searches: {s.web_searches} made, {s.failed_searches} failed; {_last_search(s)}."
    )
    lines.append(
        f"Questions: {s.pending_questions} pending, {s.questions_asked} asked, "
        f"{s.questions_answered} answered; {s.iterations_since_question} steps since the last."
    )
    lines.append(
        f"Proposals: {s.pending_proposals} pending, {s.improvements_proposed} made, "
        f"{s.improvements_approved} approved; {s.iterations_since_proposal} steps since the last."
    )
    recent = [action_phrase(a) for a in s.recent_actions[-MAX_PROMPT_RECENT:]]
    lines.append(f"Recent actions: {', '.join(recent)}." if recent else "Recent actions: none.")
    lines.append(CUE)
    return "\n".join(lines)
