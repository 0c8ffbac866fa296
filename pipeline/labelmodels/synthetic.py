"""Generated dense votes (development and test data for label models): families of correlated LLM-like
labelers, adversarial items, class biases.

Development data for the dense-labeler case (every labeler answers nearly every item), which the WRENCH
and prompted sets, all sparse single-class labeling functions, do not cover; babe and llmbar have no split
to develop on. The ranges below were written down before any label model was compared on them and are
generic, not fitted to any benchmark set.

Model, per data set (`seed`): K in {2, 2, 3, 4}; class prior ~ Dirichlet(5); a share h ~ U(0, 0.5) of
adversarial items, each with a decoy (a wrong class); 2-7 families of 1-16 labelers (a family = one base
model under several prompts). A family has a skill ~ U(0.5, 0.95) on ordinary items, a chance ~ U(0, 1) of
being fooled into the decoy on adversarial items, and one shared answer per item; each member repeats it
with probability rho ~ U(0.5, 0.95), else answers on its own (skill + N(0, 0.1), fooled alike), then with
probability ~ U(0, 0.25) says its favourite class whatever the item (position or class bias), and with
probability ~ U(0, 0.05) gives no parseable answer (-1).

`generate_independent`: the same kind of labeler without families, the case of dense LLM annotators that answer
independently given the item (see benchmarks/HISTORY.md for why it was added): 5-20 labelers, each
its own model (skill ~ U(0.5, 0.95), own answers), a share ~ U(0, 0.3) of adversarial items, a favourite
class said with probability ~ U(0, 0.5), no answer with probability ~ U(0, 0.05).
"""

from __future__ import annotations

import numpy as np


def _wrong(rng, y: np.ndarray, k: int) -> np.ndarray:
    """(N,) a uniformly drawn class other than y."""
    return (y + rng.integers(1, k, len(y))) % k


def generate(seed: int, n_items: int = 1500) -> tuple[np.ndarray, np.ndarray, int]:
    """(votes (N, M) int with -1 = no answer, gold (N,), K) of the generated data set `seed`."""
    votes, gold, k, _ = generate_with_families(seed, n_items)
    return votes, gold, k


def generate_independent(seed: int, n_items: int = 1500) -> tuple[np.ndarray, np.ndarray, int]:
    """(votes (N, M) int with -1 = no answer, gold (N,), K): labelers that err independently given the item
    (apart from adversarial items' shared decoy)."""
    rng = np.random.default_rng([seed, 1])
    k = int(rng.choice([2, 2, 3, 4]))
    y = rng.choice(k, n_items, p=rng.dirichlet(np.full(k, 5.0)))
    adversarial = rng.random(n_items) < rng.uniform(0.0, 0.3)
    decoy = _wrong(rng, y, k)
    columns = []
    for _ in range(int(rng.integers(5, 21))):
        skill, fooled = rng.uniform(0.5, 0.95), rng.uniform()
        v = np.where(rng.random(n_items) < skill, y, _wrong(rng, y, k))
        v = np.where(adversarial & (rng.random(n_items) < fooled), decoy, v)
        v = np.where(rng.random(n_items) < rng.uniform(0, 0.5), int(rng.integers(k)), v)
        columns.append(np.where(rng.random(n_items) < rng.uniform(0, 0.05), -1, v))
    return np.stack(columns, axis=1), y, k


def generate_with_families(seed: int, n_items: int = 1500) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """`generate`, plus (M,) the family index of each labeler."""
    rng = np.random.default_rng(seed)
    k = int(rng.choice([2, 2, 3, 4]))
    y = rng.choice(k, n_items, p=rng.dirichlet(np.full(k, 5.0)))
    adversarial = rng.random(n_items) < rng.uniform(0.0, 0.5)
    decoy = _wrong(rng, y, k)
    columns, families = [], []
    for family in range(int(rng.integers(2, 8))):
        size, skill, fooled, rho = int(rng.integers(1, 17)), rng.uniform(0.5, 0.95), rng.uniform(), rng.uniform(0.5, 0.95)

        def answer(p_right, p_fooled):
            a = np.where(rng.random(n_items) < p_right, y, _wrong(rng, y, k))
            return np.where(adversarial & (rng.random(n_items) < p_fooled), decoy, a)

        shared = answer(skill, fooled)
        for _ in range(size):
            own = answer(np.clip(skill + rng.normal(0, 0.1), 0.3, 0.98), fooled)
            v = np.where(rng.random(n_items) < rho, shared, own)
            favourite, bias = int(rng.integers(k)), rng.uniform(0, 0.25)
            v = np.where(rng.random(n_items) < bias, favourite, v)
            columns.append(np.where(rng.random(n_items) < rng.uniform(0, 0.05), -1, v))
            families.append(family)
    return np.stack(columns, axis=1), y, k, np.array(families)
