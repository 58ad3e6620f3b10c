"""A small Hierarchical Reasoning Model (Wang et al. 2025) that picks AEGIS's next action.

Modelled on sapientinc/HRM ``models/hrm/hrm_act_v1.py`` and ``models/layers.py``.
``forward(tokens[B, 26]) -> (logits[B, 4], value[B])``; the config is ``HRMConfig``.

Kept from the original:

- two recurrent modules, L (fast, low level) and H (slow, high level), each a stack of
  non-causal transformer blocks: bias-free linears, ``F.scaled_dot_product_attention``,
  a SwiGLU MLP, and post-norm RMSNorm without a learned scale;
- input injection by addition: L updates from ``z_L + (z_H + x)``, H from ``z_H + z_L``;
- nested cycles (``H_cycles`` x ``L_cycles``, 2 x 2 by default) with the one-step gradient:
  everything but the last L step and the last H step runs under ``torch.no_grad()``, so
  backward costs one L and one H pass whatever the number of cycles;
- fixed truncated-normal initial states ``H_init``/``L_init`` (persistent buffers), drawn
  with std 0.1 rather than 1 (see ``_INITIAL_STATE_STD``);
- truncated LeCun normal init for linears; token embeddings initialised with std
  1/sqrt(d) and scaled by sqrt(d) on the way in;
- heads that read the first position of ``z_H`` (the ``[POLICY]`` slot), like the
  original's Q head: a policy head (logits over the four actions) and a value head
  (zero-initialised, like the original's Q head, so RL starts from a neutral baseline).

Changed for a 2-core CPU and a 26-slot state, and why:

- one block per level (``H_layers = L_layers = 1``) at d=160: with 2 x 2 cycles that is
  still six block applications per decision; two blocks per level or d=256 roughly
  double the cost of Phase 2 and of an RL update (``docs/DESIGN.md`` has the figures);
- two feature slots per position (``slots_per_position``): their embeddings are summed
  (the way the original adds token and position embeddings), so the transformer sees 13
  positions instead of 26. Attention and MLP cost scale with positions, so this buys a
  wider model (d=160 instead of 128) for the same time. Every slot has its own id range,
  so the sum stays unambiguous;
- no positional encoding at all (neither RoPE nor learned): a token's id already says
  which slot it fills, and a learned position embedding drowned the per-state signal
  (``docs/DESIGN.md``);
- ordered values (counters, rates) are embedded as running sums of per-step vectors
  (``ordinal_embeddings``): neighbouring counts start alike and a threshold such as
  ">= 20 iterations" is learnt once, not once per value;
- the final H update computes position 0 only (``readout_only``): the heads read
  nothing else, and it saves most of that step's cost;
- ``forward_with_carry``/``from_carry`` expose the state before the final step, so RL can
  redo only the differentiated step (see ``training/rl.py``).

Dropped, and why:

- ACT halting and its Q-learning: one decision per agent iteration needs a fixed, small
  amount of compute, and the halting targets need an extra forward pass per step;
- puzzle embeddings: there are no puzzle identities here, one state is one input;
- FlashAttention and bfloat16: not available/portable on a small CPU; fp32 with PyTorch's
  SDPA is what runs everywhere;
- the LM head: the output is one action per state, not a token per position.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from aegis_tui.policy.features import ORDINAL_RANGES, VOCAB_SIZE
from aegis_tui.policy.hrm_config import HRMConfig

# The std of a standard normal truncated to [-2, 2]; dividing by it makes the truncated
# init have the requested std (the JAX/HRM convention).
_TRUNC_STD_RATIO = 0.87962566103423978
# Ordinal embeddings: value j of a counter is first + scale * (step_1 + ... + step_j).
# The scale keeps Adam (which moves every step row by ~lr) from moving high counts j
# times faster than low ones; the init keeps each step at 0.2x an embedding's size.
_ORDINAL_STEP_SCALE = 0.1
_ORDINAL_INIT_STEP = 0.2
# The fixed initial states. The original draws them with std 1 (as large as the input
# embeddings); at this size that let a constant dominate the first cycles, and training
# at lr 2e-3 stalled at the majority action for some seeds and float rounding orders
# (measured: 1 of 3 seeds, and a fused-vs-foreach AdamW swap, flipped 0.97 to 0.73).
# With std 0.1 every seed and both optimizers trained to 0.96-0.97.
_INITIAL_STATE_STD = 0.1


def trunc_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """Fill with a normal truncated at two std, corrected so the result has ``std``."""
    if std == 0:
        return tensor.zero_()
    scale = std / _TRUNC_STD_RATIO
    return nn.init.trunc_normal_(tensor, mean=0.0, std=scale, a=-2 * scale, b=2 * scale)


class Carry(NamedTuple):
    """Hidden states ``[B, P, d]`` saved by ``forward_with_carry``.

    ``z_h``/``z_l``: both levels just before the final (differentiated) step;
    ``z_l_last``: the low level after its final step, i.e. the high level's last input.
    """

    z_h: torch.Tensor
    z_l: torch.Tensor
    z_l_last: torch.Tensor


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

    # Buffers (``register_buffer``), declared so type checkers know they are tensors.
    _is_ordinal: torch.Tensor
    _ordinal_row: torch.Tensor
    H_init: torch.Tensor
    L_init: torch.Tensor

    def __init__(self, config: HRMConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or HRMConfig()
        d = config.d_model
        self.embed_scale = math.sqrt(d)
        self._embed_norm = 1.0 / math.sqrt(config.slots_per_position)
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        trunc_normal_(self.embed_tokens.weight.data, std=1.0 / self.embed_scale)
        self._ordinal_ranges: tuple[tuple[int, int], ...] = ()
        is_ordinal = torch.zeros(config.vocab_size, dtype=torch.bool)
        ordinal_row = torch.zeros(config.vocab_size, dtype=torch.long)
        # Ordinal ranges of equal length are embedded together (one gather, one cumsum).
        self._ordinal_groups: list[torch.Tensor] = []
        if config.ordinal_embeddings and config.vocab_size == VOCAB_SIZE:
            self._ordinal_ranges = tuple(sorted(ORDINAL_RANGES))
            row = 0
            for length in sorted({length for _, length in self._ordinal_ranges}):
                starts = [s for s, n in self._ordinal_ranges if n == length]
                ids = [[s + i for i in range(length)] for s in starts]
                self._ordinal_groups.append(torch.tensor(ids, dtype=torch.long))
                for id_ in (i for group in ids for i in group):
                    is_ordinal[id_] = True
                    ordinal_row[id_] = row
                    row += 1
            with torch.no_grad():
                for start, length in self._ordinal_ranges:
                    # Steps start at 0.2x the size of the first value: a running sum of
                    # full-size steps would grow like sqrt(n) and swamp the other slots.
                    self.embed_tokens.weight[start + 1:start + length] *= (
                        _ORDINAL_INIT_STEP / _ORDINAL_STEP_SCALE)
        self.register_buffer("_is_ordinal", is_ordinal, persistent=False)
        self.register_buffer("_ordinal_row", ordinal_row, persistent=False)
        self.H_level = ReasoningModule(config, config.H_layers)
        self.L_level = ReasoningModule(config, config.L_layers)
        self.register_buffer("H_init", trunc_normal_(torch.empty(d), std=_INITIAL_STATE_STD),
                             persistent=True)
        self.register_buffer("L_init", trunc_normal_(torch.empty(d), std=_INITIAL_STATE_STD),
                             persistent=True)
        self.policy_head = _linear(d, config.n_actions, bias=True)
        self.value_head = _linear(d, 1, bias=True)
        with torch.no_grad():
            self.value_head.weight.zero_()

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _ordinal_rows(self, weight: torch.Tensor) -> torch.Tensor:
        """Embeddings of every ordinal id (rows as ``_ordinal_row`` numbers them):
        the range's first vector plus ``scale`` times the running sum of its steps."""
        parts = []
        for ids in self._ordinal_groups:
            block = weight[ids]  # [ranges, length, d]
            first = block[:, :1]
            steps = block[:, 1:].cumsum(1) * _ORDINAL_STEP_SCALE
            parts.append(torch.cat([first, first + steps], 1).reshape(-1, weight.shape[1]))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def token_table(self) -> torch.Tensor:
        """The effective embedding of every token id (for inspection and tests)."""
        weight = self.embed_tokens.weight
        if not self._ordinal_ranges:
            return weight
        return torch.where(self._is_ordinal[:, None],
                           self._ordinal_rows(weight)[self._ordinal_row], weight)

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        weight = self.embed_tokens.weight
        x = F.embedding(tokens, weight)
        if self._ordinal_ranges:
            # Only the ~400 ordinal rows are summed, not the whole table: this runs on
            # every decision.
            ordinal = F.embedding(self._ordinal_row[tokens], self._ordinal_rows(weight))
            x = torch.where(self._is_ordinal[tokens].unsqueeze(-1), ordinal, x)
        if cfg.slots_per_position > 1:
            x = x.view(x.shape[0], cfg.positions, cfg.slots_per_position, cfg.d_model).sum(2)
        # Dividing by sqrt(number of summed embeddings) keeps the variance of one embedding.
        return (self.embed_scale * self._embed_norm) * x

    def _check(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2 or tokens.shape[1] != self.config.seq_len:
            raise ValueError(f"tokens must have shape [B, {self.config.seq_len}], got "
                             f"{list(tokens.shape)}")

    def _cycles(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
        return z_h, z_l

    def _heads(self, z_h: torch.Tensor, z_l_last: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The final H update (position 0 only) and the heads."""
        readout = self.H_level(z_h, z_l_last, readout_only=True)[:, 0]
        return self.policy_head(readout), self.value_head(readout).squeeze(-1)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(tokens)
        x = self._embed(tokens)
        z_h, z_l = self._cycles(x)
        # The one-step gradient: only the last L and the last H update are differentiated.
        return self._heads(z_h, self.L_level(z_l, z_h + x))

    def forward_with_carry(
        self, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, Carry]:
        """``forward`` that also returns the hidden states, for ``from_carry``."""
        self._check(tokens)
        x = self._embed(tokens)
        z_h, z_l = self._cycles(x)
        z_l_last = self.L_level(z_l, z_h + x)
        logits, value = self._heads(z_h, z_l_last)
        return logits, value, Carry(z_h, z_l, z_l_last)

    def from_carry(
        self, tokens: torch.Tensor, carry: Carry, *, low_level: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Only the differentiated final step(s), from a carry saved by ``forward_with_carry``.

        Like the original's carry between ACT segments, the saved state is a constant.
        With ``low_level=True`` the last L update is recomputed (its parameters and the
        embeddings get gradients); with ``False`` the saved ``z_l_last`` is reused and only
        the final H update and the heads run, for when L and the embeddings are frozen.
        With the parameters the carry was computed with, results equal ``forward``'s.
        """
        self._check(tokens)
        if not low_level:
            return self._heads(carry.z_h, carry.z_l_last)
        x = self._embed(tokens)
        return self._heads(carry.z_h, self.L_level(carry.z_l, carry.z_h + x))


def build_model(config: HRMConfig | None = None, *, seed: int | None = None) -> HRM:
    """A freshly initialised HRM; ``seed`` makes the initialisation reproducible."""
    if seed is None:
        return HRM(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return HRM(config)
