"""The ``lm`` teacher: a Hugging Face causal language model scores the four actions.

``LMTeacher.load`` loads any causal LM by hub id (``"gpt2"``) or local folder for CPU
inference, quietly and within a time limit; every failure becomes ``TeacherLoadError`` with a
one-line reason a person can act on. ``decide`` describes the state in words
(``policy.prompt``), scores the four continuations by their log-likelihood after the prompt,
turns the scores into probabilities and samples one action with a seeded RNG.

Scoring. The score of an action is the *mean* log-probability of its continuation's tokens
(not the sum): a sum favours short continuations simply for having fewer tokens to pay for.
Our continuations are all three GPT-2 tokens, so for GPT-2 the two agree up to a constant
factor; the mean keeps other tokenizers, which may split the phrases unevenly, fair too.
The fast path runs the prompt once, keeps its KV cache, repeats the cache four times and runs
the four continuations as one padded batch (prompt tokens once instead of four times). The
reference path runs four padded ``prompt + continuation`` sequences in one batch; a model
whose cache cannot be repeated falls back to it. Both equal scoring each continuation alone.

Loading and the network. A hub id is first looked for in the local cache with no network at
all, so a cached ``gpt2`` loads offline and never waits on the hub. Only when it is not cached
and offline mode is off (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``) is the hub contacted, and
only after a short connection probe, because ``huggingface_hub`` otherwise retries a dead
network for about half a minute. Custom model code is never run (``trust_remote_code=False``).

``torch`` and ``transformers`` are imported only when a model is loaded.
"""

from __future__ import annotations

import gc
import inspect
import json
import math
import os
import random
import re
import socket
import threading
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aegis_tui.actions import ACTIONS, Action
from aegis_tui.policy.base import Decision
from aegis_tui.policy.prompt import CONTINUATIONS, build_prompt
from aegis_tui.snapshot import StateSnapshot
from aegis_tui.text import clean

SCORE_MODES = ("cached", "padded", "separate")
PROBE_TIMEOUT_S = 3.0
MAX_PROMPT_TOKENS = 1024  # our prompts are far shorter; this only caps long-context models
_FALLBACK_POSITIONS = 1024

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model",
                    "spiece.model", "vocab.txt")
# huggingface_hub's repo id shape: "name" or "owner/name".
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]{0,95}(/[\w.\-]{1,96})?")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class TeacherLoadError(Exception):
    """The teacher model could not be loaded; ``reason`` is one line meant for people."""

    def __init__(self, reason: str) -> None:
        self.reason = clean(reason, 300)
        super().__init__(self.reason)


def short_name(model: str) -> str:
    """The last path component of a model id or folder (``"openai-community/gpt2"`` -> gpt2)."""
    parts = [p for p in re.split(r"[\\/]+", model.strip()) if p]
    return clean(parts[-1] if parts else model, 60) or "model"


def silence_libraries() -> None:
    """Keep transformers and huggingface_hub off the terminal: no progress bars, no warnings."""
    # Forking after the tokenizers pool starts prints a warning per process (training forks).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from huggingface_hub.utils import disable_progress_bars
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as tf_logging

    tf_logging.set_verbosity_error()
    tf_logging.disable_progress_bar()
    hub_logging.set_verbosity_error()
    disable_progress_bars()
    warnings.filterwarnings("ignore", module=r"(transformers|huggingface_hub)(\.|$)")


def _offline() -> bool:
    from huggingface_hub import constants

    env = any(
        os.environ.get(k, "").strip().upper() in ("1", "ON", "YES", "TRUE")
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return env or bool(constants.HF_HUB_OFFLINE)


def _hub_reachable(timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Can we open a TCP connection to the hub? (Skipped behind a proxy, which we can't probe.)"""
    if any(os.environ.get(k) for k in _PROXY_VARS):
        return True
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((url.hostname or "huggingface.co", port), timeout_s).close()
    except OSError:
        return False
    return True


def _as_folder(model: str) -> Path | None:
    """The folder ``model`` names, or None when it is a hub id (which may still be cached)."""
    path = Path(model).expanduser()
    if path.exists():
        return path
    looks_like_path = (
        model.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or os.path.isabs(model)
        or "\\" in model
        or not _HUB_ID.fullmatch(model)
    )
    return path if looks_like_path else None


def _check_folder(folder: Path) -> None:
    """Reject a folder that cannot be a model, naming what is missing."""
    if not folder.exists():
        raise TeacherLoadError(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise TeacherLoadError(f"{folder} is a file, not a model folder")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise TeacherLoadError(f"{folder} is not a model folder: it has no config.json")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise TeacherLoadError(
            f"{folder} is not a model folder: config.json is not valid JSON"
        ) from None
    except OSError as exc:
        raise TeacherLoadError(f"cannot read {config_file}: {exc.strerror}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise TeacherLoadError(f"{folder} is not a model folder: config.json has no model_type")
    has_weights = any((folder / f).is_file() for f in _WEIGHT_FILES) or any(
        folder.glob("*.safetensors")
    )
    if not has_weights:
        raise TeacherLoadError(
            f"{folder} has no model weights (model.safetensors or pytorch_model.bin)"
        )
    if not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        raise TeacherLoadError(f"{folder} has no tokenizer files (tokenizer.json or vocab.json)")


def _dtype_kwargs(torch: Any) -> dict[str, Any]:
    import transformers

    major, minor = (int(x) for x in re.findall(r"\d+", transformers.__version__)[:2])
    # transformers 4.56 renamed torch_dtype to dtype; 5.x defaults to "auto", so be explicit.
    key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    return {key: torch.float32}


def _from_pretrained(source: str, *, local_only: bool, cache_dir: str | None) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    common: dict[str, Any] = {
        "local_files_only": local_only, "cache_dir": cache_dir, "trust_remote_code": False,
    }
    tokenizer = AutoTokenizer.from_pretrained(source, **common)
    model = AutoModelForCausalLM.from_pretrained(source, **common, **_dtype_kwargs(torch))
    return tokenizer, model


def _load_parts(model: str, cache_dir: str | None) -> tuple[Any, Any]:
    """Load (tokenizer, model) for ``model``, raising ``TeacherLoadError`` for known failures."""
    silence_libraries()
    folder = _as_folder(model)
    if folder is not None:
        _check_folder(folder)
        return _from_pretrained(str(folder), local_only=True, cache_dir=cache_dir)
    try:
        return _from_pretrained(model, local_only=True, cache_dir=cache_dir)
    except OSError:
        pass  # not (fully) in the cache
    if _offline():
        raise TeacherLoadError(
            f"{model} is not in the Hugging Face cache and offline mode is on (HF_HUB_OFFLINE)"
        )
    if not _hub_reachable():
        raise TeacherLoadError(
            f"cannot reach the Hugging Face Hub and {model} is not in the local cache"
        )
    return _from_pretrained(model, local_only=False, cache_dir=cache_dir)


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _reason(exc: BaseException, model: str) -> str:
    """One human line for why loading ``model`` failed."""
    if isinstance(exc, TeacherLoadError):
        return exc.reason
    chain = _exception_chain(exc)
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain)
    if isinstance(exc, MemoryError) or "OutOfMemoryError" in names or "out of memory" in text:
        return f"out of memory while loading {model}"
    if "trust_remote_code" in text:
        return f"{model} needs its own Python code to run, which aegis-tui never executes"
    not_found = names & {"RepositoryNotFoundError", "GatedRepoError"}
    if not_found or "not a valid model identifier" in text:
        return f"{model} was not found on the Hugging Face Hub (or is private or gated)"
    if names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"} or "couldn't connect" in text:
        return f"could not download {model}: the Hugging Face Hub did not answer"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(first) > 160 and ". " in first:  # library messages run on; the first sentence says it
        first = first.split(". ")[0] + "."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _max_positions(model: Any, tokenizer: Any) -> int:
    config = model.config
    for key in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return min(value, MAX_PROMPT_TOKENS)
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:  # transformers uses 1e30 for "unknown"
        return min(limit, MAX_PROMPT_TOKENS)
    return _FALLBACK_POSITIONS


def _repeat_cache(past: Any, n: int) -> Any:
    """The prompt's KV cache repeated ``n`` times along the batch dimension."""
    if hasattr(past, "batch_repeat_interleave"):
        past.batch_repeat_interleave(n)  # transformers' Cache objects repeat in place
        return past
    if isinstance(past, tuple):  # legacy per-layer (key, value) tuples
        return tuple(tuple(t.repeat_interleave(n, dim=0) for t in layer) for layer in past)
    raise TypeError(f"cannot repeat a {type(past).__name__} cache")


def _softmax(scores: list[float], temperature: float) -> tuple[float, ...]:
    finite = [s for s in scores if math.isfinite(s)]
    if not finite:  # a broken model: no preference rather than a crash
        return tuple(1.0 / len(scores) for _ in scores)
    top = max(finite)
    weights = [math.exp((s - top) / temperature) if math.isfinite(s) else 0.0 for s in scores]
    total = sum(weights)
    return tuple(w / total for w in weights)


class LMTeacher:
    """A causal LM as the teacher. Build it with ``LMTeacher.load``."""

    kind = "teacher"

    def __init__(self, model: Any, tokenizer: Any, *, name: str, seed: int = 0,
                 temperature: float = 1.0) -> None:
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError("temperature must be a positive number")
        import torch

        self._torch = torch
        self._model = model
        self._tokenizer = tokenizer
        self.name = name
        self.temperature = temperature
        self.seed = seed
        self._rng = random.Random(f"lm-teacher:{seed}")
        self.parameter_count = sum(p.numel() for p in model.parameters())
        self.max_positions = _max_positions(model, tokenizer)
        self.score_mode = "cached"
        self._trims_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        pad = tokenizer.pad_token_id
        self._pad_id = pad if isinstance(pad, int) else 0
        self._continuations = [
            list(tokenizer(CONTINUATIONS[a], add_special_tokens=False)["input_ids"])
            for a in ACTIONS
        ]
        if not all(self._continuations):
            raise TeacherLoadError(f"{name}'s tokenizer turns an action phrase into no tokens")
        # Room for the longest continuation after the (left-truncated) prompt.
        self.max_prompt_tokens = self.max_positions - max(map(len, self._continuations))
        if self.max_prompt_tokens < 1:
            raise TeacherLoadError(f"{name} has too few positions ({self.max_positions})")

    @classmethod
    def load(cls, model: str, *, timeout_s: float, seed: int = 0, temperature: float = 1.0,
             cache_dir: str | os.PathLike[str] | None = None) -> LMTeacher:
        """Load ``model`` (hub id or folder) for CPU inference within ``timeout_s`` seconds.

        ``cache_dir`` overrides the Hugging Face cache (tests use an empty one). Raises
        ``TeacherLoadError`` with a one-line reason on any failure.
        """
        model = model.strip()
        name = short_name(model)
        if not model:
            raise TeacherLoadError("no model given")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError("timeout_s must be a positive number")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError("temperature must be a positive number")
        outcome: dict[str, Any] = {}
        cache = None if cache_dir is None else str(cache_dir)

        def work() -> None:
            try:
                outcome["parts"] = _load_parts(model, cache)
            except BaseException as exc:  # reported to the caller, never lost in the thread
                outcome["error"] = exc

        # A daemon thread: a load stuck on the network cannot keep the process alive.
        thread = threading.Thread(target=work, name=f"aegis-load-{name}", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if thread.is_alive():
            raise TeacherLoadError(f"loading {name} took longer than {timeout_s:g} s")
        if "error" in outcome:
            raise TeacherLoadError(_reason(outcome["error"], model)) from None
        tokenizer, lm = outcome["parts"]
        try:
            lm.eval()
            lm.requires_grad_(False)
            return cls(lm, tokenizer, name=name, seed=seed, temperature=temperature)
        except TeacherLoadError:
            raise
        except Exception as exc:
            raise TeacherLoadError(_reason(exc, model)) from None

    # -- scoring -----------------------------------------------------------------------------

    def prompt_ids(self, snapshot: StateSnapshot) -> list[int]:
        """The prompt's token ids, cut from the left to leave room for a continuation."""
        ids = list(self._tokenizer(build_prompt(snapshot))["input_ids"])
        return ids[-self.max_prompt_tokens:]

    def scores(self, snapshot: StateSnapshot, mode: str | None = None) -> tuple[float, ...]:
        """Mean log-probability per continuation token for each action, in ``ACTIONS`` order.

        ``mode``: ``"cached"`` (the default fast path), ``"padded"`` (four full sequences in
        one batch) or ``"separate"`` (one unpadded pass per action: the reference).
        """
        mode = mode or self.score_mode
        if mode not in SCORE_MODES:
            raise ValueError(f"mode must be one of {', '.join(SCORE_MODES)}")
        if self._model is None:
            raise RuntimeError("the LM teacher is closed")
        ids = self.prompt_ids(snapshot)
        with self._torch.inference_mode():
            if mode == "separate":
                # Full logits, no cache, no padding: nothing shared with the fast paths.
                return tuple(self._score_padded(ids, [c], trim=False)[0]
                             for c in self._continuations)
            if mode == "padded":
                return self._score_padded(ids, self._continuations)
            try:
                return self._score_cached(ids, self._continuations)
            except (TypeError, ValueError, AttributeError, RuntimeError, NotImplementedError):
                # A model whose cache cannot be reused this way: use the plain batch from now on.
                self.score_mode = "padded"
                return self._score_padded(ids, self._continuations)

    def _logits(self, keep: int, **inputs: Any) -> Any:
        """Logits for the last ``keep`` positions only (0: all), when the model supports it.

        The LM head over a 50k vocabulary costs GPT-2 about a third of a prompt pass; the
        continuations need it at a handful of positions.
        """
        if keep and self._trims_logits:
            inputs["logits_to_keep"] = keep
        logits = self._model(**inputs).logits
        return logits if not keep else logits[:, -keep:]

    def _score_padded(self, prompt: list[int], conts: list[list[int]], *,
                      trim: bool = True) -> tuple[float, ...]:
        torch = self._torch
        seqs = [prompt + c for c in conts]
        width = max(map(len, seqs))
        input_ids = torch.full((len(seqs), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, seq in enumerate(seqs):
            # Right padding: with causal attention, pads after a sequence cannot affect it.
            input_ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        # Every sequence shares the prompt, so the positions we need are the same last few.
        keep = width - len(prompt) + 1 if trim else 0
        logits = self._logits(keep, input_ids=input_ids, attention_mask=mask)
        offset = width - logits.shape[1]  # sequence position of logits[:, 0]
        logp = torch.log_softmax(logits.float(), dim=-1)
        out = []
        for i, cont in enumerate(conts):
            # The token at position p is predicted by the logits at p - 1.
            rows = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(cont)) - offset
            out.append(float(logp[i, rows, torch.tensor(cont)].mean()))
        return tuple(out)

    def _score_cached(self, prompt: list[int], conts: list[list[int]]) -> tuple[float, ...]:
        torch = self._torch
        n, length = len(conts), len(prompt)
        inputs: dict[str, Any] = {
            "input_ids": torch.tensor([prompt]),
            "attention_mask": torch.ones((1, length), dtype=torch.long),
            "use_cache": True,
        }
        if self._trims_logits:
            inputs["logits_to_keep"] = 1
        first = self._model(**inputs)
        head = torch.log_softmax(first.logits[0, -1].float(), dim=-1)
        totals = [float(head[c[0]]) for c in conts]
        # Feed each continuation but its last token; logits at j predict token j + 1.
        width = max(len(c) for c in conts) - 1
        if width > 0:
            past = _repeat_cache(first.past_key_values, n)
            feed = torch.full((n, width), self._pad_id, dtype=torch.long)
            mask = torch.ones((n, length + width), dtype=torch.long)
            for i, c in enumerate(conts):
                feed[i, : len(c) - 1] = torch.tensor(c[:-1], dtype=torch.long)
                mask[i, length + len(c) - 1:] = 0
            positions = torch.arange(length, length + width).unsqueeze(0).expand(n, -1)
            logits = self._model(input_ids=feed, attention_mask=mask, position_ids=positions,
                                 past_key_values=past, use_cache=True).logits.float()
            logp = torch.log_softmax(logits, dim=-1)
            for i, c in enumerate(conts):
                if len(c) > 1:
                    rows = torch.arange(len(c) - 1)
                    totals[i] += float(logp[i, rows, torch.tensor(c[1:])].sum())
        return tuple(t / len(c) for t, c in zip(totals, conts, strict=True))

    # -- the Policy protocol -------------------------------------------------------------------

    def probabilities(self, snapshot: StateSnapshot) -> tuple[float, float, float, float]:
        return _softmax(list(self.scores(snapshot)), self.temperature)  # type: ignore[return-value]

    def decide(self, snapshot: StateSnapshot) -> Decision:
        probs = self.probabilities(snapshot)
        u = self._rng.random()
        action: Action = ACTIONS[-1]
        cumulative = 0.0
        for candidate, p in zip(ACTIONS, probs, strict=True):
            cumulative += p
            if u < cumulative:
                action = candidate
                break
        return Decision(action=action, probs=probs, policy="teacher", name=self.name)

    def close(self) -> None:
        """Drop the model so its memory can be freed; ``decide`` fails afterwards."""
        self._model = None
        self._tokenizer = None
        gc.collect()
