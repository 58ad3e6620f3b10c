"""Reviewing one of the agent's proposals: approve, reject, or leave it for later."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from aegis_tui.agent.resolutions import ResolutionError
from aegis_tui.ui.safe import safe

APPROVED, REJECTED, LATER, GONE = "approved", "rejected", "later", "gone"


@dataclass(frozen=True, slots=True)
class Review:
    status: str  # approved | rejected | later | gone
    message: str = ""


class ProposalScreen(ModalScreen[Review]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", id="proposal.approve"),
        Binding("x", "reject", "Reject", id="proposal.reject"),
        Binding("l,escape", "later", "Later", id="proposal.later"),
    ]
    AUTO_FOCUS = "#later"

    def __init__(self, proposal_id: int, kind: str, text: str, iteration: int, position: int,
                 total: int, review: Callable[[int, bool], object]) -> None:
        super().__init__(classes="dialog-screen")
        self.proposal_id = proposal_id
        self.kind = kind
        self.proposal_text = text
        self.iteration = iteration
        self.position = position
        self.total = total
        self._review = review

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="proposal-dialog") as dialog:
            dialog.border_title = f"Proposal {self.position} of {self.total}"
            heading = Text(f"Proposal #{self.proposal_id} (iteration {self.iteration}), kind ",
                           style="bold")
            heading.append_text(safe(self.kind, 40, style="bold cyan"))
            yield Static(heading, classes="dialog-heading")
            yield Static(safe(self.proposal_text, 800, keep_newlines=True),
                         id="proposal-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Approve (a)", id="approve", variant="success")
                yield Button("Reject (x)", id="reject", variant="error")
                yield Button("Later (Esc)", id="later")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        {"approve": self.action_approve, "reject": self.action_reject,
         "later": self.action_later}[event.button.id or "later"]()

    def _decide(self, approve: bool) -> None:
        try:
            self._review(self.proposal_id, approve)
        except ResolutionError as exc:
            self.dismiss(Review(GONE, str(exc)))
            return
        self.dismiss(Review(APPROVED if approve else REJECTED))

    def action_approve(self) -> None:
        self._decide(True)

    def action_reject(self) -> None:
        self._decide(False)

    def action_later(self) -> None:
        self.dismiss(Review(LATER))
