"""Phase 2: train the HRM to imitate the teacher's logged decisions.

``train_imitation`` is a plain function (the worker subprocess calls it; tests call it
directly). Choices, and why:

- **Targets.** Cross-entropy against the teacher's probabilities (the usual distillation
  target: it carries what the teacher preferred even when it sampled something else),
  mixed with a ``hard_target_weight`` share of the teacher's most probable action
  (examples whose probabilities say nothing, all equal, use the logged action). Neither
  part can move which action the model prefers away from the teacher's: the optimum of the
  mixture for a state is ``(1 - w) q + w onehot(argmax q)``, whose argmax is the teacher's.
  The hard share matters for a flat teacher (one that scores the four actions within a
  few hundredths of each other): it makes the teacher's preference
  the bulk of the target instead of a ripple on a uniform one, and a model that learns
  nothing from the state settles on the teacher's most frequent choice (the majority
  baseline), not on an average that can favour an action the teacher rarely prefers.
  There is no class reweighting: weights per class move the optimum of a soft target
  toward rare classes (``docs/DESIGN.md`` has what that did to a flat teacher). Label
  smoothing (0.05) keeps a little probability on every action for Phase 3's exploration.
- **What is reported.** ``val_accuracy`` (the gate's metric) is agreement with the
  teacher's most probable action on a stratified, seeded validation split
  (``val_fraction`` of every logged class). Beside it: ``baseline_accuracy``, what
  always predicting the teacher's most frequent choice scores on the same split (a model
  below it has learnt less than nothing); ``probe_accuracy``, what a linear model on the
  same features reaches (how predictable the teacher's choice is from the state at all:
  near the baseline, the teacher decides by things the state does not show);
  ``teacher_decisiveness``, the mean probability the teacher gave the action it took; and
  ``val_action_accuracy``, agreement with the logged action, which the teacher's own
  sampling caps.
- **Start.** The policy head's bias starts at the log of the mean training target, so the
  untrained model predicts the teacher's most frequent choice; and the best epoch is kept,
  so a run that learns nothing from the states stays near the majority baseline.
- **Optimiser.** ``torch.optim.AdamW`` (betas 0.9/0.95, weight decay 0.01 on matrices
  only), a short linear warm-up, then cosine decay to 10%; gradient clipping at 1.0. The
  evaluated and saved weights are an exponential moving average
  (``torch.optim.swa_utils``, ``ema_decay`` 0.97 per step): the one-step gradient makes
  raw weights swing from epoch to epoch, the average does not.
- **Value head.** Also fitted (Huber loss, weight ``value_coef``) to the teacher's
  discounted return from each logged decision (``value_gamma`` over the next
  ``value_n_step`` consecutive decisions; ``training/returns.py`` says how this differs
  from RL's bootstrapped target), so RL
  starts with a sensible baseline instead of zero.
- **Checkpoints.** ``hrm_epoch_{N}.pt`` every ``checkpoint_every`` epochs (and the last),
  and ``output`` (``hrm_trained.pt`` by default) written once, at the very end, from the
  epoch with the best validation accuracy (the later one on ties): that is the model whose
  accuracy the gate is judged on, and with 1000 examples a later epoch can overfit.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aegis_tui.actions import ACTIONS
from aegis_tui.config import ImitationSettings
from aegis_tui.policy.checkpoints import save_checkpoint
from aegis_tui.policy.features import VOCAB_SIZE, featurize
from aegis_tui.training.example_log import Example
from aegis_tui.training.returns import consecutive_chain, discounted_return

if TYPE_CHECKING:
    import torch

    from aegis_tui.policy.hrm import HRM

TRAINED_NAME = "hrm_trained.pt"


class ImitationError(ValueError):
    """Training cannot run on this input (e.g. too few examples); one-line message."""


@dataclass(frozen=True, slots=True)
class EpochReport:
    epoch: int
    epochs: int
    loss: float
    train_accuracy: float
    val_accuracy: float
    val_action_accuracy: float
    learning_rate: float
    elapsed_s: float


@dataclass(slots=True)
class ImitationResult:
    model: HRM
    examples: int
    train_size: int
    val_size: int
    class_counts: tuple[int, ...]
    epochs_run: int
    best_epoch: int
    val_accuracy: float
    val_action_accuracy: float
    train_accuracy: float
    final_loss: float
    elapsed_s: float
    baseline_accuracy: float = 0.0  # always the teacher's most frequent choice, on val
    probe_accuracy: float = 0.0  # a linear model on the same features, on val
    teacher_decisiveness: float = 0.0  # mean probability of the action the teacher took
    history: list[EpochReport] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    trained_path: Path | None = None
    cancelled: bool = False


@dataclass(slots=True)
class _Data:
    tokens: torch.Tensor
    labels: torch.Tensor
    choice: torch.Tensor  # the teacher's most probable action (the logged one if no info)
    probs: torch.Tensor  # soft targets
    rewards: torch.Tensor


def discounted_returns(examples: Sequence[Example], gamma: float, n_step: int) -> list[float]:
    """Each example's discounted return over itself and the next ``n_step - 1`` examples.

    Only consecutive iterations count (a gap is a restart or the HRM deciding), so a return
    never mixes in decisions that did not follow from this one.
    """
    iterations = [ex.iteration for ex in examples]
    rewards = [ex.reward for ex in examples]
    return [discounted_return(rewards[i:i + consecutive_chain(iterations, i, n_step)], gamma)
            for i in range(len(examples))]


def _tensors(examples: Sequence[Example], gamma: float = 0.0, n_step: int = 1) -> _Data:
    import torch
    import torch.nn.functional as F

    labels = torch.tensor([ex.label for ex in examples], dtype=torch.long)
    probs = torch.tensor([ex.probs for ex in examples], dtype=torch.float32)
    probs = probs / probs.sum(-1, keepdim=True).clamp_min(1e-12)
    flat = (probs.max(-1).values - probs.min(-1).values) < 1e-6
    onehot = F.one_hot(labels, probs.shape[-1]).float()
    probs = torch.where(flat[:, None], onehot, probs)
    return _Data(
        tokens=torch.tensor([featurize(ex.state) for ex in examples], dtype=torch.long),
        labels=labels,
        choice=probs.argmax(-1),
        probs=probs,
        rewards=torch.tensor(discounted_returns(examples, gamma, n_step), dtype=torch.float32),
    )


def stratified_split(labels: Sequence[int], val_fraction: float,
                     seed: int) -> tuple[list[int], list[int]]:
    """Seeded split keeping ``val_fraction`` of each class (one at least, if it has two)."""
    rng = random.Random(f"aegis-split:{seed}")
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    train: list[int] = []
    val: list[int] = []
    for label in sorted(by_class):
        idx = by_class[label]
        rng.shuffle(idx)
        n_val = round(len(idx) * val_fraction)
        n_val = min(max(n_val, 1), len(idx) - 1) if len(idx) >= 2 else 0
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    rng.shuffle(train)
    val.sort()
    return train, val


def majority_accuracy(train_choice: torch.Tensor, val_choice: torch.Tensor) -> float:
    """What always predicting the teacher's most frequent choice (in train) scores on val."""
    import torch

    if val_choice.numel() == 0 or train_choice.numel() == 0:
        return 0.0
    majority = int(torch.bincount(train_choice, minlength=len(ACTIONS)).argmax())
    return float((val_choice == majority).float().mean())


def probe_accuracy(train_tokens: torch.Tensor, train_choice: torch.Tensor,
                   val_tokens: torch.Tensor, val_choice: torch.Tensor, *, seed: int = 0,
                   steps: int = 200) -> float:
    """Val accuracy of a linear model on the same feature ids (a weight per id and action).

    A yardstick for how predictable the teacher's choice is from the state, independent
    of the HRM: a few hundred full-batch steps of softmax regression, well under a second.
    """
    import torch
    import torch.nn.functional as F

    if val_choice.numel() == 0 or train_choice.numel() == 0:
        return 0.0
    generator = torch.Generator().manual_seed(seed)
    weights = (torch.randn(VOCAB_SIZE, len(ACTIONS), generator=generator) * 0.01)
    weights.requires_grad_(True)
    bias = torch.zeros(len(ACTIONS), requires_grad=True)
    optimizer = torch.optim.Adam([weights, bias], lr=0.05)
    for _ in range(steps):
        logits = weights[train_tokens].sum(1) + bias
        loss = F.cross_entropy(logits, train_choice) + 1e-3 * weights.square().sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = (weights[val_tokens].sum(1) + bias).argmax(-1)
    return float((predicted == val_choice).float().mean())


def _lr_at(step: int, total: int, settings: ImitationSettings) -> float:
    base = settings.learning_rate
    warm = min(settings.warmup_steps, max(1, total // 10))
    if step < warm:
        return base * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return base * (settings.min_lr_ratio + (1 - settings.min_lr_ratio) * cosine)


def make_optimizer(model: HRM, learning_rate: float, weight_decay: float,
                   betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not embeddings, head biases)."""
    import torch

    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.dim() >= 2 and "embed" not in name else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # ``fused``: one kernel over all tensors, about twice as fast as the per-tensor loop
    # at this size; every torch build this project supports has it for the CPU.
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=True)


def _accuracy(model: HRM, tokens: torch.Tensor, targets: Sequence[torch.Tensor],
              batch: int = 512) -> list[float]:
    import torch

    if tokens.shape[0] == 0:
        return [0.0 for _ in targets]
    hits = [0] * len(targets)
    with torch.inference_mode():
        for start in range(0, tokens.shape[0], batch):
            pred = model(tokens[start:start + batch])[0].argmax(-1)
            for k, target in enumerate(targets):
                hits[k] += int((pred == target[start:start + batch]).sum())
    return [h / tokens.shape[0] for h in hits]


def train_imitation(
    examples: Sequence[Example],
    settings: ImitationSettings,
    *,
    checkpoint_dir: Path | None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    seed: int = 0,
    output: Path | None = None,
    on_checkpoint: Callable[[Path, int], None] | None = None,
    on_step: Callable[[], None] | None = None,
) -> ImitationResult:
    """Train a fresh HRM on ``examples``; see the module docstring for the choices made.

    With ``checkpoint_dir`` set, writes ``hrm_epoch_{N}.pt`` there and the best model to
    ``output`` (default ``checkpoint_dir / "hrm_trained.pt"``). ``should_stop`` is checked
    between batches; a stopped run returns ``cancelled=True`` and writes no final model.
    ``on_checkpoint(path, epoch)`` follows every epoch checkpoint; ``on_step()`` every
    optimiser step (the worker re-tunes its thread count there). Raises
    ``ImitationError`` for too few examples.
    """
    import torch
    import torch.nn.functional as F
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from aegis_tui.policy.hrm import build_model

    started = time.perf_counter()
    if len(examples) < settings.min_examples:
        raise ImitationError(
            f"need at least {settings.min_examples} examples to train, got {len(examples)}"
        )
    data = _tensors(examples, settings.value_gamma, settings.value_n_step)
    train_idx, val_idx = stratified_split(data.labels.tolist(), settings.val_fraction, seed)
    if not val_idx or not train_idx:
        raise ImitationError("too few examples to hold out a validation set")
    counts = tuple(int((data.labels == a).sum()) for a in range(len(ACTIONS)))
    t_tok = data.tokens[train_idx]
    t_probs, t_rew = data.probs[train_idx], data.rewards[train_idx]
    t_choice = data.choice[train_idx]
    v_tok, v_lab, v_choice = data.tokens[val_idx], data.labels[val_idx], data.choice[val_idx]
    # The target: the teacher's probabilities, with a share on its most probable action.
    hard = settings.hard_target_weight
    onehot = F.one_hot(t_choice, len(ACTIONS)).float()
    t_target = (1 - hard) * t_probs + hard * onehot if settings.soft_targets else onehot
    baseline = majority_accuracy(t_choice, v_choice)
    probe = probe_accuracy(t_tok, t_choice, v_tok, v_choice, seed=seed)
    decisiveness = float(data.probs.gather(1, data.labels[:, None]).mean())

    model = build_model(settings.model, seed=seed)
    # Start from the prior: the policy head's bias at the log of the mean training target,
    # so the untrained model already predicts the teacher's most frequent choice and
    # training moves away from the majority baseline only where the states say so.
    with torch.no_grad():
        model.policy_head.bias.copy_(t_target.mean(0).clamp_min(1e-4).log())
    model.train()
    optimizer = make_optimizer(model, settings.learning_rate, settings.weight_decay)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # With ema_decay > 0 the evaluated and saved model is an exponential moving average
    # of the weights, which smooths the epoch-to-epoch swings of the one-step gradient.
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(settings.ema_decay))
           if settings.ema_decay > 0 else None)
    # AveragedModel types its copy as a plain Module; it is the HRM it was made from.
    evaluated: HRM = ema.module if ema is not None else model  # type: ignore[assignment]
    generator = torch.Generator().manual_seed(seed)
    n_train = len(train_idx)
    steps_per_epoch = math.ceil(n_train / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    step = 0
    best: tuple[tuple[float, float], int, dict[str, torch.Tensor]] | None = None
    history: list[EpochReport] = []
    saved: list[Path] = []
    cancelled = False
    loss_value = float("nan")
    train_acc = 0.0
    meta_base = {"examples": len(examples), "train_size": n_train, "val_size": len(val_idx),
                 "class_counts": list(counts), "seed": seed, "settings": settings.to_dict(),
                 "baseline_accuracy": baseline, "probe_accuracy": probe,
                 "teacher_decisiveness": decisiveness}

    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(n_train, generator=generator)
        loss_sum, hits, seen = 0.0, 0, 0
        for start in range(0, n_train, settings.batch_size):
            if should_stop is not None and should_stop():
                cancelled = True
                break
            idx = order[start:start + settings.batch_size]
            tokens = t_tok[idx]
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total_steps, settings)
            logits, value = model(tokens)
            loss = F.cross_entropy(logits, t_target[idx],
                                   label_smoothing=settings.label_smoothing)
            if settings.value_coef > 0:
                loss = loss + settings.value_coef * F.smooth_l1_loss(value, t_rew[idx])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm, foreach=True)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            if on_step is not None:
                on_step()
            loss_sum += float(loss.detach()) * len(idx)
            hits += int((logits.detach().argmax(-1) == t_choice[idx]).sum())
            seen += len(idx)
        if cancelled:
            break
        loss_value = loss_sum / max(1, seen)
        train_acc = hits / max(1, seen)
        val_acc, val_action = _accuracy(evaluated, v_tok, [v_choice, v_lab])
        report = EpochReport(
            epoch=epoch, epochs=settings.epochs, loss=loss_value, train_accuracy=train_acc,
            val_accuracy=val_acc, val_action_accuracy=val_action,
            learning_rate=optimizer.param_groups[0]["lr"],
            elapsed_s=time.perf_counter() - started,
        )
        history.append(report)
        if best is None or (val_acc, val_action) >= best[0]:
            best = ((val_acc, val_action), epoch, copy.deepcopy(evaluated.state_dict()))
        if checkpoint_dir is not None and (
            epoch % settings.checkpoint_every == 0 or epoch == settings.epochs
        ):
            path = Path(checkpoint_dir) / f"hrm_epoch_{epoch}.pt"
            save_checkpoint(path, evaluated, meta={
                **meta_base, "kind": "epoch", "epoch": epoch, "epochs": settings.epochs,
                "loss": loss_value, "train_accuracy": train_acc, "val_accuracy": val_acc,
                "val_action_accuracy": val_action,
            })
            saved.append(path)
            if on_checkpoint is not None:
                on_checkpoint(path, epoch)
        if on_epoch is not None:
            on_epoch(report)

    model.eval()
    best_epoch = 0
    best_report: EpochReport | None = None
    if best is not None:
        best_epoch = best[1]
        best_report = history[best_epoch - 1]
        model.load_state_dict(best[2])
    trained_path: Path | None = None
    if not cancelled and checkpoint_dir is not None and best_report is not None:
        trained_path = Path(output) if output is not None else Path(checkpoint_dir) / TRAINED_NAME
        save_checkpoint(trained_path, model, meta={
            **meta_base, "kind": "trained", "epoch": best_epoch, "epochs": settings.epochs,
            "loss": best_report.loss, "train_accuracy": best_report.train_accuracy,
            "val_accuracy": best_report.val_accuracy,
            "val_action_accuracy": best_report.val_action_accuracy,
        })
    return ImitationResult(
        model=model,
        examples=len(examples),
        train_size=n_train,
        val_size=len(val_idx),
        class_counts=counts,
        epochs_run=len(history),
        best_epoch=best_epoch,
        val_accuracy=best_report.val_accuracy if best_report else 0.0,
        val_action_accuracy=best_report.val_action_accuracy if best_report else 0.0,
        train_accuracy=best_report.train_accuracy if best_report else 0.0,
        final_loss=loss_value,
        elapsed_s=time.perf_counter() - started,
        baseline_accuracy=baseline,
        probe_accuracy=probe,
        teacher_decisiveness=decisiveness,
        history=history,
        checkpoints=saved,
        trained_path=trained_path,
        cancelled=cancelled,
    )
