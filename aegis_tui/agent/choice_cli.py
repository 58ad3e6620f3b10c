"""``aegis-tui adopt`` / ``aegis-tui keep-teacher``: the way forward after a missed gate.

The choice is written to the data directory's database; a running agent applies it on its
next iteration (the dashboard's ``h`` key takes the same path), and an agent that is not
running applies it when it starts.
"""

from __future__ import annotations

import sys

from aegis_tui.agent.loop import CHOICE_META_KEY, CHOICES
from aegis_tui.paths import DataPaths
from aegis_tui.storage.database import Database, DatabaseError
from aegis_tui.storage.lock import read_holder

_WORDS = {"adopt": "adopt the trained HRM (RL takes over)",
          "keep_teacher": "keep the teacher (no training starts on its own)"}


def request_choice(paths: DataPaths, choice: str) -> int:
    if choice not in CHOICES:
        raise ValueError(choice)
    if not paths.database.exists():
        print(f"aegis-tui: error: no agent data in {paths.root} (run the agent first, or pass "
              "--data-dir)", file=sys.stderr)
        return 1
    if choice == "adopt" and not paths.trained_checkpoint.exists():
        print("aegis-tui: error: there is no trained HRM to adopt yet (aegis-tui train makes "
              "one)", file=sys.stderr)
        return 1
    try:
        db = Database(paths.database)
    except DatabaseError as exc:
        print(f"aegis-tui: error: {exc}", file=sys.stderr)
        return 1
    try:
        db.set_meta(CHOICE_META_KEY, choice)
    finally:
        db.close()
    holder = read_holder(paths.lock)
    when = (f"the running agent (pid {holder.get('pid', '?')}) applies it on its next "
            "iteration" if holder is not None else "the agent applies it when it next starts")
    print(f"asked to {_WORDS[choice]}; {when}")
    return 0
