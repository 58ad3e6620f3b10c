"""HRM checkpoints: tensors and plain data only, written atomically, loaded with ``weights_only``.

A checkpoint is a ``torch.save``d dict::

    {"format": "aegis-hrm", "format_version": 1,
     "model_config": {...HRMConfig fields...},
     "state_dict": {name: tensor},
     "meta": {...plain data: epoch, val_accuracy, created, examples, ...},
     "optimizer_state": {...} or None,
     "extra": {...plain data and tensors, e.g. RL trainer state...}}

Writes go through ``atomic_writer`` (temp file, fsync, ``os.replace``), so a crash leaves
the old checkpoint or the new one, never half of one. Loading always uses
``torch.load(weights_only=True)``: a file that holds pickled code is refused, never run.
Every failure is a ``CheckpointError`` with a one-line reason.
"""

from __future__ import annotations

import copy
import io
import math
import pickle
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis_tui.policy.features import FEATURE_VERSION
from aegis_tui.storage.atomic import atomic_writer

if TYPE_CHECKING:
    import torch

    from aegis_tui.policy.hrm import HRM, HRMConfig

FORMAT = "aegis-hrm"
FORMAT_VERSION = 1
MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024
_PLAIN = (str, int, float, bool, type(None))


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or used; the message is one line saying why."""


@dataclass(slots=True)
class LoadedCheckpoint:
    path: Path
    config: HRMConfig
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]
    optimizer_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _model: HRM | None = field(default=None, repr=False)

    def build_model(self) -> HRM:
        """A model with these weights, in eval mode (a new one on every call)."""
        from aegis_tui.policy.hrm import HRM

        if self._model is not None:
            model, self._model = self._model, None
            return model
        model = HRM(self.config)
        model.load_state_dict(copy.deepcopy(self.state_dict), strict=True)
        model.eval()
        return model


def _check_plain(value: Any, where: str, allow_tensors: bool = False) -> None:
    """Refuse anything but plain data before it reaches the file (keeps it weights_only-safe)."""
    import torch

    if isinstance(value, _PLAIN):
        if isinstance(value, float) and not math.isfinite(value):
            raise CheckpointError(f"{where} holds a non-finite number")
        return
    if allow_tensors and isinstance(value, torch.Tensor):
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]", allow_tensors)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise CheckpointError(f"{where} has a key of type {type(key).__name__}")
            _check_plain(item, f"{where}.{key}", allow_tensors)
        return
    raise CheckpointError(f"{where} holds a {type(value).__name__}, not plain data")


def save_checkpoint(
    path: Path,
    model: HRM,
    *,
    meta: dict[str, Any],
    optimizer_state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` (and optional optimizer/extra state) to ``path`` atomically.

    ``meta`` must be plain data; ``created`` (unix time) and ``format_version`` are added.
    """
    import torch

    meta = {"created": time.time(), **meta}
    _check_plain(meta, "meta")
    if optimizer_state is not None:
        _check_plain(optimizer_state, "optimizer_state", allow_tensors=True)
    _check_plain(extra or {}, "extra", allow_tensors=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": meta,
        "optimizer_state": optimizer_state,
        "extra": extra or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        with atomic_writer(Path(path)) as handle:
            handle.write(buffer.getbuffer())
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None


def load_checkpoint(path: Path) -> LoadedCheckpoint:
    """Read and validate a checkpoint; ``CheckpointError`` says why one is unusable."""
    import torch

    from aegis_tui.policy.hrm import HRM, HRMConfig

    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc.strerror}") from None
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"checkpoint {path} is {size} bytes, too large to be an HRM")
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only names a refused global ("Unsupported global: GLOBAL os.system"); any
        # other unpickling failure is just damage.
        if "global" in str(exc).lower():
            raise CheckpointError(
                f"checkpoint {path} holds pickled code or objects, not just tensors; "
                "refused (loaded with weights_only=True)"
            ) from None
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError,
            IndexError, TypeError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a checkpoint ({first})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an aegis-tui HRM checkpoint")
    version = payload.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"checkpoint {path} has no format version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, newer than this aegis-tui "
            f"reads ({FORMAT_VERSION}); upgrade aegis-tui"
        )
    try:
        config = HRMConfig.from_dict(payload.get("model_config"))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} has a bad model config: {exc}") from None
    if config.feature_version != FEATURE_VERSION:
        raise CheckpointError(
            f"checkpoint {path} reads state features version {config.feature_version}, "
            f"this aegis-tui makes version {FEATURE_VERSION}; retrain it (aegis-tui train)"
        )
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"checkpoint {path} has no valid state_dict")
    # A real (CPU) model: ~40 ms. Building it on the meta device would avoid the
    # allocation but costs ~1 s the first time in a process (meta kernels load lazily).
    model = HRM(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise CheckpointError(f"checkpoint {path} does not match its model config ({what})")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"checkpoint {path}: {name} has shape {list(state[name].shape)}, "
                f"expected {list(tensor.shape)}"
            )
        if state[name].dtype != tensor.dtype:
            raise CheckpointError(f"checkpoint {path}: {name} has dtype {state[name].dtype}")
        if state[name].is_floating_point() and not bool(torch.isfinite(state[name]).all()):
            raise CheckpointError(f"checkpoint {path}: {name} holds NaN or infinite values")
    meta = payload.get("meta")
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has no metadata")
    optimizer_state = payload.get("optimizer_state")
    if optimizer_state is not None and not isinstance(optimizer_state, dict):
        raise CheckpointError(f"checkpoint {path} has a malformed optimizer state")
    extra = payload.get("extra") or {}
    if not isinstance(extra, dict):
        raise CheckpointError(f"checkpoint {path} has malformed extra state")
    model.load_state_dict(state, strict=True)
    model.eval()
    return LoadedCheckpoint(path=path, config=config, state_dict=state, meta=meta,
                            optimizer_state=optimizer_state, extra=extra, _model=model)
