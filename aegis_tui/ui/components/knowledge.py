"""The knowledge pane: the latest items the agent learned, newest first, with their source."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from aegis_tui.ui.model import DashboardModel
from aegis_tui.ui.safe import safe, stack


class KnowledgePane(Widget):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.border_title = "Knowledge"
        self.items: tuple[tuple[str, str, str], ...] = ()

    def show(self, model: DashboardModel) -> None:
        if model.state is not None:
            title = f"Knowledge ({model.state.snapshot.knowledge_count:,} items)"
            if title != self.border_title:
                self.border_title = title
        items = tuple(model.knowledge)
        if items != self.items:
            self.items = items
            self.refresh()

    def render(self) -> Text:
        if not self.items:
            return Text("nothing learned yet", style="dim")
        lines = []
        for title, source, _topic in self.items[: max(1, self.size.height)]:
            line = Text("• ", style="green")
            line.append_text(safe(title, 120))
            line.append("  ")
            line.append_text(safe(source, 100, style="dim italic"))
            lines.append(line)
        return stack(lines, self.size.width)
