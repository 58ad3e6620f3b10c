"""Build a GPT-2-style causal LM in a local folder, offline, for tests and ``aegis-tui bench``.

``build_local_gpt2`` trains a small byte-level BPE tokenizer (the ``tokenizers`` library) on
an embedded text that covers the prompt template and the continuation phrases, wraps it as a
transformers GPT-2 tokenizer, builds a ``GPT2LMHeadModel`` with random weights and saves both
with ``save_pretrained``. ``LMTeacher.load(str(folder))`` then loads it through exactly the
code path a user's ``"gpt2"`` takes, so tests and the benchmark exercise the real loader and
the real forward pass without a download.

Sizes: ``"tiny"`` (2 layers, 2 heads, 64 wide, 512 positions; well under a million
parameters) for fast tests; ``"gpt2"`` (``GPT2Config()`` defaults: 12 layers, 768 wide, 1024
positions, vocab 50257, 124M parameters) for the real compute of GPT-2. The tokenizer is the
same small one for both; the ``"gpt2"`` model simply has a 50257-entry embedding, most of it
never indexed, which costs GPT-2's memory and lm-head compute as the real one does.

Importing this module is cheap; ``torch``, ``tokenizers`` and ``transformers`` are imported
when a model is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aegis_tui.actions import ACTIONS
from aegis_tui.config import DEFAULT_GOALS
from aegis_tui.policy.prompt import CONTINUATIONS, build_prompt
from aegis_tui.snapshot import GoalView, StateSnapshot, TopicView

SIZES = ("tiny", "gpt2")
EOS = "<|endoftext|>"
TINY_VOCAB = 2048

# Plain English and Python words so goal and topic texts tokenise into word pieces, not bytes.
_EXTRA_TEXT = """\
Python manages memory with reference counting and a cyclic garbage collector.
The asyncio event loop runs coroutines, tasks and futures; await suspends a coroutine.
Regular expressions match and search text with patterns, groups and flags.
Data is serialized with json and pickle; json is text, pickle is binary and unsafe.
Functions, classes, modules, packages, imports, exceptions, iterators and generators.
The agent searches the web, asks the human a question, proposes an improvement, or waits.
Knowledge grows when a search finds new items. A failed search finds nothing.
A question is pending until the human answers it. A proposal is approved or rejected.
"""


def _corpus() -> list[str]:
    """Deterministic training text: prompts for a spread of states, phrases, plain words."""
    texts = [_EXTRA_TEXT, *DEFAULT_GOALS, *(c.strip() for c in CONTINUATIONS.values())]
    topics = ("garbage collection", "event loops", "regular expressions", "json", "pickle",
              "coroutines", "reference counting", "generators")
    for i in range(24):
        goals = tuple(
            GoalView(text=DEFAULT_GOALS[(i + k) % len(DEFAULT_GOALS)], keywords=(),
                     progress=((i * 7 + k * 3) % 11) / 10, completed=(i + k) % 5 == 0)
            for k in range(i % 4 + 1)
        )
        curiosity = tuple(
            TopicView(topic=topics[(i + k) % len(topics)], priority=1.0 - k / 10,
                      times_searched=k, provenance="goal")
            for k in range(i % 5)
        )
        snapshot = StateSnapshot(
            iteration=i, goals=goals, curiosity=curiosity, curiosity_size=len(curiosity) + i % 3,
            knowledge_count=i * 3, knowledge_since_proposal=i % 6, web_searches=i * 2,
            failed_searches=i % 4, last_search_gain=(i % 4) - 1, pending_questions=i % 2,
            questions_asked=i, questions_answered=i // 2, pending_proposals=(i // 3) % 2,
            improvements_proposed=i // 3, improvements_approved=i // 6,
            iterations_since_question=i % 13, iterations_since_proposal=i % 21,
            recent_actions=tuple(ACTIONS[(i + k) % len(ACTIONS)].value for k in range(i % 6)),
        )
        prompt = build_prompt(snapshot)
        texts.extend(prompt + c for c in CONTINUATIONS.values())
    return texts


def _train_tokenizer(vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # Byte-level like GPT-2: every string encodes, and " word" keeps its leading space.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok


def _config(size: str, vocab_size: int, eos_id: int) -> Any:
    from transformers import GPT2Config

    ids = {"bos_token_id": eos_id, "eos_token_id": eos_id}
    if size == "tiny":
        return GPT2Config(vocab_size=vocab_size, n_positions=512, n_embd=64, n_layer=2,
                          n_head=2, **ids)
    # The real GPT-2 shape; its ids do not match our tokenizer's, so point them at ours.
    return GPT2Config(**ids)


def build_local_gpt2(folder: Path, *, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight GPT-2-style model and its tokenizer to ``folder``; return it.

    Deterministic for a given ``size`` and ``seed``; needs no network. The global torch RNG
    is left as it was.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    import torch
    from transformers import GPT2LMHeadModel, GPT2TokenizerFast

    from aegis_tui.policy.lm_teacher import silence_libraries

    silence_libraries()

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    backend = _train_tokenizer(TINY_VOCAB)
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=backend, bos_token=EOS, eos_token=EOS, unk_token=EOS,
        model_max_length=512 if size == "tiny" else 1024,
    )
    eos_id = backend.token_to_id(EOS)
    config = _config(size, backend.get_vocab_size(), eos_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    model.eval()
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder
