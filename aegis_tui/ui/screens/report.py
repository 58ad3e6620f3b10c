"""The status and training reports, the same text ``aegis-tui status``/``training`` print.

Reading them scans the example log, which can take a moment on a big data directory, so
the text is gathered in a thread worker while the screen says it is loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from aegis_tui.agent import reports
from aegis_tui.config import Config
from aegis_tui.paths import DataPaths


def report_text(paths: DataPaths, config: Config) -> str:
    src = reports.gather(paths, config)
    try:
        return (reports.format_status(reports.status_data(src)) + "\n\n"
                + reports.format_training(reports.training_data(src)))
    finally:
        reports.close(src)


class ReportScreen(ModalScreen[None]):
    @dataclass
    class Loaded(Message):
        text: str

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,s", "close", "Close", id="report.close"),
    ]
    AUTO_FOCUS = "#report-scroll"

    def __init__(self, paths: DataPaths, config: Config) -> None:
        super().__init__(classes="dialog-screen")
        self.paths = paths
        self.config = config
        self.text = ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide-dialog", id="report-dialog") as dialog:
            dialog.border_title = "Status and training reports"
            dialog.border_subtitle = "↑/↓ scroll · Esc close"
            with VerticalScroll(id="report-scroll"):
                yield Static(Text("reading the data directory…", style="dim"),
                             id="report-text")

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="report")
    def _load(self) -> None:
        try:
            text = report_text(self.paths, self.config)
        except Exception as exc:  # a report must never take the dashboard down
            text = f"could not read the reports: {type(exc).__name__}: {exc}"
        # post_message is thread-safe and never waits on the UI (call_from_thread would).
        self.post_message(self.Loaded(text))

    def on_report_screen_loaded(self, message: Loaded) -> None:
        text = message.text
        self.text = text
        # The report already cleaned every outside string; Text keeps it literal.
        self.query_one("#report-text", Static).update(Text(text))

    def action_close(self) -> None:
        self.dismiss(None)
