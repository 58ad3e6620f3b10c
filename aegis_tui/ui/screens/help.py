"""Help: what the panes show and which key does what (with the user's key remaps)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

ABOUT = (
    "AEGIS picks one of four actions each iteration: web_search, ask_human, "
    "propose_improvement or idle.\n"
    "Phase 1: a teacher (a language model or the rules heuristic) decides; every decision "
    "is logged as a training example.\n"
    "Phase 2: at the threshold a small HRM is trained on those examples in a child process "
    "while the teacher keeps deciding.\n"
    "Phase 3: if the HRM passes the accuracy gate it decides and improves by policy "
    "gradient; it falls back to the teacher if its rewards fall clearly behind.\n\n"
    "Panes: goals with progress, the curiosity queue, the action distribution (teacher, HRM, "
    "training labels), phase progress, reward and training curves (tabs), the latest "
    "knowledge, and the event log (every line is also in aegis.log).\n"
    "The decision inspector (i, or click an iteration line of the event log) shows why a "
    "decision was made: the state, the probabilities, the value estimate, the rewards, "
    "the HRM's features and, in Phase 3, what the teacher and the imitation policy would "
    "have chosen.\n"
    "Keys can be remapped in keymap.toml in the data directory: binding id = \"key\"."
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help.close"),
    ]
    AUTO_FOCUS = "#help-scroll"

    def __init__(self, keys: Sequence[tuple[str, str, str]]) -> None:
        """``keys``: (key display, what it does, binding id) rows."""
        super().__init__(classes="dialog-screen")
        self.keys = list(keys)

    def compose(self) -> ComposeResult:
        table = Text()
        for key, what, binding_id in self.keys:
            table.append(f"{key:>12}  ", style="bold cyan")
            table.append(what)
            table.append(f"  ({binding_id})\n", style="dim")
        with Vertical(classes="dialog wide-dialog", id="help-dialog") as dialog:
            dialog.border_title = "Help"
            dialog.border_subtitle = "Esc close"
            with VerticalScroll(id="help-scroll"):
                yield Static(table, id="help-keys")
                yield Static(Text(ABOUT), id="help-about")

    def action_close(self) -> None:
        self.dismiss(None)
