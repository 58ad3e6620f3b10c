"""Dashboard preferences kept between runs: ``dashboard.json`` in the data directory.

Only what a person chooses inside the dashboard lives here (the theme picked in the command
palette), as posting keeps its own; ``config.toml`` stays the user's file, never rewritten.
The file is replaced atomically (``storage.atomic``), so a crash leaves the old or the new
one. An unreadable or foreign file is ignored with a warning in the log, never fatal.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from aegis_tui.storage.atomic import atomic_write_bytes

SETTINGS_FILE = "dashboard.json"

log = logging.getLogger("aegis")


def settings_path(root: Path) -> Path:
    return root / SETTINGS_FILE


def load_settings(root: Path) -> dict[str, Any]:
    path = settings_path(root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return {}
    if not isinstance(data, dict):
        log.warning("ignoring %s: not a JSON object", path)
        return {}
    return data


def save_setting(root: Path, key: str, value: Any) -> None:
    """Set one preference, keeping the others; raises ``OSError`` when it cannot write."""
    data = load_settings(root)
    data[key] = value
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(settings_path(root), text.encode("utf-8"))
