"""RL fine-tuning: rewards move the policy the right way, KL holds it, credit arrives,
returns look ahead, decisions are reused, and the same inputs give the same updates."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from aegis_tui.actions import Action
from aegis_tui.bench.synthetic_states import synthetic_examples
from aegis_tui.config import Config, RLSettings
from aegis_tui.policy.checkpoints import CheckpointError, load_checkpoint
from aegis_tui.policy.features import featurize
from aegis_tui.policy.hrm import HRMConfig, build_model
from aegis_tui.policy.hrm_policy import HRMPolicy
from aegis_tui.training.returns import gae
from aegis_tui.training.rl import RLTrainer

SMALL = HRMConfig(d_model=32, n_heads=2, expansion=2.0)
TARGET = Action.ASK_HUMAN.class_index


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def states():
    return [ex.state for ex in synthetic_examples(40, seed=8)]


def _trainer(settings: RLSettings, seed: int = 0, bias: list[float] | None = None):
    model = build_model(SMALL, seed=seed)
    if bias is not None:
        with torch.no_grad():
            model.policy_head.bias.copy_(torch.tensor(bias))
    return RLTrainer(model, copy.deepcopy(model), settings, seed=seed)


def _target_prob(model, states) -> float:
    with torch.inference_mode():
        tokens = torch.tensor([featurize(s) for s in states])
        return float(torch.softmax(model(tokens)[0], -1)[:, TARGET].mean())


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_reward_moves_probability_of_the_rewarded_action(states, sign: float) -> None:
    # gamma=0 (a bandit) so the test sees the policy gradient alone, one update per round.
    trainer = _trainer(RLSettings(learning_rate=3e-3, entropy_coef=0.0, kl_coef=0.0,
                                  gamma=0.0, explore=0.0))
    policy = HRMPolicy(trainer.model, seed=1)
    before = _target_prob(trainer.model, states)
    iteration = 0
    for _ in range(15):
        for state in states[:10]:
            decision = policy.decide(state)
            reward = sign if decision.action.class_index == TARGET else 0.0
            trainer.record(iteration, policy.last_tokens, decision.action.class_index, reward,
                           carry=policy.last_carry)
            iteration += 1
        assert trainer.update() is not None
    after = _target_prob(trainer.model, states)
    if sign > 0:
        assert after > before + 0.1
    else:
        assert after < before - 0.05
    assert trainer.updates == 15


def test_kl_term_keeps_policy_near_reference_and_its_scale_lifts_it(states) -> None:
    def run(kl_coef: float, scale: float = 1.0) -> float:
        # A confident reference, flat rewards and a strong entropy bonus pulling away.
        trainer = _trainer(RLSettings(learning_rate=3e-3, entropy_coef=0.5, kl_coef=kl_coef),
                           bias=[3.0, 0.0, 0.0, 0.0])
        trainer.set_kl_scale(scale)
        policy = HRMPolicy(trainer.model, seed=2)
        iteration = 0
        stats = None
        for _ in range(12):
            for state in states[:10]:
                decision = policy.decide(state)
                trainer.record(iteration, policy.last_tokens, decision.action.class_index, 0.0,
                               carry=policy.last_carry)
                iteration += 1
            stats = trainer.update() or stats
        assert stats is not None
        return stats.kl

    free, held = run(0.0), run(5.0)
    assert held < free / 2
    assert run(5.0, scale=0.0) == pytest.approx(free, rel=0.05)


def test_delayed_credit_reaches_the_right_decision(states) -> None:
    trainer = _trainer(RLSettings(update_every=3, gamma=0.0))
    tokens = featurize(states[0])
    trainer.record(5, tokens, TARGET, 0.5, pending=True)
    for i in (6, 7, 8):
        trainer.record(i, featurize(states[i]), 0, 1.0)
    stats = trainer.update()
    assert stats is not None and stats.new == 3  # 5 still waits for its outcome
    assert stats.mean_reward == pytest.approx(1.0)
    assert trainer.update() is None
    assert trainer.credit(5, 10.0)
    assert trainer.update() is None  # credited, but more may come until settled
    trainer.settle(5)
    stats = trainer.update()
    assert stats is not None and stats.new == 1
    assert stats.transitions == 4  # the three trained before come back for another look
    assert stats.mean_reward == pytest.approx(10.5)
    assert not trainer.credit(5, 1.0) and trainer.late_credits == 1  # already trained on


def test_pending_decisions_settle_after_the_horizon(states) -> None:
    trainer = _trainer(RLSettings(horizon=3, gamma=0.0))
    trainer.record(1, featurize(states[1]), 0, 2.0, pending=True)
    trainer.record(3, featurize(states[3]), 0, 0.0, pending=True)
    assert trainer.update() is None and trainer.pending_count() == 2
    trainer.record(4, featurize(states[4]), 0, 0.0, pending=True)
    assert trainer.ready_count() == 1
    stats = trainer.update()
    assert stats is not None and stats.new == 1 and stats.mean_reward == 2.0


def test_record_validates_input(states) -> None:
    trainer = _trainer(RLSettings(gamma=0.0))
    with pytest.raises(ValueError):
        trainer.record(0, [1, 2, 3], 0, 0.0)
    with pytest.raises(ValueError):
        trainer.record(0, featurize(states[0]), 7, 0.0)
    with pytest.raises(ValueError):
        trainer.record(0, featurize(states[0]), 0, float("nan"))
    trainer.record(0, states[0], 0, 0.0)  # a snapshot is featurized for the caller
    assert trainer.ready_count() == 1


def test_carry_path_equals_full_path_and_only_high_level_moves(states) -> None:
    a, b = _trainer(RLSettings(gamma=0.0)), _trainer(RLSettings(gamma=0.0))
    frozen = {n: p.detach().clone() for n, p in a.model.named_parameters()}
    policy = HRMPolicy(a.model, seed=0)
    for i, state in enumerate(states[:10]):
        decision = policy.decide(state)
        a.record(i, policy.last_tokens, decision.action.class_index, float(i % 3),
                 carry=policy.last_carry)
        b.record(i, policy.last_tokens, decision.action.class_index, float(i % 3))
    sa, sb = a.update(), b.update()
    assert sa is not None and sb is not None
    assert sa.loss == pytest.approx(sb.loss, rel=1e-4, abs=1e-6)
    for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-5), name
        moved = not torch.equal(pa, frozen[name])
        assert moved == (not name.startswith(("embed_", "L_level."))), name


def test_state_round_trip(tmp_path: Path, states) -> None:
    settings = RLSettings(learning_rate=1e-3, gamma=0.0)
    trainer = _trainer(settings)
    for i, state in enumerate(states[:10]):
        trainer.record(i, featurize(state), i % 4, float(i))
    trainer.update()
    assert trainer.note_score(1.5) and not trainer.note_score(1.0)
    path = tmp_path / "hrm_rl.pt"
    trainer.save(path, meta={"rolling_reward": 1.5})
    assert load_checkpoint(path).meta["updates"] == 1
    resumed = RLTrainer.resume(path, trainer.reference, settings)
    assert resumed.updates == 1 and resumed.best_score == 1.5
    for pa, pb in zip(trainer.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    # Both continue identically: the optimizer state came back too.
    for t in (trainer, resumed):
        for i, state in enumerate(states[10:20]):
            t.record(100 + i, featurize(state), i % 4, 1.0 - i)
        t.update()
    for pa, pb in zip(trainer.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6)
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        RLTrainer.resume(path, trainer.reference, settings)


def test_returns_look_ahead_and_bootstrap_from_decision_time_values(states) -> None:
    # lambda 1: the n-step return; gamma 0.5, two successors, bootstrapped from V(s_2).
    trainer = _trainer(RLSettings(gamma=0.5, gae_lambda=1.0, n_step=2, update_every=1))
    for i, (reward, value) in enumerate([(1.0, 0.0), (2.0, 4.0), (0.0, 8.0)]):
        trainer.record(i, featurize(states[i]), 0, reward, value=value)
    stats = trainer.update()
    # 1 + 0.5 * 2 + 0.25 * V(s_2) = 1 + 1 + 2.
    assert stats is not None and stats.new == 1
    assert stats.mean_return == pytest.approx(4.0) and stats.mean_reward == 1.0
    assert trainer.update() is None  # 1 and 2 wait for their successors


def test_gae_matches_its_definition() -> None:
    rewards, values = [1.0, 0.0, 2.0], [0.5, 1.0, 1.5]
    gamma, lam, boot = 0.9, 0.8, 3.0
    deltas = [rewards[k] + gamma * ([*values[1:], boot][k]) - values[k] for k in range(3)]
    expected = sum((gamma * lam) ** k * d for k, d in enumerate(deltas))
    assert gae(rewards, values, boot, gamma, lam) == pytest.approx(expected)
    assert gae(rewards, values, boot, gamma, 0.0) == pytest.approx(deltas[0])  # TD(0)


def test_a_gap_in_the_iterations_ends_the_look_ahead(states) -> None:
    trainer = _trainer(RLSettings(gamma=0.5, gae_lambda=1.0, n_step=3, update_every=1))
    trainer.record(0, featurize(states[0]), 0, 1.0, value=0.0)
    trainer.record(1, featurize(states[1]), 0, 2.0, value=6.0)
    # Iterations 2-9: the teacher decided (a fall-back). 10 does not follow from 1.
    trainer.record(10, featurize(states[2]), 0, 100.0, value=50.0)
    stats = trainer.update()
    # 0's chain is 0, 1, then the gap: 1 + 0.5 * V(s_1); 1 has no successor: its own
    # estimate stands in for the state after it, 2 + 0.5 * 6.
    assert stats is not None and stats.new == 2
    returns = sorted(t.ret for t in trainer._replay)
    assert returns == pytest.approx([4.0, 5.0])


def test_a_pending_successor_holds_its_predecessors_back(states) -> None:
    trainer = _trainer(RLSettings(gamma=0.5, gae_lambda=1.0, n_step=2, update_every=1))
    trainer.record(0, featurize(states[0]), 0, 1.0, value=0.0)
    trainer.record(1, featurize(states[1]), 1, 0.0, pending=True, value=0.0)
    trainer.record(2, featurize(states[2]), 0, 0.0, value=0.0)
    trainer.record(3, featurize(states[3]), 0, 0.0, value=2.0)
    assert trainer.ready_count() == 0  # 0 needs 1's outcome; 2 has one successor only
    assert trainer.credit(1, 10.0)
    trainer.settle(1)
    stats = trainer.update()
    # 0: 1 + 0.5 * 10 + 0.25 * 0;  1: 10 + 0.5 * 0 + 0.25 * V(s_3) = 10.5.
    assert stats is not None and stats.new == 2
    assert stats.mean_return == pytest.approx((6.0 + 10.5) / 2)


def test_the_buffer_keeps_only_what_returns_still_need(states) -> None:
    trainer = _trainer(RLSettings(n_step=3, update_every=10, replay=50))
    for i in range(200):
        trainer.record(i, featurize(states[i % len(states)]), i % 4, 1.0, value=0.0)
        if i % 10 == 9:
            trainer.update()
    assert trainer.updates == 20
    # Untrained decisions, plus the n_step trained ones before them; the replay is capped.
    assert len(trainer._transitions) <= 10 + 3
    assert len(trainer._replay) == 50
    assert trainer.dropped == 0


def _run(states, seed: int, steps: int = 6) -> list[torch.Tensor]:
    trainer = _trainer(RLSettings(minibatch=16, replay=40, gamma=0.9), seed=0)
    trainer._rng.seed(f"aegis-rl:{seed}")
    policy = HRMPolicy(trainer.model, seed=5, explore=trainer.settings.explore)
    i = 0
    for _ in range(steps):
        for state in states[:10]:
            decision = policy.decide(state)
            trainer.record(i, policy.last_tokens, decision.action.class_index,
                           float(decision.action.class_index == TARGET), carry=policy.last_carry,
                           value=decision.value,
                           behaviour_prob=decision.probs[decision.action.class_index])
            i += 1
        trainer.update()
    return [p.detach().clone() for p in trainer.model.parameters()]


def test_the_same_inputs_and_seed_give_the_same_updates(states) -> None:
    a, b, other = _run(states, 1), _run(states, 1), _run(states, 2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    # The replay sample depends on the seed (and nothing else).
    assert not all(torch.equal(x, y) for x, y in zip(a, other, strict=True))


def test_a_ratio_far_from_one_is_clipped(states) -> None:
    trainer = _trainer(RLSettings(gamma=0.0, clip=0.2))
    for i, state in enumerate(states[:10]):
        # Pretend the actions were drawn from a very different policy than the model's.
        trainer.record(i, featurize(state), TARGET, 1.0 + i, behaviour_prob=0.99)
    stats = trainer.update()
    assert stats is not None and stats.clip_fraction == 1.0


def test_an_unavailable_action_is_never_sampled_nor_trained_toward(states) -> None:
    # A model that wants to propose, in states where proposing could only repeat an idea.
    trainer = _trainer(RLSettings(gamma=0.0, learning_rate=3e-3), bias=[0.0, 0.0, 9.0, 0.0])
    policy = HRMPolicy(trainer.model, seed=3, explore=0.1)
    stale = [replace(s, fresh_ideas=0) for s in states[:10]]
    for i, state in enumerate(stale * 3):
        decision = policy.decide(state)
        assert decision.action is not Action.PROPOSE_IMPROVEMENT
        assert decision.probs[Action.PROPOSE_IMPROVEMENT.class_index] == 0.0
        trainer.record(i, policy.last_tokens, decision.action.class_index, 1.0,
                       carry=policy.last_carry,
                       behaviour_prob=decision.probs[decision.action.class_index])
    stats = trainer.update()
    assert stats is not None and torch.isfinite(torch.tensor([stats.loss, stats.kl])).all()
    fresh = [replace(s, fresh_ideas=2) for s in states[:10]]
    assert policy.decide(fresh[0]).probs[Action.PROPOSE_IMPROVEMENT.class_index] > 0.5


def test_exploration_keeps_every_available_action_alive(states) -> None:
    model = build_model(SMALL, seed=0)
    with torch.no_grad():
        model.policy_head.bias.copy_(torch.tensor([30.0, 0.0, 0.0, 0.0]))  # all-in on one
    greedy = HRMPolicy(model, seed=0).probabilities(states[0])
    assert min(greedy) < 1e-9
    probs = HRMPolicy(model, seed=0, explore=0.08).probabilities(replace(states[0],
                                                                         fresh_ideas=1))
    assert sum(probs) == pytest.approx(1.0)
    assert all(p >= 0.08 / 4 - 1e-12 for p in probs)
    with pytest.raises(ValueError):
        HRMPolicy(model, explore=1.0)


def test_rl_settings_are_the_config_table_and_check_their_ranges() -> None:
    assert Config().rl == RLSettings()
    for bad in ({"update_every": 0}, {"explore": 1.0}, {"clip": 0.0}, {"gae_lambda": 1.5}):
        with pytest.raises(ValueError):
            RLSettings(**bad)
