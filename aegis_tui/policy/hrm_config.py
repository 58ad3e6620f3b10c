"""``HRMConfig``: the HRM's size and shape as plain, validated data (no torch import).

Checkpoints store it as a dict; the worker receives it as JSON; the CLI can show it
without loading torch. The defaults are the size the timing targets were measured at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from aegis_tui.actions import ACTIONS
from aegis_tui.knobs import ConfigError, as_dict, build, check_fields, knob
from aegis_tui.policy.features import FEATURE_LEN, FEATURE_VERSION, VOCAB_SIZE

_ENCODER = "set by the feature encoder"


@dataclass(frozen=True, slots=True)
class HRMConfig:
    """The ``[imitation.model]`` table. The upper bounds also keep a hostile checkpoint's
    config from asking for gigabytes."""

    TABLE: ClassVar[str] = "imitation.model"

    vocab_size: int = knob(VOCAB_SIZE, "token vocabulary", low=1, high=1_000_000,
                           fixed=_ENCODER)
    seq_len: int = knob(FEATURE_LEN, "tokens per state", low=1, high=4096, fixed=_ENCODER)
    d_model: int = knob(160, "width of the transformer blocks (a multiple of n_heads)",
                        low=1, high=4096)
    n_heads: int = knob(2, "attention heads", low=1, high=64)
    expansion: float = knob(4.0, "MLP width as a multiple of d_model", low=0.1, high=16.0)
    H_layers: int = knob(1, "blocks in the slow (high-level) module", low=1, high=32)
    L_layers: int = knob(1, "blocks in the fast (low-level) module", low=1, high=32)
    H_cycles: int = knob(2, "slow-module steps per decision", low=1, high=16)
    L_cycles: int = knob(2, "fast-module steps per slow step", low=1, high=16)
    n_actions: int = knob(len(ACTIONS), "actions the policy head scores", low=1, high=64,
                          fixed="the agent's four actions")
    rms_norm_eps: float = knob(1e-5, "RMSNorm epsilon", low=1e-12, high=0.5)
    slots_per_position: int = knob(2, "feature slots summed into one position (divides "
                                      "seq_len)", low=1, high=64)
    ordinal_embeddings: bool = knob(True, "count and age slots get an ordinal embedding")
    feature_version: int = knob(FEATURE_VERSION, "feature encoding the model was trained on",
                                low=1, fixed=_ENCODER)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.d_model % self.n_heads:
            raise ConfigError(f"{self.TABLE}.d_model: must be a multiple of n_heads "
                              f"({self.n_heads}), got {self.d_model}")
        if self.seq_len % self.slots_per_position:
            raise ConfigError(f"{self.TABLE}.slots_per_position: must divide seq_len "
                              f"({self.seq_len}), got {self.slots_per_position}")

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> HRMConfig:
        """Rebuild from ``to_dict`` output; ``ConfigError`` (a ``ValueError``) on unknown or
        bad keys."""
        return build(cls, data, "model config")

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
