"""Attention multiple-instance learning on frozen cell embeddings (protocols.md section 5).

A bag is one patient's cells. Bags of different sizes are padded into one batch with a
mask, and every attention softmax ignores the padding, so a batch of several bags (GPU)
gives the same logits per bag as one bag at a time (the reference). Training follows the
Hehr / DinoBloom recipe: SGD with Nesterov momentum, cosine annealing per epoch,
class-balanced bag sampling, early stopping on the validation loss, and the weights of
the best validation epoch restored from a copy (not a reference to the live tensors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hemabench.protocols.threads import cpu_threads  # noqa: F401  (re-exported for tasks)


def pad_bags(bags: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N_max, D) zero-padded cells and the (B, N_max) mask of real ones."""
    x = nn.utils.rnn.pad_sequence(bags, batch_first=True)
    lengths = torch.tensor([len(b) for b in bags], device=x.device)
    return x, torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over instances (last axis) of (B, K, N) scores; padded instances get exactly 0."""
    return torch.softmax(scores.masked_fill(~mask[:, None, :], float("-inf")), dim=-1)


class ClasswiseAttentionMIL(nn.Module):
    """Hehr's AMiL multi-column head without its conv feature processor: per class, its
    own attention over the cells, its own pooled vector and its own scorer (one logit)."""

    def __init__(self, dim: int, n_classes: int, attention_hidden: int = 128, scorer_hidden: int = 64):
        super().__init__()
        self.attention = nn.Sequential(nn.Linear(dim, attention_hidden), nn.Tanh(),
                                       nn.Linear(attention_hidden, n_classes))
        self.scorers = ClassScorers(dim, n_classes, scorer_hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, C) and attention (B, C, N): row c is what class c looked at."""
        attention = masked_softmax(self.attention(x).transpose(1, 2), mask)
        return self.scorers(attention @ x), attention


class ClassScorers(nn.Module):
    """C independent ``Linear(D, h) - ReLU - Linear(h, 1)`` scorers, class c scoring pooled
    vector c; their weights are stacked so all classes run in one batched product (a
    per-class module loop costs more in dispatch than in arithmetic for one bag)."""

    def __init__(self, dim: int, n_classes: int, hidden: int):
        super().__init__()
        self.weight1 = nn.Parameter(torch.empty(n_classes, dim, hidden))
        self.bias1 = nn.Parameter(torch.empty(n_classes, hidden))
        self.weight2 = nn.Parameter(torch.empty(n_classes, hidden))
        self.bias2 = nn.Parameter(torch.empty(n_classes))
        for param, fan_in in ((self.weight1, dim), (self.bias1, dim), (self.weight2, hidden), (self.bias2, hidden)):
            nn.init.uniform_(param, -fan_in ** -0.5, fan_in ** -0.5)  # nn.Linear's default initialisation

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, C, D) pooled vectors -> (B, C) logits."""
        hidden = torch.relu(torch.einsum("bcd,cdh->bch", pooled, self.weight1) + self.bias1)
        return (hidden * self.weight2).sum(-1) + self.bias2


class GatedAttentionMIL(nn.Module):
    """Ilse et al.'s gated attention (tanh branch x sigmoid gate), one attention map for
    all classes, then a two-layer classifier as in DinoBloom's ABMIL evaluation."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 128, dropout: float = 0.25,
                 classifier_hidden: int = 64):
        super().__init__()
        self.tanh_branch = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Dropout(dropout))
        self.gate = nn.Sequential(nn.Linear(dim, hidden), nn.Sigmoid(), nn.Dropout(dropout))
        self.score = nn.Linear(hidden, 1)
        self.classifier = nn.Sequential(nn.Linear(dim, classifier_hidden), nn.ReLU(),
                                        nn.Linear(classifier_hidden, n_classes))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, C) and attention (B, 1, N)."""
        attention = masked_softmax(self.score(self.tanh_branch(x) * self.gate(x)).transpose(1, 2), mask)
        return self.classifier((attention @ x)[:, 0]), attention


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = True
    max_epochs: int = 150
    patience: int = 20
    bags_per_step: int = 1  # the reference steps after every bag
    eval_batch: int = 32  # bags per forward pass when only predicting (memory bound, no effect on numbers)


@dataclass
class TrainLog:
    best_epoch: int = 0  # 1-based epoch whose weights were restored
    epochs: int = 0  # epochs trained before stopping
    best_val_loss: float = float("inf")
    val_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        return {"best_epoch": self.best_epoch, "epochs": self.epochs, "best_val_loss": round(self.best_val_loss, 6)}


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Sampling probability per bag so that every class is drawn equally often."""
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    return weights / weights.sum()


@torch.no_grad()
def predict_bags(model: nn.Module, bags: list[torch.Tensor], batch: int = 32) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits (n, C) and, per bag, its unpadded attention (K, n_i), in eval mode."""
    model.eval()
    logits, attention = [], []
    for start in range(0, len(bags), batch):
        chunk = bags[start:start + batch]
        out, att = model(*pad_bags(chunk))
        logits.append(out)
        attention += [a[:, :len(b)] for a, b in zip(att, chunk)]
    return torch.cat(logits), attention


def train_mil(model: nn.Module, bags: list[torch.Tensor], labels: np.ndarray, train: np.ndarray, val: np.ndarray,
              config: TrainConfig, seed: int,
              on_epoch: Callable[[int, nn.Module, float], None] | None = None) -> tuple[nn.Module, TrainLog]:
    """Fit ``model`` on bags ``train``, stop early on the loss over bags ``val``, return it
    with the best validation epoch's weights. ``labels`` are class indices per bag; the
    model's parameters must already be on the bags' device. ``on_epoch(epoch, model,
    val_loss)`` is called after each epoch (tests use it to snapshot weights)."""
    if len(val) == 0:
        raise ValueError("early stopping needs validation bags")
    device = bags[0].device
    target = torch.as_tensor(labels, dtype=torch.long, device=device)
    rng = np.random.default_rng(seed)
    probabilities = balanced_weights(labels[train])
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.max_epochs)
    val_bags, val_target = [bags[i] for i in val], target[torch.as_tensor(val, device=device)]
    log, best_state, stale = TrainLog(), None, 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = rng.choice(train, size=len(train), replace=True, p=probabilities)
        total = torch.zeros((), device=device)  # summed on the device: no sync per step on a GPU
        for start in range(0, len(order), config.bags_per_step):
            step = order[start:start + config.bags_per_step]
            logits, _ = model(*pad_bags([bags[i] for i in step]))
            loss = F.cross_entropy(logits, target[torch.as_tensor(step, device=device)])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(step)
        scheduler.step()
        val_loss = float(F.cross_entropy(predict_bags(model, val_bags, config.eval_batch)[0], val_target))
        log.train_loss.append(float(total) / len(order))
        log.val_loss.append(val_loss)
        log.epochs = epoch
        if on_epoch is not None:
            on_epoch(epoch, model, val_loss)
        if val_loss < log.best_val_loss:
            log.best_val_loss, log.best_epoch, stale = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}  # a copy, not a view
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, log


HEAD_NAMES = ("amil", "abmil")


def make_head(name: str, dim: int, n_classes: int, params: dict) -> nn.Module:
    """A head by name with its sizes from the task's params."""
    if name == "amil":
        return ClasswiseAttentionMIL(dim, n_classes, params["attention_hidden"], params["scorer_hidden"])
    if name == "abmil":
        return GatedAttentionMIL(dim, n_classes, params["abmil_hidden"], params["abmil_dropout"],
                                 params["scorer_hidden"])
    raise KeyError(f"unknown MIL head {name!r}; known: {', '.join(HEAD_NAMES)}")
