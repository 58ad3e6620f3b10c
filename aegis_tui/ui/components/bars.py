"""Text bars drawn with eighth blocks, shared by the goal and action panes."""

from __future__ import annotations

from rich.text import Text

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(fraction: float, width: int, style: str = "", empty_style: str = "dim") -> Text:
    """A bar ``width`` cells wide, filled to ``fraction`` with 1/8-cell resolution."""
    width = max(0, width)
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    out = Text("█" * full, style=style)
    if full < width:
        if part:
            out.append(_EIGHTHS[part], style=style)
        rest = width - full - (1 if part else 0)
        out.append("░" * rest, style=empty_style)
    return out
