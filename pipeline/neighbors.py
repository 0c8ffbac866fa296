"""Sentence embeddings, a FAISS index chosen by size, and kNN label distributions (SiDyP candidate sets)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

EXACT_INDEX_MAX = 50_000  # above this many vectors an approximate (IVF) index is used


def embed_texts(texts: list[str], model: str, batch_size: int = 64, cache_dir: Path | None = None,
                chunk_size: int = 2048, progress: bool = True) -> np.ndarray:
    """(N, D) float32 L2-normalized sentence embeddings.

    With `cache_dir`, finished chunks are saved as they complete, so a killed run resumes where it
    stopped; chunk files are keyed by model and chunk content.
    """
    import hashlib

    from sentence_transformers import SentenceTransformer

    from .models import resolve_encoder, torch_device

    encoder = None
    parts = []
    starts = range(0, len(texts), chunk_size)
    for start in tqdm(starts, desc="embed", disable=not progress or len(starts) < 2):
        chunk = texts[start:start + chunk_size]
        key = hashlib.sha256("\x1f".join([model, *chunk]).encode()).hexdigest()[:16]
        path = cache_dir / f"chunk-{start:09d}-{key}.npy" if cache_dir else None
        if path is not None and path.exists():
            parts.append(np.load(path))
            continue
        if encoder is None:
            encoder = SentenceTransformer(resolve_encoder(model), device=torch_device())
        vecs = encoder.encode(chunk, batch_size=batch_size, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=progress and len(starts) < 2)
        vecs = vecs.astype(np.float32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, vecs)
            tmp.replace(path)
        parts.append(vecs)
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def build_index(vectors: np.ndarray, exact_max: int = EXACT_INDEX_MAX, seed: int = 0):
    """A FAISS inner-product index over L2-normalized (N, D) vectors: exact up to `exact_max`, IVF beyond.

    Uses the GPU when faiss was built with it and one is visible.
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    if n <= exact_max:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(min(4 * np.sqrt(n), n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = vectors[np.random.default_rng(seed).choice(n, size=min(n, 64 * nlist), replace=False)]
        index.train(sample)
        index.nprobe = 8
    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(vectors)
    return index


def knn_label_distribution(embeddings: np.ndarray, label_proba: np.ndarray, pool: np.ndarray, k: int = 10,
                           eps: float = 1e-6) -> np.ndarray:
    """(N, K) distance-weighted label distribution of each item's k nearest neighbours in `pool`.

    embeddings: (N, D) L2-normalized. label_proba: (N, K) labels of the items (one-hot or soft).
    pool: (N,) bool, the items allowed as neighbours (e.g. judged clean). An item is never its own
    neighbour. Weights are 1 / (L2 distance + eps). Items with no neighbour get a uniform row.
    """
    n, n_classes = label_proba.shape
    pool_idx = np.flatnonzero(pool)
    out = np.full((n, n_classes), 1.0 / n_classes)
    if len(pool_idx) == 0:
        return out
    index = build_index(embeddings[pool_idx])
    kk = min(k + 1, len(pool_idx))
    sims, nbrs = index.search(np.ascontiguousarray(embeddings, dtype=np.float32), kk)
    valid = nbrs >= 0
    global_nbrs = np.where(valid, pool_idx[np.maximum(nbrs, 0)], -1)
    is_self = global_nbrs == np.arange(n)[:, None]
    valid &= ~is_self
    # keep the first k valid neighbours of each row
    valid &= np.cumsum(valid, axis=1) <= k
    dist = np.sqrt(np.maximum(2.0 - 2.0 * sims, 0.0))
    weights = np.divide(1.0, dist + eps, out=np.zeros_like(dist), where=valid)
    dist_labels = np.einsum("nk,nkc->nc", weights, label_proba[np.maximum(global_nbrs, 0)])
    total = dist_labels.sum(axis=1, keepdims=True)
    return np.where(total > 0, dist_labels / np.maximum(total, 1e-12), out)


@dataclass
class CandidateSets:
    """SiDyP candidate sets. weights: (N, K) prior over candidates (zero = not a candidate)."""

    weights: np.ndarray
    certain: np.ndarray  # (N,) bool: a single candidate
    kind: np.ndarray  # (N,) "certain" | "dominant" | "uncertain"


def candidate_sets(knn_proba: np.ndarray, certain_threshold: float = 0.9,
                   dominant_threshold: float = 0.8) -> CandidateSets:
    """Certain (top class >= certain_threshold: one-hot), dominant pair (top two sum >=
    dominant_threshold: those two, renormalized), or uncertain (every class with nonzero weight)."""
    n, n_classes = knn_proba.shape
    order = np.argsort(-knn_proba, axis=1)
    top1 = knn_proba[np.arange(n), order[:, 0]]
    top2 = knn_proba[np.arange(n), order[:, 1]] if n_classes > 1 else np.zeros(n)
    certain = top1 >= certain_threshold
    dominant = ~certain & (top1 + top2 >= dominant_threshold)
    weights = knn_proba.copy()
    weights[certain] = np.eye(n_classes)[order[certain, 0]]
    pair = np.zeros_like(weights)
    rows = np.flatnonzero(dominant)
    pair[rows, order[rows, 0]] = top1[rows]
    pair[rows, order[rows, 1]] = top2[rows]
    weights[dominant] = pair[dominant] / pair[dominant].sum(axis=1, keepdims=True)
    kind = np.where(certain, "certain", np.where(dominant, "dominant", "uncertain"))
    return CandidateSets(weights, certain, kind)


def clean_by_confidence(confidence: np.ndarray, eligible: np.ndarray, fraction: float) -> np.ndarray:
    """(N,) bool: the `fraction` of eligible items with the highest label-model confidence."""
    idx = np.flatnonzero(eligible)
    keep = max(1, int(round(fraction * len(idx)))) if len(idx) else 0
    chosen = idx[np.argsort(-confidence[idx], kind="stable")[:keep]]
    mask = np.zeros(len(confidence), dtype=bool)
    mask[chosen] = True
    return mask
