"""The event log: decisions, outcomes with rewards, notices and errors, newest at the bottom.

Lines arrive already bounded per repaint (``DashboardModel`` keeps at most N per batch) and
the widget keeps at most ``max_lines``; every line is written as literal ``Text``. Clicking
an iteration line posts ``DecisionSelected``, which opens the decision inspector on it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widgets import RichLog

from aegis_tui.ui.model import LogLine

STYLES = {"error": "bold red", "warning": "yellow", "info": "", "iteration": "dim",
          "skipped": "dim italic"}


class EventLog(RichLog):
    @dataclass
    class DecisionSelected(Message):
        """An iteration line was clicked."""

        iteration: int

    def __init__(self, *, max_lines: int = 500, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(max_lines=max_lines, markup=False, highlight=False, wrap=False,
                         auto_scroll=True, id=id, classes=classes)
        self.border_title = "Event log"
        self.lines_written = 0
        # The iteration of every line written, aligned with ``RichLog.lines`` (one write is
        # one line: the text is a single line and the log does not wrap).
        self._iterations: deque[int | None] = deque(maxlen=max_lines)

    def add(self, lines: Iterable[LogLine]) -> None:
        for line in lines:
            self.write(Text(line.text, style=STYLES.get(line.level, "")))
            self._iterations.append(line.iteration)
            self.lines_written += 1

    def iteration_at(self, row: int) -> int | None:
        """The iteration of the line at content row ``row`` (scrolling included)."""
        index = row + self.scroll_offset.y
        if len(self.lines) != len(self._iterations):  # writes still wait for the layout
            return None
        return self._iterations[index] if 0 <= index < len(self.lines) else None

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        iteration = self.iteration_at(offset.y)
        if iteration is not None:
            event.stop()
            self.post_message(self.DecisionSelected(iteration))
