"""Phase 3 as one object: the deciding HRM, its RL trainer, and their checkpoints.

``RLSession.open`` builds the policy the agent decides with and the trainer that updates
it in place, from the best source on disk: the best RL checkpoint (a retry after a
fall-back), the last RL checkpoint (a restart), else the imitation result. The frozen
reference for the KL penalty is always ``hrm_trained.pt``. A damaged RL checkpoint is not
fatal: the session starts again from the imitation result and says so.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aegis_tui.config import Config
from aegis_tui.paths import DataPaths
from aegis_tui.policy.base import Decision
from aegis_tui.policy.checkpoints import CheckpointError, load_checkpoint
from aegis_tui.policy.hrm_policy import HRMPolicy
from aegis_tui.policy.torch_threads import limit_agent_threads
from aegis_tui.snapshot import StateSnapshot
from aegis_tui.storage.atomic import atomic_writer
from aegis_tui.training.rl import RLTrainer

if TYPE_CHECKING:
    from aegis_tui.training.rl import RLStats


@dataclass(slots=True)
class RLSession:
    paths: DataPaths
    policy: HRMPolicy
    trainer: RLTrainer
    source: str
    parameters: int
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, paths: DataPaths, config: Config, *, resume: bool,
             best: bool = False) -> RLSession:
        """Raises ``CheckpointError`` (one line) when even ``hrm_trained.pt`` cannot be used."""
        limit_agent_threads()
        reference = load_checkpoint(paths.trained_checkpoint).build_model()
        reference.eval()
        for parameter in reference.parameters():
            parameter.requires_grad_(False)
        settings = config.rl
        warnings: list[str] = []
        trainer: RLTrainer | None = None
        source = paths.trained_checkpoint.name
        candidates = []
        if best:
            candidates.append(paths.best_rl_checkpoint)
        if resume or best:
            candidates.append(paths.rl_checkpoint)
        for path in candidates:
            if not path.exists():
                continue
            try:
                trainer = RLTrainer.resume(path, reference, settings, seed=config.seed)
            except CheckpointError as exc:
                warnings.append(f"{path.name} could not be used ({exc}); starting from "
                                f"{paths.trained_checkpoint.name}")
                continue
            source = path.name
            break
        if trainer is None:
            model = load_checkpoint(paths.trained_checkpoint).build_model()
            trainer = RLTrainer(model, reference, settings, seed=config.seed)
        policy = HRMPolicy(trainer.model, seed=config.seed, sample=True,
                           explore=settings.explore)
        parameters = sum(p.numel() for p in trainer.model.parameters())
        return cls(paths=paths, policy=policy, trainer=trainer, source=source,
                   parameters=parameters, warnings=warnings)

    def record(self, iteration: int, snapshot: StateSnapshot, decision: Decision,
               reward: float, pending: bool) -> None:
        """Add the decision just made by ``policy`` (its features and hidden state reused)."""
        tokens: Any = self.policy.last_tokens if self.policy.last_tokens else snapshot
        self.trainer.record(iteration, tokens, decision.action.class_index, reward, pending,
                            carry=self.policy.last_carry, value=decision.value,
                            behaviour_prob=decision.probs[decision.action.class_index])

    def credit(self, iteration: int, reward: float) -> None:
        """A delayed outcome arrived: add its reward; nothing more will come for it."""
        self.trainer.credit(iteration, reward)
        self.trainer.settle(iteration)

    def update(self) -> RLStats | None:
        return self.trainer.update()

    def save(self, *, rolling_reward: float | None) -> None:
        """Checkpoint ``hrm_rl.pt``; also ``hrm_rl_best.pt`` when the rolling reward is best."""
        best = rolling_reward is not None and self.trainer.note_score(rolling_reward)
        self.trainer.save(self.paths.rl_checkpoint, meta={"rolling_reward": rolling_reward})
        if best:
            with self.paths.rl_checkpoint.open("rb") as src, \
                    atomic_writer(self.paths.best_rl_checkpoint) as dst:
                shutil.copyfileobj(src, dst)
