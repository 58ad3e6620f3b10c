"""Choosing the teacher from the config: a language model, the rules heuristic, or "auto".

``make_teacher`` returns the policy and a one-line notice for the header and the log, so the
person running AEGIS always sees which teacher is deciding and, after a fallback, why.
Importing this module is cheap: ``lm_teacher`` imports torch and transformers only to load.
"""

from __future__ import annotations

import re

from aegis_tui.config import Config
from aegis_tui.policy.base import Policy
from aegis_tui.policy.lm_teacher import LMTeacher, TeacherLoadError
from aegis_tui.policy.model_download import ProgressCallback
from aegis_tui.policy.rules_teacher import RulesTeacher
from aegis_tui.policy.torch_threads import limit_agent_threads
from aegis_tui.text import clean

RULES_NOTICE = "teacher: rules heuristic"


def teacher_label(name: str) -> str:
    """A display label: ``"gpt2"`` -> ``"GPT-2"``, ``"rules"`` stays, else the last path part."""
    parts = [p for p in re.split(r"[\\/]+", name.strip()) if p]
    last = parts[-1] if parts else name.strip()
    if name.strip() == "rules":
        return "rules"
    match = re.fullmatch(r"gpt2(?:-(medium|large|xl))?", last, flags=re.IGNORECASE)
    if match and (len(parts) == 1 or parts[0].lower() == "openai-community"):
        return "GPT-2" + (f" {match.group(1).lower()}" if match.group(1) else "")
    return clean(last, 60) or "model"


def make_teacher(config: Config, *,
                 on_progress: ProgressCallback | None = None) -> tuple[Policy, str]:
    """Build the teacher ``config.teacher`` asks for, with a one-line notice saying which it is.

    ``"rules"`` never fails; ``"lm"`` raises ``TeacherLoadError`` when the model does not load;
    ``"auto"`` tries the model and falls back to the rules, naming the reason in the notice.
    A device that is not here (``--device cuda`` without CUDA) raises
    ``devices.DeviceUnavailable`` either way: it was asked for explicitly. ``on_progress``
    hears about a download of the model.
    """
    if config.teacher == "rules":
        return RulesTeacher(seed=config.seed), RULES_NOTICE
    if config.teacher not in ("lm", "auto"):
        raise ValueError(f"unknown teacher {config.teacher!r}")

    # Before the model loads, so loading and the first decision already use the count.
    limit_agent_threads(config.torch_threads, teacher=True)
    try:
        teacher = LMTeacher.load(
            config.teacher_model, timeout_s=config.teacher_load_timeout_s, seed=config.seed,
            temperature=config.teacher_temperature, device=config.device,
            revision=config.teacher_revision, chat_template=config.teacher_chat_template,
            stall_timeout_s=config.download_stall_timeout_s, on_progress=on_progress)
    except TeacherLoadError as exc:
        if config.teacher == "lm":
            raise
        model = clean(config.teacher_model, 80)
        notice = f"teacher: rules (could not load {model}: {exc.reason})"
        return RulesTeacher(seed=config.seed), notice
    return teacher, teacher_notice(teacher, config.teacher_model)


def teacher_notice(teacher: LMTeacher, model: str) -> str:
    """``teacher: GPT-2 (124.4M parameters) on cpu (float32), 2 torch threads, commit 6c0e608``."""
    import torch

    size = teacher.parameter_count / 1e6
    where = teacher.placement.label
    if teacher.device == "cpu":
        threads = torch.get_num_threads()
        where += f", {threads} torch thread{'s' if threads != 1 else ''}"
    notice = f"teacher: {teacher_label(model)} ({size:.1f}M parameters) on {where}"
    if teacher.revision:
        notice += f", commit {teacher.revision[:7]}"
    notice += (f", temperature {teacher.temperature:g} x its score spread "
               f"{teacher.score_scale:.3g}")
    if teacher.chat:
        notice += ", chat template"
    elif teacher.chat_note:
        notice += f" ({teacher.chat_note})"
    return notice
