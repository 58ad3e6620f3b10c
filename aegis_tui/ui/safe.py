"""Turning untrusted strings into renderables that show them literally.

Search results, answers, proposals, questions, model output and file names come from
outside. Here they become ``rich.text.Text`` objects built from ``clean``ed strings: Text
never interprets markup (``[link=...]`` or ``[@click=...]`` stay characters), ``clean``
drops ANSI escapes and control characters and shortens with an ellipsis. Widgets in this
package render these, never markup strings.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text

from aegis_tui.text import clean


def safe(value: object, limit: int | None = 200, style: str = "", *,
         keep_newlines: bool = False) -> Text:
    """``value`` as literal text: cleaned, truncated to ``limit`` characters, styled."""
    return Text(clean(value, limit, keep_newlines=keep_newlines), style=style)


def fit(line: Text, width: int) -> Text:
    """One display line no wider than ``width`` cells, ending in an ellipsis if cut."""
    line = line.copy()
    line.no_wrap = True
    if width <= 0:
        return Text("")
    line.truncate(width, overflow="ellipsis")
    return line


def stack(lines: Iterable[Text], width: int) -> Text:
    """Lines fitted to ``width`` and joined with newlines into one renderable."""
    out = Text("\n").join(fit(line, width) for line in lines)
    out.no_wrap = True
    return out


def join(*parts: Text | str) -> Text:
    """Concatenate literal parts (plain ``str`` parts are internal labels, never markup)."""
    out = Text()
    for part in parts:
        out.append(part if isinstance(part, Text) else Text(part))
    return out
