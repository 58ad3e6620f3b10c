"""Choosing the teacher from the config: rules, an LM, and "auto" falling back with a reason."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from lm_fixtures import empty_hf_cache, no_network, tiny_lm_dir  # noqa: F401

from aegis_tui.actions import ACTIONS
from aegis_tui.config import Config
from aegis_tui.policy import lm_teacher
from aegis_tui.policy.lm_teacher import LMTeacher, TeacherLoadError
from aegis_tui.policy.rules_teacher import RulesTeacher
from aegis_tui.policy.teacher import RULES_NOTICE, make_teacher, teacher_label
from aegis_tui.snapshot import StateSnapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_rules() -> None:
    policy, notice = make_teacher(Config(teacher="rules", seed=7))
    assert isinstance(policy, RulesTeacher)
    assert notice == RULES_NOTICE == "teacher: rules heuristic"
    again, _ = make_teacher(Config(teacher="rules", seed=7))
    snapshot = StateSnapshot(iteration=1)
    assert [policy.decide(snapshot).action for _ in range(50)] == [
        again.decide(snapshot).action for _ in range(50)
    ]


def test_lm_on_a_local_folder(tiny_lm_dir: Path) -> None:  # noqa: F811
    policy, notice = make_teacher(Config(teacher="lm", teacher_model=str(tiny_lm_dir), seed=3))
    assert isinstance(policy, LMTeacher)
    assert (policy.kind, policy.name, policy.seed) == ("teacher", "tiny-gpt2", 3)
    import torch

    threads = torch.get_num_threads()
    assert notice == (f"teacher: tiny-gpt2 ({policy.parameter_count / 1e6:.1f}M parameters) on "
                      f"cpu (float32), {threads} torch thread{'s' * (threads != 1)}, "
                      f"temperature 0.5 x its score spread {policy.score_scale:.3g}")
    assert (policy.device, policy.model_id, policy.revision) == ("cpu", str(tiny_lm_dir), "")
    assert policy.decide(StateSnapshot(iteration=1)).action in ACTIONS
    policy.close()


def test_auto_prefers_the_lm(tiny_lm_dir: Path) -> None:  # noqa: F811
    policy, notice = make_teacher(Config(teacher="auto", teacher_model=str(tiny_lm_dir)))
    assert isinstance(policy, LMTeacher)
    assert notice.startswith("teacher: tiny-gpt2")


def test_lm_failure_raises(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(TeacherLoadError, match="does not exist"):
        make_teacher(Config(teacher="lm", teacher_model=str(missing)))


def test_auto_falls_back_to_rules_naming_the_reason(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{oops", encoding="utf-8")
    policy, notice = make_teacher(Config(teacher="auto", teacher_model=str(tmp_path), seed=2))
    assert isinstance(policy, RulesTeacher)
    assert notice == (
        f"teacher: rules (could not load {tmp_path}: "
        f"{tmp_path} is not a model folder: config.json is not valid JSON)"
    )


@pytest.mark.timeout(60)  # a guard against hub retries hanging the suite, not a speed target
def test_auto_with_gpt2_offline_and_uncached(
    monkeypatch: pytest.MonkeyPatch, empty_hf_cache: Path, no_network: list[object]  # noqa: F811
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    policy, notice = make_teacher(Config(teacher="auto"))
    assert isinstance(policy, RulesTeacher)
    assert notice == (
        "teacher: rules (could not load gpt2: gpt2 is not in the Hugging Face cache and "
        "offline mode is on (HF_HUB_OFFLINE))"
    )
    assert no_network == []


def test_auto_reports_a_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                tiny_lm_dir: Path) -> None:  # noqa: F811
    import shutil

    shutil.copytree(tiny_lm_dir, tmp_path / "gpt2")  # "gpt2" names this folder, not the hub
    monkeypatch.chdir(tmp_path)
    release = threading.Event()

    def stuck(folder: str, placement: object) -> tuple[object, object]:
        release.wait(30)
        raise RuntimeError("released")

    monkeypatch.setattr(lm_teacher, "_load_parts", stuck)
    try:
        _, notice = make_teacher(Config(teacher="auto", teacher_load_timeout_s=0.2))
    finally:
        release.set()
    assert notice == "teacher: rules (could not load gpt2: loading gpt2 took longer than 0.2 s)"


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("gpt2", "GPT-2"),
        ("openai-community/gpt2", "GPT-2"),
        ("gpt2-medium", "GPT-2 medium"),
        ("rules", "rules"),
        ("distilgpt2", "distilgpt2"),
        ("EleutherAI/pythia-70m", "pythia-70m"),
        ("/home/me/models/tiny-gpt2/", "tiny-gpt2"),
        ("C:\\models\\my-lm", "my-lm"),
        ("/models/gpt2", "gpt2"),  # a folder named gpt2 may hold anything
    ],
)
def test_teacher_label(name: str, label: str) -> None:
    assert teacher_label(name) == label
