"""Model selection of a loss's own hyper-parameters on the valid split (`train.loss_search`).

`LossParamSearch(cfg).fit(...)` trains one classifier per point of the loss's grid (`cfg.loss_grid`, else
`pipeline.losses.LOSS_GRIDS`: gce q; sce alpha/beta; elr beta/lam; forward's transition estimate;
coteaching forget_rate), each with the same seed and the same early stopping and model selection on the same
valid labels (noisy or gold, as `train.valid_labels` chose), and keeps the best one by `train.select_by` (the
selected epoch's valid accuracy or cross-fitted valid NLL after temperature scaling, the other as tie-break;
`train.selection_key`); a full tie keeps the earlier grid point (the paper's default comes first). It is
sklearn's `GridSearchCV` with the valid split as its only fold, except that the winner is not refit: it
already is a trained, selected and calibrated classifier.

Parameters fixed in `cfg.loss_params` are not searched. `train.loss_search: auto` searches in head mode
(an epoch takes about 0.1 s) and not in full mode (one fine-tuning per grid point); `on` / `off` force it.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from sklearn.model_selection import ParameterGrid

from ..config import TrainConfig
from .losses import LOSS_GRIDS, LOSS_PARAMS
from .trainer import TrainedClassifier, fine_tune, head_features, resolve_select_by, selection_key

log = logging.getLogger("labelpipe")


def search_enabled(cfg: TrainConfig) -> bool:
    """Whether `cfg` asks for the search: `on`, or `auto` in head mode."""
    return cfg.loss_search == "on" or (cfg.loss_search == "auto" and cfg.mode == "head")


def candidate_params(cfg: TrainConfig) -> list[dict]:
    """The `loss_params` of each grid point, in grid order: the grid (`cfg.loss_grid`, else the loss's default
    grid) over the parameters that `cfg.loss_params` does not fix, merged with the fixed ones. A loss without
    hyper-parameters (ce, soft_ce) has one point."""
    allowed = LOSS_PARAMS[cfg.loss]
    own = cfg.loss_grid is not None
    grid = cfg.loss_grid if own else LOSS_GRIDS.get(cfg.loss, {})
    grids = [grid] if isinstance(grid, dict) else list(grid)
    for part in grids:
        for key, values in part.items():
            if key not in allowed:
                raise ValueError(f"train.loss_grid: '{key}' is not a parameter of loss {cfg.loss} "
                                 f"(its parameters: {', '.join(allowed) or 'none'})")
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"train.loss_grid: '{key}' needs a non-empty list of values, got {values!r}")
            if own and key in cfg.loss_params:
                raise ValueError(f"train.loss_grid: '{key}' is also fixed in train.loss_params; "
                                 "search it or fix it, not both")
    points: list[dict] = []
    for part in grids:
        free = {k: v for k, v in part.items() if k not in cfg.loss_params}
        for point in ParameterGrid(free):
            params = {**cfg.loss_params, **point}
            if params not in points:
                points.append(params)
    if cfg.loss == "forward" and not own and cfg.valid_labels != "gold":  # no gold: no gold-counted transition
        points = [p for p in points if p.get("transition") != "gold"]
    return points or [dict(cfg.loss_params)]


class LossParamSearch:
    """Grid search of the loss's hyper-parameters on the valid split; see the module docstring.

    After `fit`: `best_params_` (dict), `best_score_` (the winner's selected epoch's `selection_key`),
    `best_estimator_` (its `TrainedClassifier`, with `loss_params`, `search` and `search_seconds` set),
    `results_` (one dict per grid point: params, valid_accuracy, valid_nll, best_epoch, epochs, seconds,
    seconds_per_epoch), `seconds_` (wall time of the whole search, encoder pass excluded).
    """

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def fit(self, texts: list[str], targets: np.ndarray, weights: np.ndarray, classes: list[str],
            valid_texts: list[str], valid_labels: np.ndarray, seed: int = 0, progress: bool = True,
            cache_dir=None, features: tuple[np.ndarray, np.ndarray] | None = None,
            valid_targets: np.ndarray | None = None) -> LossParamSearch:
        """Train on texts (N) / targets (N, K) / weights (N,) once per grid point; valid_labels (Nv,) int class
        indices (-1 = unknown), at least one known. `features`: head mode's (train, valid) encoder states;
        `valid_targets`: (Nv, K) noisy label distributions of the valid items (loss forward's gold transition)."""
        valid_labels = None if valid_labels is None else np.asarray(valid_labels)
        if valid_texts is None or valid_labels is None or not (valid_labels >= 0).any():
            raise ValueError("train.loss_search needs valid items with a label to select on")
        candidates = candidate_params(self.cfg)
        select_by = resolve_select_by(self.cfg.select_by, self.cfg.valid_labels)
        embed_seconds = 0.0
        if self.cfg.mode == "head" and features is None:  # one encoder pass, shared by every grid point
            start = time.perf_counter()
            features = head_features(self.cfg, classes, texts, valid_texts, progress, cache_dir)
            embed_seconds = time.perf_counter() - start
        start = time.perf_counter()
        self.results_, best = [], None
        for params in candidates:
            cfg = self.cfg.model_copy(update={"loss_search": "off", "loss_params": params, "loss_grid": None,
                                              "select_by": select_by})
            t0 = time.perf_counter()
            clf = fine_tune(texts, targets, weights, classes, cfg, valid_texts=valid_texts, valid_labels=valid_labels,
                            seed=seed, progress=progress, cache_dir=cache_dir, features=features,
                            valid_targets=valid_targets)
            chosen = clf.history[clf.best_epoch - 1]
            score = selection_key(chosen, select_by)
            self.results_.append({"params": params, "valid_accuracy": chosen["valid_accuracy"],
                                  "valid_nll": chosen["valid_nll"], "best_epoch": clf.best_epoch,
                                  "epochs": len(clf.history), "seconds": time.perf_counter() - t0,
                                  "seconds_per_epoch": clf.seconds_per_epoch})
            log.info("train.loss_search: %s %s: valid accuracy %.4f, NLL %.4f (best epoch %s)", self.cfg.loss, params,
                     chosen["valid_accuracy"], chosen["valid_nll"], clf.best_epoch)
            if best is None or score > best[0]:
                best = (score, params, clf)
            del clf
        self.seconds_ = time.perf_counter() - start
        self.best_score_, self.best_params_, self.best_estimator_ = best
        self.best_estimator_.search = self.results_
        self.best_estimator_.search_seconds = self.seconds_
        self.best_estimator_.embed_seconds += embed_seconds
        return self


def train_classifier(texts: list[str], targets: np.ndarray, weights: np.ndarray, classes: list[str],
                     cfg: TrainConfig, valid_texts: list[str] | None = None, valid_labels: np.ndarray | None = None,
                     seed: int = 0, progress: bool = True, cache_dir=None,
                     features: tuple[np.ndarray, np.ndarray | None] | None = None,
                     valid_targets: np.ndarray | None = None) -> TrainedClassifier:
    """`trainer.fine_tune` with the loss's hyper-parameters searched on the valid labels when `cfg` asks for it
    (`search_enabled`) and the loss has more than one grid point: the best `LossParamSearch` estimator; else one
    `fine_tune` (a one-point grid: with that point). Same arguments and result as `fine_tune`."""
    args = dict(valid_texts=valid_texts, valid_labels=valid_labels, seed=seed, progress=progress,
                cache_dir=cache_dir, features=features, valid_targets=valid_targets)
    labels = None if valid_labels is None else np.asarray(valid_labels)
    scored = valid_texts is not None and labels is not None and bool((labels >= 0).any())
    if search_enabled(cfg):
        candidates = candidate_params(cfg)
        if len(candidates) > 1 and scored:
            return LossParamSearch(cfg).fit(texts, targets, weights, classes, **args).best_estimator_
        if len(candidates) > 1:
            log.warning("train.loss_search: no valid labels to select on; %s keeps its default parameters", cfg.loss)
        else:  # a one-point grid: just that point
            cfg = cfg.model_copy(update={"loss_params": candidates[0]})
    elif cfg.loss_grid is not None:
        log.warning("train.loss_grid is ignored: train.loss_search is %s in %s mode (set loss_search: on)",
                    cfg.loss_search, cfg.mode)
    return fine_tune(texts, targets, weights, classes, cfg, **args)
