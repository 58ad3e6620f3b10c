"""Configuration: defaults in code, an optional TOML file, then CLI overrides.

Each key is declared once, on its field (default, allowed values, help; ``knobs.knob``), and
checked by the same code however it arrives; every error names the key, so a typo in
``config.toml`` or a bad ``--flag`` is one clear line instead of a traceback. The tables
``[rewards]``, ``[imitation]`` (with ``[imitation.model]``) and ``[rl]`` nest like TOML.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from aegis_tui.knobs import (
    ConfigError,
    KnobDoc,
    as_dict,
    build,
    check_fields,
    describe,
    knob,
    merge,
    table,
    value_at,
)
from aegis_tui.policy.hrm_config import HRMConfig

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


@dataclass(frozen=True, slots=True)
class RewardTable:
    """The ``[rewards]`` table (DESIGN.md's reward table); knowledge is paid per new item."""

    TABLE: ClassVar[str] = "rewards"

    knowledge_per_item: float = knob(1.0, "per new knowledge item a search brings",
                                     low=-1e6, high=1e6)
    improvement_approved: float = knob(10.0, "a proposal the human approves", low=-1e6,
                                       high=1e6)
    proposal_pending: float = knob(1.0, "a new proposal waiting for review", low=-1e6, high=1e6)
    question_answered: float = knob(0.5, "a question the human answers", low=-1e6, high=1e6)
    search_failed: float = knob(-0.5, "a search that fails or finds nothing", low=-1e6,
                                high=1e6)
    duplicate_proposal: float = knob(-2.0, "a proposal already made", low=-1e6, high=1e6)
    idle: float = knob(-0.1, "an idle iteration", low=-1e6, high=1e6)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True, slots=True)
class ImitationSettings:
    """Phase 2: how the HRM learns to imitate the teacher's logged decisions."""

    TABLE: ClassVar[str] = "imitation"

    epochs: int = knob(20, "passes over the examples", low=1, high=1000)
    checkpoint_every: int = knob(5, "write hrm_epoch_N.pt every N epochs (and the last)",
                                 low=1, high=1000)
    batch_size: int = knob(64, "examples per step", low=1, high=65_536)
    learning_rate: float = knob(2e-3, "AdamW's peak step size", low=1e-7, high=1.0)
    val_fraction: float = knob(0.15, "share of every logged class held out for the gate",
                               low=0.01, high=0.9)
    weight_decay: float = knob(0.01, "AdamW weight decay (matrices only)", low=0.0, high=1.0)
    warmup_steps: int = knob(20, "linear warm-up steps before the cosine decay",
                             low=0, high=1_000_000)
    min_lr_ratio: float = knob(0.1, "where the cosine decay ends, as a share of the peak",
                               low=0.0, high=1.0)
    label_smoothing: float = knob(0.05, "probability spread over all actions in the target",
                                  low=0.0, high=0.99)
    soft_targets: bool = knob(True, "learn the teacher's probabilities (false: its action)")
    hard_target_weight: float = knob(0.25, "share of the target on the teacher's top action",
                                     low=0.0, high=1.0)
    value_coef: float = knob(0.05, "weight of the value head's loss", low=0.0, high=100.0)
    value_gamma: float = knob(0.9, "discount of the value head's target", low=0.0, high=1.0,
                              fixed="it follows rl.gamma, so Phase 3 starts calibrated")
    value_n_step: int = knob(10, "decisions ahead in the value head's target (returns.py)",
                             low=1, high=1000)
    ema_decay: float = knob(0.97, "per-step decay of the weight average that is kept",
                            low=0.0, high=0.9999)
    max_grad_norm: float = knob(1.0, "gradient clipping norm", low=1e-6, high=1e6)
    min_examples: int = knob(20, "fewest examples a run accepts", low=2, high=10_000_000)
    model: HRMConfig = table(HRMConfig, "the HRM's size and shape")

    def __post_init__(self) -> None:
        check_fields(self)

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ImitationSettings:
        """Rebuild from ``to_dict`` output (the worker's JSON argument), in part or whole."""
        return build(cls, data, "imitation settings")


@dataclass(frozen=True, slots=True)
class RLSettings:
    """Phase 3: the policy-gradient updates, and the agent's schedule around them."""

    TABLE: ClassVar[str] = "rl"

    update_every: int = knob(10, "decisions between updates", low=1, high=100_000)
    learning_rate: float = knob(1e-3, "Adam's step size", low=1e-8, high=1.0)
    entropy_coef: float = knob(0.01, "the entropy bonus's starting weight", low=0.0, high=10.0)
    target_entropy: float = knob(0.2, "nats; the entropy weight rises while the policy is "
                                      "below (0: off)", low=0.0, high=10.0)
    kl_coef: float = knob(0.1, "weight of the KL pull toward the imitation model",
                          low=0.0, high=100.0)
    kl_fade: float = knob(0.25, "the HRM's lead over the teacher, as a share of the teacher's "
                                "rolling reward (of at least 1.0), at which the KL pull is "
                                "gone (0: never fades)", low=0.0, high=10.0)
    value_coef: float = knob(0.5, "weight of the value loss", low=0.0, high=100.0)
    value_loss: str = knob("mse", "mse (scaled by the returns' spread) or huber (raw returns)",
                           choices=("mse", "huber"))
    gamma: float = knob(0.9, "discount (also the imitation value head's)", low=0.0, high=1.0)
    gae_lambda: float = knob(0.9, "GAE's lambda", low=0.0, high=1.0)
    n_step: int = knob(32, "successors a return looks ahead over", low=1, high=100_000)
    horizon: int = knob(200, "iterations after which a decision is ready, settled or not",
                        low=1, high=1_000_000)
    minibatch: int = knob(32, "decisions per update (new ones, then reused ones)",
                          low=1, high=65_536)
    replay: int = knob(128, "recent ready decisions a minibatch may reuse", low=1,
                       high=1_000_000)
    clip: float = knob(0.2, "PPO's ratio clip", low=0.001, high=10.0)
    explore: float = knob(0.05, "share of the acting policy spread over the available actions",
                          low=0.0, high=0.99)
    explore_ratio: str = knob("policy", "the ratio's denominator: policy (its own probability) "
                                        "or behaviour (the mixture it acted with)",
                              choices=("policy", "behaviour"))
    max_grad_norm: float = knob(1.0, "gradient clipping norm", low=1e-6, high=1e6)
    weight_decay: float = knob(0.0, "Adam's weight decay", low=0.0, high=1.0)
    train_low_level: bool = knob(False, "also update the fast module and the embeddings")
    max_transitions: int = knob(2000, "decisions kept waiting for their rewards",
                                low=1, high=10_000_000)
    checkpoint_every: int = knob(20, "write hrm_rl.pt every N updates", low=1, high=1_000_000)

    def __post_init__(self) -> None:
        check_fields(self)


def _model_id(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: must be a model id or a folder path")
    return value.strip()


def _goals(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(f"{key}: must be a list of strings")
    goals = tuple(str(g).strip() for g in value if isinstance(g, str) and g.strip())
    if len(goals) != len(value) or not goals:
        raise ConfigError(f"{key}: must be a non-empty list of non-empty strings")
    return goals


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value.strip()


def _revision(key: str, value: Any) -> str:
    text = _text(key, value)
    if text and (not _REVISION.fullmatch(text) or ".." in text):
        raise ConfigError(f"{key}: not a branch, tag or commit: {text!r}")
    return text


def _backend(key: str, value: Any) -> str:
    text = _text(key, value).lower()
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SEARCH_BACKENDS]
    if not names or unknown:
        raise ConfigError(f"{key}: must be one or more of {', '.join(SEARCH_BACKENDS)} "
                          f"(comma-separated), got {value!r}")
    return ",".join(names)


def _region(key: str, value: Any) -> str:
    text = _text(key, value).lower()
    if not _REGION.fullmatch(text):
        raise ConfigError(f"{key}: must look like 'us-en' or 'wt-wt', got {value!r}")
    return text


def _proxy(key: str, value: Any) -> str:
    text = _text(key, value)
    if text and not (text == "tb" or text.lower().startswith(_PROXY_SCHEMES)):
        raise ConfigError(f"{key}: must be a URL starting with http://, https://, socks5:// or "
                          f"socks5h:// (or \"tb\" for Tor Browser), got {value!r}")
    return text


_REGION = re.compile(r"[a-z]{2}-[a-z]{2}")
_REVISION = re.compile(r"[\w.\-/]{1,200}")
_PROXY_SCHEMES = ("http://", "https://", "socks5://", "socks5h://")


@dataclass(frozen=True, slots=True)
class Config:
    """Every setting: its default, allowed values and help, in one place.

    A ``Config`` is always valid (``__post_init__`` checks every field), so code that holds
    one never re-checks a value. The README's configuration tables list the same keys.
    """

    TABLE: ClassVar[str] = ""

    # What runs.
    world: str = knob("auto", "where searches go", choices=WORLDS)
    teacher: str = knob("auto", "who decides in Phase 1 (auto: the LM, else the rules)",
                        choices=TEACHERS)
    teacher_model: str = knob("gpt2", "a Hugging Face model id or a folder path",
                              check=_model_id)
    # In units of the model's own score spread (LMTeacher.score_scale): 0.5 makes tiny random
    # LMs of four architectures and a GPT-2-sized one take their top action 53-94% of the time.
    teacher_temperature: float = knob(0.5, "the LM teacher's sampling temperature, relative "
                                           "to its own score spread", low=0.01, high=100.0)
    teacher_load_timeout_s: float = knob(180.0, "reading the model from disk into memory (the "
                                                "download is not counted)", low=0.1, high=3600.0)
    seed: int = knob(0, "random seed (worlds, policies, training)", low=0, high=2**31 - 1)
    think_interval: float = knob(0.5, "seconds between iterations", low=0.0, high=3600.0)
    goals: tuple[str, ...] = knob(DEFAULT_GOALS, "the agent's starting goals", check=_goals)
    # Phase 1: data collection; Phase 2's schedule and gate.
    collect_threshold: int = knob(1000, "examples before the first imitation run", low=1,
                                  high=10_000_000)
    check_every: int = knob(100, "iterations between checks of whether to train", low=1,
                            high=1_000_000)
    autosave_every: int = knob(100, "examples between flushes of the example log to disk", low=1,
                               high=1_000_000)
    min_forced_examples: int = knob(50, "fewest examples a forced run (t) accepts", low=2,
                                    high=1_000_000)
    retrain_after: int = knob(500, "more examples before the next automatic run after one "
                                   "below the gate", low=1, high=10_000_000)
    accuracy_gate: float = knob(0.6, "validation agreement with the teacher that hands the "
                                     "decisions to the HRM", low=0.0, high=1.0)
    gate_trial_after: int = knob(2, "runs below the gate before the HRM gets a reward trial "
                                    "(0: never)", low=0, high=1000)
    training_timeout_s: float = knob(1800.0, "a training run that takes longer is stopped",
                                     low=1.0, high=86_400.0)
    # The loop waits while the training child runs (the teacher makes no decisions then), so
    # when Phase 3 starts does not depend on how fast the machine trains: for benchmarks.
    wait_for_training: bool = knob(False, "the loop waits while the training child trains (a "
                                          "run then depends on its seeds alone)")
    # Phase 3's fall-back to the teacher.
    fallback_window: int = knob(200, "iterations the fall-back compares", low=10,
                                high=1_000_000)
    fallback_margin: float = knob(0.25, "the shortfall against the teacher (a share of its "
                                        "reward, of at least 1.0) the HRM may show",
                                  low=0.0, high=10.0)
    fallback_cooldown: int = knob(500, "the teacher's stretch after a fall-back", low=0,
                                  high=10_000_000)
    # The agent and its world.
    results_per_search: int = knob(5, "results a web search returns (a proposal may change "
                                "it)", low=1, high=10)
    max_curiosity: int = knob(50, "topics the curiosity queue holds (a proposal may "
                                "change it)", low=1, high=10_000)
    goal_complete_at: int = knob(10, "knowledge items that complete a goal", low=1,
                                 high=100_000)
    question_expiry_s: float = knob(600.0, "an unanswered question expires after this",
                                    low=1.0, high=10_000_000.0)
    proposal_expiry_s: float = knob(1800.0, "an unreviewed proposal expires after this",
                                    low=1.0, high=10_000_000.0)
    search_timeout_s: float = knob(10.0, "a web search that takes longer fails", low=0.1,
                                   high=600.0)
    search_min_interval_s: float = knob(2.0, "seconds between web searches", low=0.0,
                                        high=3600.0)
    search_backoff_s: float = knob(30.0, "the pause after a failed search, doubling with each "
                                   "failure in a row", low=0.0,
                                   high=86_400.0)
    probe_timeout_s: float = knob(3.0, "the start-up check that the web is reachable",
                                  low=0.1, high=60.0)
    # Files.
    log_max_bytes: int = knob(5_000_000, "size at which aegis.log rolls over", low=10_000,
                              high=10**10)
    log_backups: int = knob(3, "rolled-over logs kept", low=0, high=100)
    # The teacher on the user's hardware, its download, and the live web's search settings.
    device: str = knob("auto", "where the LM teacher runs (auto: CUDA, else MPS, else CPU)",
                       choices=DEVICES)
    torch_threads: int = knob(0, "torch threads in the agent's process (0: "
                                 "$AEGIS_TORCH_THREADS, else automatic)", low=0, high=1024)
    teacher_revision: str = knob("", "branch, tag or commit of a hub teacher (\"\": main)",
                                 check=_revision)
    teacher_chat_template: bool = knob(True, "use the model's chat template for the prompt "
                                             "when it has one")
    download_stall_timeout_s: float = knob(60.0, "give up a model download after this long "
                                                 "without a byte", low=1.0, high=3600.0)
    search_backend: str = knob("auto", "ddgs backends, comma-separated", check=_backend)
    region: str = knob("us-en", "search region (wt-wt: none)", check=_region)
    safesearch: str = knob("moderate", "web search's safe search", choices=SAFESEARCH)
    proxy: str = knob("", "proxy URL for web search (\"\": DDGS_PROXY, else HTTPS_PROXY/"
                          "ALL_PROXY); stored without its password", check=_proxy)
    rewards: RewardTable = table(RewardTable, "the reward for each outcome")
    imitation: ImitationSettings = table(ImitationSettings, "Phase 2's training")
    rl: RLSettings = table(RLSettings, "Phase 3's updates")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.imitation.value_gamma != self.rl.gamma:
            # One discount for both phases: the value head Phase 2 warms up is Phase 3's critic.
            object.__setattr__(self, "imitation", replace(self.imitation,
                                                          value_gamma=self.rl.gamma))


# Settings a proposal may change while the agent runs, with the bounds it must stay in.
TUNABLE_SETTINGS: dict[str, tuple[int, int]] = {
    "results_per_search": (1, 10),
    "max_curiosity": (10, 200),
    "goal_complete_at": (3, 50),
}


# Keys that moved into a table, with where they live now: a file that still uses one gets
# a one-line error naming the new key, and a stored config from an older run is read as new.
MOVED_KEYS: dict[str, str] = {
    **{key: f"imitation.{key}" for key in ("epochs", "checkpoint_every", "batch_size",
                                           "learning_rate", "val_fraction")},
    **{f"rl_{key}": f"rl.{key}" for key in ("update_every", "learning_rate", "entropy_coef",
                                            "kl_coef", "value_coef", "gamma",
                                            "checkpoint_every", "kl_fade")},
}


def config_keys() -> list[str]:
    return [f.name for f in fields(Config)]


def setting_docs() -> list[KnobDoc]:
    """Every key a ``config.toml`` may set (dotted for tables), with default and help."""
    return list(describe(Config))


def nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys (``"imitation.epochs"``, from the CLI's ``--set``) as nested tables."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        *tables, name = key.split(".")
        node = out
        for part in tables:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {part} is a setting, not a table")
            node = child
        if isinstance(value, Mapping):
            # Into a copy: later dotted keys add to it, and the caller's mapping stays as it was.
            existing = node.get(name)
            node[name] = {**(existing if isinstance(existing, dict) else {}), **value}
        else:
            node[name] = value
    return out


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"rl.clip=0.1"`` -> ``("rl.clip", 0.1)``: the value is read as TOML (numbers, true,
    quoted strings, lists), and anything TOML cannot read is taken as a bare string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. rl.clip=0.1")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def upgrade_keys(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored config from an older version with moved keys put where they live now."""
    flat = {MOVED_KEYS.get(key, key): value for key, value in stored.items()}
    return nest(flat)


def apply_overrides(config: Config, overrides: Mapping[str, Any]) -> Config:
    """Apply overrides (a TOML file's tables, the CLI's flags, dotted keys), rejecting
    unknown keys; a table may be given in part."""
    for key in overrides:
        if key in MOVED_KEYS:
            new = MOVED_KEYS[key]
            raise ConfigError(f"{key}: moved to the [{new.split('.')[0]}] table ({new})")
    return merge(config, nest(overrides))


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
    """The settable keys as plain data (TOML-shaped: tables as dicts, tuples as lists), which
    ``apply_overrides`` takes back (a run's settings are stored so)."""
    return as_dict(config, settable_only=True)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[\n" + "".join(f"    {_toml_value(v)},\n" for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def to_toml(config: Config) -> str:
    """Every settable key of ``config`` as a ``config.toml``, each with its help as a comment.

    ``load_file`` reads it back to the same ``Config`` (a test walks every key through it).
    """
    sections: dict[str, list[str]] = {}
    for doc in setting_docs():
        section, _, name = doc.key.rpartition(".")
        value = value_at(config, doc.key)
        allowed = f" [{doc.allowed}]" if doc.allowed else ""
        lines = sections.setdefault(section, [])
        lines.append(f"# {doc.help}{allowed}")
        lines.append(f"{name} = {_toml_value(value)}")
    out: list[str] = []
    for section, lines in sections.items():
        if section:
            out.append(f"\n[{section}]")
        out.extend(lines)
    return "\n".join(out).lstrip("\n") + "\n"


def reference_markdown() -> str:
    """The README's table of every key (a test keeps the two identical)."""
    rows = ["| key | default | allowed | what |", "| --- | --- | --- | --- |"]
    for doc in setting_docs():
        default = _toml_value(doc.default)
        if isinstance(doc.default, tuple):
            default = f"{len(doc.default)} goals"
        allowed = doc.allowed.replace(", ", " / ")
        rows.append(f"| `{doc.key}` | `{default}` | {allowed} | {doc.help} |")
    return "\n".join(rows) + "\n"
