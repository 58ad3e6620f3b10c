"""The HRM: shapes, size, HRM mechanics (one-step gradient, carries), init, config."""

from __future__ import annotations

import math

import pytest
import torch

from aegis_tui.bench.synthetic_states import synthetic_examples
from aegis_tui.policy.features import FEATURE_LEN, VOCAB_SIZE, featurize_batch
from aegis_tui.policy.hrm import HRM, HRMBlock, HRMConfig, build_model, trunc_normal_

SMALL = HRMConfig(d_model=32, n_heads=2, expansion=2.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return featurize_batch([ex.state for ex in synthetic_examples(6, seed=2)])


def test_default_size_is_one_to_five_million() -> None:
    count = HRM().parameter_count()
    assert 1_000_000 <= count <= 5_000_000


def test_forward_shapes(tokens: torch.Tensor) -> None:
    model = build_model(SMALL, seed=0)
    logits, value = model(tokens)
    assert logits.shape == (6, 4) and value.shape == (6,)
    assert torch.isfinite(logits).all() and torch.isfinite(value).all()
    with torch.inference_mode():
        one, _ = model(tokens[:1])
    assert torch.allclose(one, logits[:1].detach(), atol=1e-5)


def test_rejects_wrong_shape() -> None:
    model = build_model(SMALL, seed=0)
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(2, FEATURE_LEN - 1, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(FEATURE_LEN, dtype=torch.long))


def test_seeded_init_is_reproducible(tokens: torch.Tensor) -> None:
    a, b = build_model(SMALL, seed=3), build_model(SMALL, seed=3)
    c = build_model(SMALL, seed=4)
    assert torch.equal(a(tokens)[0], b(tokens)[0])
    assert not torch.equal(a(tokens)[0], c(tokens)[0])


def test_one_step_gradient_only_last_updates_have_grad(tokens: torch.Tensor) -> None:
    model = build_model(SMALL, seed=0)
    calls: dict[str, list[bool]] = {"H": [], "L": []}
    model.H_level.register_forward_hook(lambda *_: calls["H"].append(torch.is_grad_enabled()))
    model.L_level.register_forward_hook(lambda *_: calls["L"].append(torch.is_grad_enabled()))
    logits, value = model(tokens)
    # 2 x 2 cycles: L runs 4 times and H twice; only the last of each is differentiated.
    assert calls["L"] == [False, False, False, True]
    assert calls["H"] == [False, True]
    (logits.sum() + value.sum()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
    assert "H_init" not in dict(model.named_parameters())  # fixed initial states
    assert "H_init" in model.state_dict() and "L_init" in model.state_dict()


def test_carry_paths_match_forward(tokens: torch.Tensor) -> None:
    model = build_model(SMALL, seed=1)
    logits, value = model(tokens)
    with torch.inference_mode():
        l2, v2, carry = model.forward_with_carry(tokens)
    assert torch.allclose(logits, l2, atol=1e-5) and torch.allclose(value, v2, atol=1e-5)
    carry = type(carry)(*(c.clone() for c in carry))
    for low_level in (True, False):
        l3, v3 = model.from_carry(tokens, carry, low_level=low_level)
        assert torch.allclose(logits, l3, atol=1e-5) and torch.allclose(value, v3, atol=1e-5)
    # The same gradient for the high level either way.
    model.zero_grad()
    model(tokens)[0].sum().backward()
    full = [p.grad.clone() for p in model.H_level.parameters()]
    model.zero_grad()
    model.from_carry(tokens, carry, low_level=False)[0].sum().backward()
    for g_full, p in zip(full, model.H_level.parameters(), strict=True):
        assert torch.allclose(g_full, p.grad, atol=1e-5)


def test_readout_only_block_matches_full_block() -> None:
    torch.manual_seed(0)
    block = HRMBlock(SMALL)
    x = torch.randn(3, 12, SMALL.d_model)
    assert torch.allclose(block(x)[:, :1], block(x, readout_only=True), atol=1e-5)


def test_post_norm_output_has_unit_rms() -> None:
    torch.manual_seed(0)
    out = HRMBlock(SMALL)(torch.randn(2, 12, SMALL.d_model) * 7)
    rms = out.square().mean(-1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-3)


def test_truncated_lecun_init() -> None:
    model = build_model(HRMConfig(), seed=0)
    w = model.L_level.layers[0].mlp.gate_up_proj.weight.detach()
    std = 1 / math.sqrt(w.shape[1])
    assert abs(float(w.detach().std()) - std) < 0.05 * std
    assert float(w.abs().max()) <= 2 * std / 0.8796256610342398 + 1e-6
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module not in (model.policy_head,
                                                                  model.value_head):
            assert module.bias is None
    assert float(model.value_head.weight.detach().abs().sum()) == 0.0  # a neutral baseline at first
    t = trunc_normal_(torch.empty(10_000), std=0.5)
    assert abs(float(t.std()) - 0.5) < 0.02


def test_embeddings_follow_fused_optimizer_steps(tokens: torch.Tensor) -> None:
    # Fused AdamW updates weights without bumping their version counters: nothing derived
    # from the embeddings may be cached across steps (evaluation once used a stale table).
    model = build_model(HRMConfig(d_model=32, n_heads=2), seed=0)
    opt = torch.optim.AdamW([model.embed_tokens.weight], lr=0.1, fused=True)
    with torch.inference_mode():
        before = model(tokens)[0].clone()
    model(tokens)[0].sum().backward()
    opt.step()
    with torch.inference_mode():
        assert not torch.allclose(before, model(tokens)[0])
        table = model.token_table()
    assert torch.allclose(model._embed(tokens),
                          model._embed_norm * model.embed_scale
                          * table[tokens].view(6, 13, 2, 32).sum(2), atol=1e-5)


def test_ordinal_embeddings_are_running_sums() -> None:
    from aegis_tui.policy.features import ORDINAL_RANGES

    model = build_model(HRMConfig(d_model=16, n_heads=2), seed=0)
    table = model.token_table().detach()
    start, length = ORDINAL_RANGES[0]
    w = model.embed_tokens.weight.detach()
    assert torch.allclose(table[start], w[start])
    steps = table[start + 1:start + length] - table[start:start + length - 1]
    assert torch.allclose(steps, 0.1 * w[start + 1:start + length], atol=1e-5)
    plain = build_model(HRMConfig(d_model=16, n_heads=2, ordinal_embeddings=False), seed=0)
    assert plain.token_table() is plain.embed_tokens.weight


def test_config_round_trip_and_validation() -> None:
    cfg = HRMConfig(d_model=64, n_heads=4)
    assert HRMConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        HRMConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError):
        HRMConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError):
        HRMConfig(H_cycles=0)
    with pytest.raises(ValueError):
        HRMConfig(seq_len=23)  # not a multiple of slots_per_position
    with pytest.raises(ValueError):
        HRMConfig.from_dict("nope")
    assert HRMConfig().vocab_size == VOCAB_SIZE
