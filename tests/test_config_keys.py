"""Every setting, end to end: declared once, reachable from config.toml, documented.

The walk sets every key a user may set to a value other than its default, in one TOML file
written here (not by the code under test), and checks that each arrives where the code
reads it; then ``aegis-tui config`` prints the result back as TOML that loads to the same
settings, and the README's reference table is the one generated from the declarations.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from aegis_tui.config import (
    MOVED_KEYS,
    Config,
    ConfigError,
    apply_overrides,
    load_file,
    reference_markdown,
    setting_docs,
    to_dict,
    upgrade_keys,
)
from aegis_tui.config_reference import BLOCK, rewrite
from aegis_tui.knobs import KnobDoc, value_at
from tests.headless import cli_in_process

ROOT = Path(__file__).resolve().parent.parent

# Keys whose valid values a range or a choice list cannot describe, and the cross-checked
# shape keys (d_model must stay a multiple of n_heads, slots must divide the feature length).
SPECIAL: dict[str, Any] = {
    "teacher_model": "some-org/some-model",
    "goals": ("Learn how sockets work", "Understand unicode"),
    "teacher_revision": "v1.2",
    "search_backend": "wikipedia,bing",
    "region": "de-de",
    "proxy": "socks5h://127.0.0.1:9050",
    "imitation.model.d_model": 96,
    "imitation.model.n_heads": 4,
    "imitation.model.slots_per_position": 1,
}


def other_value(doc: KnobDoc, choices: dict[str, tuple[str, ...]]) -> Any:
    """A valid value for ``doc.key`` that is not its default."""
    if doc.key in SPECIAL:
        return SPECIAL[doc.key]
    default = doc.default
    if doc.key in choices:
        return next(c for c in choices[doc.key] if c != default)
    if isinstance(default, bool):
        return not default
    low, _, high = doc.allowed.partition(" to ")
    top = float(high) if high else None
    if isinstance(default, int):
        return default + 1 if top is None or default + 1 <= top else default - 1
    assert isinstance(default, float), doc.key
    if top is not None and default < top:
        return (default + top) / 2 if top - default > 1e-9 else float(low)
    return default / 2 if default else 0.5


def _choices() -> dict[str, tuple[str, ...]]:
    return {doc.key: tuple(doc.allowed.split(", ")) for doc in setting_docs()
            if doc.allowed and " to " not in doc.allowed and not doc.allowed.startswith(("<", ">"))}


def _toml(values: dict[str, Any]) -> str:
    """A TOML file from dotted keys, written independently of ``config.to_toml``."""
    sections: dict[str, list[str]] = {}
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = json.dumps(value)
        elif isinstance(value, tuple):
            text = json.dumps(list(value))
        else:
            text = repr(value)
        sections.setdefault(section, []).append(f"{name} = {text}")
    out = sections.pop("", [])
    for section, lines in sections.items():
        out += [f"[{section}]", *lines]
    return "\n".join(out) + "\n"


def test_every_key_set_in_a_file_reaches_the_settings_the_code_reads(tmp_path: Path) -> None:
    docs = setting_docs()
    keys = [doc.key for doc in docs]
    assert len(keys) == len(set(keys)) > 80
    assert {"imitation.epochs", "rl.clip", "imitation.model.d_model", "rewards.idle",
            "rl.kl_fade", "rl.checkpoint_every"} <= set(keys)
    choices = _choices()
    wanted = {doc.key: other_value(doc, choices) for doc in docs}
    path = tmp_path / "config.toml"
    path.write_text(_toml(wanted), encoding="utf-8")
    config = load_file(path)
    defaults = Config()
    for key, value in wanted.items():
        got = value_at(config, key)
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, key
        assert got != value_at(defaults, key), key
    # The derived key follows its source, and the RL and imitation tables are the objects
    # the trainers are built from.
    assert config.imitation.value_gamma == config.rl.gamma == wanted["rl.gamma"]
    # A run stores its settings as plain data (to_dict), and reports read them back.
    assert apply_overrides(Config(), to_dict(config)) == config


def test_aegis_tui_config_prints_toml_that_loads_back_to_the_same_settings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli_in_process(capsys, "config", "--data-dir", str(tmp_path / "d"),
                                    "--epochs", "7", "--set", "rl.clip=0.1",
                                    "--set", "imitation.model.d_model=128",
                                    "--set", 'region="fr-fr"', "--set", "world=sim")
    assert code == 0, err
    assert "[imitation]" in out and "[rl]" in out and "# PPO's ratio clip" in out
    path = tmp_path / "printed.toml"
    path.write_text(out, encoding="utf-8")
    loaded = load_file(path)
    expected = apply_overrides(Config(), {"imitation.epochs": 7, "rl.clip": 0.1,
                                          "imitation.model.d_model": 128, "region": "fr-fr",
                                          "world": "sim"})
    assert loaded == expected
    code, out, _ = cli_in_process(capsys, "config", "--defaults", "--data-dir",
                                  str(tmp_path / "d"), "--epochs", "7")
    path.write_text(out, encoding="utf-8")
    assert code == 0 and load_file(path) == Config()


@pytest.mark.parametrize(("args", "needle"), [
    (("--set", "rl.nope=1"), "rl.nope: unknown setting"),
    (("--set", "rl.clip"), "expected KEY=VALUE"),
    (("--set", "rl.clip=0"), "rl.clip: must be between 0.001 and 10, got 0"),
    (("--set", "imitation.value_gamma=0.5"), "imitation.value_gamma: cannot be set (it follows"),
    (("--set", "rl_gamma=0.5"), "rl_gamma: moved to the [rl] table (rl.gamma)"),
    (("--set", "seed.x=1"), "seed: is a setting, not a table"),
])
def test_a_bad_set_is_one_line_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              args: tuple[str, ...], needle: str) -> None:
    code, _, err = cli_in_process(capsys, "config", "--data-dir", str(tmp_path), *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], err


def test_the_readme_lists_every_key_as_declared() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = BLOCK.search(readme)
    assert found, "README.md has no config-reference block"
    # After changing a declaration: python -m aegis_tui.config_reference
    assert found.group(0) == f"{found[1]}{reference_markdown()}{found[2]}"


def test_the_reference_block_is_rewritten_in_place(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- config-reference -->\nSTALE-ROW\n"
                      "<!-- /config-reference -->\nend\n")
    assert rewrite(readme)
    text = readme.read_text()
    assert text.startswith("# x\n<!-- config-reference -->\n| key |") and text.endswith(
        "<!-- /config-reference -->\nend\n") and "`rl.clip`" in text and "STALE-ROW" not in text
    (tmp_path / "other.md").write_text("no block")
    assert not rewrite(tmp_path / "other.md")


def test_a_stored_config_from_an_older_version_is_read_with_its_keys_moved() -> None:
    stored = {"world": "sim", "epochs": 7, "checkpoint_every": 7, "rl_gamma": 0.8,
              "rl_kl_fade": 0.5, "rl_checkpoint_every": 3}
    config = apply_overrides(Config(), upgrade_keys(stored))
    assert (config.world, config.imitation.epochs, config.imitation.checkpoint_every) == (
        "sim", 7, 7)
    assert (config.rl.gamma, config.imitation.value_gamma, config.rl.kl_fade,
            config.rl.checkpoint_every) == (0.8, 0.8, 0.5, 3)
    for old, new in MOVED_KEYS.items():
        assert value_at(Config(), new) is not None
        with pytest.raises(ConfigError, match=re.escape(f"{old}: moved to the")):
            apply_overrides(Config(), {old: 1})


def test_a_setting_is_checked_the_same_way_however_it_arrives(tmp_path: Path) -> None:
    from aegis_tui.config import ImitationSettings, RLSettings

    path = tmp_path / "config.toml"
    path.write_text("[imitation]\nval_fraction = 0.95\n", encoding="utf-8")
    messages = []
    for attempt in (lambda: load_file(path),
                    lambda: apply_overrides(Config(), {"imitation.val_fraction": 0.95}),
                    lambda: ImitationSettings.from_dict({"val_fraction": 0.95}),
                    lambda: ImitationSettings(val_fraction=0.95)):
        with pytest.raises(ConfigError) as info:
            attempt()
        messages.append(str(info.value).removeprefix(f"{path}: "))
    assert set(messages) == {"imitation.val_fraction: must be between 0.01 and 0.9, got 0.95"}
    with pytest.raises(ConfigError, match=r"^rl\.explore: must be between 0 and 0\.99"):
        RLSettings(explore=1.0)
