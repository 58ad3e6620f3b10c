"""The decision inspector's text: one decision, its state, features, outcome and rivals.

Pure functions from plain data (an ``IterationDone`` event with its snapshot, a
``DecisionOutcome`` read from the database, a ``WhatIf`` from the agent) to ``rich.text.Text``,
so they are tested without a screen. Every string that came from outside (goal and topic
text, search details, questions, answers, proposals) goes through ``safe``: shown
literally, never parsed as markup.
"""

from __future__ import annotations

from rich.text import Text

from aegis_tui.actions import ACTION_NAMES
from aegis_tui.agent.decision_outcome import DecisionOutcome, FollowUp
from aegis_tui.agent.what_if import Choice, WhatIf
from aegis_tui.events import IterationDone
from aegis_tui.policy.features import FEATURE_LEN, describe_features, featurize
from aegis_tui.snapshot import StateSnapshot
from aegis_tui.ui.safe import safe

BAR_WIDTH = 10
_NAME_WIDTH = max(len(n) for n in ACTION_NAMES)


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def who_decided(event: IterationDone) -> str:
    if event.policy == "hrm":
        return "the HRM"
    return f"the teacher ({event.policy_name})"


def summary(event: IterationDone) -> Text:
    out = Text()
    out.append(f"Iteration {event.iteration}", style="bold")
    out.append(f" · Phase {event.phase} · decided by ")
    out.append_text(safe(who_decided(event), 60, style="bold"))
    out.append("\nAction ")
    out.append(event.action, style="bold cyan")
    out.append("\n")
    if event.value is not None:
        out.append(f"Value estimate {_signed(event.value)}: the return the HRM expected "
                   "from here")
    else:
        out.append("No value estimate: the teacher has no value head", style="dim")
    return out


def probabilities(event: IterationDone, what_if: WhatIf | None, *, asked: bool,
                  failed: str = "") -> Text:
    """The four actions: the deciding policy's probabilities with bars; in Phase 3 also
    what the teacher and the imitation policy would choose. ``asked``: a comparison was
    requested (``what_if`` None then means it is still being computed)."""
    probs = tuple(event.probs)
    columns: list[tuple[str, Choice | None]] = []
    if asked:
        if event.policy == "hrm":
            name = what_if.teacher_name if what_if is not None else "teacher"
            columns.append((f"teacher ({name})", what_if.teacher if what_if else None))
        columns.append(("imitation", what_if.imitation if what_if else None))
    out = Text()
    head = f"  {'action':<{_NAME_WIDTH}} {'decided':>7} {'':<{BAR_WIDTH}}"
    out.append(head, style="bold")
    widths = []
    for title, _ in columns:
        width = max(9, len(title))
        widths.append(width)
        out.append(Text(f" {title[:22]:>{width}}", style="bold"))
    out.append("\n")
    chosen = ACTION_NAMES.index(event.action) if event.action in ACTION_NAMES else -1
    for i, name in enumerate(ACTION_NAMES):
        p = probs[i] if i < len(probs) else 0.0
        mark = "▶ " if i == chosen else "  "
        out.append(mark, style="bold cyan")
        out.append(f"{name:<{_NAME_WIDTH}} ", style="bold cyan" if i == chosen else "")
        out.append(f"{p:>7.1%} ")
        filled = round(p * BAR_WIDTH)
        out.append("█" * filled + " " * (BAR_WIDTH - filled), style="cyan")
        for (_, choice), width in zip(columns, widths, strict=True):
            if choice is None or not choice.probs:
                cell = "…" if choice is None and what_if is None and not failed else "n/a"
                out.append(f" {cell:>{width}}", style="dim")
                continue
            star = "*" if choice.best == i else " "
            out.append(f" {choice.probs[i]:>{width - 1}.1%}{star}",
                       style="bold" if star == "*" else "")
        out.append("\n")
    out.append("▶ the action taken", style="dim")
    if columns:
        out.append(" · * each policy's most probable action", style="dim")
    out.append("\n")
    out.append_text(_comparison(event, what_if, asked=asked, failed=failed))
    out.rstrip()
    return out


def _comparison(event: IterationDone, what_if: WhatIf | None, *, asked: bool,
                failed: str) -> Text:
    if not asked:
        if event.phase < 3:
            return Text("The teacher decides in this phase; the HRM is not deciding yet.",
                        style="dim")
        return Text("")
    if failed:
        return safe(f"Not compared: {failed}", 200, style="yellow")
    if what_if is None:
        return Text("Asking the other policies what they would choose in this state…",
                    style="dim italic")
    out = Text()
    lines = []
    if what_if.teacher is not None:
        lines.append(_would(f"The teacher ({what_if.teacher_name})", what_if.teacher))
    if what_if.imitation is not None:
        lines.append(_would("The imitation policy (hrm_trained.pt)", what_if.imitation))
    else:
        lines.append(Text("No imitation model is loaded.", style="dim"))
    for k, line in enumerate(lines):
        if k:
            out.append("\n")
        out.append_text(line)
    return out


def _would(who: str, choice: Choice) -> Text:
    if choice.best is None:
        return safe(f"{who} could not say: {choice.error}", 200, style="yellow")
    line = safe(who, 60)
    line.append(" would choose ")
    line.append(ACTION_NAMES[choice.best], style="bold")
    return line


def _follow_up(f: FollowUp) -> Text:
    out = Text(f"{f.kind.capitalize()} #{f.id}: ")
    if f.status == "pending":
        waits = "an answer" if f.kind == "question" else "a review"
        out.append(f"waiting for {waits}; a delayed reward may still come", style="yellow")
    elif f.status == "late":
        out.append("answered after it expired; kept as knowledge, no reward")
    elif f.credited:
        out.append(f"{f.status}, {_signed(f.reward)} credited to this decision")
    else:
        out.append(f"{f.status}; credited on the agent's next iteration")
    out.append("\n  ")
    out.append_text(safe(f.text, 200, style="italic"))
    if f.answer:
        out.append("\n  answer: ")
        out.append_text(safe(f.answer, 200))
    if f.applied:
        out.append("\n  applied: ")
        out.append_text(safe(f.applied, 120))
    return out


def outcome(event: IterationDone, result: DecisionOutcome | None, error: str = "") -> Text:
    out = Text("Outcome: ", style="bold")
    out.append("success" if event.success else "failed",
               style="green" if event.success else "red")
    out.append(" · ")
    out.append_text(safe(event.detail, 200))
    out.append(f"\nKnowledge gained {event.knowledge_gained} · immediate reward "
               f"{_signed(event.reward)} · delayed reward ")
    if error:
        out.append("unknown", style="dim")
        out.append_text(safe(f"\n(could not read the database: {error})", 200, style="yellow"))
        return out
    if result is None:
        out.append("…", style="dim")
        out.append("\nReading the database…", style="dim italic")
        return out
    if not result.found:
        out.append("unknown", style="dim")
        out.append("\n(this iteration is no longer in the metrics table)", style="dim")
    else:
        out.append(_signed(result.delayed_reward))
        out.append(f" · total {_signed(result.reward + result.delayed_reward)}", style="bold")
    for f in result.follow_ups:
        out.append("\n")
        out.append_text(_follow_up(f))
    return out


def state(snapshot: StateSnapshot | None) -> Text:
    out = Text("The state the policy saw", style="bold")
    if snapshot is None:
        out.append("\n(not recorded for this decision)", style="dim")
        return out
    s = snapshot
    out.append(f" (iteration {s.iteration})", style="bold")
    out.append("\nGoals:")
    if not s.goals:
        out.append(" none", style="dim")
    for goal in s.goals:
        mark = "done" if goal.completed else f"{goal.progress:4.0%}"
        out.append(f"\n  [{mark:>4}] ")
        out.append_text(safe(goal.text, 60))
    shown = len(s.curiosity)
    out.append(f"\nCuriosity queue ({shown} shown of {max(s.curiosity_size, shown)}, best "
               "first):")
    if not s.curiosity:
        out.append(" empty", style="dim")
    for topic in s.curiosity:
        out.append(f"\n  {topic.priority:5.2f}  ")
        out.append_text(safe(topic.topic, 48))
        out.append(f"  (searched {topic.times_searched}x)", style="dim")
    recent = ", ".join(s.recent_actions) or "none"
    gain = "failed" if s.last_search_gain < 0 else _n(s.last_search_gain, "new item")
    out.append(
        f"\nKnowledge: {_n(s.knowledge_count, 'item')}"
        f"\nRecent actions (oldest first): {recent}"
        f"\nPending: {_n(s.pending_questions, 'question')}, "
        f"{_n(s.pending_proposals, 'proposal')} · fresh ideas to propose: {s.fresh_ideas}"
        f"\nQuestions asked {s.questions_asked}, answered {s.questions_answered} · "
        f"proposals {s.improvements_proposed}, approved {s.improvements_approved}"
        f"\nSearches {s.web_searches} ({s.failed_searches} failed), the last one: {gain}"
        f"\nSince the last proposal: {_n(s.iterations_since_proposal, 'iteration')}, "
        f"{_n(s.knowledge_since_proposal, 'new item')} · since the last question: "
        f"{_n(s.iterations_since_question, 'iteration')}")
    return out


def features(snapshot: StateSnapshot | None) -> Text:
    out = Text(f"What the HRM reads: {FEATURE_LEN} feature ids (slot, id, meaning)",
               style="bold")
    if snapshot is None:
        out.append("\n(no snapshot)", style="dim")
        return out
    for row in describe_features(featurize(snapshot), snapshot):
        out.append(f"\n{row.slot:<25} {row.token:>4}  ", style="dim")
        out.append_text(safe(row.meaning, 60))
    return out
