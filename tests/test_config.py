"""Config: defaults, TOML files, overrides, and clear errors that name the key."""

from __future__ import annotations

import pytest

from aegis_tui.config import Config, ConfigError, apply_overrides, load_file


def test_defaults_are_valid_and_match_the_design():
    cfg = Config()  # a Config checks every field when it is built
    assert cfg.collect_threshold == 1000 and cfg.check_every == 100
    assert cfg.imitation.epochs == 20 and cfg.imitation.checkpoint_every == 5
    assert cfg.accuracy_gate == 0.6
    assert cfg.rl.update_every == 10
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
    ("[rewards]\nidel = 1", "rewards.idel: unknown setting (did you mean 'idle'?)"),
    ("epochs = 3", "epochs: moved to the [imitation] table (imitation.epochs)"),
    ("[imitation]\nepochs = 0", "imitation.epochs: must be between 1 and 1000, got 0"),
    ("[rl]\nclip = 'wide'", "rl.clip: expected a number, got 'wide'"),
    ("[imitation.model]\nd_model = 30\nn_heads = 4", "imitation.model.d_model: must be a multiple"),
    ("[imitation.model]\nvocab_size = 9", "imitation.model.vocab_size: cannot be set"),
    ("imitation = 3", "imitation: must be a table of settings"),
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


@pytest.mark.parametrize(("text", "needle"), [
    ("device = 'tpu'", "device: must be one of auto, cpu, cuda, mps"),
    ("torch_threads = -1", "torch_threads: must be between 0 and 1024"),
    ("teacher_revision = 'a b'", "teacher_revision: not a branch, tag or commit"),
    ("teacher_revision = '../../etc'", "teacher_revision: not a branch, tag or commit"),
    ("teacher_chat_template = 'yes'", "teacher_chat_template: expected true or false"),
    ("download_stall_timeout_s = 0", "download_stall_timeout_s: must be between 1"),
    ("search_backend = 'altavista'", "search_backend: must be one or more of auto, bing"),
    ("region = 'USA'", "region: must look like 'us-en' or 'wt-wt'"),
    ("safesearch = 'strict'", "safesearch: must be one of on, moderate, off"),
    ("proxy = 'ftp://x'", "proxy: must be a URL starting with http://"),
    ("proxy = 3128", "proxy: expected a string"),
])
def test_hardware_and_web_settings_are_checked(tmp_path, text, needle):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_hardware_and_web_settings_are_read(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('device = "cuda"\ntorch_threads = 2\nteacher_revision = "v1.0"\n'
                    'teacher_chat_template = false\ndownload_stall_timeout_s = 30\n'
                    'search_backend = "DuckDuckGo, bing"\nregion = "DE-de"\n'
                    'safesearch = "off"\nproxy = "socks5h://127.0.0.1:9050"\n')
    cfg = load_file(path)
    assert (cfg.device, cfg.torch_threads, cfg.teacher_revision, cfg.teacher_chat_template,
            cfg.download_stall_timeout_s) == ("cuda", 2, "v1.0", False, 30.0)
    assert (cfg.search_backend, cfg.region, cfg.safesearch, cfg.proxy) == (
        "duckduckgo,bing", "de-de", "off", "socks5h://127.0.0.1:9050")
    defaults = Config()
    assert (defaults.device, defaults.torch_threads, defaults.search_backend,
            defaults.region, defaults.safesearch, defaults.proxy) == (
        "auto", 0, "auto", "us-en", "moderate", "")


def test_a_proxy_password_is_not_stored_with_the_settings():
    from aegis_tui.agent.runtime import redact_config
    from aegis_tui.config import to_dict

    stored = redact_config(to_dict(apply_overrides(
        Config(), {"proxy": "http://me:s3cret@proxy.example:3128"})))
    assert stored["proxy"] == "http://***@proxy.example:3128"
    assert "s3cret" not in str(stored)
