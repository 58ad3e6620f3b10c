"""An SVG screenshot of the dashboard over an existing data directory (for the README).

The data directory is copied first and the agent opened paused on the copy, so taking a
screenshot never changes the original (opening a runtime writes its metadata) and never
runs an iteration. The world and teacher default to what the directory was run with.

    python -m aegis_tui.ui.screenshot --data-dir D --out assets/dashboard.svg
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any

from aegis_tui.config import (
    WORLDS,
    Config,
    ConfigError,
    apply_overrides,
    config_keys,
    upgrade_keys,
)
from aegis_tui.paths import DataPaths
from aegis_tui.storage.database import Database, DatabaseError
from aegis_tui.ui.harness import copy_data_dir, wait_ready

TITLE = "aegis-tui"


def stored_config(paths: DataPaths, **overrides: Any) -> Config:
    """The config the directory's last run used (``meta.config``), then ``overrides``."""
    settings: dict[str, Any] = {}
    if paths.database.exists():
        with contextlib.suppress(DatabaseError):
            db = Database(paths.database, readonly=True)
            try:
                stored = db.get_meta("config")
            finally:
                db.close()
            if isinstance(stored, dict):
                known = set(config_keys())
                settings = {k: v for k, v in upgrade_keys(stored).items() if k in known}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return apply_overrides(Config(), settings)
    except ConfigError:
        return apply_overrides(Config(), {k: v for k, v in overrides.items() if v is not None})


async def _render(paths: DataPaths, config: Config, size: tuple[int, int]) -> str:
    from aegis_tui.ui.app import AegisApp

    app = AegisApp(config, paths, start_paused=True)
    async with app.run_test(size=size) as pilot:
        await wait_ready(app, timeout=120)
        if app.failure:
            raise RuntimeError(app.failure)
        await pilot.pause(0.5)
        return app.export_screenshot(title=TITLE)


def render_screenshot(data_dir: Path, out: Path, *, size: tuple[int, int] = (160, 48),
                      world: str | None = None, teacher: str | None = None) -> Path:
    """Save an SVG of the dashboard over ``data_dir`` (left untouched) to ``out``."""
    source = DataPaths.resolve(data_dir)
    if not source.database.exists():
        raise FileNotFoundError(f"no agent database in {source.root}")
    with tempfile.TemporaryDirectory(prefix="aegis-screenshot-") as tmp:
        paths = copy_data_dir(source.root, Path(tmp) / "data", include_logs=True)
        config = stored_config(paths, world=world, teacher=teacher)
        svg = asyncio.run(_render(paths, config, size))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aegis_tui.ui.screenshot",
                                     description="Save an SVG screenshot of the dashboard.")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--world", choices=WORLDS, help="override the stored world")
    parser.add_argument("--teacher", choices=("auto", "lm", "rules"),
                        help="override the stored teacher")
    args = parser.parse_args(argv)
    try:
        out = render_screenshot(args.data_dir, args.out, size=(args.width, args.height),
                                world=args.world, teacher=args.teacher)
    except (OSError, RuntimeError) as exc:
        print(f"screenshot: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
