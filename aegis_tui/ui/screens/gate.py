"""The way forward after the gate: adopt the trained HRM anyway, or keep the teacher.

A teacher whose choices the state does not explain (a near-random language model) cannot
be imitated to the gate's agreement, so without a choice the agent would retrain at ever
more examples. The screen says what the last run scored against its yardsticks and lets the
person decide; the agent applies the choice on its next iteration.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

ADOPT, KEEP = "adopt", "keep_teacher"


class GateScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "choose('adopt')", "Adopt the HRM", id="gate.adopt"),
        Binding("k", "choose('keep_teacher')", "Keep the teacher", id="gate.keep"),
        Binding("escape", "choose('')", "Cancel", id="gate.cancel"),
    ]
    AUTO_FOCUS = "#gate-cancel"

    def __init__(self, summary: Text | str, *, can_adopt: bool) -> None:
        super().__init__(classes="dialog-screen")
        self.summary = summary if isinstance(summary, Text) else Text(summary)
        self.can_adopt = can_adopt

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="gate-dialog") as dialog:
            dialog.border_title = "HRM or teacher?"
            dialog.border_subtitle = "a adopt · k keep the teacher · Esc cancel"
            yield Static(self.summary, id="gate-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Adopt the HRM (a)", id="gate-adopt", variant="primary",
                             disabled=not self.can_adopt)
                yield Button("Keep the teacher (k)", id="gate-keep")
                yield Button("Cancel (Esc)", id="gate-cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss({"gate-adopt": ADOPT, "gate-keep": KEEP}.get(event.button.id or ""))

    def action_choose(self, choice: str) -> None:
        if choice == ADOPT and not self.can_adopt:
            return
        self.dismiss(choice or None)
