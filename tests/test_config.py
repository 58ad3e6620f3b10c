"""Config: defaults, TOML files, overrides, and clear errors that name the key."""

from __future__ import annotations

import pytest

from aegis_tui.config import Config, ConfigError, apply_overrides, load_file, validate


def test_defaults_are_valid_and_match_the_design():
    cfg = validate(Config())
    assert cfg.collect_threshold == 1000 and cfg.check_every == 100
    assert cfg.epochs == 20 and cfg.checkpoint_every == 5 and cfg.accuracy_gate == 0.6
    assert cfg.rl_update_every == 10
    r = cfg.rewards
    assert (r.knowledge_per_item, r.improvement_approved, r.proposal_pending,
            r.question_answered, r.search_failed, r.duplicate_proposal, r.idle) == (
        1.0, 10.0, 1.0, 0.5, -0.5, -2.0, -0.1)


def test_toml_file_overrides_and_rewards(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('world = "sim"\ncollect_threshold = 200\n[rewards]\nidle = -0.2\n')
    cfg = load_file(path)
    assert cfg.world == "sim" and cfg.collect_threshold == 200 and cfg.rewards.idle == -0.2


@pytest.mark.parametrize(("text", "needle"), [
    ("colect_threshold = 3",
     "colect_threshold: unknown setting (did you mean 'collect_threshold'?)"),
    ("collect_threshold = 0", "collect_threshold: must be between 1"),
    ("collect_threshold = 'many'", "collect_threshold: expected an integer"),
    ("accuracy_gate = 1.5", "accuracy_gate: must be between 0 and 1"),
    ("world = 'mars'", "world: must be one of auto, live, offline, sim"),
    ("think_interval = true", "think_interval: expected a number, got a boolean"),
    ("goals = []", "goals: must be a non-empty list"),
    ("[rewards]\nidel = 1", "rewards.idel: unknown reward (did you mean 'idle'?)"),
    ("epochs = 3\ncheckpoint_every = 5", "checkpoint_every: must not exceed epochs"),
    ("this is not toml", "is not valid TOML"),
])
def test_bad_files_give_one_clear_line(tmp_path, text, needle):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_file(path)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_file(tmp_path / "nope.toml")
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_file(path)


def test_overrides_reject_unknown_keys():
    with pytest.raises(ConfigError, match="unknown setting"):
        apply_overrides(Config(), {"nonsense": 1})
    cfg = apply_overrides(Config(), {"seed": 7, "think_interval": 0})
    assert cfg.seed == 7 and cfg.think_interval == 0.0
