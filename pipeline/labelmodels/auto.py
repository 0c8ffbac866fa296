"""The default label model: unsupervised without gold, chosen by cross-validation on the gold seed with it."""

from __future__ import annotations

import numpy as np

from .base import LabelModel, check_gold, check_n_classes, encode_votes


class AutoLabelModel(LabelModel):
    """Without gold (or with fewer than `min_gold` gold items): the `base` label model.

    With a gold seed (`gold`, -1 = unknown) of at least `min_gold` items, each of `candidates` is scored by
    `folds`-fold cross-validation on the gold items (fitted on all votes with the other folds' gold,
    accuracy on the held-out gold items) and the best one (ties: the earlier one) is refitted with all the
    gold. Candidates: registered label model names, "stacker" (`VoteStacker`: logistic regression on the
    one-hot votes of the gold items) and "best_labeler" (`BestLabeler`). The gold seed is the user's
    validation data, so choosing by it is fair. `report` gives the base model's labeler estimates, fitted
    with the gold. Learned: `selected_`, `cv_scores_` (dict), `model_`, `labelers_model_`.
    """

    def __init__(self, base: str = "snorkel_mc",
                 candidates: tuple[str, ...] = ("snorkel_mc", "dawid_skene", "majority", "stacker", "best_labeler"),
                 min_gold: int = 20, folds: int = 5, seed: int = 0):
        self.base = base
        self.candidates = tuple(candidates)
        self.min_gold = min_gold
        self.folds = folds
        self.seed = seed

    def _make(self, name: str) -> LabelModel:
        from . import make_label_model
        from .supervised import BestLabeler, VoteStacker

        if name == "stacker":
            return VoteStacker()
        if name == "best_labeler":
            return BestLabeler()
        return make_label_model(name)

    def fit(self, votes, n_classes, gold=None, class_prior=None):
        k = check_n_classes(n_classes)
        n = encode_votes(votes, k).shape[0]
        gold = check_gold(gold, n, k)
        self.n_classes_, self.n_labelers_ = k, np.asarray(votes).shape[1]
        self.cv_scores_ = {}
        self.labelers_model_ = self._make(self.base).fit(votes, k, gold=gold, class_prior=class_prior)
        labeled = np.flatnonzero(gold >= 0) if gold is not None else np.zeros(0, int)
        if len(labeled) < self.min_gold:
            self.selected_, self.model_ = self.base, self.labelers_model_
        else:
            order = np.random.default_rng(self.seed).permutation(labeled)
            parts = np.array_split(order, max(2, min(self.folds, len(order))))
            for name in self.candidates:
                hits = 0
                for part in parts:
                    masked = gold.copy()
                    masked[part] = -1
                    model = self._make(name).fit(votes, k, gold=masked, class_prior=class_prior)
                    hits += int((model.predict_proba(np.asarray(votes)[part]).argmax(axis=1) == gold[part]).sum())
                self.cv_scores_[name] = hits / len(labeled)
            self.selected_ = max(self.candidates, key=lambda c: (self.cv_scores_[c], -self.candidates.index(c)))
            self.model_ = (self.labelers_model_ if self.selected_ == self.base
                           else self._make(self.selected_).fit(votes, k, gold=gold, class_prior=class_prior))
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
        out["cv_accuracy"] = self.cv_scores_
        return out
