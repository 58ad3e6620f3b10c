"""``HRMPolicy``: the trained HRM as a ``Policy`` the agent can decide with.

``decide`` featurizes the snapshot, runs the model once in inference mode, turns the
logits into probabilities and samples the action with a seeded ``random.Random`` (or takes
the argmax with ``sample=False``); ``Decision.value`` is the value head's estimate. An
action that cannot do anything in the state (``features.action_mask``: a proposal with no
fresh idea, a certain duplicate) gets probability zero. Imitation learns from the teacher
unmasked; deciding and RL share the mask (``masked_logits``), so the policy-gradient and KL
terms see the distribution the action was really drawn from.

For RL the policy keeps what the last decision saw: ``last_tokens`` (the feature ids) and
``last_carry`` (the HRM's hidden state before its final, differentiated step). The agent
hands both to ``RLTrainer.record`` so the update neither featurizes again nor re-runs the
no-grad reasoning cycles (see ``aegis_tui/training/rl.py``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

from aegis_tui.actions import ACTIONS, Probs, as_probs
from aegis_tui.policy.base import Decision
from aegis_tui.policy.checkpoints import load_checkpoint
from aegis_tui.policy.features import action_mask, featurize
from aegis_tui.snapshot import StateSnapshot

if TYPE_CHECKING:
    import torch

    from aegis_tui.policy.hrm import HRM, Carry

MASKED_LOGIT = -1e9  # not -inf: 0 * log(0) terms in the entropy and KL stay finite


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``logits`` with the unavailable actions (``mask`` False) pushed to probability zero."""
    return logits.masked_fill(~mask, MASKED_LOGIT)


class HRMPolicy:
    kind = "hrm"
    name = "HRM"

    def __init__(self, model: HRM, *, seed: int = 0, sample: bool = True,
                 explore: float = 0.0) -> None:
        if not 0 <= explore < 1:
            raise ValueError("explore must be in [0, 1)")
        self.model = model
        self.sample = sample
        self.explore = explore  # mass spread over the available actions (Phase 3's floor)
        self._rng = random.Random(f"hrm-policy:{seed}")
        self.last_tokens: list[int] | None = None
        self.last_carry: Carry | None = None
        self.last_probs: tuple[float, float, float, float] | None = None

    @classmethod
    def from_checkpoint(cls, path: Path, *, seed: int = 0, sample: bool = True) -> HRMPolicy:
        """Load a checkpoint (raises ``CheckpointError`` with a one-line reason)."""
        return cls(load_checkpoint(Path(path)).build_model(), seed=seed, sample=sample)

    def _evaluate(self, tokens: list[int]) -> tuple[Probs, float, Carry]:
        import torch

        with torch.inference_mode():
            logits, value, carry = self.model.forward_with_carry(
                torch.tensor([tokens], dtype=torch.long)
            )
            mask = torch.tensor(action_mask(tokens), dtype=torch.bool)
            probs_t = torch.softmax(masked_logits(logits[0], mask).double(), dim=-1)
            if self.explore > 0:
                floor = mask.double() / mask.sum()
                probs_t = (1.0 - self.explore) * probs_t + self.explore * floor
        return as_probs(probs_t.tolist()), float(value[0]), carry

    def probabilities(self, snapshot: StateSnapshot) -> tuple[float, float, float, float]:
        return self._evaluate(featurize(snapshot))[0]

    def decide(self, snapshot: StateSnapshot) -> Decision:
        tokens = featurize(snapshot)
        probs, value, carry = self._evaluate(tokens)
        if self.sample:
            index = self._rng.choices(range(len(ACTIONS)), weights=probs)[0]
        else:
            index = max(range(len(ACTIONS)), key=probs.__getitem__)
        self.last_tokens = tokens
        self.last_carry = carry
        self.last_probs = probs
        return Decision(action=ACTIONS[index], probs=probs,
                        policy="hrm", name=self.name, value=value)

    def close(self) -> None:
        self.last_carry = None
