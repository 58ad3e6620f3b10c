"""``python -m aegis_tui.config_reference``: rewrite the README's table of every setting.

The table between ``<!-- config-reference -->`` and ``<!-- /config-reference -->`` is
generated from the settings' declarations (``config.reference_markdown``);
``tests/test_config_keys.py`` fails until it is regenerated after a change.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from aegis_tui.config import reference_markdown

BLOCK = re.compile(r"(<!-- config-reference -->\n).*?(<!-- /config-reference -->)", re.S)


def rewrite(readme: Path) -> bool:
    """Put the current table into ``readme``; False when the file has no such block."""
    text = readme.read_text(encoding="utf-8")
    if not BLOCK.search(text):
        return False
    readme.write_text(BLOCK.sub(lambda m: m[1] + reference_markdown() + m[2], text),
                      encoding="utf-8")
    return True


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    if not rewrite(path):
        sys.exit(f"{path}: no <!-- config-reference --> block")
