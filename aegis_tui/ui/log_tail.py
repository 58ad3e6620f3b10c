"""The last lines of ``aegis.log``, so the event log opens with what happened before.

The file is written by the agent (``agent.event_log``) as ``DATE TIME LEVEL message``;
only such lines are kept (traceback lines are not), the timestamp is dropped, and the
message goes through ``clean`` because it may quote outside text.
"""

from __future__ import annotations

import re
from pathlib import Path

from aegis_tui.text import clean

_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:,\d+)? (INFO|WARNING|ERROR) (.*)$")
_LEVELS = {"INFO": "info", "WARNING": "warning", "ERROR": "error"}


def recent_log_lines(path: Path, limit: int = 30, max_bytes: int = 64 * 1024,
                     ) -> list[tuple[str, str]]:
    """Up to ``limit`` ``(level, message)`` pairs from the end of ``path`` (none if absent)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = tail.splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first line was cut in the middle
    out: list[tuple[str, str]] = []
    for line in lines:
        match = _LINE.match(line)
        if match:
            level, message = match.groups()
            level_name = "iteration" if message.startswith("[iter ") else _LEVELS[level]
            out.append((level_name, clean(message, 400)))
    return out[-limit:]
