"""The decision inspector: why the agent picked what it picked, one decision at a time.

Opened on the latest decision (``i``) or on a clicked iteration line of the event log. It
shows what the event carried at once (the action, the probabilities over the four actions,
the value estimate, the immediate reward, the snapshot and the features the HRM read),
then fills in from a thread worker what takes a moment: the delayed reward and the fate of
the decision's question or proposal (a database read) and, in Phase 3, what the teacher
and the imitation policy would choose in the same state (``Agent.what_if``: ~0.5 s for an
LM teacher on a CPU). Left and right step through the decisions the dashboard keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static
from textual.worker import get_current_worker

from aegis_tui.agent.decision_outcome import DecisionOutcome
from aegis_tui.agent.what_if import WhatIf
from aegis_tui.events import IterationDone
from aegis_tui.ui import decision_text

# Reads the database for one iteration (any thread).
OutcomeReader = Callable[[int], DecisionOutcome]
# What the other policies would choose for a decision (any thread); raises with a one-line
# reason when nobody can answer (the agent has stopped).
Comparer = Callable[[IterationDone], WhatIf]


def wants_comparison(event: IterationDone) -> bool:
    """Phase 3 decisions are compared: with the teacher (HRM decisions) and imitation."""
    return event.phase == 3 and event.snapshot is not None


class InspectorScreen(ModalScreen[None]):
    @dataclass
    class OutcomeRead(Message):
        iteration: int
        outcome: DecisionOutcome | None
        error: str = ""

    @dataclass
    class Compared(Message):
        iteration: int
        what_if: WhatIf | None
        error: str = ""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,i", "close", "Close", id="inspector.close"),
        Binding("left,comma", "step(-1)", "Older", id="inspector.older", priority=True),
        Binding("right,full_stop", "step(1)", "Newer", id="inspector.newer", priority=True),
        Binding("l", "latest", "Latest", id="inspector.latest"),
    ]
    AUTO_FOCUS = "#inspector-scroll"

    def __init__(self, decisions: Sequence[IterationDone], event: IterationDone,
                 read_outcome: OutcomeReader, compare: Comparer | None) -> None:
        """``decisions``: the ring the dashboard keeps (read on the UI thread only)."""
        super().__init__(classes="dialog-screen")
        self.decisions = decisions
        self.event = event
        self._read_outcome = read_outcome
        self._compare = compare
        self.outcome: DecisionOutcome | None = None
        self.outcome_error = ""
        self.what_if: WhatIf | None = None
        self.compare_error = ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide-dialog", id="inspector-dialog") as dialog:
            dialog.border_subtitle = "←/→ older/newer · l latest · ↑/↓ scroll · Esc close"
            with VerticalScroll(id="inspector-scroll"):
                yield Static(id="inspector-summary", classes="inspector-section")
                yield Static(id="inspector-probs", classes="inspector-section")
                yield Static(id="inspector-outcome", classes="inspector-section")
                yield Static(id="inspector-state", classes="inspector-section")
                yield Static(id="inspector-features", classes="inspector-section")

    def on_mount(self) -> None:
        self._show(self.event)

    # -- showing one decision ---------------------------------------------------------------
    @property
    def asks(self) -> bool:
        return self._compare is not None and wants_comparison(self.event)

    def _show(self, event: IterationDone) -> None:
        self.event = event
        self.outcome, self.outcome_error = None, ""
        self.what_if, self.compare_error = None, ""
        dialog = self.query_one("#inspector-dialog")
        dialog.border_title = f"Decision at iteration {event.iteration}"
        self.query_one("#inspector-summary", Static).update(decision_text.summary(event))
        self.query_one("#inspector-state", Static).update(decision_text.state(event.snapshot))
        self.query_one("#inspector-features", Static).update(
            decision_text.features(event.snapshot))
        self._paint_probs()
        self._paint_outcome()
        self._load(event)

    def _paint_probs(self) -> None:
        self.query_one("#inspector-probs", Static).update(decision_text.probabilities(
            self.event, self.what_if, asked=self.asks, failed=self.compare_error))

    def _paint_outcome(self) -> None:
        self.query_one("#inspector-outcome", Static).update(
            decision_text.outcome(self.event, self.outcome, self.outcome_error))

    @work(thread=True, exclusive=True, group="inspector", exit_on_error=False)
    def _load(self, event: IterationDone) -> None:
        worker = get_current_worker()
        try:
            self.post_message(self.OutcomeRead(event.iteration, self._read_outcome(
                event.iteration)))
        except Exception as exc:  # e.g. the database went away at shutdown
            self.post_message(self.OutcomeRead(event.iteration, None,
                                               f"{type(exc).__name__}: {exc}"))
        if self._compare is None or not wants_comparison(event) or worker.is_cancelled:
            return  # stepping on quickly: only the decision on screen is compared
        try:
            self.post_message(self.Compared(event.iteration, self._compare(event)))
        except Exception as exc:
            self.post_message(self.Compared(event.iteration, None, str(exc)))

    def on_inspector_screen_outcome_read(self, message: OutcomeRead) -> None:
        if message.iteration != self.event.iteration:
            return
        self.outcome, self.outcome_error = message.outcome, message.error
        self._paint_outcome()

    def on_inspector_screen_compared(self, message: Compared) -> None:
        if message.iteration != self.event.iteration:
            return
        self.what_if, self.compare_error = message.what_if, message.error
        self._paint_probs()

    # -- keys -------------------------------------------------------------------------------
    def _index(self) -> int | None:
        for k in range(len(self.decisions) - 1, -1, -1):
            if self.decisions[k].iteration == self.event.iteration:
                return k
        return None

    def action_step(self, delta: int) -> None:
        if not self.decisions:
            return
        index = self._index()
        if index is None:  # this decision has left the ring: only newer ones remain
            if delta > 0:
                self._show(self.decisions[0])
            return
        target = min(max(index + delta, 0), len(self.decisions) - 1)
        if target != index:
            self._show(self.decisions[target])

    def action_latest(self) -> None:
        if self.decisions and self.decisions[-1] is not self.event:
            self._show(self.decisions[-1])

    def action_close(self) -> None:
        self.dismiss(None)
