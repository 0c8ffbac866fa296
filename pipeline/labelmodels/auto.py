"""The default label model: unsupervised without gold, chosen by cross-validation on the gold seed with it."""

from __future__ import annotations

import numpy as np

from .base import LabelModel, check_gold, check_n_classes, encode_votes

SCORINGS = ("accuracy", "balanced_accuracy", "log_loss", "balanced_log_loss")


def cv_score(proba: np.ndarray, y: np.ndarray, scoring: str, n_classes: int) -> float:
    """Score of held-out posteriors (N, K) against labels (N,); higher is better.

    "accuracy"; "balanced_accuracy": the mean recall over the classes present in y (a model that always
    answers the majority class scores 1/K, not the majority share); "log_loss": minus the mean negative log
    probability of the true class, probabilities clipped at 0.01 so that one confident mistake costs at most
    log(100); "balanced_log_loss": the same averaged per class, then over the classes present in y.
    """
    pred = proba.argmax(axis=1)
    if scoring == "accuracy":
        return float(np.mean(pred == y))
    if scoring == "balanced_accuracy":
        return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))
    logp = np.log(np.clip(proba[np.arange(len(y)), y], 0.01, 1.0))
    if scoring == "log_loss":
        return float(np.mean(logp))
    return float(np.mean([np.mean(logp[y == c]) for c in np.unique(y)]))


class AutoLabelModel(LabelModel):
    """Without gold (or with fewer than `min_gold` gold items): the `base` label model.

    With a gold seed (`gold`, -1 = unknown) of at least `min_gold` items, each of `candidates` is scored by
    `repeats` times repeated `folds`-fold cross-validation on the gold items (fitted on all votes with the
    other folds' gold, scored by `scoring` on the held-out gold items, see `cv_score`) and the best one
    (ties: the earlier one) is refitted with all the gold. Candidates: registered label model names,
    "stacker" (`VoteStacker`: logistic regression on the one-hot votes of the gold items), "posterior_stacker"
    (`PosteriorStacker`: the gold-free base posterior corrected by a logistic regression on the votes, shrunk
    toward the base) and "best_labeler" (`BestLabeler`). The gold seed is the user's validation data, so
    choosing by it is fair. The default scoring, the class-balanced log loss, is a proper scoring rule (it
    ranks calibrated posteriors first and varies smoothly, so 50 items separate candidates better than 0/1
    hits) that a model ignoring a rare class cannot win; it and the candidates were chosen on the valid
    splits (benchmarks/labelmodels_valid.py gold50), repeats = 1 because 5 repeats did not help there.
    `report` gives the base model's labeler estimates, fitted with the gold.
    Learned: `selected_`, `cv_scores_` (dict), `model_`, `labelers_model_`.
    """

    def __init__(self, base: str = "snorkel_mc",
                 candidates: tuple[str, ...] = ("snorkel_mc", "dawid_skene", "majority", "stacker", "best_labeler",
                                                "posterior_stacker"),
                 min_gold: int = 20, folds: int = 5, repeats: int = 1, scoring: str = "balanced_log_loss",
                 seed: int = 0):
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got '{scoring}'")
        if repeats < 1 or folds < 2:
            raise ValueError("repeats must be >= 1 and folds >= 2")
        self.base = base
        self.candidates = tuple(candidates)
        self.min_gold = min_gold
        self.folds = folds
        self.repeats = repeats
        self.scoring = scoring
        self.seed = seed

    def _make(self, name: str, gold_free: LabelModel | None = None) -> LabelModel:
        from . import make_label_model
        from .supervised import BestLabeler, PosteriorStacker, VoteStacker

        if name == "stacker":
            return VoteStacker()
        if name == "posterior_stacker":
            return PosteriorStacker(base=self.base, base_model=gold_free)
        if name == "best_labeler":
            return BestLabeler()
        return make_label_model(name)

    def fit(self, votes, n_classes, gold=None, class_prior=None):
        k = check_n_classes(n_classes)
        n = encode_votes(votes, k).shape[0]
        gold = check_gold(gold, n, k)
        votes = np.asarray(votes)
        self.n_classes_, self.n_labelers_ = k, votes.shape[1]
        self.cv_scores_ = {}
        self.labelers_model_ = self._make(self.base).fit(votes, k, gold=gold, class_prior=class_prior)
        labeled = np.flatnonzero(gold >= 0) if gold is not None else np.zeros(0, int)
        if len(labeled) < self.min_gold:
            self.selected_, self.model_ = self.base, self.labelers_model_
        else:
            gold_free = None
            if "posterior_stacker" in self.candidates:  # its base posterior uses no labels: fit it once
                gold_free = self._make(self.base).fit(votes, k, class_prior=class_prior)
            rng = np.random.default_rng(self.seed)
            splits = [np.array_split(rng.permutation(labeled), min(self.folds, len(labeled)))
                      for _ in range(self.repeats)]
            for name in self.candidates:
                scores = []
                for parts in splits:
                    proba = np.zeros((len(gold), k))
                    for part in parts:
                        masked = gold.copy()
                        masked[part] = -1
                        model = self._make(name, gold_free).fit(votes, k, gold=masked, class_prior=class_prior)
                        proba[part] = model.predict_proba(votes[part])
                    scores.append(cv_score(proba[labeled], gold[labeled], self.scoring, k))
                self.cv_scores_[name] = float(np.mean(scores))
            self.selected_ = max(self.candidates, key=lambda c: (self.cv_scores_[c], -self.candidates.index(c)))
            self.model_ = (self.labelers_model_ if self.selected_ == self.base
                           else self._make(self.selected_, gold_free).fit(votes, k, gold=gold,
                                                                          class_prior=class_prior))
        self.class_prior_ = self.model_.class_prior_
        self.confusion_ = getattr(self.labelers_model_, "confusion_", None)
        return self

    def predict_proba(self, votes):
        """(N, K) the selected model's posterior."""
        return self.model_.predict_proba(votes)

    def predict(self, votes):
        return self.model_.predict(votes)

    def report(self, votes) -> dict:
        out = self.labelers_model_.report(votes)
        out["selected"] = self.selected_
        out["cv_scores"] = self.cv_scores_
        out["cv_scoring"] = self.scoring
        return out
