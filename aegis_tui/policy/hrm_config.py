"""``HRMConfig``: the HRM's size and shape as plain, validated data (no torch import).

Checkpoints store it as a dict; the worker receives it as JSON; the CLI can show it
without loading torch. The defaults are the size the timing targets were measured at.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from aegis_tui.actions import ACTIONS
from aegis_tui.policy.features import FEATURE_LEN, FEATURE_VERSION, VOCAB_SIZE


@dataclass(frozen=True, slots=True)
class HRMConfig:
    vocab_size: int = VOCAB_SIZE
    seq_len: int = FEATURE_LEN
    d_model: int = 160
    n_heads: int = 2
    expansion: float = 4.0
    H_layers: int = 1
    L_layers: int = 1
    H_cycles: int = 2
    L_cycles: int = 2
    n_actions: int = len(ACTIONS)
    rms_norm_eps: float = 1e-5
    slots_per_position: int = 2
    ordinal_embeddings: bool = True
    feature_version: int = FEATURE_VERSION

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "ordinal_embeddings":
                if not isinstance(value, bool):
                    raise ValueError("HRMConfig.ordinal_embeddings must be true or false")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"HRMConfig.{f.name} must be a number, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError("HRMConfig.d_model must be a multiple of n_heads")
        for name in ("vocab_size", "seq_len", "d_model", "n_heads", "H_layers", "L_layers",
                     "H_cycles", "L_cycles", "n_actions", "slots_per_position",
                     "feature_version"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"HRMConfig.{name} must be a positive integer")
        if self.seq_len % self.slots_per_position:
            raise ValueError("HRMConfig.seq_len must be a multiple of slots_per_position")
        if not 0 < self.expansion <= 16 or not 0 < self.rms_norm_eps < 1:
            raise ValueError("HRMConfig.expansion or rms_norm_eps is out of range")
        # Bounds keep a hostile checkpoint's config from asking for gigabytes.
        limits = {"vocab_size": 1_000_000, "seq_len": 4096, "d_model": 4096, "n_heads": 64,
                  "H_layers": 32, "L_layers": 32, "H_cycles": 16, "L_cycles": 16,
                  "n_actions": 64, "slots_per_position": 64}
        for name, limit in limits.items():
            if getattr(self, name) > limit:
                raise ValueError(f"HRMConfig.{name} must be at most {limit}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> HRMConfig:
        """Rebuild from ``to_dict`` output; ``ValueError`` on unknown or bad keys."""
        if not isinstance(data, dict):
            raise ValueError("model config must be a map")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model config has unknown keys: {', '.join(map(str, unknown))}")
        return cls(**data)

    @property
    def positions(self) -> int:
        """Sequence length the transformer sees: slots summed ``slots_per_position`` at a time."""
        return self.seq_len // self.slots_per_position

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_hidden(self) -> int:
        # The original rounds 2/3 * expansion * d up to a multiple of 256; at this size
        # that would nearly double the MLP, so round to 64 instead.
        raw = round(self.expansion * self.d_model * 2 / 3)
        return -(raw // -64) * 64
