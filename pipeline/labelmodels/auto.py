"""The default label model: unsupervised without gold, cross-validated on the gold seed with it."""

from __future__ import annotations

from functools import partial

import numpy as np

from ..crossfit import cross_fit, fold_parts
from .base import LabelModel, check_gold, check_groups, check_n_classes, encode_votes
from .dependence import MAX_DEPENDENCE, MIN_DENSITY, independence_diagnostics

SCORINGS = ("accuracy", "balanced_accuracy", "log_loss", "balanced_log_loss")
COMBINES = ("bootstrap", "select", "pool")


def cv_item_scores(proba: np.ndarray, y: np.ndarray, scoring: str, n_classes: int) -> np.ndarray:
    """(N,) each item's share of `cv_score` (their mean is the score): its hit or its log probability of the
    true class, weighted for the balanced scorings by N / (C * n_y), C the number of classes present in y."""
    if scoring in ("accuracy", "balanced_accuracy"):
        item = (proba.argmax(axis=1) == y).astype(float)
    else:
        item = np.log(np.clip(proba[np.arange(len(y)), y], 0.01, 1.0))
    if scoring.startswith("balanced"):
        counts = np.bincount(y, minlength=n_classes)
        item = item * len(y) / (np.count_nonzero(counts) * counts[y])
    return item


def cv_score(proba: np.ndarray, y: np.ndarray, scoring: str, n_classes: int) -> float:
    """Score of held-out posteriors (N, K) against labels (N,); higher is better.

    "accuracy"; "balanced_accuracy": the mean recall over the classes present in y (a model that always
    answers the majority class scores 1/K, not the majority share); "log_loss": minus the mean negative log
    probability of the true class, probabilities clipped at 0.01 so that one confident mistake costs at most
    log(100); "balanced_log_loss": the same averaged per class, then over the classes present in y.
    """
    return float(np.mean(cv_item_scores(proba, y, scoring, n_classes)))


def beats_by_se(item_a: np.ndarray, item_b: np.ndarray, n_se: float) -> bool:
    """Whether per-item scores (N,) `item_a` beat `item_b` on the same items by more than `n_se` standard errors
    of their paired mean difference (the one-standard-error rule with n_se = 1)."""
    d = np.asarray(item_a) - np.asarray(item_b)
    if len(d) < 2:
        return bool(d.mean() > 0)
    return bool(d.mean() > n_se * d.std(ddof=1) / np.sqrt(len(d)))


def gold_free_method(votes, n_classes: int, min_density: float = MIN_DENSITY,
                     max_dependence: float = MAX_DEPENDENCE) -> tuple[str, dict]:
    """The label model to trust without gold, and the diagnostics it was chosen by.

    "dawid_skene" when most (item, labeler) cells hold a vote (`vote_density` >= min_density) and the labelers
    look conditionally independent given the class (`vote_dependence` < max_dependence): Dawid-Skene is then
    the maximum-likelihood model of the votes. Otherwise "snorkel_mc", whose pull toward equally good
    labelers holds up when labelers share errors or fire for one class only, and with fewer than 4 labelers,
    where the test cannot tell (any three labelers' pairwise covariances fit rank one). Votes (N, M) or
    (N, M, K).
    """
    diagnostics = independence_diagnostics(votes, n_classes, min_density)
    if diagnostics.get("dependence", np.inf) < max_dependence:
        return "dawid_skene", diagnostics
    return "snorkel_mc", diagnostics


def bootstrap_weights(item_scores: np.ndarray, n_resamples: int = 1000, seed: int = 0,
                      power: float = 1.0) -> np.ndarray:
    """(C,) bootstrap model averaging weights: the share of Bayesian-bootstrap resamples of the items on which
    each candidate has the best mean score, raised to `power` and renormalized (power < 1 flattens them toward
    equal weights for every candidate that wins a resample); item_scores (C, N): candidate c's per-item CV
    score (`cv_item_scores`). A resample weighs the items by Dirichlet(1, ..., 1); ties go to the earlier
    candidate."""
    rng = np.random.default_rng(seed)
    resampled = np.asarray(item_scores) @ rng.dirichlet(np.ones(item_scores.shape[1]), n_resamples).T  # (C, B)
    shares = np.bincount(resampled.argmax(axis=0), minlength=len(item_scores)) / n_resamples
    flattened = shares ** power
    return flattened / flattened.sum()


def pool_weights(probas: list[list[np.ndarray]], y: np.ndarray, scoring: str, n_classes: int) -> np.ndarray:
    """(C,) simplex weights of a linear pool sum_c w_c P_c that maximize the mean `cv_score` of the pooled
    held-out posteriors; probas[c][r] is candidate c's (N, K) held-out posterior in CV repeat r.
    Nelder-Mead on softmax parameters from equal weights (deterministic)."""
    from scipy import optimize

    def weights(theta):
        w = np.exp(theta - theta.max())
        return w / w.sum()

    def neg(theta):
        w = weights(theta)
        return -np.mean([cv_score(sum(wc * p[r] for wc, p in zip(w, probas)), y, scoring, n_classes)
                         for r in range(len(probas[0]))])

    res = optimize.minimize(neg, np.zeros(len(probas)), method="Nelder-Mead", options={"maxiter": 2000})
    return weights(res.x)


def held_out_posteriors(make, votes: np.ndarray, n_classes: int, gold: np.ndarray, splits: list[list[np.ndarray]],
                        class_prior=None) -> list[np.ndarray]:
    """Cross-validated posteriors on the gold items: one (G, K) array per repeat, rows in the order of the gold
    items (gold >= 0). `make()` gives a fresh label model; `splits[r]` are repeat r's folds of gold item indices.
    Each fold's rows come from a model fitted on all votes (N, M) with the other folds' gold."""
    def fit_predict(train: np.ndarray, part: np.ndarray) -> np.ndarray:
        masked = gold.copy()
        masked[part] = -1
        return make().fit(votes, n_classes, gold=masked, class_prior=class_prior).predict_proba(votes[part])

    labeled = np.flatnonzero(gold >= 0)
    return [cross_fit(fit_predict, parts, len(gold))[labeled] for parts in splits]


def make_candidate(name: str, base: str, gold_free: LabelModel | None = None, groups=None,
                   temperature="auto") -> LabelModel:
    """A fresh, unfitted candidate of `AutoLabelModel` whose gold-free base model is `base`: a registered label
    model name, "stacker", "posterior_stacker" (correcting `gold_free`, the base fitted without gold, or a new
    fit of `base`) or "best_labeler". The base model, and Dawid-Skene where it is the base, get `temperature`;
    with "auto" and a fitted `gold_free`, its temperature (found once for all fits of that model). snorkel_mc
    gets the labeler families `groups`."""
    from . import make_label_model
    from .supervised import BestLabeler, PosteriorStacker, VoteStacker

    if name == "stacker":
        return VoteStacker()
    if name == "posterior_stacker":
        return PosteriorStacker(base=base, base_model=gold_free)
    if name == "best_labeler":
        return BestLabeler()
    if temperature == "auto" and name == base and gold_free is not None:
        temperature = gold_free.temperature_
    if name == "snorkel_mc":  # the one model here with labeler families
        return make_label_model(name, groups=groups, temperature=temperature)
    if name == "dawid_skene" and base == "dawid_skene":  # tempered where it is the gold-free choice
        return make_label_model(name, temperature=temperature)
    return make_label_model(name)


class AutoLabelModel(LabelModel):
    """Without gold (or with fewer than `min_gold` gold items): the `base` label model; base="auto" (default)
    chooses it from the votes (`gold_free_method`: Dawid-Skene for dense votes from labelers that look
    conditionally independent, else snorkel_mc; `min_density`, `max_dependence`; snorkel_mc when `groups`
    names a family of several labelers).

    With a gold seed (`gold`, -1 = unknown) of at least `min_gold` items from at least two classes (gold of
    one class is still used by the base model, as with fewer items), every candidate gets held-out
    posteriors on the gold items by `repeats` times repeated `folds`-fold cross-validation (fitted on all
    votes with the other folds' gold), and `cv_item_scores` gives each candidate's per-item `scoring`.
    `combine="bootstrap"` (default): bootstrap model averaging; each candidate's weight is the share of
    Bayesian-bootstrap resamples of the gold items on which it has the best mean score, raised to
    `share_power` and renormalized (`bootstrap_weights`), and the candidates with weight >= 0.001 are
    refitted with all the gold and their posteriors mixed: 50 gold items rarely tell the candidates apart,
    and mixing the close ones is steadier than betting on one.
    `combine="select"`: the candidate with the best mean score (ties: the earlier one) is refitted with all
    the gold, if it beats the base model by more than `min_gain_se` standard errors of the paired per-item
    score difference (`beats_by_se`); else the base model is kept (the one-standard-error rule).
    `combine="pool"`: the weights of a linear pool of the candidates' posteriors are fitted to those held-out
    posteriors by `scoring` (`pool_weights`), and the candidates with weight >= 0.001 are refitted and mixed.
    Candidates: registered label model names, "stacker" (`VoteStacker`: logistic regression on the one-hot
    votes of the gold items), "posterior_stacker" (`PosteriorStacker`: the gold-free base posterior
    corrected by a logistic regression on the votes, shrunk toward the base) and "best_labeler"
    (`BestLabeler`). The gold seed is the user's validation data, so choosing by it is fair. `groups` (M,)
    labeler families go to the snorkel_mc models (see `MatrixCompletion`), `temperature` to them and, where
    it is the base, to Dawid-Skene.

    Defaults by reasoning and the valid splits (benchmarks/labelmodels_valid.py gold50; 7 WRENCH/prompted
    sets, 50 valid gold items, scored on the other valid items). The class-balanced log loss is a proper
    scoring rule (smooth, so 50 items separate candidates better than 0/1 hits) that a model ignoring a
    rare class cannot win; valid mean 0.621 against 0.599 for the former rule (pick by CV accuracy) and
    0.622 for the plain log loss, whose edge, like that of the log-loss pool (0.645), comes from spouse,
    where the accuracy metric rewards answering the majority class everywhere. 5 repeats did not help.
    Combining (50 gold items; valid splits / 40 generated family sets / 40 independent ones, BENCHMARKS.md,
    session 12, with the gold-class guards): the best CV score outright 0.629 / 0.783 / 0.865; with the one-SE
    rule (`min_gain_se` = 1, the textbook value) 0.640 / 0.782 / 0.869; bootstrap averaging by the win shares
    0.644 / 0.791 / 0.873, by their square roots (`share_power` = 0.5, session 13) 0.649 / 0.795 / 0.874 (0.33:
    0.647 / 0.798 / 0.874).
    `max_dependence` = 0.05 and `min_density` = 0.5 were chosen on generated dense votes
    (pipeline/labelmodels/synthetic.py: 40 sets with labeler families, 40 without), see BENCHMARKS.md; the WRENCH
    and prompted sets (vote density 0.01-0.26) keep snorkel_mc. `report` measures the labelers against this
    model's posterior. Learned: `base_` (the base model's name), `diagnostics_` (density, dependence),
    `selected_` ("bootstrap", "pool", or the chosen name), `cv_scores_` (dict), `weights_` (dict), `models_`
    (dict), `labelers_model_`.
    """

    def __init__(self, base: str = "auto",
                 candidates: tuple[str, ...] = ("snorkel_mc", "dawid_skene", "majority", "stacker", "best_labeler",
                                                "posterior_stacker"),
                 min_gold: int = 20, folds: int = 5, repeats: int = 1, scoring: str = "balanced_log_loss",
                 combine: str = "bootstrap", seed: int = 0, groups=None, temperature="auto",
                 min_density: float = MIN_DENSITY, max_dependence: float = MAX_DEPENDENCE,
                 min_gain_se: float = 1.0, share_power: float = 0.5):
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got '{scoring}'")
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {', '.join(COMBINES)}, got '{combine}'")
        if repeats < 1 or folds < 2:
            raise ValueError("repeats must be >= 1 and folds >= 2")
        if not share_power > 0:
            raise ValueError(f"share_power must be > 0, got {share_power}")
        self.base = base
        self.candidates = tuple(candidates)
        self.min_gold = min_gold
        self.folds = folds
        self.repeats = repeats
        self.scoring = scoring
        self.combine = combine
        self.seed = seed
        self.groups = groups
        self.temperature = temperature
        self.min_density = min_density
        self.max_dependence = max_dependence
        self.min_gain_se = min_gain_se
        self.share_power = share_power

    def _make(self, name: str, gold_free: LabelModel | None = None) -> LabelModel:
        return make_candidate(name, self.base_, gold_free, self.groups, self.temperature)

    def fit(self, votes, n_classes, gold=None, class_prior=None):
        k = check_n_classes(n_classes)
        n = encode_votes(votes, k).shape[0]
        gold = check_gold(gold, n, k)
        votes = np.asarray(votes)
        self.n_classes_, self.n_labelers_ = k, votes.shape[1]
        self.cv_scores_, self.weights_, self.diagnostics_ = {}, {}, {}
        self.base_ = self.base
        family = check_groups(self.groups, votes.shape[1])
        if self.base == "auto" and family is not None and np.bincount(family).max() > 1:
            self.base_ = "snorkel_mc"  # labelers named as families err together: not independent
        elif self.base == "auto":
            self.base_, self.diagnostics_ = gold_free_method(votes, k, self.min_density, self.max_dependence)
        labeled = np.flatnonzero(gold >= 0) if gold is not None else np.zeros(0, int)
        if gold is None or len(np.unique(gold[labeled])) < 2:
            labeled = labeled[:0]  # gold of one class cannot score how candidates tell classes apart: no CV
        gold_free = None  # the base model without labels: the posterior stacker's base, the base's temperature
        if len(labeled) >= self.min_gold:
            gold_free = self._make(self.base_).fit(votes, k, class_prior=class_prior)
        self.labelers_model_ = self._make(self.base_, gold_free).fit(votes, k, gold=gold, class_prior=class_prior)
        if len(labeled) < self.min_gold:
            self.selected_, self.models_ = self.base_, {self.base_: self.labelers_model_}
            self.weights_ = {self.base_: 1.0}
        else:
            rng = np.random.default_rng(self.seed)
            splits = [fold_parts(labeled, self.folds, rng) for _ in range(self.repeats)]
            held_out, items = {}, {}
            for name in self.candidates:
                held_out[name] = held_out_posteriors(partial(self._make, name, gold_free), votes, k, gold, splits,
                                                     class_prior)
                items[name] = np.mean([cv_item_scores(p, gold[labeled], self.scoring, k) for p in held_out[name]],
                                      axis=0)
                self.cv_scores_[name] = float(items[name].mean())
            if self.combine in ("pool", "bootstrap"):
                w = (pool_weights([held_out[c] for c in self.candidates], gold[labeled], self.scoring, k)
                     if self.combine == "pool" else
                     bootstrap_weights(np.stack([items[c] for c in self.candidates]), seed=self.seed,
                                       power=self.share_power))
                self.weights_ = {c: float(wc) for c, wc in zip(self.candidates, w) if wc >= 1e-3}
                self.selected_ = self.combine
            else:
                best = max(self.candidates, key=lambda c: (self.cv_scores_[c], -self.candidates.index(c)))
                if self.base_ in items and not beats_by_se(items[best], items[self.base_], self.min_gain_se):
                    best = self.base_  # the gold-free base stays unless the gold clearly prefers another
                self.selected_, self.weights_ = best, {best: 1.0}
            total = sum(self.weights_.values())
            self.weights_ = {c: wc / total for c, wc in self.weights_.items()}
            self.models_ = {c: (self.labelers_model_ if c == self.base_
                                else self._make(c, gold_free).fit(votes, k, gold=gold, class_prior=class_prior))
                            for c in self.weights_}
        self.class_prior_ = sum(w * np.asarray(self.models_[c].class_prior_) for c, w in self.weights_.items())
        self.confusion_ = getattr(self.labelers_model_, "confusion_", None)
        return self

    def predict_proba(self, votes):
        """(N, K) the weighted mixture of the pooled (or the selected) models' posteriors."""
        return sum(w * self.models_[c].predict_proba(votes) for c, w in self.weights_.items())

    def predict(self, votes):
        if len(self.models_) == 1:
            return next(iter(self.models_.values())).predict(votes)
        return super().predict(votes)

    def report(self, votes) -> dict:
        """The labelers measured against this model's posterior (`LabelModel.report`), `model_confusion` from
        the base model fitted with the gold, the selected model's `temperature` if it has one, and the
        selection: `selected`, `weights`, `cv_scores`."""
        out = super().report(votes)
        selected = self.models_.get(self.selected_)
        if getattr(selected, "temperature_", None) is not None:
            out["temperature"] = float(selected.temperature_)
        out["base"] = self.base_
        out.update(self.diagnostics_)
        out["selected"] = self.selected_
        out["weights"] = self.weights_
        out["cv_scores"] = self.cv_scores_
        out["cv_scoring"] = self.scoring
        return out
