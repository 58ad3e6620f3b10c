"""Answering one of the agent's questions: the question, an input, Enter submits, Esc skips,
Ctrl+L closes the whole queue (the rest stay pending for later).

The screen hands the text to ``submit`` (which writes it through ``answer_or_keep`` and
returns ``"answered"``, or ``"late"`` when the question had expired: the answer is then
kept as knowledge without reward). An answer the agent cannot take (empty, oversized,
binary) is refused in place: the modal stays open with the reason under the input and
nothing typed is lost. A question answered from elsewhere meanwhile closes the modal and
says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from aegis_tui.agent.questions import AnswerRefused
from aegis_tui.agent.resolutions import ResolutionError
from aegis_tui.ui.safe import safe

ANSWERED, SKIPPED, GONE = "answered", "skipped", "gone"
KEPT = "kept"  # the question had expired: the answer is knowledge, without reward
CLOSED = "closed"  # the person closed the queue


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # answered | kept | skipped | closed | gone
    message: str = ""


class QuestionScreen(ModalScreen[Outcome]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "skip", "Skip", id="question.skip"),
        # Not Ctrl+X/W/U/K/A/E/C/V: the input edits with those.
        Binding("ctrl+l", "close_queue", "Close all", id="question.close_all"),
    ]
    AUTO_FOCUS = "#answer"

    def __init__(self, question_id: int, text: str, position: int, total: int,
                 submit: Callable[[int, str], str]) -> None:
        super().__init__(classes="dialog-screen")
        self.question_id = question_id
        self.question_text = text
        self.position = position
        self.total = total
        self._submit = submit
        self.refusal = ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="question-dialog") as dialog:
            dialog.border_title = f"Question {self.position} of {self.total}"
            yield Static(Text(f"The agent asks (question #{self.question_id}):", style="bold"),
                         classes="dialog-heading")
            yield Static(safe(self.question_text, 600, keep_newlines=True),
                         id="question-text")
            yield Input(placeholder="your answer", id="answer")
            yield Static(Text(""), id="refusal")
            left = self.total - self.position + 1  # this one and the ones after it
            keys = f"Enter submit · Esc skip · Ctrl+L close, {left} left for later"
            yield Static(Text(keys, style="dim"), classes="dialog-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            status = self._submit(self.question_id, event.value)
        except AnswerRefused as exc:
            self.refusal = str(exc)
            self.query_one("#refusal", Static).update(
                safe(f"Not sent: {exc}", 200, style="bold red"))
            return
        except ResolutionError as exc:
            self.dismiss(Outcome(GONE, str(exc)))
            return
        if status == ANSWERED:
            self.dismiss(Outcome(ANSWERED))
        else:
            self.dismiss(Outcome(KEPT, f"Question #{self.question_id} had expired before "
                                       "your answer arrived; the answer is kept as "
                                       "knowledge (no reward)."))

    def action_skip(self) -> None:
        self.dismiss(Outcome(SKIPPED))

    def action_close_queue(self) -> None:
        self.dismiss(Outcome(CLOSED))
