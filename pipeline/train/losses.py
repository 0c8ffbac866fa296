"""Training losses, robust to label noise.

Every loss is a callable object: `loss(logits, target, weight, index) -> scalar`, where logits are
(B, K), target is the (B, K) label distribution (one-hot for hard labels), weight is (B,) per-item
weights and index is (B,) int64 positions of the items in the training set (used by losses that keep
per-item state, such as ELR; the others ignore it). `loss.per_item(logits, target, index) -> (B,)`
gives the unweighted per-item losses (co-teaching ranks items by them).

- `ce`: cross-entropy on the target's most probable class.
- `soft_ce`: cross-entropy against the target distribution.
- `gce`: generalized cross-entropy, (1 - p^q) / q (Zhang & Sabuncu, NeurIPS 2018), q=0.7.
- `sce`: symmetric cross-entropy, alpha * CE + beta * reverse CE with log 0 clipped to A=-4
  (Wang et al., ICCV 2019), alpha=0.1, beta=1.0.
- `elr`: early-learning regularization, CE + lam * log(1 - <p, t_i>) with t_i a running average of the
  model's predictions for item i (Liu et al., NeurIPS 2020), beta=0.7, lam=3.
- `forward`: forward loss correction (Patrini et al., CVPR 2017): soft CE between the target and the model's
  clean-class probabilities pushed through the noise transition matrix, -sum_j t_j log (p T)_j, with
  T[i, j] = P(noisy label j | true class i) (`transition`, K x K, rows summing to 1; estimated by
  `pipeline.transition` when not given). The model itself keeps predicting the clean classes.
- `coteaching`: a training mode (see `pipeline.train`): two networks, each updated on the items its peer
  finds small-loss under `base` (default soft_ce); `coteaching_select` is the selection rule.

`LOSS_PARAMS` names each loss's own hyper-parameters, `LOSS_GRIDS` the small grids that
`pipeline.loss_search` tries on the valid split (sklearn `ParameterGrid` form; the paper's default first,
so that a tie keeps it):
- gce q in {0.7, 0.4, 0.1}: 0.7 is the paper's setting; smaller q moves toward CE (q -> 0), which a
  linear head on frozen features may need (q = 1, MAE, underfits).
- sce (alpha, beta) in {(0.1, 1), (0.01, 1), (1, 1), (6, 0.1), (10, 1)}: the paper's CIFAR-10, MNIST,
  balanced, CIFAR-100 and Clothing1M settings (A = -4 kept).
- elr beta in {0.7, 0.9} x lam in {3, 1, 7}: the paper's CIFAR-10 (0.7, 3) and CIFAR-100 (0.9, 7)
  settings and the low end (1) of its lam range.
- forward transition in {gold, anchors}: counted on gold valid labels (only when the valid labels are gold),
  or Patrini et al.'s anchor-point estimate.
- coteaching forget_rate in {0.2, 0.1, 0.45}: the paper sets it to the noise rate (its 20% and 45%
  settings) and ramps it up over the first epochs; 0.1 for cleaner labels and minority classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Loss:
    """Base class: weighted mean of `per_item`."""

    def per_item(self, logits: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                 index: torch.Tensor | None = None) -> torch.Tensor:
        return weighted_mean(self.per_item(logits, target, index), weight)


def weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum(values * weight) / sum(weight) for (B,) tensors."""
    return (values * weight).sum() / weight.sum().clamp_min(1e-8)


class SoftCrossEntropy(Loss):
    def per_item(self, logits, target, index=None):
        return -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1)


class HardCrossEntropy(Loss):
    def per_item(self, logits, target, index=None):
        return F.cross_entropy(logits, target.argmax(dim=-1), reduction="none")


class GeneralizedCrossEntropy(Loss):
    """sum_k t_k (1 - p_k^q) / q; q -> 0 is CE, q = 1 is MAE."""

    def __init__(self, q: float = 0.7):
        if not 0 < q <= 1:
            raise ValueError(f"gce: q must be in (0, 1], got {q}")
        self.q = q

    def per_item(self, logits, target, index=None):
        p = torch.softmax(logits, dim=-1).clamp_min(1e-7)
        return (target * (1 - p.pow(self.q)) / self.q).sum(dim=-1)


class SymmetricCrossEntropy(Loss):
    """alpha * CE(t, p) + beta * CE(p, t) with log(0) clipped to `log_clip` (A in the paper)."""

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, log_clip: float = -4.0):
        self.alpha, self.beta, self.log_clip = alpha, beta, log_clip

    def per_item(self, logits, target, index=None):
        logp = F.log_softmax(logits, dim=-1)
        ce = -(target * logp).sum(dim=-1)
        log_t = torch.log(target.clamp_min(1e-12)).clamp_min(self.log_clip)
        rce = -(logp.exp() * log_t).sum(dim=-1)
        return self.alpha * ce + self.beta * rce


class EarlyLearningRegularization(Loss):
    """Soft CE + lam * log(1 - <p_i, t_i>), t_i <- beta t_i + (1 - beta) p_i (renormalized, no gradient).

    Keeps a (n_items, n_classes) state; `index` must give each item's position in the training set.
    """

    def __init__(self, n_items: int, n_classes: int, beta: float = 0.7, lam: float = 3.0):
        self.beta, self.lam = beta, lam
        self.state_ = torch.zeros(n_items, n_classes)

    def per_item(self, logits, target, index=None):
        if index is None:
            raise ValueError("elr needs the items' indices (index=...) to keep its per-item targets")
        p = torch.softmax(logits, dim=-1).clamp(1e-4, 1 - 1e-4)
        with torch.no_grad():
            state = self.state_.to(p.device)
            q = p.detach() / p.detach().sum(dim=-1, keepdim=True)
            state[index] = self.beta * state[index] + (1 - self.beta) * q
            self.state_ = state
        ce = -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1)
        reg = torch.log(1 - (state[index] * p).sum(dim=-1))
        return ce + self.lam * reg


class ForwardCorrection(Loss):
    """Soft CE of the target against p @ T: the noisy-label distribution that the clean prediction p implies."""

    def __init__(self, transition):
        t = torch.as_tensor(transition, dtype=torch.float32)
        if t.ndim != 2 or t.shape[0] != t.shape[1] or (t < 0).any() or not torch.allclose(
                t.sum(dim=1), torch.ones(len(t)), atol=1e-3):
            raise ValueError("forward: transition must be a K x K matrix of non-negative rows summing to 1")
        self.transition = t

    def per_item(self, logits, target, index=None):
        if logits.shape[-1] != len(self.transition):
            raise ValueError(f"forward: transition is {len(self.transition)} x {len(self.transition)}, "
                             f"the model has {logits.shape[-1]} classes")
        noisy = torch.softmax(logits, dim=-1) @ self.transition.to(logits.device)
        return -(target * torch.log(noisy.clamp_min(1e-7))).sum(dim=-1)


LOSSES = {"ce": HardCrossEntropy, "soft_ce": SoftCrossEntropy, "gce": GeneralizedCrossEntropy,
          "sce": SymmetricCrossEntropy, "elr": EarlyLearningRegularization, "forward": ForwardCorrection}
TRAINING_MODES = {"coteaching"}
LOSS_PARAMS = {"ce": (), "soft_ce": (), "gce": ("q",), "sce": ("alpha", "beta", "log_clip"), "elr": ("beta", "lam"),
               "forward": ("transition",),
               "coteaching": ("forget_rate", "ramp_epochs", "base", "transition")}
LOSS_GRIDS: dict[str, dict | list[dict]] = {
    "gce": {"q": [0.7, 0.4, 0.1]},
    "sce": [{"alpha": [0.1], "beta": [1.0]}, {"alpha": [0.01], "beta": [1.0]}, {"alpha": [1.0], "beta": [1.0]},
            {"alpha": [6.0], "beta": [0.1]}, {"alpha": [10.0], "beta": [1.0]}],
    "elr": {"beta": [0.7, 0.9], "lam": [3.0, 1.0, 7.0]},
    "forward": {"transition": ["gold", "anchors"]},
    "coteaching": {"forget_rate": [0.2, 0.1, 0.45]},
}


def make_loss(name: str, n_items: int, n_classes: int, **params) -> Loss:
    """The loss `name` with its parameters; stateful losses get the training-set size."""
    if name not in LOSSES:
        raise ValueError(f"unknown train.loss '{name}'; available: {', '.join(sorted(LOSSES | {'coteaching': 0}))}")
    try:
        if name == "elr":
            return EarlyLearningRegularization(n_items, n_classes, **params)
        return LOSSES[name](**params)
    except TypeError as err:
        raise ValueError(f"train.loss_params for '{name}': {err}") from None


def coteaching_select(loss_a: torch.Tensor, loss_b: torch.Tensor, forget_rate: float
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Co-teaching (Han et al., NeurIPS 2018): indices each network is updated on.

    loss_a, loss_b: (B,) per-item losses of networks A and B. Each keeps the ceil((1 - forget_rate) B)
    items with the smallest loss and hands them to its peer. Returns (indices for A, indices for B).
    """
    n_keep = max(1, int(round((1 - forget_rate) * len(loss_a))))
    keep_a = torch.argsort(loss_a.detach())[:n_keep]
    keep_b = torch.argsort(loss_b.detach())[:n_keep]
    return keep_b, keep_a


# backwards-compatible plain functions
def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return SoftCrossEntropy()(logits, target, weight)


def hard_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return HardCrossEntropy()(logits, target, weight)
