"""Phase 3: policy-gradient fine-tuning of the HRM from the rewards its decisions earn.

The update, top to bottom (CleanRL-style, one screen in ``update``):

    logits, value = model(state)                    # current policy and baseline
    advantage     = (return - value) / scale        # (detached) learned baseline, scaled
    loss = -advantage * log pi(action | state)      # REINFORCE
         + value_coef * huber(value, return)        # fit the baseline
         - entropy_coef * entropy(pi)               # keep exploring
         + kl_coef * KL(pi || pi_ref)               # stay near the imitation policy
    clip grad norm, AdamW step (``training/adamw.py``)

- **Returns.** Each decision is credited with the rewards its own outcome earns,
  including delayed ones (an answer or an approval arriving iterations later, passed to
  ``credit``). That alone is a contextual bandit, and it was not enough: what an action
  does to the *next* decisions is invisible to it. On the sim world a proposal earns its
  +1 at once, but it spends the fresh knowledge the next proposal needs for an approval;
  a myopic learner proposed ever more often, ran out of ideas, and (frozen) got stuck
  proposing duplicates. So the target is the n-step return
  ``G_t = r_t + gamma r_{t+1} + ... + gamma^{n-1} r_{t+n-1} + gamma^n V(s_{t+n})``
  (``gamma`` 0.9, ``n_step`` 10), bootstrapped from the value the policy estimated when
  it made decision ``t+n``. ``gamma=0`` gives back the bandit.
- **Pending decisions.** ``record(..., pending=True)`` holds a decision out of updates
  until ``settle`` (no more rewards will come) or until it is ``horizon`` iterations old;
  a decision also waits until its ``n_step`` successors are settled (or old), so their
  delayed rewards are in its return. Trained decisions stay in the buffer while a
  predecessor still needs their reward. A credit that arrives after its decision was
  trained on still counts in its predecessors' returns, and is counted as late.
- **Advantage scale.** Rewards span -2 to +11 (an approval), so raw advantages would let
  the policy-gradient term swamp the entropy and KL terms, and the policy collapsed to one
  action within a few hundred updates. Advantages are divided by a running standard
  deviation of the returns (Welford), so the coefficients mean the same whatever the
  reward table; the value head fits raw returns (Huber). Fitting it to the scaled
  returns with a squared error instead was tried: no better on the development seeds,
  worse on the benchmark's first held-out seeds (1.11x the teacher against 1.22x).
- **Reference policy.** A frozen copy of the imitation model (``hrm_trained.pt``); the KL
  term pulls the policy back toward it so a run of unlucky rewards cannot erase Phase 2.
- **What moves.** By default RL trains the slow, high-level module (H) and the heads; the
  fast module (L) and the embeddings keep what imitation learnt (``train_low_level``
  turns them back on). Fewer parameters move on a noisy reward signal, and the update
  gets cheap: when the agent passes the decision's ``carry`` (``HRMPolicy.last_carry``),
  the L output is a constant and the update runs only the final H step, at position 0,
  from it (``HRM.from_carry``): the same one-step gradient HRM trains with, from the
  hidden state computed at decision time (at most one update old). Without a carry the
  update runs the whole model (measured on the 2-core dev box, ten decisions: ~4 ms
  from carries, ~11 ms without, ~18 ms with L and the embeddings trainable too).
- **Unavailable actions.** Decisions carry the policy's action mask
  (``features.action_mask``); the update and the reference log-probabilities mask the
  same actions, so the gradient is that of the distribution the action was drawn from.
- **Reference log-probabilities** are computed once per decision, in ``record`` (one
  B=1 inference pass of the frozen model), and kept with the transition.
- **Persistence.** ``save``/``RLTrainer.resume`` write and read ``hrm_rl.pt`` (model,
  optimizer state, counters); ``note_score`` tracks the best rolling reward so the agent
  can keep ``hrm_rl_best.pt`` to fall back to.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis_tui.snapshot import StateSnapshot

RETURN_STEPS = 10  # decisions an n-step return looks ahead (imitation's value target too)

if TYPE_CHECKING:
    import torch

    from aegis_tui.config import Config
    from aegis_tui.policy.hrm import HRM, Carry


@dataclass(frozen=True, slots=True)
class RLSettings:
    learning_rate: float = 3e-4
    entropy_coef: float = 0.005
    kl_coef: float = 0.5
    value_coef: float = 0.5
    update_every: int = 10
    max_grad_norm: float = 1.0
    horizon: int = 200
    max_batch: int = 64
    max_transitions: int = 2000
    train_low_level: bool = False
    weight_decay: float = 0.0
    normalize_advantages: bool = True
    gamma: float = 0.9
    n_step: int = RETURN_STEPS

    def __post_init__(self) -> None:
        for name in ("learning_rate", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RL setting {name} must be positive")
        for name in ("entropy_coef", "kl_coef", "value_coef", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"RL setting {name} must not be negative")
        if not 0 <= self.gamma <= 1:
            raise ValueError("RL setting gamma must be between 0 and 1")
        for name in ("update_every", "horizon", "max_batch", "max_transitions", "n_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"RL setting {name} must be at least 1")

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> RLSettings:
        base = cls(
            learning_rate=config.rl_learning_rate,
            entropy_coef=config.rl_entropy_coef,
            kl_coef=config.rl_kl_coef,
            value_coef=config.rl_value_coef,
            update_every=config.rl_update_every,
            gamma=config.rl_gamma,
        )
        return replace(base, **overrides)


@dataclass(frozen=True, slots=True)
class RLStats:
    update: int  # updates so far, this one included
    transitions: int  # decisions in this update
    loss: float
    policy_loss: float
    value_loss: float
    mean_reward: float  # the decisions' own rewards
    mean_return: float  # their n-step returns (the policy-gradient target)
    entropy: float
    kl: float
    grad_norm: float


@dataclass(slots=True)
class Transition:
    iteration: int
    tokens: torch.Tensor  # LongTensor[FEATURE_LEN]
    action: int
    reward: float
    pending: bool
    carry: Carry | None
    ref_log_probs: torch.Tensor | None = None
    value: float | None = None  # the value head's estimate at decision time (bootstrap)
    mask: torch.Tensor | None = None  # BoolTensor[n_actions]: the actions it could take
    trained: bool = False


class RLTrainer:
    """Collects decisions and their rewards, and updates ``model`` by policy gradient.

    ``model`` is updated in place (share it with the ``HRMPolicy`` that decides);
    ``reference_model`` is frozen. Not thread-safe: call it from the agent's thread.
    """

    def __init__(self, model: HRM, reference_model: HRM, settings: RLSettings | None = None,
                 *, seed: int = 0) -> None:
        import torch

        from aegis_tui.training.adamw import AdamW

        self.model = model
        self.reference = reference_model
        self.settings = settings or RLSettings()
        self.seed = seed
        self.reference.eval()
        for param in self.reference.parameters():
            param.requires_grad_(False)
        low_level = self.settings.train_low_level
        for name, param in self.model.named_parameters():
            if name.startswith(("embed_", "L_level.")):
                param.requires_grad_(low_level)
        self._trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = AdamW(self._trainable, lr=self.settings.learning_rate,
                               betas=(0.9, 0.999), weight_decay=self.settings.weight_decay)
        self._torch = torch
        self._transitions: OrderedDict[int, Transition] = OrderedDict()
        self.updates = 0
        self.decisions_since_update = 0
        self.latest_iteration = -1
        self.late_credits = 0
        self.dropped = 0
        self.best_score: float | None = None
        # Running moments of the returns (Welford), for the advantage scale.
        self.return_count = 0
        self.return_mean = 0.0
        self.return_m2 = 0.0

    # --- collecting -------------------------------------------------------------------

    def record(self, iteration: int, state: Sequence[int] | StateSnapshot, action_index: int,
               reward: float, pending: bool = False, *, carry: Carry | None = None,
               value: float | None = None) -> None:
        """Add one decision: its state (feature ids or a snapshot), action and reward so far.

        ``pending=True``: more reward may arrive via ``credit``; it is not trained on until
        ``settle`` or until it is ``horizon`` iterations old. ``carry`` is the policy's
        ``last_carry`` for this decision (optional; it makes the update cheaper); ``value``
        its value estimate, which bootstraps the returns of the decisions before it (optional;
        without it they use their own current estimate instead).
        """
        from aegis_tui.policy.features import FEATURE_LEN, action_mask, featurize
        from aegis_tui.policy.hrm_policy import masked_logits

        torch = self._torch
        tokens = featurize(state) if isinstance(state, StateSnapshot) else list(state)
        if len(tokens) != FEATURE_LEN:
            raise ValueError(f"expected {FEATURE_LEN} feature ids, got {len(tokens)}")
        if not 0 <= action_index < self.model.config.n_actions:
            raise ValueError(f"action index {action_index} out of range")
        if not math.isfinite(reward):
            raise ValueError("reward must be finite")
        mask = torch.tensor(action_mask(tokens), dtype=torch.bool)
        # A decision made without the mask (another policy, a test) keeps its action possible.
        mask[action_index] = True
        with torch.inference_mode():
            ref_logits, _ = self.reference(torch.tensor([tokens], dtype=torch.long))
            ref_log_probs = torch.log_softmax(masked_logits(ref_logits[0], mask), -1).clone()
        if iteration in self._transitions:
            del self._transitions[iteration]
        self._transitions[iteration] = Transition(
            iteration=iteration, tokens=torch.tensor(tokens, dtype=torch.long),
            action=action_index, reward=float(reward),
            pending=pending, carry=carry, ref_log_probs=ref_log_probs,
            value=float(value) if value is not None and math.isfinite(value) else None,
            mask=mask,
        )
        self.latest_iteration = max(self.latest_iteration, iteration)
        self.decisions_since_update += 1
        while len(self._transitions) > self.settings.max_transitions:
            _, oldest = self._transitions.popitem(last=False)
            self.dropped += not oldest.trained

    def credit(self, iteration: int, reward: float) -> bool:
        """Add a delayed reward to the decision made at ``iteration``.

        Returns False (and counts ``late_credits``) when that decision is unknown or was
        already trained on (its reward still counts in the returns of decisions before it).
        """
        transition = self._transitions.get(iteration)
        if transition is None or not math.isfinite(reward):
            self.late_credits += 1
            return False
        transition.reward += float(reward)
        if transition.trained:
            self.late_credits += 1
            return False
        return True

    def settle(self, iteration: int) -> None:
        """No more rewards will come for ``iteration``: it may be trained on."""
        transition = self._transitions.get(iteration)
        if transition is not None:
            transition.pending = False

    def pending_count(self) -> int:
        return sum(1 for t in self._transitions.values() if t.pending and not t.trained)

    def ready_count(self) -> int:
        return len(self._ready(peek=True)[0])

    def _ready(self, peek: bool = False) -> tuple[list[Transition], list[list[Transition]]]:
        """The decisions that may be trained on now, and for each its ``n_step`` successors.

        A decision is ready when it and its successors are settled and all ``n_step``
        successors exist, or when it is ``horizon`` iterations old (then whatever is known
        is used; a decision older than that gets no more rewards).
        """
        cutoff = self.latest_iteration - self.settings.horizon
        n = self.settings.n_step if self.settings.gamma > 0 else 0
        order = list(self._transitions.values())
        ready: list[Transition] = []
        successors: list[list[Transition]] = []
        for k, t in enumerate(order):
            if t.trained:
                continue
            old = t.iteration <= cutoff
            if t.pending and old and not peek:
                t.pending = False
            after = order[k + 1:k + 1 + n]
            settled = not t.pending and len(after) == n \
                and not any(s.pending and s.iteration > cutoff for s in after)
            if old or settled:
                ready.append(t)
                successors.append(after)
            if len(ready) == self.settings.max_batch:
                break
        return ready, successors

    def _returns(self, batch: list[Transition], successors: list[list[Transition]],
                 values_now: list[float]) -> list[float]:
        """n-step returns, bootstrapped from the value estimate of the state n steps on."""
        gamma = self.settings.gamma
        returns = []
        for t, after, fallback in zip(batch, successors, values_now, strict=True):
            total, discount = t.reward, 1.0
            for s in after[:-1] if len(after) == self.settings.n_step else after:
                discount *= gamma
                total += discount * s.reward
            if gamma > 0 and len(after) == self.settings.n_step:
                last = after[-1]
                discount *= gamma
                total += discount * (last.value if last.value is not None else fallback)
            returns.append(total)
        return returns

    def _prune(self) -> None:
        """Drop trained decisions no untrained one still needs as a successor."""
        n = self.settings.n_step
        order = list(self._transitions.values())
        first_open = next((k for k, t in enumerate(order) if not t.trained), len(order))
        for t in order[:max(0, first_open - n)]:
            del self._transitions[t.iteration]

    # --- updating ---------------------------------------------------------------------

    def maybe_update(self) -> RLStats | None:
        """``update()`` once ``update_every`` decisions were recorded since the last one."""
        if self.decisions_since_update < self.settings.update_every:
            return None
        return self.update()

    def update(self) -> RLStats | None:
        """One policy-gradient step on the settled decisions not yet trained on (if any)."""
        from aegis_tui.policy.hrm_policy import masked_logits
        from aegis_tui.training.imitation import clip_grad_norm

        torch = self._torch
        F = torch.nn.functional
        batch, successors = self._ready()
        if not batch:
            return None
        for t in batch:
            t.trained = True
        self.decisions_since_update = 0
        s = self.settings
        tokens = torch.stack([t.tokens for t in batch])
        actions = torch.tensor([t.action for t in batch], dtype=torch.long)
        ref_log_probs = torch.stack([t.ref_log_probs for t in batch])  # type: ignore[misc]

        self.model.train()
        if all(t.carry is not None for t in batch):
            from aegis_tui.policy.hrm import Carry

            carry = Carry(*(torch.cat(parts) for parts in zip(*(t.carry for t in batch),
                                                               strict=True)))
            logits, value = self.model.from_carry(tokens, carry,
                                                  low_level=s.train_low_level)
        else:
            logits, value = self.model(tokens)
        # A successor recorded without a value estimate bootstraps from this
        # decision's own current estimate (the nearest one at hand).
        returns = torch.tensor(self._returns(batch, successors, value.detach().tolist()),
                               dtype=torch.float32)
        self._prune()
        masks = torch.stack([t.mask for t in batch])  # type: ignore[misc]
        log_probs = torch.log_softmax(masked_logits(logits, masks), -1)
        probs = log_probs.exp()
        scale = self._return_scale(returns.tolist()) if s.normalize_advantages else 1.0
        advantage = (returns - value).detach() / scale
        policy_loss = -(advantage * log_probs.gather(1, actions[:, None]).squeeze(1)).mean()
        value_loss = F.smooth_l1_loss(value, returns)
        entropy = -(probs * log_probs).sum(-1).mean()
        kl = (probs * (log_probs - ref_log_probs)).sum(-1).mean()
        loss = (policy_loss + s.value_coef * value_loss - s.entropy_coef * entropy
                + s.kl_coef * kl)
        self.optimizer.zero_grad()
        loss.backward()
        grad_norm = clip_grad_norm(self._trainable, s.max_grad_norm)
        self.optimizer.step()
        self.model.eval()
        self.updates += 1
        return RLStats(
            update=self.updates, transitions=len(batch), loss=float(loss.detach()),
            policy_loss=float(policy_loss.detach()), value_loss=float(value_loss.detach()),
            mean_reward=sum(t.reward for t in batch) / len(batch),
            mean_return=float(returns.mean()), entropy=float(entropy.detach()),
            kl=float(kl.detach()), grad_norm=float(grad_norm),
        )

    def _return_scale(self, returns: list[float]) -> float:
        for g in returns:
            self.return_count += 1
            delta = g - self.return_mean
            self.return_mean += delta / self.return_count
            self.return_m2 += delta * (g - self.return_mean)
        if self.return_count < 2:
            return 1.0
        return max(math.sqrt(self.return_m2 / (self.return_count - 1)), 0.1)

    # --- best tracking and persistence -----------------------------------------------

    def note_score(self, score: float) -> bool:
        """Record a rolling-reward score; True when it is the best so far (save a copy)."""
        if not math.isfinite(score):
            return False
        if self.best_score is None or score > self.best_score:
            self.best_score = score
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        """Optimizer state and counters (the model's weights travel separately)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            "late_credits": self.late_credits,
            "best_score": self.best_score,
            "seed": self.seed,
            "returns": [float(self.return_count), self.return_mean, self.return_m2],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned; ``ValueError`` when it does not fit."""
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.updates = int(state["updates"])
            self.late_credits = int(state.get("late_credits", 0))
            best = state.get("best_score")
            self.best_score = float(best) if best is not None else None
            moments = state.get("returns")
            if moments is not None:
                count, mean, m2 = (float(v) for v in moments)
                self.return_count, self.return_mean, self.return_m2 = int(count), mean, m2
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"RL trainer state does not fit: {exc}") from None

    def save(self, path: Path, *, meta: dict[str, Any] | None = None) -> None:
        """Write model, optimizer state and counters to ``path`` (``hrm_rl.pt``) atomically."""
        from aegis_tui.training.checkpoints import save_checkpoint

        state = self.state_dict()
        save_checkpoint(
            Path(path), self.model,
            meta={"kind": "rl", "updates": self.updates, "best_score": self.best_score,
                  **(meta or {})},
            optimizer_state=state.pop("optimizer"),
            extra={"rl": state},
        )

    @classmethod
    def resume(cls, path: Path, reference_model: HRM, settings: RLSettings | None = None,
               *, seed: int = 0) -> RLTrainer:
        """Rebuild a trainer (and its model) from ``save`` output; raises ``CheckpointError``."""
        from aegis_tui.training.checkpoints import CheckpointError, load_checkpoint

        loaded = load_checkpoint(Path(path))
        model = loaded.build_model()
        trainer = cls(model, reference_model, settings, seed=seed)
        rl_state = loaded.extra.get("rl")
        if loaded.optimizer_state is not None and isinstance(rl_state, dict):
            try:
                trainer.load_state_dict({**rl_state, "optimizer": loaded.optimizer_state})
            except ValueError as exc:
                raise CheckpointError(f"checkpoint {path}: {exc}") from None
        return trainer
