"""Stage glue: read the previous artifacts, call the pure stage functions, write the results."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import write_json, write_npy, write_parquet
from ..calibration import reliability_bins, scaled_proba
from ..denoise import DenoiseInputs, run_denoiser
from ..labelmodels import FAMILY_AWARE, make_label_model
from ..metrics import accuracy, classification_report
from ..neighbors.dynamics import (
    TrainingDynamics,
    candidate_sets,
    clean_by_confidence,
    clean_by_dynamics,
    training_dynamics,
)
from ..neighbors.embed import embed_texts
from ..neighbors.index import knn_label_distribution
from .report import write_report
from .runner import Run, Stage, lf_sources_digest, proba_columns

log = logging.getLogger("labelpipe")


def _frame(ids, arrays: dict[str, np.ndarray], **columns) -> pd.DataFrame:
    data = {"id": ids}
    for prefix, arr in arrays.items():
        data.update({f"{prefix}{k}": arr[:, k] for k in range(arr.shape[1])})
    data.update(columns)
    return pd.DataFrame(data)


def label_stage(run: Run) -> dict:
    """Votes from the labeling functions, the imported annotation columns and the LLM labelers.

    LLM labelers also give a distribution per item: soft_votes.npy (N, M, K), zeros for the other
    labelers, and their raw answers in llm_answers.parquet.
    """
    from labelers import apply_labeling_functions, load_labeling_functions

    items = run.read_parquet("items.parquet")
    meta = run.read_json("classes.json")
    classes = meta["classes"]
    columns, labelers, soft = {}, [], {}
    if run.cfg.label.use_annotation_columns:
        for col in meta["annotation_columns"]:
            columns[col] = items[col].to_numpy(dtype=np.int64)
            labelers.append({"name": col, "kind": "column"})
    for source in run.cfg.label.labeling_functions:
        lfs = load_labeling_functions(source, classes=classes)
        votes = apply_labeling_functions(lfs, items, classes, progress=run.progress)
        for j, lf in enumerate(lfs):
            if lf.name in columns:
                raise ValueError(f"two labelers are named '{lf.name}'")
            columns[lf.name] = votes[:, j]
            entry = {"name": lf.name, "kind": "labeling_function", "source": source}
            if getattr(lf, "kind", None) in ("keyword", "regex"):
                entry["rule"] = lf.kind
            labelers.append(entry)
    summary = {}
    if run.cfg.label.llm:
        summary["llm"] = _llm_votes(run, items, classes, columns, labelers, soft)
    if not columns:
        raise ValueError("no labelers: give label.labeling_functions, label.llm or data.annotation_columns")
    votes = pd.DataFrame({"id": items["id"], **columns})
    write_parquet(votes, run.path("votes.parquet"))
    write_json(labelers, run.path("labelers.json"))
    if soft:
        names = list(columns)
        stacked = np.zeros((len(items), len(names), len(classes)))
        for j, name in enumerate(names):
            if name in soft:
                stacked[:, j] = soft[name]
        write_npy(stacked, run.path("soft_votes.npy"))
    else:
        run.path("soft_votes.npy").unlink(missing_ok=True)
    matrix = votes.drop(columns="id").to_numpy()
    return {"n_labelers": len(labelers), "coverage": float(np.mean((matrix >= 0).any(axis=1))), **summary}


def _llm_votes(run: Run, items: pd.DataFrame, classes: list[str], columns: dict, labelers: list,
               soft: dict) -> dict:
    from labelers.llm.cache import LLMCache
    from labelers.llm.run import answers_frame, build_labelers, run_labelers

    cfg = run.cfg.label
    cache_path = cfg.llm_cache
    if cache_path == "default":
        cache_path = str(run.dir.parent / "llm_cache.sqlite")
    cache = LLMCache(cache_path) if cache_path else None
    try:
        llms = build_labelers(cfg.llm, classes, cache)
        for lab in llms:
            if lab.name in columns:
                raise ValueError(f"two labelers are named '{lab.name}'")
        results = run_labelers(llms, items, progress=run.progress)
    finally:
        if cache is not None:
            cache.close()
    stats = {}
    for entry, lab, res in zip(cfg.llm, llms, results):
        columns[lab.name] = res.votes
        soft[lab.name] = res.proba
        labelers.append({"name": lab.name, "kind": "llm", "backend": entry.backend,
                         "identity": lab.backend.cache_identity(), "template": entry.template,
                         "verbalizers": lab.verbalizers, "soft": True})
        stats[lab.name] = res.stats
    write_parquet(answers_frame(items["id"], llms, results), run.path("llm_answers.parquet"))
    return stats


def aggregate_stage(run: Run) -> dict:
    cfg = run.cfg.aggregate
    classes = run.classes
    votes = run.read_parquet("votes.parquet")
    names = [c for c in votes.columns if c != "id"]
    matrix = votes[names].to_numpy(dtype=np.int64)
    params = dict(cfg.params)
    if cfg.method == "majority":
        params.setdefault("tie_break", cfg.tie_break)
        params.setdefault("seed", run.cfg.seed)
    families = labeler_families(run.read_json("labelers.json"), names, cfg.families)
    if families is not None:
        if cfg.method not in FAMILY_AWARE:
            raise ValueError(f"aggregate.families needs method {' or '.join(FAMILY_AWARE)}, "
                             f"not '{cfg.method}'")
        params.setdefault("groups", families)
    items = run.read_parquet("items.parquet")
    gold = gold_seed_labels(items, classes, cfg.gold_seed, cfg.gold_path, run.cfg.seed)
    model = make_label_model(cfg.method, **params).fit(matrix, len(classes), gold=gold)
    proba = model.predict_proba(matrix)
    label = model.predict(matrix)
    covered = (matrix >= 0).any(axis=1)
    write_parquet(_frame(votes["id"], {"p_": proba}, label=label, confidence=proba.max(axis=1), covered=covered),
                  run.path("aggregate.parquet"))
    report = model.report(matrix)
    report["labelers"] = names
    report["method"] = cfg.method
    report["n_gold_seed"] = int((gold >= 0).sum()) if gold is not None else 0
    report["families"] = families
    write_json(report, run.path("labelmodel.json"))
    return {"coverage": float(covered.mean()), "n_gold_seed": report["n_gold_seed"]}


def labeler_families(labelers: list[dict], names: list[str], families) -> list[str] | None:
    """(M,) family of each labeler in `names` order, or None for "none". "model": the LLM labelers of one
    backend model share a family, every other labeler stands alone; a dict maps labeler names to families."""
    if families == "none":
        return None
    if isinstance(families, dict):
        unknown = sorted(set(families) - set(names))
        if unknown:
            raise ValueError(f"aggregate.families names labelers that do not exist: {', '.join(unknown)} "
                             f"(labelers: {', '.join(names)})")
        return [f"family:{families[n]}" if n in families else f"labeler:{n}" for n in names]
    meta = {e["name"]: e for e in labelers}
    model = {n: meta[n].get("identity", {}).get("model") for n in names if meta.get(n, {}).get("kind") == "llm"}
    return [f"model:{model[n]}" if model.get(n) else f"labeler:{n}" for n in names]


def gold_seed_labels(items: pd.DataFrame, classes: list[str], n_valid: int, gold_path: str | None,
                     seed: int) -> np.ndarray | None:
    """(N,) gold labels given to the label model (-1 = not given), or None: `n_valid` seeded valid-split items
    with gold, plus the items listed in `gold_path` (id, label). Unknown ids or labels are errors."""
    from ..data import read_table, to_class_index

    gold = np.full(len(items), -1, dtype=np.int64)
    if n_valid:
        pool = np.flatnonzero((items["split"].to_numpy() == "valid") & (items["gold"].to_numpy() >= 0))
        if len(pool) == 0:
            raise ValueError("aggregate.gold_seed > 0 but no valid-split item has a gold label")
        chosen = np.random.default_rng(seed).permutation(pool)[:n_valid]
        gold[chosen] = items["gold"].to_numpy()[chosen]
    if gold_path:
        path = Path(gold_path)
        frame = read_table(path)
        if not {"id", "label"} <= set(frame.columns):
            raise ValueError(f"{path}: the gold file needs columns id and label, has {list(frame.columns)}")
        index = {str(v): i for i, v in enumerate(items["id"].astype(str))}
        missing = [str(v) for v in frame["id"] if str(v) not in index]
        if missing:
            raise ValueError(f"{path}: {len(missing)} gold id(s) do not exist in the data, e.g. {missing[:5]}")
        for ident, value in zip(frame["id"].astype(str), frame["label"]):
            k = to_class_index(value, classes)
            if k is None or k < 0:
                raise ValueError(f"{path}: gold label '{value}' of id {ident} is not in the class list {classes}")
            gold[index[ident]] = k
    return gold if (gold >= 0).any() else None


def neighbors_stage(run: Run) -> dict:
    cfg = run.cfg.neighbors
    items = run.read_parquet("items.parquet")
    agg = run.read_parquet("aggregate.parquet")
    emb = embed_texts(items["text"].tolist(), cfg.model, batch_size=cfg.batch_size,
                      cache_dir=run.path("cache/embeddings"), progress=run.progress)
    write_npy(emb, run.path("embeddings.npy"))
    proba = proba_columns(agg, "p_")
    label = proba.argmax(axis=1)
    onehot = np.eye(proba.shape[1])[label]
    covered = agg["covered"].to_numpy()
    split = items["split"].to_numpy()
    eligible = covered & (split != "test")
    confidence = agg["confidence"].to_numpy()
    clean_by = cfg.clean_by
    if clean_by == "auto":  # confidences that take at most two values cannot rank the items
        clean_by = "dynamics" if len(np.unique(np.round(confidence[eligible], 6))) <= 2 else "confidence"
    dyn_path = run.path("dynamics.npz")
    if clean_by == "dynamics":
        dyn = training_dynamics(emb, np.where(covered, label, -1), eligible & (split == "train"), proba.shape[1],
                                n_heads=cfg.dynamics_heads, epochs=cfg.dynamics_epochs, seed=run.cfg.seed)
        clean = clean_by_dynamics(dyn, eligible, cfg.clean_fraction)
        np.savez(dyn_path, proba=dyn.proba, distance=dyn.distance)
    else:
        clean = clean_by_confidence(confidence, eligible, cfg.clean_fraction)
        dyn_path.unlink(missing_ok=True)
    knn = knn_label_distribution(emb, onehot, clean, k=cfg.k, index_kind=cfg.index, exact_max=cfg.exact_max,
                                 nprobe=cfg.nprobe, use_gpu=cfg.use_gpu, seed=run.cfg.seed, balance=cfg.balance)
    cands = candidate_sets(knn, cfg.certain_threshold, cfg.dominant_threshold, labels=np.where(covered, label, -1),
                           clean=clean if cfg.clean_keep_label else None)
    write_parquet(_frame(items["id"], {"knn_": knn, "cand_": cands.weights}, clean=clean, certain=cands.certain,
                         kind=cands.kind), run.path("neighbors.parquet"))
    return {"n_clean": int(clean.sum()), "clean_by": clean_by, "certain": float(cands.certain.mean())}


def denoise_stage(run: Run) -> dict:
    cfg = run.cfg.denoise
    items = run.read_parquet("items.parquet")
    agg = run.read_parquet("aggregate.parquet")
    nbr = run.read_parquet("neighbors.parquet")
    inputs = DenoiseInputs(
        proba=proba_columns(agg, "p_"), covered=agg["covered"].to_numpy(), knn_proba=proba_columns(nbr, "knn_"),
        candidates=proba_columns(nbr, "cand_"), certain=nbr["certain"].to_numpy(),
        embeddings=np.load(run.path("embeddings.npy")), split=items["split"].to_numpy(),
        texts=items["text"].tolist(), seed=run.cfg.seed)
    if run.path("dynamics.npz").exists():
        with np.load(run.path("dynamics.npz")) as z:
            inputs.dynamics = TrainingDynamics(z["proba"], z["distance"])
    params = {"threshold": cfg.threshold} if cfg.method == "knn" else {}
    params.update(cfg.params)
    refined = run_denoiser(cfg.method, inputs, guard_tolerance=cfg.guard, **params)
    label = refined.proba.argmax(axis=1)
    write_parquet(_frame(items["id"], {"r_": refined.proba}, label=label, weight=refined.weight),
                  run.path("refined.parquet"))
    before = inputs.proba.argmax(axis=1)
    changed = (label != before) | ((refined.weight > 0) & ~inputs.covered)
    summary = {"changed": int(changed.sum())}
    info = refined.info or {}
    summary.update({k: info[k] for k in ("stepped_aside", "guard_raw", "guard_refined", "flagged") if k in info})
    if "flagged" in info and info.get("action") == "prune":
        pruned = (refined.weight == 0) & inputs.covered
        summary["pruned"] = int(pruned.sum())
    gold = items["gold"].to_numpy()
    if (gold >= 0).any():
        has = changed & (gold >= 0)
        summary["changes_right"] = int((label[has] == gold[has]).sum())
        summary["changes_wrong"] = int((label[has] != gold[has]).sum())
    return summary


def choose_valid_labels(setting: str, gold: np.ndarray, targets: np.ndarray, weights: np.ndarray,
                        min_gold: int = 10) -> tuple[np.ndarray, str]:
    """(Nv,) int valid labels for model selection and the temperature (-1 = unknown), and "gold" or "noisy".

    gold: (Nv,) gold labels of the valid items (-1 = none); targets (Nv, K), weights (Nv,): their refined
    labels (weight 0 = no labeler covered the item). `auto` takes gold when >= min_gold items have one.
    """
    n_gold = int((gold >= 0).sum())
    if setting == "gold" and n_gold == 0:
        raise ValueError("train.valid_labels: gold, but no valid item has a gold label "
                         "(give a label column with gold labels for the valid split, or use noisy)")
    if setting == "gold" or (setting == "auto" and n_gold >= min_gold):
        return np.asarray(gold), "gold"
    return np.where(weights > 0, targets.argmax(axis=1), -1), "noisy"


def train_stage(run: Run) -> dict:
    from ..train.search import train_classifier
    from ..train.trainer import (
        encoder_states,
        head_logits,
        load_classifier,
        predict_logits,
        resolve_select_by,
        save_classifier,
        uses_entity_pooling,
    )

    cfg = run.cfg.train
    classes = run.classes
    items = run.read_parquet("items.parquet")
    refined = run.read_parquet("refined.parquet")
    targets = proba_columns(refined, "r_")
    weights = refined["weight"].to_numpy()
    split = items["split"].to_numpy()
    texts = items["text"].tolist()
    train, valid = split == "train", split == "valid"
    valid_labels, valid_source = choose_valid_labels(cfg.valid_labels, items["gold"].to_numpy()[valid],
                                                     targets[valid], weights[valid], cfg.min_gold_valid)
    log.info("train: model selection and temperature on the %s valid labels (%d items)", valid_source,
             int((valid_labels >= 0).sum()))
    if cfg.calibration == "vector" and valid_source == "noisy":
        log.warning("train.calibration: vector on noisy valid labels learns their class bias back; "
                    "it is meant for gold valid labels")
    cfg = cfg.model_copy(update={"select_by": resolve_select_by(cfg.select_by, valid_source),
                                 "valid_labels": valid_source})
    train_texts = [t for t, m in zip(texts, train) if m]
    states = None
    if cfg.mode == "head":  # one frozen-encoder pass over every item, cached in the run folder
        entity = uses_entity_pooling(cfg, train_texts)
        model, tokenizer = load_classifier(cfg.model, classes, cfg.mode, cfg.pooling, entity)
        states = encoder_states(model, tokenizer, texts, cfg.batch_size * 2, cfg.max_length, run.progress,
                                cache_dir=run.path("cache/states"))
        del model
    clf = train_classifier(train_texts, targets[train], weights[train], classes, cfg,
                    valid_texts=[t for t, m in zip(texts, valid) if m] or None, valid_labels=valid_labels,
                    seed=run.cfg.seed, progress=run.progress,
                    features=(states[train], states[valid]) if states is not None else None,
                    valid_targets=targets[valid] * (weights[valid] > 0)[:, None])
    extra = {"mode": cfg.mode, "loss": cfg.loss, "loss_params": clf.loss_params}
    if clf.transition is not None:  # loss forward: the noise transition matrix it trained with
        extra["transition"] = np.asarray(clf.transition).round(6).tolist()
    if hasattr(clf.model.config, "entity_markers"):  # the pooled-encoder class (head mode, or entity pooling)
        extra["pooling"] = clf.model.config.pooling
        extra["entity_pooling"] = clf.model.config.entity_markers is not None
    save_classifier(clf, run.path("model"), extra=extra)
    logits = head_logits(clf, states) if states is not None else predict_logits(
        clf, texts, batch_size=cfg.batch_size * 2, progress=run.progress)
    calibrated, raw = clf.calibrated_proba(logits), scaled_proba(logits, 1.0)
    write_parquet(_frame(items["id"], {"p_": calibrated, "u_": raw}, pred=calibrated.argmax(axis=1), split=split),
                  run.path("predictions.parquet"))
    return {"epochs": len(clf.history), "best_epoch": clf.best_epoch, "temperature": clf.temperature,
            "calibration": clf.calibration,
            "seconds_per_epoch": clf.seconds_per_epoch, "mode": cfg.mode, "loss": cfg.loss,
            "loss_params": clf.loss_params, "transition": extra.get("transition"),
            "loss_search": clf.search, "search_seconds": clf.search_seconds,
            "valid_labels": valid_source, "select_by": cfg.select_by, "history": clf.history}


def evaluate_stage(run: Run) -> dict:
    start = time.perf_counter()
    items = run.read_parquet("items.parquet")
    gold = items["gold"].to_numpy()
    split = items["split"].to_numpy()
    agg = run.read_parquet("aggregate.parquet")
    refined = run.read_parquet("refined.parquet")
    preds = run.read_parquet("predictions.parquet")
    train, test = split == "train", split == "test"
    known = gold >= 0

    def label_acc(labels: np.ndarray, mask: np.ndarray) -> float | None:
        m = mask & known
        return accuracy(gold[m], labels[m]) if m.any() else None

    agg_label = agg["label"].to_numpy()
    metrics = {
        "stages": {
            "aggregate": {"label_accuracy": label_acc(agg_label, train),
                          "coverage": float(agg["covered"].to_numpy()[train].mean()) if train.any() else None,
                          "test_accuracy": label_acc(agg_label, test)},
            "denoise": {"label_accuracy": label_acc(refined["label"].to_numpy(), train),
                        **(run.summaries.get("denoise") or {})},
        },
        "test": classification_report(gold[test], proba_columns(preds, "p_")[test]) if (test & known).any() else {},
        "timings": dict(run.timings),
        "skipped_stages": list(run.skipped),
    }
    train_summary = run.summaries.get("train") or {}
    has_raw = any(c.startswith("u_") for c in preds.columns)
    if metrics["test"] and has_raw:  # "test" holds the calibrated figures; before calibration beside them
        metrics["test"]["uncalibrated"] = classification_report(gold[test], proba_columns(preds, "u_")[test])
        metrics["test"]["temperature"] = train_summary.get("temperature")
        metrics["test"]["calibration"] = train_summary.get("calibration", "temperature")
    metrics["timings"]["evaluate"] = time.perf_counter() - start
    write_json(metrics, run.path("metrics.json"))
    curves = {}
    if (test & known).any():
        m = test & known
        if has_raw:
            curves["before calibration"] = reliability_bins(gold[m], proba_columns(preds, "u_")[m])
        curves["after calibration" if has_raw else "classifier"] = reliability_bins(gold[m],
                                                                                    proba_columns(preds, "p_")[m])
    write_report(run.path("report.html"), run.cfg.name, metrics, curves, train_summary)
    return {"test_accuracy": metrics["test"].get("accuracy")}


STAGES = [
    Stage("label", ("items",), ("votes.parquet", "labelers.json"),
          lambda c: [c.label.model_dump(), lf_sources_digest(c.label.labeling_functions),
                     lf_sources_digest([p for e in c.label.llm for p in (e.template, e.examples_file) if p])],
          label_stage),
    Stage("aggregate", ("items", "label"), ("aggregate.parquet", "labelmodel.json"),
          lambda c: [c.aggregate.model_dump(), c.seed,
                     lf_sources_digest([c.aggregate.gold_path] if c.aggregate.gold_path else [])], aggregate_stage),
    Stage("neighbors", ("items", "aggregate"), ("embeddings.npy", "neighbors.parquet"),
          lambda c: [c.neighbors.model_dump(), c.seed], neighbors_stage),
    Stage("denoise", ("items", "aggregate", "neighbors"), ("refined.parquet",),
          lambda c: [c.denoise.model_dump(), c.seed], denoise_stage),
    Stage("train", ("items", "denoise"), ("model/config.json", "model/labelpipe.json", "predictions.parquet"),
          lambda c: [c.train.model_dump(), c.seed], train_stage),
    Stage("evaluate", ("items", "aggregate", "denoise", "train"), ("metrics.json", "report.html"),
          lambda c: None, evaluate_stage),
]
