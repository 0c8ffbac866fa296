import logging

import numpy as np
import pytest

from pipeline.config import TrainConfig, parse_config
from pipeline.errors import ConfigError
from pipeline.train.losses import LOSS_GRIDS, LOSS_PARAMS
from pipeline.train.search import LossParamSearch, candidate_params, search_enabled, train_classifier
from pipeline.train.trainer import (
    encoder_states,
    head_logits,
    load_classifier,
    resolve_select_by,
    selection_key,
)
from tests.train.test_train import CLASSES, TEXTS, VALID, VALID_Y, Y

# ---- the grid (no training) ----


def test_default_grids_start_with_the_papers_defaults_and_name_real_parameters():
    assert candidate_params(TrainConfig(loss="gce"))[0] == {"q": 0.7}
    assert candidate_params(TrainConfig(loss="sce"))[0] == {"alpha": 0.1, "beta": 1.0}
    assert candidate_params(TrainConfig(loss="elr"))[0] == {"beta": 0.7, "lam": 3.0}
    assert candidate_params(TrainConfig(loss="coteaching"))[0] == {"forget_rate": 0.2}
    assert [len(candidate_params(TrainConfig(loss=name))) for name in ("gce", "sce", "elr", "coteaching")] == [3, 5, 6, 3]
    assert candidate_params(TrainConfig(loss="ce")) == [{}] and candidate_params(TrainConfig(loss="soft_ce")) == [{}]
    for name, grid in LOSS_GRIDS.items():
        for part in grid if isinstance(grid, list) else [grid]:
            assert set(part) <= set(LOSS_PARAMS[name])


def test_fixed_loss_params_are_not_searched_and_a_user_grid_replaces_the_default():
    elr = candidate_params(TrainConfig(loss="elr", loss_params={"beta": 0.9}))
    assert elr == [{"beta": 0.9, "lam": 3.0}, {"beta": 0.9, "lam": 1.0}, {"beta": 0.9, "lam": 7.0}]
    assert candidate_params(TrainConfig(loss="gce", loss_params={"q": 0.5})) == [{"q": 0.5}]
    sce = candidate_params(TrainConfig(loss="sce", loss_params={"alpha": 0.1}))
    assert sce == [{"alpha": 0.1, "beta": 1.0}, {"alpha": 0.1, "beta": 0.1}]  # duplicates dropped
    own = TrainConfig(loss="coteaching", loss_params={"base": "gce"}, loss_grid={"forget_rate": [0.05, 0.3]})
    assert candidate_params(own) == [{"base": "gce", "forget_rate": 0.05}, {"base": "gce", "forget_rate": 0.3}]
    joint = TrainConfig(loss="sce", loss_grid=[{"alpha": [0.1], "beta": [1.0]}, {"alpha": [6.0], "beta": [0.1]}])
    assert candidate_params(joint) == [{"alpha": 0.1, "beta": 1.0}, {"alpha": 6.0, "beta": 0.1}]


def test_bad_grids_get_clear_errors():
    with pytest.raises(ValueError, match="'lam' is not a parameter of loss gce"):
        candidate_params(TrainConfig(loss="gce", loss_grid={"lam": [1.0]}))
    with pytest.raises(ValueError, match="parameters: none"):
        candidate_params(TrainConfig(loss="ce", loss_grid={"q": [0.5]}))
    with pytest.raises(ValueError, match="non-empty list"):
        candidate_params(TrainConfig(loss="gce", loss_grid={"q": []}))
    with pytest.raises(ValueError, match="also fixed in train.loss_params"):
        candidate_params(TrainConfig(loss="gce", loss_params={"q": 0.7}, loss_grid={"q": [0.1, 0.7]}))
    with pytest.raises(ConfigError, match="train.loss_search"):
        parse_config({"data": {"path": "x.csv"}, "train": {"loss_search": "yes please"}})
    with pytest.raises(ConfigError, match="train.loss_grid"):
        parse_config({"data": {"path": "x.csv"}, "train": {"loss_grid": {"q": 0.7}}})  # values must be a list


def test_auto_searches_in_head_mode_only():
    assert search_enabled(TrainConfig(mode="head")) and not search_enabled(TrainConfig(mode="full"))
    assert search_enabled(TrainConfig(mode="full", loss_search="on"))
    assert not search_enabled(TrainConfig(mode="head", loss_search="off"))


# ---- the search with the real MiniLM (head mode) ----

def _cfg(**kw):
    base = dict(mode="head", head_epochs=8, max_length=32, batch_size=4, head_lr=3e-3, patience=None)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def features():
    model, tok = load_classifier("default", CLASSES, mode="head")
    return (encoder_states(model, tok, TEXTS, max_length=32, progress=False),
            encoder_states(model, tok, VALID, max_length=32, progress=False))


def _fit(cfg, features, valid_labels=VALID_Y, seed=0):
    return train_classifier(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, cfg, valid_texts=VALID, valid_labels=valid_labels,
                     seed=seed, progress=False, features=features)


def test_head_mode_searches_by_default_and_keeps_the_best_valid_point(features):
    cfg = _cfg(loss="elr", loss_grid={"lam": [3.0, 1.0, 50.0]})
    clf = _fit(cfg, features)
    assert [r["params"] for r in clf.search] == [{"lam": 3.0}, {"lam": 1.0}, {"lam": 50.0}]
    select_by = resolve_select_by(cfg.select_by, cfg.valid_labels)  # auto, source unknown here: accuracy
    scores = [selection_key(r, select_by) for r in clf.search]  # accuracy, then cross-fitted NLL
    assert clf.loss_params == clf.search[scores.index(max(scores))]["params"]  # first of the best (grid order)
    assert clf.search_seconds >= sum(r["seconds"] for r in clf.search) * 0.99
    assert all(r["epochs"] == 8 and r["seconds_per_epoch"] < 1.0 for r in clf.search)
    # the winner is exactly the classifier trained with its parameters and no search (same seed)
    alone = _fit(_cfg(loss="elr", loss_params=clf.loss_params, loss_search="off"), features)
    assert alone.search == [] and alone.loss_params == clf.loss_params
    np.testing.assert_allclose(head_logits(clf, features[1]), head_logits(alone, features[1]), atol=1e-6)
    assert clf.temperature == pytest.approx(alone.temperature, rel=1e-6)
    # the class gives the same winner and keeps every grid point's record
    search = LossParamSearch(cfg).fit(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, VALID, VALID_Y, seed=0,
                                      progress=False, features=features)
    assert search.best_params_ == clf.loss_params and search.best_score_ == max(scores)
    assert search.best_estimator_.search == search.results_


def test_no_search_when_off_without_valid_labels_or_with_one_point(features, caplog):
    clf = _fit(_cfg(loss="gce", loss_search="off"), features)
    assert clf.search == [] and clf.loss_params == {}
    with caplog.at_level(logging.WARNING, logger="labelpipe"):
        none = train_classifier(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, _cfg(loss="gce", head_epochs=2),
                         seed=0, progress=False, features=(features[0], None))
    assert none.search == [] and "no valid labels to select on" in caplog.text
    one = _fit(_cfg(loss="gce", loss_grid={"q": [0.3]}, head_epochs=2), features)  # a one-point grid: that point
    assert one.search == [] and one.loss_params == {"q": 0.3}
    with pytest.raises(ValueError, match="needs valid items with a label"):
        LossParamSearch(_cfg(loss="gce")).fit(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES, VALID,
                                              -np.ones(3, int), features=features)


def test_search_without_precomputed_features_encodes_once(tmp_path):
    clf = train_classifier(TEXTS, np.eye(3)[Y], np.ones(len(Y)), CLASSES,
                    _cfg(loss="coteaching", loss_grid={"forget_rate": [0.2, 0.0]}, head_epochs=3),
                    valid_texts=VALID, valid_labels=VALID_Y, seed=1, progress=False, cache_dir=tmp_path)
    assert len(clf.search) == 2 and clf.loss_params["forget_rate"] in (0.2, 0.0)
    assert len(list(tmp_path.glob("*.npy"))) == 2 and clf.embed_seconds > 0  # train + valid states, cached once


@pytest.mark.parametrize("select_by", ["accuracy", "nll"])
def test_select_by_picks_the_epoch_and_the_grid_point_by_its_key(features, select_by):
    cfg = _cfg(loss="gce", loss_grid={"q": [0.7, 0.1]}, select_by=select_by)
    clf = _fit(cfg, features)
    for point in clf.search:
        assert np.isfinite(point["valid_nll"]) and 0 <= point["valid_accuracy"] <= 1
    keys = [selection_key(r, select_by) for r in clf.search]
    assert clf.loss_params == clf.search[keys.index(max(keys))]["params"]
    # the winner's early-stopping epoch is the history's best by the same key (first of equals)
    history = [selection_key(h, select_by) for h in clf.history]
    assert clf.best_epoch == history.index(max(history)) + 1
    assert selection_key(clf.history[clf.best_epoch - 1], select_by) == max(keys)
    # a different criterion may select differently; each run is the plain run with the winner's parameters
    alone = _fit(_cfg(loss="gce", loss_params=clf.loss_params, loss_search="off", select_by=select_by), features)
    np.testing.assert_allclose(head_logits(clf, features[1]), head_logits(alone, features[1]), atol=1e-6)


def test_select_by_key_and_config_errors():
    record = {"valid_accuracy": 0.8, "valid_nll": 0.5}
    assert selection_key(record, "accuracy") == (0.8, -0.5) and selection_key(record, "nll") == (-0.5, 0.8)
    assert TrainConfig().select_by == "auto"
    assert [resolve_select_by("auto", source) for source in ("gold", "noisy", "auto")] == ["nll", "accuracy", "accuracy"]
    assert resolve_select_by("nll", "noisy") == "nll" and resolve_select_by("accuracy", "gold") == "accuracy"
    with pytest.raises(ValueError, match="accuracy or nll"):
        selection_key(record, "f1")
    with pytest.raises(ConfigError, match="select_by"):
        parse_config({"data": {"path": "x.csv"}, "train": {"select_by": "loss"}})
