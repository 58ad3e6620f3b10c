"""Phase 3: policy-gradient fine-tuning of the HRM from the rewards its decisions earn.

One update, top to bottom (CleanRL's ``ppo.py`` in spirit, one screen in ``update``):

    minibatch     = newly ready decisions + a sample of recent ones (each is reused)
    logits, value = model(state)                      # from the decision's saved carry
    pi            = (1 - explore) softmax(logits) + explore uniform(available actions)
    ratio         = pi(action) / pi_then(action)      # pi_then: what the action was drawn from
    advantage     = normalise(GAE(rewards, values))   # computed once, when it became ready
    loss = -min(ratio A, clip(ratio, 1 +- clip) A)    # PPO's clipped surrogate
         + value_coef * huber(value, return)
         - entropy_coef * entropy
         + kl_coef * kl_scale * KL(softmax || reference)
    clip grad norm, Adam step

- **Returns.** Each decision is credited with everything its own outcome earns, including
  delayed rewards (an answer, an approval, passed to ``credit``), and looks ahead along the
  decisions that followed it: a generalised advantage estimate (``gamma``, ``gae_lambda``)
  over up to ``n_step`` consecutive successors, bootstrapped from the value estimates made
  at decision time. A successor chain stops at a gap in the iterations (the teacher decided
  in between, or a restart). A decision is ready when it and its successors are settled
  (no more reward will come), or when it is ``horizon`` iterations old.
- **Reuse.** Each update trains on the decisions that just became ready plus a random
  sample of the last ``replay`` ready ones (``minibatch`` in all), so every decision is
  used several times while it is recent; the clipped ratio keeps a reused decision from
  pushing the policy further than ``clip`` away from the policy that made it.
- **Exploration that cannot die.** The policy that acts mixes ``explore`` of its mass
  uniformly over the available actions, so an action the HRM stopped taking is still
  tried, and seen rewarded, now and then. The update uses the same mixture, so the ratio
  compares like with like.
- **The reference.** A frozen copy of the imitation model; the KL term keeps early, noisy
  updates from erasing Phase 2. Its weight is ``kl_coef`` times ``kl_scale`` (``set_kl_scale``):
  the agent lowers the scale as the HRM's reward overtakes the teacher's, so a policy that
  has left a weak teacher behind is not pulled back toward it.
- **What moves.** By default the slow module (H) and the heads; the fast module (L) and
  the embeddings keep what imitation learnt (``train_low_level`` turns them on). The update
  then runs only the final H step from the decision's saved ``carry`` (``HRM.from_carry``).
- **Unavailable actions** (a proposal with no fresh idea) are masked in deciding and in the
  update alike (``features.action_mask``).
- **Reproducible.** The minibatch sample comes from a ``random.Random`` seeded with
  ``seed``: the same decisions and rewards give the same updates.
- **Persistence.** ``save``/``RLTrainer.resume`` write and read ``hrm_rl.pt`` (model,
  optimizer state, counters); ``note_score`` tracks the best rolling reward so the agent
  can keep ``hrm_rl_best.pt`` to fall back to.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis_tui.config import RLSettings
from aegis_tui.policy.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from aegis_tui.policy.features import FEATURE_LEN, action_mask, featurize
from aegis_tui.policy.hrm_policy import masked_logits
from aegis_tui.snapshot import StateSnapshot
from aegis_tui.training.returns import gae

ENTROPY_ADAPT_RATE = 0.05  # change of log(entropy weight) per update, at full shortfall
MAX_ENTROPY_BOOST = math.log(30.0)  # the entropy weight rises at most 30-fold

if TYPE_CHECKING:
    import torch

    from aegis_tui.policy.hrm import HRM, Carry


@dataclass(frozen=True, slots=True)
class RLStats:
    update: int  # updates so far, this one included
    transitions: int  # decisions in this update (new and reused)
    new: int  # of which trained on for the first time
    loss: float
    policy_loss: float
    value_loss: float
    mean_reward: float  # the new decisions' own rewards
    mean_return: float  # their returns (the value target)
    entropy: float
    kl: float
    clip_fraction: float  # share of the minibatch whose ratio was clipped
    explained_variance: float  # 1 - Var(return - value) / Var(return) over the minibatch
    mean_value: float  # the value head's estimate, mean over the minibatch
    grad_norm: float


@dataclass(slots=True)
class Transition:
    iteration: int
    tokens: torch.Tensor  # LongTensor[FEATURE_LEN]
    action: int
    reward: float
    pending: bool
    carry: Carry | None
    behaviour_prob: float  # probability of ``action`` under the distribution it came from
    ref_log_probs: torch.Tensor | None = None
    value: float | None = None  # the value head's estimate at decision time (bootstrap)
    mask: torch.Tensor | None = None  # BoolTensor[n_actions]: the actions it could take
    trained: bool = False
    advantage: float = 0.0
    ret: float = 0.0


def exploring(probs: torch.Tensor, mask: torch.Tensor, explore: float) -> torch.Tensor:
    """``probs`` with ``explore`` of the mass spread evenly over the available actions."""
    if explore <= 0:
        return probs
    floor = mask.to(probs.dtype)
    floor = floor / floor.sum(-1, keepdim=True).clamp_min(1.0)
    return (1.0 - explore) * probs + explore * floor


class RLTrainer:
    """Collects decisions and their rewards, and updates ``model`` by policy gradient.

    ``model`` is updated in place (share it with the ``HRMPolicy`` that decides);
    ``reference_model`` is frozen. Not thread-safe: call it from the agent's thread.
    """

    def __init__(self, model: HRM, reference_model: HRM, settings: RLSettings | None = None,
                 *, seed: int = 0) -> None:
        import torch

        self.model = model
        self.reference = reference_model
        self.settings = settings or RLSettings()
        self.seed = seed
        self._rng = random.Random(f"aegis-rl:{seed}")
        self.reference.eval()
        for param in self.reference.parameters():
            param.requires_grad_(False)
        low_level = self.settings.train_low_level
        for name, param in self.model.named_parameters():
            if name.startswith(("embed_", "L_level.")):
                param.requires_grad_(low_level)
        self._trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self._trainable, lr=self.settings.learning_rate,
                                           betas=(0.9, 0.999),
                                           weight_decay=self.settings.weight_decay)
        self._torch = torch
        self._transitions: OrderedDict[int, Transition] = OrderedDict()
        self._replay: deque[Transition] = deque(maxlen=self.settings.replay)
        self.updates = 0
        self.decisions_since_update = 0
        self.latest_iteration = -1
        self.late_credits = 0
        self.dropped = 0
        self.best_score: float | None = None
        self.kl_scale = 1.0
        self._returns_n, self._returns_mean, self._returns_m2 = 0, 0.0, 0.0
        self._log_entropy_coef = math.log(max(self.settings.entropy_coef, 1e-12))

    # --- collecting -------------------------------------------------------------------

    def record(self, iteration: int, state: Sequence[int] | StateSnapshot, action_index: int,
               reward: float, pending: bool = False, *, carry: Carry | None = None,
               value: float | None = None, behaviour_prob: float | None = None) -> None:
        """Add one decision: its state (feature ids or a snapshot), action and reward so far.

        ``pending=True``: more reward may arrive via ``credit``; it is not trained on until
        ``settle`` or until it is ``horizon`` iterations old. ``carry`` is the policy's
        ``last_carry`` (optional; it makes the update cheaper); ``value`` its value estimate;
        ``behaviour_prob`` the probability the action was drawn with (the policy's
        exploring distribution; computed from the current model when not given).
        """
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
        batch = torch.tensor([tokens], dtype=torch.long)
        with torch.inference_mode():
            ref_logits, _ = self.reference(batch)
            ref_log_probs = torch.log_softmax(masked_logits(ref_logits[0], mask), -1).clone()
            if behaviour_prob is None or not 0 < behaviour_prob <= 1:
                logits, _ = self.model(batch)
                probs = exploring(torch.softmax(masked_logits(logits[0], mask), -1), mask,
                                  self.settings.explore)
                behaviour_prob = float(probs[action_index])
        if iteration in self._transitions:
            del self._transitions[iteration]
        self._transitions[iteration] = Transition(
            iteration=iteration, tokens=torch.tensor(tokens, dtype=torch.long),
            action=action_index, reward=float(reward), pending=pending, carry=carry,
            behaviour_prob=max(float(behaviour_prob), 1e-6), ref_log_probs=ref_log_probs,
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

    def set_kl_scale(self, scale: float) -> None:
        """Weight the KL pull to the reference by ``scale`` (0..1) from now on."""
        self.kl_scale = min(1.0, max(0.0, float(scale))) if math.isfinite(scale) else 1.0

    def pending_count(self) -> int:
        return sum(1 for t in self._transitions.values() if t.pending and not t.trained)

    def ready_count(self) -> int:
        return len(self._ready(peek=True)[0])

    def _chain(self, order: list[Transition], k: int) -> list[Transition]:
        """The consecutive decisions after ``order[k]`` (at most ``n_step``)."""
        after: list[Transition] = []
        previous = order[k].iteration
        for t in order[k + 1:k + 1 + self.settings.n_step]:
            if t.iteration != previous + 1:
                break
            after.append(t)
            previous = t.iteration
        return after

    def _ready(self, peek: bool = False) -> tuple[list[Transition], list[list[Transition]]]:
        """The decisions that may be trained on now, and for each its successors.

        A decision is ready when it and its successors are settled and its chain is
        complete (``n_step`` successors, or a gap after them), or when it is ``horizon``
        iterations old (then whatever is known is used).
        """
        cutoff = self.latest_iteration - self.settings.horizon
        n = self.settings.n_step if self.settings.gamma > 0 else 0
        order = list(self._transitions.values())
        ready: list[Transition] = []
        chains: list[list[Transition]] = []
        for k, t in enumerate(order):
            if t.trained:
                continue
            old = t.iteration <= cutoff
            if t.pending and old and not peek:
                t.pending = False
            after = self._chain(order, k)[:n]
            # Complete: n successors, or fewer followed by a gap (no more will come).
            complete = len(after) == n or (k + 1 + len(after) < len(order))
            settled = not t.pending and complete \
                and not any(s.pending and s.iteration > cutoff for s in after)
            if old or settled:
                ready.append(t)
                chains.append(after)
            if len(ready) == self.settings.minibatch:
                break
        return ready, chains

    def _estimate(self, t: Transition, after: list[Transition], fallback: float) -> None:
        """Set ``t``'s advantage and return from its chain of successors."""
        s = self.settings
        own = t.value if t.value is not None else fallback
        if s.gamma == 0:
            t.advantage, t.ret = t.reward - own, t.reward
            return
        chain = [t, *after]
        values = [own if c.value is None else c.value for c in chain]
        if len(chain) > 1:  # the last successor's state is where the look-ahead stops
            rewards, bootstrap = [c.reward for c in chain[:-1]], values[-1]
            values = values[:-1]
        else:  # nothing followed (yet): the decision's own estimate stands in for the next
            rewards, bootstrap = [t.reward], own
        t.advantage = gae(rewards, values, bootstrap, s.gamma, s.gae_lambda)
        t.ret = t.advantage + own

    def _prune(self) -> None:
        """Drop trained decisions no untrained one still needs as a successor."""
        n = self.settings.n_step
        order = list(self._transitions.values())
        first_open = next((k for k, t in enumerate(order) if not t.trained), len(order))
        for t in order[:max(0, first_open - n)]:
            del self._transitions[t.iteration]

    # --- updating ---------------------------------------------------------------------

    def update(self) -> RLStats | None:
        """One clipped policy-gradient step on the newly ready decisions plus reused ones."""
        torch = self._torch
        F = torch.nn.functional
        fresh, chains = self._ready()
        if not fresh:
            return None
        self.decisions_since_update = 0
        s = self.settings
        for t, after in zip(fresh, chains, strict=True):
            self._estimate(t, after, fallback=0.0)
            t.trained = True
        self._prune()
        fresh_ids = {id(t) for t in fresh}
        pool = [t for t in self._replay if id(t) not in fresh_ids]
        extra = self._rng.sample(pool, min(len(pool), max(0, s.minibatch - len(fresh))))
        self._replay.extend(fresh)
        batch = fresh + extra

        tokens = torch.stack([t.tokens for t in batch])
        actions = torch.tensor([t.action for t in batch], dtype=torch.long)
        masks = torch.stack([t.mask for t in batch])
        ref_log_probs = torch.stack([t.ref_log_probs for t in batch])
        behaviour = torch.tensor([t.behaviour_prob for t in batch], dtype=torch.float32)
        if s.explore_ratio == "policy" and s.explore > 0:
            # The policy's own probability then: the exploring share taken back out.
            uniform = s.explore / masks.sum(-1).clamp_min(1).float()
            behaviour = ((behaviour - uniform) / (1 - s.explore)).clamp_min(1e-6)
        advantages = torch.tensor([t.advantage for t in batch], dtype=torch.float32)
        returns = torch.tensor([t.ret for t in batch], dtype=torch.float32)
        if len(batch) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-6)

        self.model.train()
        if all(t.carry is not None for t in batch):
            from aegis_tui.policy.hrm import Carry

            carry = Carry(*(torch.cat(parts) for parts in zip(*(t.carry for t in batch),
                                                               strict=True)))
            logits, value = self.model.from_carry(tokens, carry, low_level=s.train_low_level)
        else:
            logits, value = self.model(tokens)
        log_probs = torch.log_softmax(masked_logits(logits, masks), -1)
        probs = log_probs.exp()
        acting = exploring(probs, masks, s.explore) if s.explore_ratio == "behaviour" else probs
        taken = acting.gather(1, actions[:, None]).squeeze(1).clamp_min(1e-8)
        ratio = taken / behaviour
        surrogate = torch.min(ratio * advantages,
                              ratio.clamp(1 - s.clip, 1 + s.clip) * advantages)
        policy_loss = -surrogate.mean()
        if s.value_loss == "mse":
            scale = self._return_scale(returns.tolist())
            value_loss = F.mse_loss(value / scale, returns / scale)
        else:
            value_loss = F.smooth_l1_loss(value, returns)
        entropy = -(probs * log_probs).sum(-1).mean()
        kl = (probs * (log_probs - ref_log_probs)).sum(-1).mean()
        loss = (policy_loss + s.value_coef * value_loss - self.entropy_coef * entropy
                + s.kl_coef * self.kl_scale * kl)
        self.optimizer.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self._trainable, s.max_grad_norm,
                                                   foreach=True)
        self.optimizer.step()
        self.model.eval()
        self.updates += 1
        self._adapt_entropy_coef(float(entropy.detach()))
        clipped = ((ratio - 1).abs() > s.clip).float().mean()
        spread = float(returns.var()) if len(batch) > 1 else 0.0
        explained = (1.0 - float((returns - value.detach()).var()) / spread) if spread > 0 \
            else 0.0
        return RLStats(
            update=self.updates, transitions=len(batch), new=len(fresh),
            loss=float(loss.detach()), policy_loss=float(policy_loss.detach()),
            value_loss=float(value_loss.detach()),
            mean_reward=sum(t.reward for t in fresh) / len(fresh),
            mean_return=sum(t.ret for t in fresh) / len(fresh),
            entropy=float(entropy.detach()), kl=float(kl.detach()),
            clip_fraction=float(clipped), explained_variance=explained,
            mean_value=float(value.detach().mean()), grad_norm=float(grad_norm),
        )

    @property
    def entropy_coef(self) -> float:
        return math.exp(self._log_entropy_coef)

    def _adapt_entropy_coef(self, entropy: float) -> None:
        """Raise the entropy bonus while the policy is more certain than ``target_entropy``,
        lower it (not below its start) once it is not: a policy that grows sure of one
        action everywhere cannot stop trying the others, which is how a poor start stays
        poor (SAC's automatic temperature, in a simple form)."""
        s = self.settings
        if s.target_entropy <= 0 or s.entropy_coef <= 0:
            return
        step = ENTROPY_ADAPT_RATE * (s.target_entropy - entropy) / s.target_entropy
        low = math.log(s.entropy_coef)
        self._log_entropy_coef = min(low + MAX_ENTROPY_BOOST,
                                     max(low, self._log_entropy_coef + step))

    def _return_scale(self, returns: list[float]) -> float:
        """The running standard deviation of the returns (Welford), at least 1."""
        for g in returns:
            self._returns_n += 1
            delta = g - self._returns_mean
            self._returns_mean += delta / self._returns_n
            self._returns_m2 += delta * (g - self._returns_mean)
        if self._returns_n < 2:
            return 1.0
        return max(1.0, math.sqrt(self._returns_m2 / (self._returns_n - 1)))

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
            "kl_scale": self.kl_scale,
            "entropy_coef": self.entropy_coef,
            "returns": [self._returns_n, self._returns_mean, self._returns_m2],
            "rng": self._rng.getstate(),
            # Decisions to reuse (without their carries: after a restart the update runs
            # the whole model for them, the same gradient at a little more cost).
            "replay": [_plain_transition(t) for t in self._replay],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned; ``ValueError`` when it does not fit."""
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.updates = int(state["updates"])
            self.late_credits = int(state.get("late_credits", 0))
            best = state.get("best_score")
            self.best_score = float(best) if best is not None else None
            self.set_kl_scale(float(state.get("kl_scale", 1.0)))
            coef = float(state.get("entropy_coef", self.settings.entropy_coef))
            if coef > 0 and math.isfinite(coef):
                self._log_entropy_coef = math.log(coef)
            moments = state.get("returns")
            if moments is not None:
                n, mean, m2 = moments
                self._returns_n, self._returns_mean, self._returns_m2 = int(n), float(mean), \
                    float(m2)
            rng = state.get("rng")
            if rng is not None:
                self._rng.setstate(_rng_state(rng))
            self._replay.clear()
            self._replay.extend(_transition(raw, self._torch) for raw in state.get("replay", []))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"RL trainer state does not fit: {exc}") from None

    def save(self, path: Path, *, meta: dict[str, Any] | None = None) -> None:
        """Write model, optimizer state and counters to ``path`` (``hrm_rl.pt``) atomically."""
        state = self.state_dict()
        state["rng"] = _plain_rng_state(state["rng"])
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


def _plain_rng_state(state: Any) -> list[Any]:
    """``random.Random.getstate()`` as plain lists (checkpoints hold no tuples of ints only
    by convention, but ``weights_only`` loading accepts lists and ints)."""
    version, internal, gauss = state
    return [int(version), [int(x) for x in internal], gauss]


def _rng_state(plain: Any) -> tuple[Any, ...]:
    version, internal, gauss = plain
    return (int(version), tuple(int(x) for x in internal), gauss)


def _plain_transition(t: Transition) -> dict[str, Any]:
    return {"iteration": t.iteration, "tokens": t.tokens.tolist(), "action": t.action,
            "reward": t.reward, "behaviour_prob": t.behaviour_prob,
            "ref_log_probs": t.ref_log_probs.tolist() if t.ref_log_probs is not None else None,
            "value": t.value, "mask": t.mask.tolist() if t.mask is not None else None,
            "advantage": t.advantage, "ret": t.ret}


def _transition(raw: dict[str, Any], torch: Any) -> Transition:
    return Transition(
        iteration=int(raw["iteration"]), tokens=torch.tensor(raw["tokens"], dtype=torch.long),
        action=int(raw["action"]), reward=float(raw["reward"]), pending=False, carry=None,
        behaviour_prob=float(raw["behaviour_prob"]),
        ref_log_probs=torch.tensor(raw["ref_log_probs"], dtype=torch.float32),
        value=None if raw["value"] is None else float(raw["value"]),
        mask=torch.tensor(raw["mask"], dtype=torch.bool), trained=True,
        advantage=float(raw["advantage"]), ret=float(raw["ret"]))
