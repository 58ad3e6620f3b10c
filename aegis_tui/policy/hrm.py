"""A small Hierarchical Reasoning Model (Wang et al. 2025) that picks AEGIS's next action.

Modelled on sapientinc/HRM ``models/hrm/hrm_act_v1.py`` and ``models/layers.py``.

Kept from the original:

- two recurrent modules, L (fast, low level) and H (slow, high level), each a stack of
  non-causal transformer blocks: bias-free linears, ``F.scaled_dot_product_attention``,
  a SwiGLU MLP, and post-norm RMSNorm without a learned scale;
- input injection by addition: L updates from ``z_L + (z_H + x)``, H from ``z_H + z_L``;
- nested cycles (``H_cycles`` x ``L_cycles``, 2 x 2 by default) with the one-step gradient:
  everything but the last L step and the last H step runs under ``torch.no_grad()``, so
  backward costs one L and one H pass whatever the number of cycles;
- fixed truncated-normal initial states ``H_init``/``L_init`` (persistent buffers);
- truncated LeCun normal init for linears, embeddings initialised with std 1/sqrt(d) and
  scaled by sqrt(d) on the way in (and by 1/sqrt(2) after adding the position embedding);
- heads that read the first position of ``z_H`` (the ``[POLICY]`` token), like the
  original's Q head: a policy head (logits over the four actions) and a value head
  (zero-initialised, like the original's Q head, so RL starts from a neutral baseline).

Dropped, and why:

- ACT halting and its Q-learning: one decision per agent iteration needs a fixed, small
  amount of compute, and the halting targets need an extra forward pass per step;
- puzzle embeddings: there are no puzzle identities here, one state is one input;
- FlashAttention and bfloat16: a 2-core CPU has neither; fp32 with SDPA is fastest there;
- RoPE: the input is a fixed set of slots rather than a sequence with relative structure
  (slot 5 always holds the same counter), so a learned absolute position embedding (which
  the original also supports, ``pos_encodings="learned"``) is simpler and at least as good;
- the LM head: the output is one action per state, not a token per position.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from aegis_tui.actions import ACTIONS
from aegis_tui.policy.features import FEATURE_LEN, FEATURE_VERSION, ORDINAL_RANGES, VOCAB_SIZE

# The std of a standard normal truncated to [-2, 2]; dividing by it makes the truncated
# init have the requested std (the JAX/HRM convention).
_TRUNC_STD_RATIO = 0.87962566103423978


def trunc_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """Fill with a normal truncated at two std, corrected so the result has ``std``."""
    if std == 0:
        return tensor.zero_()
    scale = std / _TRUNC_STD_RATIO
    return nn.init.trunc_normal_(tensor, mean=0.0, std=scale, a=-2 * scale, b=2 * scale)


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


class Carry(NamedTuple):
    """The hidden states ``[B, T, d]`` of both levels just before the final step."""

    z_h: torch.Tensor
    z_l: torch.Tensor


def _linear(fan_in: int, fan_out: int, *, bias: bool = False) -> nn.Linear:
    layer = nn.Linear(fan_in, fan_out, bias=bias)
    trunc_normal_(layer.weight.data, std=1.0 / math.sqrt(fan_in))  # truncated LeCun normal
    if layer.bias is not None:
        layer.bias.data.zero_()
    return layer


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)


class Attention(nn.Module):
    """Bidirectional multi-head self-attention, no biases."""

    def __init__(self, config: HRMConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.qkv_proj = _linear(config.d_model, 3 * config.d_model)
        self.o_proj = _linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor, readout_only: bool = False) -> torch.Tensor:
        """``readout_only``: attend from position 0 only (keys/values still see every slot)."""
        b, t, d = x.shape
        qkv = self.qkv_proj(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q = qkv[0, :, :, :1] if readout_only else qkv[0]
        out = F.scaled_dot_product_attention(q, qkv[1], qkv[2])
        return self.o_proj(out.transpose(1, 2).reshape(b, q.shape[2], d))


class SwiGLU(nn.Module):
    def __init__(self, config: HRMConfig) -> None:
        super().__init__()
        self.gate_up_proj = _linear(config.d_model, 2 * config.mlp_hidden)
        self.down_proj = _linear(config.mlp_hidden, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class HRMBlock(nn.Module):
    """A post-norm transformer block: x = norm(x + attn(x)); x = norm(x + mlp(x))."""

    def __init__(self, config: HRMConfig) -> None:
        super().__init__()
        self.self_attn = Attention(config)
        self.mlp = SwiGLU(config)
        self.eps = config.rms_norm_eps

    def forward(self, x: torch.Tensor, readout_only: bool = False) -> torch.Tensor:
        residual = x[:, :1] if readout_only else x
        x = rms_norm(residual + self.self_attn(x, readout_only), self.eps)
        return rms_norm(x + self.mlp(x), self.eps)


class ReasoningModule(nn.Module):
    """One level (H or L): add the injected input, then run the block stack."""

    def __init__(self, config: HRMConfig, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(HRMBlock(config) for _ in range(n_layers))

    def forward(self, hidden: torch.Tensor, injection: torch.Tensor,
                readout_only: bool = False) -> torch.Tensor:
        """``readout_only``: the last layer computes position 0 only (all the heads read)."""
        hidden = hidden + injection
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            hidden = layer(hidden, readout_only and i == last)
        return hidden


class HRM(nn.Module):
    """``forward(tokens[B, T]) -> (logits[B, n_actions], value[B])``."""

    def __init__(self, config: HRMConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or HRMConfig()
        d = config.d_model
        self.embed_scale = math.sqrt(d)
        self._embed_norm = 1.0 / math.sqrt(config.slots_per_position + 1)
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        self.embed_pos = nn.Embedding(config.positions, d)
        trunc_normal_(self.embed_tokens.weight.data, std=1.0 / self.embed_scale)
        self._ordinal_ranges: tuple[tuple[int, int], ...] = ()
        self._table: torch.Tensor | None = None
        self._table_key: tuple[int, int] | None = None
        if config.ordinal_embeddings and config.vocab_size == VOCAB_SIZE:
            self._ordinal_ranges = tuple(sorted(ORDINAL_RANGES))
            with torch.no_grad():
                for start, length in self._ordinal_ranges:
                    # Small steps after a full-size first value: a running sum of full-size
                    # steps would grow like sqrt(n) and swamp the other slots.
                    self.embed_tokens.weight[start + 1:start + length] *= 0.2
        trunc_normal_(self.embed_pos.weight.data, std=1.0 / self.embed_scale)
        self.H_level = ReasoningModule(config, config.H_layers)
        self.L_level = ReasoningModule(config, config.L_layers)
        self.register_buffer("H_init", trunc_normal_(torch.empty(d), std=1.0), persistent=True)
        self.register_buffer("L_init", trunc_normal_(torch.empty(d), std=1.0), persistent=True)
        self.policy_head = _linear(d, config.n_actions, bias=True)
        self.value_head = _linear(d, 1, bias=True)
        with torch.no_grad():
            self.value_head.weight.zero_()

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def token_table(self) -> torch.Tensor:
        """The effective token embedding matrix (ordinal ranges as running sums).

        Building it copies the whole table, which costs more than the rest of a B=1
        forward, so when no gradient can flow into it the result is cached until the
        embedding weights change (their in-place version counter moves).
        """
        weight = self.embed_tokens.weight
        if not self._ordinal_ranges:
            return weight
        if torch.is_grad_enabled() and weight.requires_grad:
            return self._build_table(weight)
        key = (weight.data_ptr(), weight._version)
        if self._table_key != key or self._table is None:
            with torch.inference_mode(False), torch.no_grad():
                self._table = self._build_table(weight)
            self._table_key = key
        return self._table

    def _build_table(self, weight: torch.Tensor) -> torch.Tensor:
        parts, pos = [], 0
        for start, length in self._ordinal_ranges:
            parts += [weight[pos:start], weight[start:start + length].cumsum(0)]
            pos = start + length
        parts.append(weight[pos:])
        return torch.cat(parts)

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        x = F.embedding(tokens, self.token_table())
        if cfg.slots_per_position > 1:
            x = x.view(x.shape[0], cfg.positions, cfg.slots_per_position, cfg.d_model).sum(2)
        # Dividing by sqrt(number of summed embeddings) keeps the variance of one embedding
        # (the original's 1/sqrt(2) for token + position).
        return self.embed_scale * self._embed_norm * (x + self.embed_pos.weight)

    def _check(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2 or tokens.shape[1] != self.config.seq_len:
            raise ValueError(f"tokens must have shape [B, {self.config.seq_len}], got "
                             f"{list(tokens.shape)}")

    def _carry(self, x: torch.Tensor) -> Carry:
        """Every H/L update but the last of each, without gradient (the one-step gradient)."""
        cfg = self.config
        z_h = self.H_init.expand(x.shape)
        z_l = self.L_init.expand(x.shape)
        with torch.no_grad():
            for h_step in range(cfg.H_cycles):
                last_h = h_step == cfg.H_cycles - 1
                for l_step in range(cfg.L_cycles):
                    if not (last_h and l_step == cfg.L_cycles - 1):
                        z_l = self.L_level(z_l, z_h + x)
                if not last_h:
                    z_h = self.H_level(z_h, z_l)
        return Carry(z_h, z_l)

    def _final_step(self, x: torch.Tensor, carry: Carry) -> tuple[torch.Tensor, torch.Tensor]:
        """The last L and H updates, differentiated, and the heads on position 0."""
        z_l = self.L_level(carry.z_l, carry.z_h + x)
        readout = self.H_level(carry.z_h, z_l, readout_only=True)[:, 0]
        return self.policy_head(readout), self.value_head(readout).squeeze(-1)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(tokens)
        x = self._embed(tokens)
        return self._final_step(x, self._carry(x))

    def forward_with_carry(
        self, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, Carry]:
        """``forward`` that also returns the state before the final step, for ``from_carry``."""
        self._check(tokens)
        x = self._embed(tokens)
        carry = self._carry(x)
        logits, value = self._final_step(x, carry)
        return logits, value, carry

    def from_carry(
        self, tokens: torch.Tensor, carry: Carry
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Only the differentiated last step, from a carry saved by ``forward_with_carry``.

        Like the original's carry between ACT segments, the saved state is treated as a
        constant; with the parameters it was computed with, the result and the gradient
        equal ``forward``'s exactly.
        """
        self._check(tokens)
        return self._final_step(self._embed(tokens), carry)


def build_model(config: HRMConfig | None = None, *, seed: int | None = None) -> HRM:
    """A freshly initialised HRM; ``seed`` makes the initialisation reproducible."""
    if seed is None:
        return HRM(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return HRM(config)
