"""Build small causal LMs of several architectures in a local folder, offline.

``build_local_lm(folder, arch=...)`` trains a small tokenizer with the ``tokenizers`` library
on an embedded text that covers the prompt template and the continuation phrases, builds a
transformers model of that architecture with random weights, and saves both with
``save_pretrained``. ``LMTeacher.load(str(folder))`` then loads it through exactly the code
path a user's ``"gpt2"`` takes, so tests and ``aegis-tui bench`` exercise the real loader
and the real forward pass of several model families without a download.

Architectures (``ARCHITECTURES``), each with the tokenizer convention of its family:

- ``gpt2``: GPT-2, byte-level BPE (a leading space is part of the word piece);
- ``llama``: Llama, a SentencePiece-style BPE (word boundaries are ``"▁"``, a ``"▁"`` is
  prepended to every text, byte fallback, a BOS token added), saved as a generic fast
  tokenizer so the prepended piece shows up exactly as with SentencePiece models;
- ``neox``: GPT-NeoX (Pythia's family), byte-level BPE, rotary embeddings on a quarter of
  each head, parallel attention and MLP;
- ``chat``: a Qwen2-style instruction model: byte-level BPE, ``<|im_start|>`` /
  ``<|im_end|>`` special tokens and a chat template, as instruction-tuned models ship.

Sizes: ``"tiny"`` (2 layers, 64 wide, 512 positions; well under a million parameters) for
fast tests; ``"gpt2"`` (``GPT2Config()`` defaults: 12 layers, 768 wide, 1024 positions,
vocab 50257, 124M parameters; GPT-2 architecture only) for the real compute of GPT-2. The
``"gpt2"`` model uses the same small tokenizer, so most of its 50257-entry embedding is
never indexed, but it costs GPT-2's memory and lm-head compute as the real one does.

Importing this module is cheap; ``torch``, ``tokenizers`` and ``transformers`` are imported
when a model is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aegis_tui.actions import ACTIONS
from aegis_tui.config import DEFAULT_GOALS
from aegis_tui.policy.lm_teacher import silence_libraries
from aegis_tui.policy.prompt import CONTINUATIONS, build_prompt
from aegis_tui.snapshot import GoalView, StateSnapshot, TopicView

SIZES = ("tiny", "gpt2")
ARCHITECTURES = ("gpt2", "llama", "neox", "chat")
EOS = "<|endoftext|>"
TINY_VOCAB = 2048
TINY_POSITIONS = 512

# A ChatML template (the shape Qwen2 and many other instruction models use).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

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
You are a careful assistant. Answer with the next action only.
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


def _byte_level_tokenizer(vocab_size: int, specials: list[str]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # Byte-level like GPT-2: every string encodes, and " word" keeps its leading space.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok


def _sentencepiece_style_tokenizer(vocab_size: int) -> Any:
    """A BPE with SentencePiece's conventions, as Llama-2's ``tokenizer.json`` has them."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # Train on "▁"-split words; then encode the way SentencePiece does: prepend "▁" to the
    # whole text and turn spaces into "▁" (so " search" becomes "▁▁search": two pieces).
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=[f"<0x{i:02X}>" for i in range(256)],
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                           normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return tok


def _tiny_model_config(arch: str, vocab_size: int, bos_id: int, eos_id: int,
                       positions: int = TINY_POSITIONS, init_range: float = 0.02) -> Any:
    ids: dict[str, Any] = {"bos_token_id": bos_id, "eos_token_id": eos_id,
                           "pad_token_id": eos_id, "initializer_range": init_range}
    if arch == "gpt2":
        from transformers import GPT2Config

        return GPT2Config(vocab_size=vocab_size, n_positions=positions, n_embd=64,
                          n_layer=2, n_head=2, **ids)
    if arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=172,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           max_position_embeddings=positions, tie_word_embeddings=False,
                           **ids)
    if arch == "neox":
        from transformers import GPTNeoXConfig

        return GPTNeoXConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=256,
                             num_hidden_layers=2, num_attention_heads=4,
                             max_position_embeddings=positions, use_parallel_residual=True,
                             # Pythia's setting; transformers 5 maps the old name onto
                             # ``rope_parameters`` (its stubs list only the new one).
                             **{**ids, "rotary_pct": 0.25})
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=vocab_size, hidden_size=64, intermediate_size=172,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=positions, tie_word_embeddings=True, **ids)


def _tokenizer(arch: str, size: str) -> tuple[Any, int, int]:
    """The saved-to-be transformers tokenizer, its BOS id and its EOS id."""
    from transformers import (  # type: ignore[attr-defined]  # exported lazily, not in stubs
        GPT2TokenizerFast,
        GPTNeoXTokenizerFast,
        PreTrainedTokenizerFast,
    )

    max_length = TINY_POSITIONS if size == "tiny" else 1024
    if arch == "llama":
        backend = _sentencepiece_style_tokenizer(TINY_VOCAB)
        # The generic fast class keeps tokenizer.json exactly as built (SentencePiece's
        # prepended "▁" included), as models that ship only a tokenizer.json load.
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
            model_max_length=max_length)
        return tokenizer, backend.token_to_id("<s>"), backend.token_to_id("</s>")
    if arch == "chat":
        backend = _byte_level_tokenizer(TINY_VOCAB, [EOS, "<|im_start|>", "<|im_end|>"])
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend, eos_token="<|im_end|>", pad_token=EOS,
            additional_special_tokens=["<|im_start|>"], model_max_length=max_length)
        tokenizer.chat_template = CHAT_TEMPLATE
        eos = backend.token_to_id("<|im_end|>")
        return tokenizer, eos, eos
    backend = _byte_level_tokenizer(TINY_VOCAB, [EOS])
    cls = GPT2TokenizerFast if arch == "gpt2" else GPTNeoXTokenizerFast
    tokenizer = cls(tokenizer_object=backend, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                    model_max_length=max_length)
    eos_id = backend.token_to_id(EOS)
    return tokenizer, eos_id, eos_id


def _model_class(arch: str) -> Any:
    from transformers import (
        GPT2LMHeadModel,
        GPTNeoXForCausalLM,
        LlamaForCausalLM,
        Qwen2ForCausalLM,
    )

    return {"gpt2": GPT2LMHeadModel, "llama": LlamaForCausalLM, "neox": GPTNeoXForCausalLM,
            "chat": Qwen2ForCausalLM}[arch]


def build_local_lm(folder: Path, *, arch: str = "gpt2", size: str = "tiny",
                   seed: int = 0, positions: int = TINY_POSITIONS,
                   init_range: float = 0.02) -> Path:
    """Write a random-weight model of ``arch`` and its tokenizer to ``folder``; return it.

    ``positions`` (tiny models only) is the context length: a short one (say 24) leaves the
    model only the end of each prompt, the recent actions, so its choices follow what the
    HRM can see, unlike a long-context random model's. ``init_range`` (tiny models only) is
    the standard deviation of the random weights: the transformers default, 0.02, gives a
    nearly flat teacher whose preferences hardly depend on the prompt; a larger one (say
    0.5) gives a random teacher with sharp, state-dependent preferences. Deterministic for
    a given ``arch``, ``size``, ``seed``, ``positions`` and ``init_range``; needs no
    network. The global torch RNG is left as it was.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {', '.join(ARCHITECTURES)}, got {arch!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    if size != "tiny" and arch != "gpt2":
        raise ValueError(f"size {size!r} exists for the gpt2 architecture only")
    import torch

    silence_libraries()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer, bos_id, eos_id = _tokenizer(arch, size)
    if size == "tiny":
        config = _tiny_model_config(arch, len(tokenizer), bos_id, eos_id, positions,
                                    init_range)
    else:
        from transformers import GPT2Config

        # The real GPT-2 shape; its ids do not match our tokenizer's, so point them at ours.
        config = GPT2Config(bos_token_id=eos_id, eos_token_id=eos_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _model_class(arch)(config)
    model.eval()
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def build_local_gpt2(folder: Path, *, size: str = "tiny", seed: int = 0) -> Path:
    """A GPT-2 (``build_local_lm`` with ``arch="gpt2"``)."""
    return build_local_lm(folder, arch="gpt2", size=size, seed=seed)
