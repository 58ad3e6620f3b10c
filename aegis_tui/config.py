"""Configuration: defaults in code, an optional TOML file, then CLI overrides.

Every value is validated in one place (``validate``), and every error names the key, so a
typo in ``config.toml`` or a bad ``--flag`` is one clear line instead of a traceback.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

WORLDS = ("auto", "live", "offline", "sim")
TEACHERS = ("auto", "lm", "rules")
# Where the LM teacher runs, and the web search settings (see the block in ``Config``).
DEVICES = ("auto", "cpu", "cuda", "mps")
SAFESEARCH = ("on", "moderate", "off")
# ddgs 9.x's text backends ("auto" = all of them, Wikipedia and Grokipedia first).
SEARCH_BACKENDS = ("auto", "bing", "brave", "duckduckgo", "google", "grokipedia", "mojeek",
                   "wikipedia", "yahoo", "yandex")

DEFAULT_GOALS: tuple[str, ...] = (
    "Understand how Python manages memory and garbage collection",
    "Learn how asynchronous programming works with asyncio and event loops",
    "Learn how regular expressions match and search text",
    "Understand how data is serialized with json and pickle",
)


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range; the message names the key."""


@dataclass(frozen=True, slots=True)
class RewardTable:
    """Rewards from DESIGN.md; knowledge is paid per new item."""

    knowledge_per_item: float = 1.0
    improvement_approved: float = 10.0
    proposal_pending: float = 1.0
    question_answered: float = 0.5
    search_failed: float = -0.5
    duplicate_proposal: float = -2.0
    idle: float = -0.1


@dataclass(frozen=True, slots=True)
class Config:
    # What runs.
    world: str = "auto"
    teacher: str = "auto"
    teacher_model: str = "gpt2"
    # In units of the model's own score spread (LMTeacher.score_scale): 0.5 makes tiny random
    # LMs of four architectures and a GPT-2-sized one take their top action 53-94% of the time.
    teacher_temperature: float = 0.5
    teacher_load_timeout_s: float = 180.0
    seed: int = 0
    think_interval: float = 0.5
    goals: tuple[str, ...] = DEFAULT_GOALS
    # Phase 1: data collection.
    collect_threshold: int = 1000
    check_every: int = 100
    autosave_every: int = 100
    min_forced_examples: int = 50
    retrain_after: int = 500
    # Phase 2: imitation.
    epochs: int = 20
    checkpoint_every: int = 5
    accuracy_gate: float = 0.6
    gate_trial_after: int = 2  # runs below the gate before the HRM gets a reward trial (0: never)
    batch_size: int = 64
    learning_rate: float = 2e-3
    val_fraction: float = 0.15
    training_timeout_s: float = 1800.0
    # The loop waits while the training child runs (the teacher makes no decisions then), so
    # when Phase 3 starts does not depend on how fast the machine trains: for benchmarks.
    wait_for_training: bool = False
    # Phase 3: RL fine-tuning.
    rl_update_every: int = 10
    rl_learning_rate: float = 1e-3
    rl_entropy_coef: float = 0.01
    rl_kl_coef: float = 0.1
    rl_value_coef: float = 0.5
    rl_gamma: float = 0.9
    rl_checkpoint_every: int = 20
    # Lead over the teacher (a share of its reward, at least of 1.0) that ends the KL pull.
    rl_kl_fade: float = 0.25
    fallback_window: int = 200
    fallback_margin: float = 0.25
    fallback_cooldown: int = 500
    # The agent and its world.
    results_per_search: int = 5
    max_curiosity: int = 50
    goal_complete_at: int = 10
    question_expiry_s: float = 600.0
    proposal_expiry_s: float = 1800.0
    search_timeout_s: float = 10.0
    search_min_interval_s: float = 2.0
    search_backoff_s: float = 30.0
    probe_timeout_s: float = 3.0
    # Files.
    log_max_bytes: int = 5_000_000
    log_backups: int = 3
    # The teacher on the user's hardware, its download, and the live web's search settings.
    device: str = "auto"  # auto: CUDA, else MPS, else CPU
    torch_threads: int = 0  # torch threads in the agent's process; 0: AEGIS_TORCH_THREADS or auto
    teacher_revision: str = ""  # a branch, tag or commit of a hub model; "": the default branch
    teacher_chat_template: bool = True  # wrap the prompt in the model's chat template, if any
    download_stall_timeout_s: float = 60.0  # give up a download after this long without data
    search_backend: str = "auto"  # ddgs backends, comma-separated
    region: str = "us-en"
    safesearch: str = "moderate"
    proxy: str = ""  # for web search; "": DDGS_PROXY, else HTTPS_PROXY/ALL_PROXY
    rewards: RewardTable = field(default_factory=RewardTable)


# name -> (kind, lower bound, upper bound); choices are checked separately.
_BOUNDS: dict[str, tuple[type, float | None, float | None]] = {
    "teacher_load_timeout_s": (float, 1, 3600),
    "seed": (int, 0, 2**31 - 1),
    "teacher_temperature": (float, 0.01, 100),
    "think_interval": (float, 0, 3600),
    "collect_threshold": (int, 1, 10_000_000),
    "check_every": (int, 1, 1_000_000),
    "autosave_every": (int, 1, 1_000_000),
    "min_forced_examples": (int, 2, 1_000_000),
    "retrain_after": (int, 1, 10_000_000),
    "epochs": (int, 1, 1000),
    "checkpoint_every": (int, 1, 1000),
    "accuracy_gate": (float, 0, 1),
    "gate_trial_after": (int, 0, 1000),
    "batch_size": (int, 1, 65536),
    "learning_rate": (float, 1e-7, 1),
    "val_fraction": (float, 0.01, 0.9),
    "training_timeout_s": (float, 1, 86_400),
    "rl_update_every": (int, 1, 100_000),
    "rl_learning_rate": (float, 1e-8, 1),
    "rl_entropy_coef": (float, 0, 10),
    "rl_kl_coef": (float, 0, 100),
    "rl_value_coef": (float, 0, 100),
    "rl_gamma": (float, 0, 1),
    "rl_checkpoint_every": (int, 1, 1_000_000),
    "rl_kl_fade": (float, 0, 10),
    "fallback_window": (int, 10, 1_000_000),
    "fallback_margin": (float, 0, 10),
    "fallback_cooldown": (int, 0, 10_000_000),
    "results_per_search": (int, 1, 10),
    "max_curiosity": (int, 1, 10_000),
    "goal_complete_at": (int, 1, 100_000),
    "question_expiry_s": (float, 1, 10_000_000),
    "proposal_expiry_s": (float, 1, 10_000_000),
    "search_timeout_s": (float, 0.1, 600),
    "search_min_interval_s": (float, 0, 3600),
    "search_backoff_s": (float, 0, 86_400),
    "probe_timeout_s": (float, 0.1, 60),
    "log_max_bytes": (int, 10_000, 10**10),
    "log_backups": (int, 0, 100),
}
_CHOICES: dict[str, tuple[str, ...]] = {"world": WORLDS, "teacher": TEACHERS}

# The hardware, download and web-search block (kept apart from the tables above).
_BOUNDS.update({
    "torch_threads": (int, 0, 1024),
    "download_stall_timeout_s": (float, 1, 3600),
})
_CHOICES.update({"device": DEVICES, "safesearch": SAFESEARCH})
_REGION = re.compile(r"[a-z]{2}-[a-z]{2}")
_REVISION = re.compile(r"[\w.\-/]{1,200}")
_PROXY_SCHEMES = ("http://", "https://", "socks5://", "socks5h://")

# Settings a proposal may change while the agent runs, with the bounds it must stay in.
TUNABLE_SETTINGS: dict[str, tuple[int, int]] = {
    "results_per_search": (1, 10),
    "max_curiosity": (10, 200),
    "goal_complete_at": (3, 50),
}


def config_keys() -> list[str]:
    return [f.name for f in fields(Config)]


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(key: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got a boolean")
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{key}: must be finite, got {value!r}")
    return value


def _check_value(key: str, value: Any) -> Any:
    if key in _CHOICES:
        if value not in _CHOICES[key]:
            raise ConfigError(f"{key}: must be one of {', '.join(_CHOICES[key])}, got {value!r}")
        return value
    if key == "teacher_model":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError("teacher_model: must be a model id or a folder path")
        return value.strip()
    if key == "goals":
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError("goals: must be a list of strings")
        goals = tuple(str(g).strip() for g in value if isinstance(g, str) and g.strip())
        if len(goals) != len(value) or not goals:
            raise ConfigError("goals: must be a non-empty list of non-empty strings")
        return goals
    if key == "rewards":
        return _rewards(value)
    if key in _TEXT_CHECKS:
        return _TEXT_CHECKS[key](value)
    kind, low, high = _BOUNDS[key]
    value = _coerce(key, value, kind)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{key}: must be between {low:g} and {high:g}, got {value!r}")
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value.strip()


def _revision(value: Any) -> str:
    text = _text("teacher_revision", value)
    if text and (not _REVISION.fullmatch(text) or ".." in text):
        raise ConfigError(f"teacher_revision: not a branch, tag or commit: {text!r}")
    return text


def _backend(value: Any) -> str:
    text = _text("search_backend", value).lower()
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SEARCH_BACKENDS]
    if not names or unknown:
        raise ConfigError(f"search_backend: must be one or more of {', '.join(SEARCH_BACKENDS)} "
                          f"(comma-separated), got {value!r}")
    return ",".join(names)


def _region(value: Any) -> str:
    text = _text("region", value).lower()
    if not _REGION.fullmatch(text):
        raise ConfigError(f"region: must look like 'us-en' or 'wt-wt', got {value!r}")
    return text


def _proxy(value: Any) -> str:
    text = _text("proxy", value)
    if text and not (text == "tb" or text.lower().startswith(_PROXY_SCHEMES)):
        raise ConfigError("proxy: must be a URL starting with http://, https://, socks5:// or "
                          f"socks5h:// (or \"tb\" for Tor Browser), got {value!r}")
    return text


def _flag(key: str) -> Any:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value

    return check


_TEXT_CHECKS: dict[str, Any] = {
    "teacher_revision": _revision, "search_backend": _backend, "region": _region,
    "proxy": _proxy, "teacher_chat_template": _flag("teacher_chat_template"),
    "wait_for_training": _flag("wait_for_training"),
}


def _rewards(value: Any) -> RewardTable:
    if isinstance(value, RewardTable):
        return value
    if not isinstance(value, dict):
        raise ConfigError("rewards: must be a table of reward values")
    known = [f.name for f in fields(RewardTable)]
    out: dict[str, float] = {}
    for key, raw in value.items():
        if key not in known:
            raise ConfigError(f"rewards.{key}: unknown reward{_suggest(key, known)}")
        out[key] = _coerce(f"rewards.{key}", raw, float)
        if abs(out[key]) > 1e6:
            raise ConfigError(f"rewards.{key}: must be between -1e6 and 1e6")
    return RewardTable(**out)


def validate(config: Config) -> Config:
    """Check every field; return the config with values normalised (ints, floats, tuples)."""
    changes = {f.name: _check_value(f.name, getattr(config, f.name)) for f in fields(Config)}
    cfg = replace(config, **changes)
    if cfg.checkpoint_every > cfg.epochs:
        raise ConfigError(
            f"checkpoint_every: must not exceed epochs ({cfg.epochs}), got {cfg.checkpoint_every}"
        )
    return cfg


def apply_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Apply ``{key: value}`` overrides (from a file or the CLI), rejecting unknown keys."""
    known = config_keys()
    for key in overrides:
        if key not in known:
            raise ConfigError(f"{key}: unknown setting{_suggest(key, known)}")
    checked = {key: _check_value(key, value) for key, value in overrides.items()}
    return validate(replace(config, **checked))


def load_file(path: Path, base: Config | None = None) -> Config:
    """Read a TOML config file on top of ``base`` (defaults when omitted)."""
    base = base or Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        return apply_overrides(base, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def to_dict(config: Config) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(Config):
        value = getattr(config, f.name)
        if isinstance(value, RewardTable):
            value = {r.name: getattr(value, r.name) for r in fields(RewardTable)}
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out
