"""``run_dashboard``: what ``aegis-tui`` (and ``aegis-tui run`` without ``--headless``) calls.

It checks there is a terminal to draw on, reads the optional key remaps from
``keymap.toml`` in the data directory (``binding_id = "key"``, as posting does), runs the
app, and turns a runtime that would not open into the CLI's one-line error and exit code.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from aegis_tui.config import Config
from aegis_tui.exit_codes import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from aegis_tui.paths import DataPaths

KEYMAP_FILE = "keymap.toml"


class KeymapError(ValueError):
    """``keymap.toml`` is unreadable or names an unknown binding; the message says which."""


def load_keymap(path: Path) -> dict[str, str]:
    """Binding id -> key(s), e.g. ``pause = "ctrl+p,space"``; missing file -> no remaps."""
    from aegis_tui.ui.app import KEY_IDS

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise KeymapError(f"{path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KeymapError(f"{path} is not valid TOML: {exc}") from None
    out: dict[str, str] = {}
    for binding_id, keys in data.items():
        if binding_id not in KEY_IDS:
            raise KeymapError(f"{path}: {binding_id!r} is not a binding id; known ids: "
                              f"{', '.join(KEY_IDS)}")
        if not isinstance(keys, str) or not keys.strip():
            raise KeymapError(f"{path}: {binding_id} must be a key such as \"ctrl+p\"")
        out[binding_id] = ",".join(k.strip() for k in keys.split(",") if k.strip())
    return out


def _err(message: str) -> None:
    print(f"aegis-tui: error: {message}", file=sys.stderr)


def run_dashboard(config: Config, paths: DataPaths, iterations: int | None,
                  tensorboard: Path | None = None) -> int:
    """Run the dashboard until the user quits; returns the process exit code."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        _err("the dashboard needs a terminal; use `aegis-tui run --headless` to run without "
             "one")
        return EXIT_USAGE
    try:
        keymap = load_keymap(paths.root / KEYMAP_FILE)
    except KeymapError as exc:
        _err(str(exc))
        return EXIT_USAGE
    from aegis_tui.ui.app import AegisApp

    app = AegisApp(config, paths, iterations=iterations, keymap=keymap,
                   tensorboard_dir=tensorboard)
    app.run()
    if app.failure:
        _err(app.failure)
        return app.return_code or EXIT_FAIL
    return app.return_code or EXIT_OK
