"""The LM teacher on tokenizers other than GPT-2's, and on instruction models' chat templates.

The models are built here by ``build_local_lm`` (no download): a Llama with a
SentencePiece-style tokenizer, a GPT-NeoX, and a Qwen2-style model whose tokenizer has a
ChatML template. The scored tokens must be exactly the continuation's: a SentencePiece
tokenizer given " search the web" alone adds a word-boundary piece that never follows the
prompt, which the context + continuation encoding (lm-evaluation-harness's) avoids.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from aegis_tui.actions import ACTIONS
from aegis_tui.policy.lm_teacher import LMTeacher
from aegis_tui.policy.local_lm import build_local_lm
from aegis_tui.policy.prompt import CONTINUATIONS, CUE, build_prompt
from aegis_tui.snapshot import GoalView, StateSnapshot, TopicView

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TIMEOUT_S = 120.0
_built: dict[str, Path] = {}


def _model(arch: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if arch not in _built:
        _built[arch] = build_local_lm(tmp_path_factory.mktemp("lm") / f"tiny-{arch}", arch=arch)
    return _built[arch]


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model("llama", tmp_path_factory)


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model("chat", tmp_path_factory)


@pytest.fixture(scope="module")
def neox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model("neox", tmp_path_factory)


def _state(i: int = 3) -> StateSnapshot:
    return StateSnapshot(
        iteration=i,
        goals=(GoalView(text="Learn how regular expressions match text", keywords=(),
                        progress=0.3, completed=False),),
        curiosity=(TopicView(topic="event loops", priority=1.0, times_searched=1,
                             provenance="goal"),),
        curiosity_size=2, knowledge_count=i, web_searches=i, last_search_gain=1,
        recent_actions=("web_search", "idle"),
    )


def _phrases(teacher: LMTeacher, state: StateSnapshot) -> list[str]:
    _, conts = teacher.encode(state)
    return [teacher._tokenizer.decode(c) for c in conts]


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> None:
    assert all(math.isfinite(x) and abs(x - y) < 1e-4 for x, y in zip(a, b, strict=True)), (a, b)


def test_sentencepiece_scored_tokens_are_exactly_the_continuation(llama: Path) -> None:
    teacher = LMTeacher.load(str(llama), timeout_s=TIMEOUT_S)
    tok = teacher._tokenizer
    state = _state()
    # The bug the pair encoding fixes: alone, " search the web" starts with a lone "▁".
    alone = tok.convert_ids_to_tokens(tok(" search the web", add_special_tokens=False)
                                      ["input_ids"])
    assert alone[0] == "▁" and alone[1:] == ["▁search", "▁the", "▁web"]
    assert teacher.continuation_tokens(state) == [
        ["▁search", "▁the", "▁web"], ["▁ask", "▁the", "▁human"],
        ["▁propose", "▁an", "▁improvement"], ["▁wait", "▁for", "▁now"]]
    # Prompt + scored tokens are exactly the encoding of prompt + phrase, BOS in front.
    prompt, conts = teacher.encode(state)
    assert prompt[0] == tok.bos_token_id and prompt.count(tok.bos_token_id) == 1
    for action, cont in zip(ACTIONS, conts, strict=True):
        whole = tok(build_prompt(state) + CONTINUATIONS[action])["input_ids"]
        assert prompt + cont == whole
    assert tok.decode(prompt, skip_special_tokens=True).endswith(CUE)
    _close(teacher.scores(state, mode="cached"), teacher.scores(state, mode="separate"))
    _close(teacher.scores(state, mode="padded"), teacher.scores(state, mode="separate"))
    assert teacher.score_mode == "cached"
    teacher.close()


def test_a_long_prompt_is_cut_after_the_bos(llama: Path) -> None:
    teacher = LMTeacher.load(str(llama), timeout_s=TIMEOUT_S)
    teacher.max_prompt_tokens = 20
    ids = teacher.prompt_ids(_state())
    assert len(ids) == 20 and ids[0] == teacher._tokenizer.bos_token_id
    assert teacher._tokenizer.decode(ids, skip_special_tokens=True).endswith(CUE)
    _close(teacher.scores(_state(), mode="cached"), teacher.scores(_state(), mode="separate"))
    teacher.close()


@pytest.mark.parametrize("arch", ["gpt2", "neox"])
def test_byte_level_tokenizers_score_what_they_did_before(
        arch: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    teacher = LMTeacher.load(str(_model(arch, tmp_path_factory)), timeout_s=TIMEOUT_S)
    tok = teacher._tokenizer
    state = _state()
    prompt, conts = teacher.encode(state)
    # For byte-level BPE the pair split equals encoding each part alone.
    assert prompt == tok(build_prompt(state))["input_ids"]
    assert conts == [tok(CONTINUATIONS[a], add_special_tokens=False)["input_ids"]
                     for a in ACTIONS]
    teacher.close()


def test_a_chat_template_wraps_the_prompt(chat: Path) -> None:
    teacher = LMTeacher.load(str(chat), timeout_s=TIMEOUT_S)
    assert teacher.chat
    tok = teacher._tokenizer
    state = _state()
    prompt, _ = teacher.encode(state)
    text = tok.decode(prompt)
    assert text.startswith("<|im_start|>user\n" + build_prompt(state).split("\n")[0])
    assert text.endswith(CUE + "<|im_end|>\n<|im_start|>assistant\n")
    # The assistant's reply, without the space a continuation takes after the plain cue.
    assert _phrases(teacher, state) == [CONTINUATIONS[a].strip() for a in ACTIONS]
    _close(teacher.scores(state, mode="cached"), teacher.scores(state, mode="separate"))
    probs = teacher.probabilities(state)
    assert sum(probs) == pytest.approx(1.0) and all(0 < p < 1 for p in probs)
    teacher.close()


def test_the_chat_template_can_be_turned_off(chat: Path) -> None:
    teacher = LMTeacher.load(str(chat), timeout_s=TIMEOUT_S, chat_template=False)
    assert not teacher.chat
    prompt, _ = teacher.encode(_state())
    assert "<|im_start|>" not in teacher._tokenizer.decode(prompt)
    assert _phrases(teacher, _state()) == [CONTINUATIONS[a] for a in ACTIONS]
    teacher.close()


def test_a_broken_chat_template_falls_back_to_the_plain_prompt(
        chat: Path, tmp_path: Path) -> None:
    import json
    import shutil

    folder = tmp_path / "broken-chat"
    shutil.copytree(chat, folder)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["chat_template"] = "{% for m in messages %}{{ m.nope.deeper }}{% endfor %}"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    for extra in folder.glob("chat_template.*"):
        extra.unlink()
    teacher = LMTeacher.load(str(folder), timeout_s=TIMEOUT_S)
    assert not teacher.chat and "chat template failed" in teacher.chat_note
    assert teacher.decide(_state()).action in ACTIONS
    teacher.close()


class _MergingTokenizer:
    """Word-level, except that ':' and a following ' search' merge into one token."""

    vocab: dict[str, int]

    def __init__(self) -> None:
        self.vocab = {}

    def _id(self, piece: str) -> int:
        return self.vocab.setdefault(piece, len(self.vocab) + 10)

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, Any]:
        text = text.replace(": search", ":~search")
        pieces = [p for p in text.replace("\n", " \n ").split(" ") if p]
        return {"input_ids": [self._id(p) for p in pieces]}


def test_where_a_tokenizer_merges_across_the_boundary_the_split_moves_back() -> None:
    teacher = LMTeacher.__new__(LMTeacher)
    teacher._tokenizer = _MergingTokenizer()
    teacher.chat = False
    teacher._prefix = []
    state = _state()
    prompt, conts = teacher.encode(state)
    context = teacher._tokenizer(build_prompt(state))["input_ids"]
    # "action:" is not a prefix of the "search" encoding ("action:~search" merged), so the
    # prompt stops before it and every continuation starts there.
    assert prompt == context[:-1]
    for action, cont in zip(ACTIONS, conts, strict=True):
        assert prompt + cont == teacher._tokenizer(build_prompt(state)
                                                   + CONTINUATIONS[action])["input_ids"]
