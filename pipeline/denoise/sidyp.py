"""SiDyP: simplex label diffusion with a dynamic prior (KDD 2025, arXiv 2505.19675), CPU-sized.

Differs from the reference code on purpose (see SIDYP.md): no gold label of any split is read; the
refiner is conditioned on the item's sentence embedding as well as the noisy label and the training
dynamics W; it is a small MLP (hidden width a few hundred) that trains on a CPU in seconds; the
timestep is a continuous u in [0, 1] in training and inference alike; reverse sampling draws fresh
noise and samples the clean-label estimate at every step, so the S samples differ; kNN priors come
from the neighbors stage, which never lets an item be its own neighbour; the loss is a mean.

Pure math here: arrays in, arrays out. N items, K classes, D embedding dims, E dynamics epochs.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ..encoders import torch_threads
from ..neighbors.dynamics import training_dynamics
from .base import DenoiseInputs, Refined


def alpha_bar(u: torch.Tensor) -> torch.Tensor:
    """Cosine ("squaredcos_improved_ddpm") schedule on continuous time u in [0, 1]: 1 at u=0, ~0 at u=1."""
    s = 1e-4
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return (f / math.cos(s / (1 + s) * math.pi / 2) ** 2).clamp(1e-6, 1.0)


def to_simplex(labels: torch.Tensor, n_classes: int, k: float) -> torch.Tensor:
    """(B,) class indices -> (B, K) simplex vertices: +k at the class, -k elsewhere."""
    return k * (2 * nn.functional.one_hot(labels, n_classes).float() - 1)


class Refiner(nn.Module):
    """p(y | x_u, u, noisy label, sentence embedding, dynamics W) as K logits.

    A time-modulated MLP: the condition (embedding, W, noisy label) and the noisy simplex x_u are
    projected to `hidden` units, gated by a learned function of the time u, then two residual SiLU
    layers. About (D + E*K + 2K) * hidden + 2 * hidden^2 parameters.
    """

    def __init__(self, n_classes: int, embed_dim: int, dyn_dim: int, hidden: int = 256, dropout: float = 0.1,
                 time_dim: int = 32):
        super().__init__()
        self.n_classes, self.time_dim = n_classes, time_dim
        self.cond = nn.Sequential(nn.Linear(embed_dim + dyn_dim + n_classes, hidden), nn.LayerNorm(hidden))
        self.inp = nn.Linear(n_classes, hidden)
        self.time = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.blocks = nn.ModuleList([nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(),
                                                   nn.Dropout(dropout)) for _ in range(2)])
        self.out = nn.Linear(hidden, n_classes)

    def time_features(self, u: torch.Tensor) -> torch.Tensor:
        freqs = torch.exp(torch.arange(self.time_dim // 2, dtype=torch.float32) * (-math.log(1000.0) / self.time_dim))
        angles = u[:, None] * 1000.0 * freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    def forward(self, x_u: torch.Tensor, u: torch.Tensor, cond: torch.Tensor | None = None,
                cond_h: torch.Tensor | None = None) -> torch.Tensor:
        """x_u (B, K), u (B,) or (1,) (one time for all rows), cond (B, C) or its projection
        cond_h = self.cond(cond) (B, hidden), which reverse sampling computes once for all its steps."""
        scale, shift = self.time(self.time_features(u)).chunk(2, dim=1)
        if cond_h is None:
            cond_h = self.cond(cond)
        h = nn.functional.silu((self.inp(x_u) + cond_h) * (1 + scale) + shift)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


@torch.no_grad()
def reverse_sample(model: Refiner, cond: torch.Tensor, n_classes: int, k: float, steps: int,
                   generator: torch.Generator) -> torch.Tensor:
    """One stochastic reverse pass per row of `cond` (B, C): (B,) sampled clean labels.

    From x = k*eps at u=1, at each of `steps` evenly spaced times: sample y ~ softmax(model(x, u)),
    then x <- sqrt(abar(u')) * simplex(y) + sqrt(1 - abar(u')) * k * eps' at the next time u'.
    Same time grid as training (continuous u); fresh noise at every step.
    """
    b = cond.shape[0]
    x = k * torch.randn(b, n_classes, generator=generator)
    grid = torch.linspace(1.0, 0.0, steps + 1)
    label = torch.zeros(b, dtype=torch.long)
    cond_h = model.cond(cond)  # the condition does not change along the pass
    for j in range(steps):
        probs = torch.softmax(model(x, grid[j].reshape(1), cond_h=cond_h), dim=1)
        label = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        if j + 1 < steps:
            a = alpha_bar(grid[j + 1].reshape(1))
            x = a.sqrt() * to_simplex(label, n_classes, k) + (1 - a).sqrt() * k * torch.randn(
                b, n_classes, generator=generator)
    return label


def sample_distribution(model: Refiner, cond: torch.Tensor, n_classes: int, k: float, steps: int, n_samples: int,
                        generator: torch.Generator, batch_size: int = 4096) -> np.ndarray:
    """(B, K) empirical label distribution of `n_samples` independent reverse passes per row."""
    model.eval()
    counts = torch.zeros(cond.shape[0], n_classes)
    for start in range(0, cond.shape[0], batch_size):
        c = cond[start:start + batch_size]
        for _ in range(n_samples):
            y = reverse_sample(model, c, n_classes, k, steps, generator)
            counts[start:start + len(c)] += nn.functional.one_hot(y, n_classes).float()
    return (counts / n_samples).numpy()


def sidyp_denoise(inputs: DenoiseInputs, hidden: int = 256, epochs: int = 20, warmup: float = 0.2,
                  lr: float = 1e-3, batch_size: int = 128, simplex_value: float = 5.0, infer_steps: int = 10,
                  n_samples: int = 4, infer_samples: int = 32, dyn_heads: int = 3, dyn_epochs: int = 10,
                  use_embedding: bool = True, use_dynamics: bool = True, min_steps: int = 300,
                  n_models: int = 3, min_confidence: float = 0.0, threads: int | None = 1) -> Refined:
    """Refine the labels of the train and valid items with the SiDyP refiner.

    Prior: the neighbors stage's candidate sets (`inputs.candidates`, (N, K), certain flags). Training
    (train split): warmup epochs on certain items with their single candidate; then, for uncertain
    items, `n_samples` stochastic reverse passes each boost the weight of a sampled label that is a
    candidate (w_y += (1 - w_y) / S, renormalized; persists across epochs) and the target is drawn
    from the updated weights, with loss weight w_target. Epoch selection: agreement with the
    candidate argmax of the valid items (noisy, never gold).

    Output (N, K): certain items keep their single candidate; an uncertain item gets the mean of
    `infer_samples` reverse passes conditioned on its own noisy label, averaged over `n_models`
    refiners trained with different seeds, and keeps its noisy label where that distribution's top
    probability is below `min_confidence`. Weight 1 where an item has a label or candidates.

    min_steps: epochs are raised until the refiner gets at least this many optimizer steps.
    threads: torch CPU threads while it runs (small matrices: 1 is fastest); restored afterwards.
    """
    if n_models < 1:
        raise ValueError(f"sidyp: n_models must be >= 1, got {n_models}")
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"sidyp: min_confidence must be in [0, 1], got {min_confidence}")
    with torch_threads(threads):
        n_train = int(((inputs.split == "train") & (np.asarray(inputs.candidates).sum(1) > 0)).sum())
        epochs = max(epochs, math.ceil(min_steps / max(1, math.ceil(n_train / batch_size))))
        cond, noisy = _condition(inputs, use_embedding, use_dynamics, dyn_heads, dyn_epochs)
        has_cand = np.asarray(inputs.candidates).sum(1) > 0
        train, valid = inputs.split == "train", inputs.split == "valid"
        labelled = np.flatnonzero((train | valid) & (inputs.covered | has_cand))
        certain = np.asarray(inputs.certain, dtype=bool) & has_cand
        refine = labelled[~certain[labelled]]
        sampled = np.zeros((len(refine), inputs.proba.shape[1]))
        runs = []
        for r in range(n_models):
            dist, info = _sidyp(inputs, cond, refine, inputs.seed * 1000 + r, hidden, epochs, warmup, lr,
                                batch_size, simplex_value, infer_steps, n_samples, infer_samples)
            sampled += dist / n_models
            runs.append(info)
    proba = inputs.proba.copy()
    cands = np.asarray(inputs.candidates, dtype=float)
    sure = labelled[certain[labelled]]
    proba[sure] = cands[sure] / cands[sure].sum(1, keepdims=True)
    if len(refine):
        doubtful = (sampled.max(1) < min_confidence) & (noisy[refine] >= 0)
        sampled[doubtful] = np.eye(proba.shape[1])[noisy[refine][doubtful]]
        proba[refine] = sampled
    weight = inputs.covered.astype(float)
    weight[labelled] = 1.0
    info = {"refined": int(len(refine)), "kept_certain": int(len(sure)),
            "kept_noisy": int(doubtful.sum()) if len(refine) else 0,
            "best_valid_agreement": [i["best_valid_agreement"] for i in runs],
            "history": [i["history"] for i in runs], "refiner_parameters": runs[0]["refiner_parameters"]}
    return Refined(proba, weight, info)


def _condition(inputs: DenoiseInputs, use_embedding: bool, use_dynamics: bool, dyn_heads: int,
               dyn_epochs: int) -> tuple[torch.Tensor, np.ndarray]:
    """(N, C) refiner condition [embedding | dynamics W | one-hot noisy label] and (N,) noisy labels."""
    n, n_classes = inputs.proba.shape
    noisy = np.where(inputs.covered, inputs.proba.argmax(axis=1), -1)
    emb = np.asarray(inputs.embeddings, dtype=np.float32)
    parts = [emb if use_embedding else np.zeros((n, 0), np.float32)]
    if use_dynamics:
        dyn = inputs.dynamics if getattr(inputs, "dynamics", None) is not None else training_dynamics(
            emb, noisy, inputs.split == "train", n_classes, n_heads=dyn_heads, epochs=dyn_epochs, seed=inputs.seed)
        parts.append(dyn.features())
    onehot_noisy = np.zeros((n, n_classes), np.float32)
    onehot_noisy[noisy >= 0, noisy[noisy >= 0]] = 1.0
    parts.append(onehot_noisy)
    return torch.as_tensor(np.concatenate(parts, axis=1)), noisy


def _sidyp(inputs, cond, refine, seed, hidden, epochs, warmup, lr, batch_size, simplex_value, infer_steps,
           n_samples, infer_samples) -> tuple[np.ndarray, dict]:
    """Train one refiner; return the (len(refine), K) sampled distributions of the `refine` items."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n, n_classes = inputs.proba.shape
    k = float(simplex_value)
    train = (inputs.split == "train")
    valid = (inputs.split == "valid")

    weights = torch.as_tensor(np.asarray(inputs.candidates, dtype=np.float32)).clone()  # (N, K) dynamic prior
    has_cand = weights.sum(1) > 0
    certain = torch.as_tensor(np.array(inputs.certain, dtype=bool)) & has_cand
    train_idx = torch.as_tensor(np.flatnonzero(train & has_cand.numpy()))
    valid_idx = torch.as_tensor(np.flatnonzero(valid & has_cand.numpy()))
    valid_target = weights[valid_idx].argmax(1)

    model = Refiner(n_classes, 0, cond.shape[1] - n_classes, hidden=hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    n_warm = max(1, int(round(warmup * epochs)))
    best_acc, best_state = -1.0, None
    history = []
    for epoch in range(epochs):
        warm = epoch < n_warm
        pool = train_idx[certain[train_idx]] if warm else train_idx
        if len(pool) == 0:
            continue
        pool = pool[torch.randperm(len(pool), generator=gen)]
        total = 0.0
        for start in range(0, len(pool), batch_size):
            b = pool[start:start + batch_size]
            c = cond[b]
            if not warm:
                unc = ~certain[b]
                if unc.any():
                    model.eval()
                    ub, uc = b[unc], c[unc]
                    w = weights[ub]
                    for _ in range(n_samples):
                        y_hat = reverse_sample(model, uc, n_classes, k, infer_steps, gen)
                        rows = torch.arange(len(ub))
                        hit = w[rows, y_hat] > 0
                        w[rows[hit], y_hat[hit]] += (1 - w[rows[hit], y_hat[hit]]) / n_samples
                        w = w / w.sum(1, keepdim=True)
                    weights[ub] = w
            model.train()
            target = torch.multinomial(weights[b], 1, generator=gen).squeeze(1)
            omega = weights[b, target]
            u = torch.rand(len(b), generator=gen)
            a = alpha_bar(u)[:, None]
            x_u = a.sqrt() * to_simplex(target, n_classes, k) + (1 - a).sqrt() * k * torch.randn(
                len(b), n_classes, generator=gen)
            loss_i = nn.functional.cross_entropy(model(x_u, u, c), target, reduction="none")
            loss = (omega * loss_i).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss.detach())
        record = {"epoch": epoch + 1, "loss": total}
        if not warm and len(valid_idx):
            pred = sample_distribution(model, cond[valid_idx], n_classes, k, infer_steps, 4, gen).argmax(1)
            record["valid_agreement"] = float((pred == valid_target.numpy()).mean())
            if record["valid_agreement"] > best_acc:
                best_acc, best_state = record["valid_agreement"], copy.deepcopy(model.state_dict())
        history.append(record)
    if best_state is not None:
        model.load_state_dict(best_state)

    dist = np.zeros((0, n_classes))
    if len(refine):
        dist = sample_distribution(model, cond[torch.as_tensor(refine)], n_classes, k, infer_steps, infer_samples, gen)
    info = {"history": history, "best_valid_agreement": best_acc,
            "refiner_parameters": int(sum(p.numel() for p in model.parameters()))}
    return dist, info
