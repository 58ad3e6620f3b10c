"""The curiosity queue: the topics the agent wants to search next, highest priority first."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from aegis_tui.snapshot import TopicView
from aegis_tui.ui.model import DashboardModel
from aegis_tui.ui.safe import safe, stack


class CuriosityPane(Widget):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.border_title = "Curiosity queue"
        self.topics: tuple[TopicView, ...] = ()

    def show(self, model: DashboardModel) -> None:
        if model.state is None:
            return
        snap = model.state.snapshot
        title = f"Curiosity queue ({snap.curiosity_size} topics)"
        if title != self.border_title:
            self.border_title = title
        topics = tuple(snap.curiosity)
        if topics != self.topics:
            self.topics = topics
            self.refresh()

    def render(self) -> Text:
        if not self.topics:
            return Text("the queue is empty", style="dim")
        lines = []
        for topic in self.topics:
            line = Text(f"{topic.priority:5.2f} ", style="bold cyan")
            line.append_text(safe(topic.topic, 120))
            if topic.times_searched:
                line.append(f"  ×{topic.times_searched}", style="dim")
            lines.append(line)
        return stack(lines, self.size.width)
