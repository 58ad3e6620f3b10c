"""The event log: decisions, outcomes with rewards, notices and errors, newest at the bottom.

Lines arrive already bounded per repaint (``DashboardModel`` keeps at most N per batch) and
the widget keeps at most ``max_lines``; every line is written as literal ``Text``.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from aegis_tui.ui.model import LogLine

STYLES = {"error": "bold red", "warning": "yellow", "info": "", "iteration": "dim",
          "skipped": "dim italic"}


class EventLog(RichLog):
    def __init__(self, *, max_lines: int = 500, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(max_lines=max_lines, markup=False, highlight=False, wrap=False,
                         auto_scroll=True, id=id, classes=classes)
        self.border_title = "Event log"
        self.lines_written = 0

    def add(self, lines: Iterable[LogLine]) -> None:
        for line in lines:
            self.write(Text(line.text, style=STYLES.get(line.level, "")))
            self.lines_written += 1
