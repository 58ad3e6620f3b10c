"""The ``lm`` teacher: a Hugging Face causal language model scores the four actions.

``LMTeacher.load`` loads any causal LM by hub id (``"gpt2"``) or local folder, on the device
``--device`` names (``policy.devices``), quietly; every failure becomes ``TeacherLoadError``
with a one-line reason a person can act on. ``decide`` describes the state in words
(``policy.prompt``), scores the four continuations by their log-likelihood after the prompt,
turns the scores into probabilities and samples one action with a seeded RNG.

Tokenising. The prompt and a continuation are encoded *together* and split at the
boundary, the convention of lm-evaluation-harness (``_encode_pair``): encode the context,
encode context + continuation, and the continuation's tokens are what follows the
context's. Encoding ``" search the web"`` alone is right for GPT-2's byte-level BPE but not
for SentencePiece tokenizers (Llama, Mistral, Gemma), which put a word-boundary piece in
front of any text they are given, so the model would be scored on a token that never
follows the prompt. Where the tokenizer merges across the boundary, the split is where the
encodings stop agreeing. Special tokens the tokenizer adds in front of a text (a BOS) are
kept in front of the prompt, also when a long prompt is cut from the left.

Instruction-tuned models. When the tokenizer has a chat template (and
``teacher_chat_template`` is on) the prompt is sent as the user's message through the
template with the assistant's turn opened, and each continuation is the assistant's reply
("search the web", no leading space). Base models get the plain prompt.

Scoring. The score of an action is the *mean* log-probability of its continuation's tokens
(not the sum): a sum favours short continuations simply for having fewer tokens to pay for.
The fast path runs the prompt once, keeps its KV cache, repeats the cache four times and runs
the four continuations as one padded batch (prompt tokens once instead of four times). The
reference path runs four padded ``prompt + continuation`` sequences in one batch; a model
whose cache cannot be repeated falls back to it. Both equal scoring each continuation alone.

Loading and the network. A folder is loaded as it is. A hub id is first looked for in the
local cache with no network at all, so a cached ``gpt2`` loads offline and never waits on
the hub. Only when it is not cached and offline mode is off (``HF_HUB_OFFLINE``) is the hub
contacted: after a short connection probe (``huggingface_hub`` otherwise retries a dead
network for about half a minute), the files are downloaded by ``policy.model_download``,
which reports progress and gives up on a *stalled* download, never on a slow one. The
commit the model came from is kept (``revision``) so the examples can name it. Custom model
code is never run (``trust_remote_code=False``). Reading the weights from disk into memory
is bounded by ``timeout_s``.

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aegis_tui.actions import ACTIONS, Action, as_probs
from aegis_tui.config import DEFAULT_GOALS
from aegis_tui.policy.base import Decision
from aegis_tui.policy.devices import Placement, resolve_device
from aegis_tui.policy.model_download import ModelDownloadError, ProgressCallback, download_model
from aegis_tui.policy.prompt import CONTINUATIONS, build_prompt
from aegis_tui.snapshot import GoalView, StateSnapshot, TopicView
from aegis_tui.text import clean

SCORE_MODES = ("cached", "padded", "separate")
PROBE_TIMEOUT_S = 3.0
CALIBRATION_STATES = 6
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


def hub_offline() -> bool:
    from huggingface_hub import constants

    env = any(
        os.environ.get(k, "").strip().upper() in ("1", "ON", "YES", "TRUE")
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return env or bool(constants.HF_HUB_OFFLINE)


def hub_reachable(timeout_s: float = PROBE_TIMEOUT_S) -> bool:
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


def as_folder(model: str) -> Path | None:
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


def check_model_folder(folder: Path) -> None:
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


def _dtype_kwargs(torch: Any, placement: Placement) -> dict[str, Any]:
    import transformers

    major, minor = (int(x) for x in re.findall(r"\d+", transformers.__version__)[:2])
    # transformers 4.56 renamed torch_dtype to dtype; 5.x defaults to "auto", so be explicit.
    key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    return {key: placement.dtype(torch)}


@dataclass(frozen=True, slots=True)
class ModelSource:
    """A model on local disk: its folder, what the user called it, and its commit (hub only)."""

    folder: Path
    model_id: str
    revision: str = ""


def cached_snapshot(model: str, revision: str, cache_dir: str | None) -> Path | None:
    """The cached snapshot folder of hub id ``model`` at ``revision``, if complete enough."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(model, revision=revision or None, cache_dir=cache_dir,
                                        local_files_only=True))
        check_model_folder(folder)
    except Exception:  # not cached, partly cached, or not even a valid id: not usable
        return None
    return folder


def locate_model(model: str, *, revision: str = "", cache_dir: str | None = None,
                 stall_timeout_s: float = 60.0,
                 on_progress: ProgressCallback | None = None) -> ModelSource:
    """The local folder of ``model`` (a folder, or a hub id: cached, else downloaded).

    Raises ``TeacherLoadError`` for every failure, with one line saying why.
    """
    silence_libraries()
    folder = as_folder(model)
    if folder is not None:
        if revision:
            raise TeacherLoadError(f"teacher_revision ({clean(revision, 60)}) pins a hub model; "
                                   f"{folder} is a local folder")
        check_model_folder(folder)
        return ModelSource(folder=folder, model_id=str(folder))
    cached = cached_snapshot(model, revision, cache_dir)
    if cached is not None:
        return ModelSource(folder=cached, model_id=model, revision=cached.name)
    pinned = f" at revision {clean(revision, 60)}" if revision else ""
    if hub_offline():
        raise TeacherLoadError(
            f"{model}{pinned} is not in the Hugging Face cache and offline mode is on "
            "(HF_HUB_OFFLINE)"
        )
    if not hub_reachable():
        raise TeacherLoadError(
            f"cannot reach the Hugging Face Hub and {model}{pinned} is not in the local cache"
        )
    try:
        got = download_model(model, revision=revision or None, cache_dir=cache_dir,
                             stall_timeout_s=stall_timeout_s, on_progress=on_progress)
    except ModelDownloadError as exc:
        raise TeacherLoadError(str(exc)) from None
    except Exception as exc:
        raise TeacherLoadError(load_failure_reason(exc, model, revision)) from None
    check_model_folder(got.folder)
    return ModelSource(folder=got.folder, model_id=model, revision=got.commit)


def _load_parts(folder: str, placement: Placement) -> tuple[Any, Any]:
    """(tokenizer, model) from a local folder, the model on ``placement``'s device."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    silence_libraries()
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    tokenizer = AutoTokenizer.from_pretrained(folder, **common)
    model = AutoModelForCausalLM.from_pretrained(folder, **common,
                                                 **_dtype_kwargs(torch, placement))
    if placement.device != "cpu":
        # transformers' stubs wrap ``to`` so that it reads as taking a model, not a device.
        model = model.to(placement.device)  # type: ignore[arg-type]
    return tokenizer, model


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def load_failure_reason(exc: BaseException, model: str, revision: str = "") -> str:
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
    if "RevisionNotFoundError" in names:
        return (f"{model} has no revision {clean(revision, 60) or 'main'} on the Hugging Face "
                "Hub (teacher_revision names a branch, tag or commit)")
    not_found = names & {"RepositoryNotFoundError", "GatedRepoError"}
    if not_found or "not a valid model identifier" in text:
        return f"{model} was not found on the Hugging Face Hub (or is private or gated)"
    if names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"} or "couldn't connect" in text:
        return f"could not download {model}: the Hugging Face Hub did not answer"
    if names & {"ConnectError", "ConnectTimeout", "ReadTimeout", "ProxyError"}:
        return f"could not download {model}: {type(exc).__name__} ({clean(str(exc), 120)})"
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


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def calibration_states() -> list[StateSnapshot]:
    """A handful of fixed, varied states the teacher's score scale is measured on."""
    actions = ("web_search", "ask_human", "propose_improvement", "idle")
    out = []
    for i in range(CALIBRATION_STATES):
        goals = tuple(GoalView(text=DEFAULT_GOALS[(i + k) % len(DEFAULT_GOALS)], keywords=(),
                               progress=(i + k) % 5 / 5, completed=False)
                      for k in range(1 + i % 3))
        topics = tuple(TopicView(topic=t, priority=1.0 - k / 10, times_searched=k,
                                 provenance="goal")
                       for k, t in enumerate(("event loop", "json", "garbage collection")[:i % 4]))
        out.append(StateSnapshot(
            iteration=10 * i, goals=goals, curiosity=topics, curiosity_size=len(topics) + i,
            knowledge_count=7 * i, knowledge_since_proposal=(3 * i) % 11, web_searches=5 * i,
            failed_searches=i % 3, last_search_gain=(i % 4) - 1, pending_questions=i % 2,
            questions_asked=i, questions_answered=i // 2, pending_proposals=(i // 2) % 2,
            improvements_proposed=i, improvements_approved=i // 3,
            iterations_since_question=(5 * i) % 17, iterations_since_proposal=(7 * i) % 23,
            recent_actions=tuple(actions[(i * 3 + k) % 4] for k in range(i % 6))))
    return out


class LMTeacher:
    """A causal LM as the teacher. Build it with ``LMTeacher.load``.

    It samples from ``softmax(scores / (temperature * score_scale))``: ``temperature`` is
    measured in units of the model's own typical score spread (``score_scale``), so the
    same setting means the same decisiveness for any model.
    """

    kind = "teacher"

    def __init__(self, model: Any, tokenizer: Any, *, name: str, seed: int = 0,
                 temperature: float = 1.0, placement: Placement | None = None,
                 model_id: str = "", revision: str = "", chat_template: bool = True) -> None:
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError("temperature must be a positive number")
        import torch

        self._torch = torch
        self._model = model
        self._tokenizer = tokenizer
        self.name = name
        self.model_id = model_id or name
        self.revision = revision
        self.placement = placement or Placement("cpu", "float32")
        self.device = self.placement.device
        self.temperature = temperature
        self.seed = seed
        self._rng = random.Random(f"lm-teacher:{seed}")
        self.parameter_count = sum(p.numel() for p in model.parameters())
        self.max_positions = _max_positions(model, tokenizer)
        self.score_mode = "cached"
        params = inspect.signature(model.forward).parameters
        self._trims_logits = "logits_to_keep" in params
        # transformers 5 calls the KV cache ``cache``; 4.x called it ``past_key_values``.
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        pad = tokenizer.pad_token_id
        self._pad_id = pad if isinstance(pad, int) else 0
        self.chat = bool(chat_template and getattr(tokenizer, "chat_template", None))
        self.chat_note = ""
        if self.chat:
            try:
                self._chat_text("x")
            except Exception as exc:  # a template that cannot render: use the plain prompt
                self.chat = False
                self.chat_note = f"its chat template failed ({type(exc).__name__}), so the " \
                                 "plain prompt is used"
        self._prefix = [] if self.chat else self._leading_specials()
        _, sample_conts = self.encode(StateSnapshot(iteration=0))
        if not all(sample_conts):
            raise TeacherLoadError(f"{name}'s tokenizer turns an action phrase into no tokens")
        # Room for the longest continuation after the (left-truncated) prompt.
        self.max_prompt_tokens = self.max_positions - max(map(len, sample_conts))
        if self.max_prompt_tokens < len(self._prefix) + 1:
            raise TeacherLoadError(f"{name} has too few positions ({self.max_positions})")
        self.score_scale = self._calibrate()

    @classmethod
    def load(cls, model: str, *, timeout_s: float, seed: int = 0, temperature: float = 1.0,
             cache_dir: str | os.PathLike[str] | None = None, device: str = "cpu",
             revision: str = "", chat_template: bool = True, stall_timeout_s: float = 60.0,
             on_progress: ProgressCallback | None = None) -> LMTeacher:
        """Load ``model`` (hub id or folder) on ``device`` (``auto``, ``cpu``, ``cuda``, ``mps``).

        A hub model not in the cache is downloaded first (``on_progress`` hears how it goes;
        it gives up after ``stall_timeout_s`` without data); reading the weights into memory
        must then finish within ``timeout_s`` seconds. ``cache_dir`` overrides the Hugging
        Face cache (tests use an empty one). Raises ``devices.DeviceUnavailable`` when the
        device is not here and ``TeacherLoadError`` with a one-line reason on any other
        failure.
        """
        model = model.strip()
        name = short_name(model)
        if not model:
            raise TeacherLoadError("no model given")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError("timeout_s must be a positive number")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError("temperature must be a positive number")
        placement = resolve_device(device)
        cache = None if cache_dir is None else str(cache_dir)
        source = locate_model(model, revision=revision, cache_dir=cache,
                              stall_timeout_s=stall_timeout_s, on_progress=on_progress)
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["parts"] = _load_parts(str(source.folder), placement)
            except BaseException as exc:  # reported to the caller, never lost in the thread
                outcome["error"] = exc

        # A daemon thread: a load stuck on a slow disk cannot keep the process alive.
        thread = threading.Thread(target=work, name=f"aegis-load-{name}", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if thread.is_alive():
            raise TeacherLoadError(f"loading {name} took longer than {timeout_s:g} s")
        if "error" in outcome:
            raise TeacherLoadError(load_failure_reason(outcome["error"], model)) from None
        tokenizer, lm = outcome["parts"]
        try:
            lm.eval()
            lm.requires_grad_(False)
            return cls(lm, tokenizer, name=name, seed=seed, temperature=temperature,
                       placement=placement, model_id=source.model_id,
                       revision=source.revision, chat_template=chat_template)
        except TeacherLoadError:
            raise
        except Exception as exc:
            raise TeacherLoadError(load_failure_reason(exc, model)) from None

    # -- tokenising ----------------------------------------------------------------------------

    def _ids(self, text: str) -> list[int]:
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _leading_specials(self) -> list[int]:
        """The special tokens the tokenizer puts in front of a text (a BOS), if any."""
        probe = "Next action:"
        with_specials = list(self._tokenizer(probe)["input_ids"])
        plain = self._ids(probe)
        n = len(with_specials) - len(plain)
        if n > 0 and with_specials[n:n + len(plain)] == plain:
            return with_specials[:n]
        return []

    def _chat_text(self, prompt: str) -> str:
        text = self._tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        if not isinstance(text, str):
            raise TypeError("the chat template did not return text")
        return text

    def encode(self, snapshot: StateSnapshot) -> tuple[list[int], list[list[int]]]:
        """The prompt's token ids and each action's continuation ids, in ``ACTIONS`` order.

        lm-evaluation-harness's ``_encode_pair``: each continuation is what encoding
        context + continuation adds after the context's tokens; the prompt is the part all
        four encodings share with the context's own encoding.
        """
        prompt = build_prompt(snapshot)
        if self.chat:
            # The template's text after "assistant" belongs to the turn; the reply starts the
            # continuation, without the space a plain-text continuation takes after the cue.
            context = self._chat_text(prompt)
            replies = [CONTINUATIONS[a].strip() for a in ACTIONS]
        else:
            context = prompt
            replies = [CONTINUATIONS[a] for a in ACTIONS]
            # The harness moves trailing whitespace from the context into the continuation.
            spaces = len(context) - len(context.rstrip())
            if spaces:
                replies = [context[-spaces:] + r for r in replies]
                context = context[:-spaces]
        context_ids = self._ids(context)
        wholes = [self._ids(context + r) for r in replies]
        # Normally every whole starts with the context's tokens; where a tokenizer merged
        # across the boundary, the split moves back to where they still agree.
        cut = min(_common_prefix(context_ids, w) for w in wholes)
        conts = [w[cut:] for w in wholes]
        return self._prefix + context_ids[:cut], conts

    def prompt_ids(self, snapshot: StateSnapshot) -> list[int]:
        """The prompt's token ids, cut from the left (after any BOS) to leave room."""
        prompt, conts = self.encode(snapshot)
        return self._truncate(prompt, conts)

    def _truncate(self, ids: list[int], conts: list[list[int]]) -> list[int]:
        room = min(self.max_prompt_tokens, self.max_positions - max(map(len, conts)))
        if len(ids) <= room:
            return ids
        keep = max(1, room - len(self._prefix))
        return self._prefix + ids[len(ids) - keep:]

    # -- scoring -----------------------------------------------------------------------------

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
        prompt, conts = self.encode(snapshot)
        ids = self._truncate(prompt, conts)
        with self._torch.inference_mode():
            if mode == "separate":
                # Full logits, no cache, no padding: nothing shared with the fast paths.
                return tuple(self._score_padded(ids, [c], trim=False)[0] for c in conts)
            if mode == "padded":
                return self._score_padded(ids, conts)
            try:
                return self._score_cached(ids, conts)
            except (TypeError, ValueError, AttributeError, RuntimeError, NotImplementedError):
                # A model whose cache cannot be reused this way: use the plain batch from now on.
                self.score_mode = "padded"
                return self._score_padded(ids, conts)

    def continuation_tokens(self, snapshot: StateSnapshot) -> list[list[str]]:
        """The scored tokens of each continuation as strings (for tests and curious people)."""
        _, conts = self.encode(snapshot)
        return [list(self._tokenizer.convert_ids_to_tokens(c)) for c in conts]

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
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        # Every sequence shares the prompt, so the positions we need are the same last few.
        keep = width - len(prompt) + 1 if trim else 0
        logits = self._logits(keep, input_ids=input_ids, attention_mask=mask)
        offset = width - logits.shape[1]  # sequence position of logits[:, 0]
        logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        out = []
        for i, cont in enumerate(conts):
            # The token at position p is predicted by the logits at p - 1.
            rows = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(cont)) - offset
            out.append(float(logp[i, rows, torch.tensor(cont)].mean()))
        return tuple(out)

    def _score_cached(self, prompt: list[int], conts: list[list[int]]) -> tuple[float, ...]:
        torch = self._torch
        n, length = len(conts), len(prompt)
        device = self.device
        inputs: dict[str, Any] = {
            "input_ids": torch.tensor([prompt], device=device),
            "attention_mask": torch.ones((1, length), dtype=torch.long, device=device),
            "use_cache": True,
        }
        if self._trims_logits:
            inputs["logits_to_keep"] = 1
        first = self._model(**inputs)
        head = torch.log_softmax(first.logits[0, -1].float(), dim=-1).cpu()
        totals = [float(head[c[0]]) for c in conts]
        # Feed each continuation but its last token; logits at j predict token j + 1.
        width = max(len(c) for c in conts) - 1
        if width > 0:
            past = _repeat_cache(getattr(first, self._cache_arg), n)
            feed = torch.full((n, width), self._pad_id, dtype=torch.long)
            mask = torch.ones((n, length + width), dtype=torch.long)
            for i, c in enumerate(conts):
                feed[i, : len(c) - 1] = torch.tensor(c[:-1], dtype=torch.long)
                mask[i, length + len(c) - 1:] = 0
            positions = torch.arange(length, length + width).unsqueeze(0).expand(n, -1)
            logits = self._model(input_ids=feed.to(device), attention_mask=mask.to(device),
                                 position_ids=positions.to(device), use_cache=True,
                                 **{self._cache_arg: past}).logits.float()
            logp = torch.log_softmax(logits, dim=-1).cpu()
            for i, c in enumerate(conts):
                if len(c) > 1:
                    rows = torch.arange(len(c) - 1)
                    totals[i] += float(logp[i, rows, torch.tensor(c[1:])].sum())
        return tuple(t / len(c) for t, c in zip(totals, conts, strict=True))

    # -- the Policy protocol -------------------------------------------------------------------

    def _calibrate(self) -> float:
        """How far apart this model's four scores typically are (their standard deviation,
        averaged over ``calibration_states``): the unit ``temperature`` is measured in.

        Raw score gaps differ forty-fold between models (a few thousandths of a nat for a
        random-weight model, around one for a trained one), so one raw temperature would
        leave one model uniform and make another greedy. Measured on fixed states, so the
        same model always gets the same scale.
        """
        spreads = []
        for snapshot in calibration_states():
            scores = [x for x in self.scores(snapshot) if math.isfinite(x)]
            if len(scores) > 1:
                mean = math.fsum(scores) / len(scores)
                spreads.append(math.sqrt(math.fsum((x - mean) ** 2 for x in scores)
                                         / len(scores)))
        spread = math.fsum(spreads) / len(spreads) if spreads else 1.0
        return spread if spread > 1e-6 else 1.0

    def probabilities(self, snapshot: StateSnapshot) -> tuple[float, float, float, float]:
        return as_probs(_softmax(list(self.scores(snapshot)),
                                 self.temperature * self.score_scale))

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
        return Decision(action=action, probs=probs, policy="teacher", name=self.name,
                        model=self.model_id, revision=self.revision)

    def close(self) -> None:
        """Drop the model so its memory can be freed; ``decide`` fails afterwards."""
        self._model = None
        self._tokenizer = None
        gc.collect()
