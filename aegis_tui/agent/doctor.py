"""``aegis-tui doctor``: is everything a run needs in place? One line per check.

Python, torch and its device, the teacher model (a local folder, or in the Hugging Face
cache: where, how big), the web (only when the world needs it), and the data directory
(size, free disk, whether it is writable, who holds the lock, whether the database opens).
Each line says OK, or what is wrong and what to do. Nothing is downloaded and nothing can
hang: the cache is only looked at (``try_to_load_from_cache``, ``scan_cache_dir``), and the
web probe is bounded by ``probe_timeout_s``. The exit code is 1 when a check failed.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aegis_tui.config import Config
from aegis_tui.paths import DataPaths
from aegis_tui.storage.database import Database
from aegis_tui.storage.lock import describe, read_holder
from aegis_tui.text import clean
from aegis_tui.world.live import probe_web

OK, WARN, FAIL = "OK", "WARN", "FAIL"
LOW_DISK_BYTES = 500 * 1024**2
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")

Probe = Callable[[float], tuple[bool, str]]


@dataclass(frozen=True, slots=True)
class Check:
    status: str  # OK | WARN | FAIL
    name: str
    text: str


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def check_python() -> Check:
    # aegis-tui does not import below 3.11 (pyproject says so), so there is no "too old".
    return Check(OK, "python", f"{platform.python_implementation()} "
                               f"{platform.python_version()} ({sys.executable})")


def check_torch() -> Check:
    try:
        import torch
    except Exception as exc:
        return Check(FAIL, "torch", f"cannot import torch ({clean(exc, 120)}): install the CPU "
                                    "build, pip install torch==2.13.0")
    devices = []
    if torch.cuda.is_available():
        devices.append(f"CUDA ({clean(torch.cuda.get_device_name(0), 60)})")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("MPS")
    found = (", ".join(devices) if devices
             else "CPU only (no CUDA or MPS device; fine: the HRM is small)")
    return Check(OK, "torch", f"torch {torch.__version__}; device: {found}")


def _cached_repo(model: str) -> tuple[str, str] | None:
    """``(where, size)`` of ``model`` in the Hugging Face cache, looked at only."""
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir()
    except Exception:
        return None
    for repo in info.repos:
        if repo.repo_type == "model" and repo.repo_id == model:
            return str(repo.repo_path), _size(repo.size_on_disk)
    return None


def check_teacher(config: Config) -> Check:
    if config.teacher == "rules":
        return Check(OK, "teacher", "the rules heuristic (--teacher rules): nothing to load")
    model = config.teacher_model
    shown = clean(model, 80)
    fallback = ("--teacher auto will use the rules heuristic instead" if config.teacher == "auto"
                else "use --teacher auto or --teacher rules")
    bad = WARN if config.teacher == "auto" else FAIL
    folder = Path(model).expanduser()
    if folder.is_dir():
        if (folder / "config.json").is_file():
            return Check(OK, "teacher", f"{shown}: a local model folder")
        return Check(bad, "teacher", f"{shown} is a folder without config.json, not a model; "
                                     f"{fallback}")
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        config_file = try_to_load_from_cache(model, "config.json")
        weights = [f for f in WEIGHT_FILES
                   if isinstance(try_to_load_from_cache(model, f), str)]
    except Exception as exc:  # not a valid repo id
        return Check(bad, "teacher", f"{shown} is neither a folder nor a valid model id "
                                     f"({clean(exc, 100)}); {fallback}")
    if isinstance(config_file, str) and weights:
        where = _cached_repo(model)
        place = f"{where[0]} ({where[1]})" if where else str(Path(config_file).parent)
        return Check(OK, "teacher", f"{shown}: in the Hugging Face cache at {place}")
    if constants.HF_HUB_OFFLINE:
        return Check(bad, "teacher", f"{shown} is not in the Hugging Face cache "
                                     f"({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set: "
                                     f"{fallback}, or download it once online")
    return Check(WARN, "teacher", f"{shown} is not in the Hugging Face cache yet "
                                  f"({constants.HF_HUB_CACHE}): the first run downloads it "
                                  "(GPT-2: about 550 MB), or use --teacher rules")


def check_web(config: Config, probe: Probe | None = None) -> Check:
    if config.world in ("sim", "offline"):
        return Check(OK, "web", f"not needed (--world {config.world})")
    if probe is None:
        probe = probe_web
    try:
        reachable, reason = probe(config.probe_timeout_s)
    except Exception as exc:
        reachable, reason = False, f"probe failed: {exc}"
    reason = clean(reason, 120)
    if reachable:
        return Check(OK, "web", f"reachable ({reason})")
    if config.world == "auto":
        return Check(WARN, "web", f"unreachable ({reason}): --world auto will search the "
                                  "offline corpus (the Python docs)")
    return Check(FAIL, "web", f"unreachable ({reason}): --world live cannot search; use "
                              "--world auto or offline")


def _tree_size(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def check_data_dir(paths: DataPaths) -> list[Check]:
    root = paths.root
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    disk = f"{_size(free)} free"
    if not root.exists():
        if not os.access(existing, os.W_OK):
            return [Check(FAIL, "data dir", f"{root} does not exist and {existing} is not "
                                            "writable: pass --data-dir or set AEGIS_HOME")]
        return [Check(OK, "data dir", f"{root} (created at the first run; {disk})")]
    if not root.is_dir():
        return [Check(FAIL, "data dir", f"{root} is a file: pass another --data-dir")]
    if not os.access(root, os.W_OK):
        return [Check(FAIL, "data dir", f"{root} is not writable: fix its permissions or "
                                        "pass another --data-dir")]
    out = [Check(WARN if free < LOW_DISK_BYTES else OK, "data dir",
                 f"{root}: {_size(_tree_size(root))} used, {disk}"
                 + ("; low on space: the example log and checkpoints grow with a run"
                    if free < LOW_DISK_BYTES else ""))]
    holder = read_holder(paths.lock)
    out.append(Check(OK, "lock", "free: no agent runs on this data directory" if holder is None
                     else f"held by {describe(holder)}; a second agent here would be "
                          "refused (status, answer, review and export work alongside)"))
    out.append(_check_database(paths))
    return out


def _check_database(paths: DataPaths) -> Check:
    if not paths.database.exists():
        return Check(OK, "database", f"{paths.database.name}: none yet (created at the first "
                                     "run)")
    try:
        db = Database(paths.database, readonly=True)
        try:
            last = db.last_iteration()
        finally:
            db.close()
    except Exception as exc:  # DatabaseError, or sqlite3's own
        return Check(FAIL, "database", f"{clean(exc, 160)}: the next run moves it to "
                                       "quarantine/ and salvages what it can")
    return Check(OK, "database", f"{paths.database.name} opens (last iteration {last})")


def run_checks(config: Config, paths: DataPaths, *, probe: Probe | None = None) -> list[Check]:
    return [check_python(), check_torch(), check_teacher(config), check_web(config, probe),
            *check_data_dir(paths)]


def format_checks(checks: list[Check]) -> str:
    lines = [f"{c.status:<4}  {c.name:<8}  {c.text}" for c in checks]
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    if failed:
        lines.append(f"{failed} check{'s' * (failed != 1)} failed; see above for what to do")
    elif warned:
        lines.append(f"ready, with {warned} warning{'s' * (warned != 1)}")
    else:
        lines.append("everything is ready")
    return "\n".join(lines)
