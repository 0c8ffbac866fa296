"""Sentence embeddings, a FAISS index chosen by size, and kNN label distributions (SiDyP candidate sets)."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

EXACT_INDEX_MAX = 50_000  # above this many vectors an approximate index is used
INDEX_KINDS = ("auto", "flat", "ivf", "ivf-join", "hnsw")


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


def _gpu_available() -> bool:
    import faiss

    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def choose_index_kind(n: int, kind: str = "auto", exact_max: int = EXACT_INDEX_MAX, gpu: bool = False) -> str:
    """The index kind for `n` vectors: `kind` itself unless "auto", then "flat" (exact) up to `exact_max`
    and beyond it "ivf" on a GPU, "ivf-join" on CPU (the same IVF partition, but the queries of one list
    are searched together with one matrix product: many times faster than per-query list scans)."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind '{kind}'; use one of {', '.join(INDEX_KINDS)}")
    if kind != "auto":
        return kind
    return "flat" if n <= exact_max else ("ivf" if gpu else "ivf-join")


def build_index(vectors: np.ndarray, exact_max: int = EXACT_INDEX_MAX, seed: int = 0, kind: str = "auto",
                nprobe: int = 8, hnsw_m: int = 32, use_gpu: bool = True):
    """A FAISS inner-product index over L2-normalized (N, D) vectors.

    kind: "flat" (exact), "ivf" (IVFFlat, nlist `ivf_nlist`, k-means (10 iterations) on a seeded sample
    of 30 per list, `nprobe` lists searched), "hnsw" (HNSW flat, `hnsw_m` links, efSearch 64), or "auto" (see `choose_index_kind`).
    Flat and IVF indexes go to the GPU when faiss was built with it, one is visible and `use_gpu`.
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    kind = choose_index_kind(n, kind, exact_max)
    if kind == "ivf-join":
        raise ValueError("build_index: 'ivf-join' is a batched search, not an index; use ivf_join_search")
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "ivf":
        nlist = ivf_nlist(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.niter = 10
        index.cp.min_points_per_centroid = 1  # a 30-per-list sample is enough; no warning
        sample = vectors[np.sort(np.random.default_rng(seed).choice(n, size=min(n, 30 * nlist), replace=False))]
        index.train(sample)
        index.nprobe = min(nprobe, nlist)
    else:
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 64
    if use_gpu and kind != "hnsw" and hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(vectors)
    return index


def ivf_nlist(n: int) -> int:
    """Inverted lists for `n` vectors: ~4 sqrt(n), at least 30 vectors per list."""
    return int(max(1, min(4 * np.sqrt(n), n // 30, 65536)))


def ivf_join_search(queries: np.ndarray, base_rows: np.ndarray, k: int, nprobe: int = 8, nlist: int | None = None,
                    seed: int = 0, train_per_list: int = 20, niter: int = 8, max_ratio: float = 3.0,
                    threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k nearest base vectors by inner product for every row of `queries` (N, D); the base
    is the subset `queries[base_rows]` (M,) (the kNN pool is a subset of the items).

    The base is partitioned as an IVF index is (faiss k-means on a seeded sample of `train_per_list`
    vectors per list, nlist ~ sqrt(nprobe * M) balancing list assignment against list scanning); each
    query goes to its nearest list, and all queries of list L are searched at once, with one exact
    matrix product (faiss.knn), against the base vectors of the `nprobe` lists whose centroids are
    nearest L's. K-means on near-uniform high-dimensional data leaves a few huge lists, and the work
    of a list grows with (its queries x its probed base vectors), so a list holding more than
    `max_ratio` times the mean base count is split by a second k-means. Lists run on `threads` Python threads (default: faiss's OpenMP thread count) with one
    OpenMP thread each: small products under OpenMP stall when the cores are shared.
    Returns (N, k) similarities (-inf = none) and indices into `base_rows` (-1 = none), best first.
    """
    from concurrent.futures import ThreadPoolExecutor

    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    base_rows = np.asarray(base_rows)
    if max_ratio <= 1:
        raise ValueError(f"ivf_join_search: max_ratio must be > 1, got {max_ratio}")
    m, d = len(base_rows), queries.shape[1]
    nlist = int(min(nlist or max(1, min(np.sqrt(nprobe * m), m // train_per_list)), m))
    threads = threads or faiss.omp_get_max_threads()
    rng = np.random.default_rng(seed)
    sample = queries[base_rows[np.sort(rng.choice(m, size=min(m, train_per_list * nlist), replace=False))]]
    t0 = time.perf_counter()
    km = faiss.Kmeans(d, nlist, niter=niter, seed=seed, spherical=True, min_points_per_centroid=1,
                      max_points_per_centroid=train_per_list)
    km.train(sample)
    centroids = km.centroids
    t1 = time.perf_counter()
    query_list = _assign(queries, centroids, threads)
    centroids, query_list = _split_large_lists(queries, base_rows, centroids, query_list, max_ratio, seed, threads)
    nlist = len(centroids)
    t2 = time.perf_counter()
    _, probes = faiss.knn(centroids, centroids, min(nprobe, nlist), metric=faiss.METRIC_INNER_PRODUCT)
    base_list = query_list[base_rows]
    base_order = np.argsort(base_list, kind="stable")
    base_sorted = queries[base_rows[base_order]]
    bounds = np.searchsorted(base_list[base_order], np.arange(nlist + 1))
    query_order = np.argsort(query_list, kind="stable")
    qbounds = np.searchsorted(query_list[query_order], np.arange(nlist + 1))
    sims = np.full((len(queries), k), -np.inf, np.float32)
    nbrs = np.full((len(queries), k), -1, np.int64)

    def search_list(lst: int) -> None:
        rows = query_order[qbounds[lst]:qbounds[lst + 1]]
        cand = np.concatenate([np.arange(bounds[p], bounds[p + 1]) for p in probes[lst] if p >= 0])
        if len(rows) == 0 or len(cand) == 0:
            return
        faiss.omp_set_num_threads(1)
        kk = min(k, len(cand))
        s, loc = faiss.knn(queries[rows], base_sorted[cand], kk, metric=faiss.METRIC_INNER_PRODUCT)
        sims[rows, :kk] = s
        nbrs[rows, :kk] = np.where(loc >= 0, base_order[cand[np.maximum(loc, 0)]], -1)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(search_list, range(nlist)))
    log.info("ivf-join: %d queries, %d base, %d lists, nprobe %d, %d threads: k-means %.1fs, assign %.1fs, "
             "search %.1fs", len(queries), m, nlist, nprobe, threads, t1 - t0, t2 - t1, time.perf_counter() - t2)
    return sims, nbrs


def _assign(queries: np.ndarray, centroids: np.ndarray, threads: int, block: int = 16384) -> np.ndarray:
    """(N,) nearest centroid (inner product) of each query; blocks on `threads` Python threads with one
    OpenMP thread each."""
    from concurrent.futures import ThreadPoolExecutor

    import faiss

    out = np.empty(len(queries), np.int64)

    def run(start: int) -> None:
        faiss.omp_set_num_threads(1)
        out[start:start + block] = faiss.knn(queries[start:start + block], centroids, 1,
                                             metric=faiss.METRIC_INNER_PRODUCT)[1][:, 0]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(run, range(0, len(queries), block)))
    return out


def _split_large_lists(queries: np.ndarray, base_rows: np.ndarray, centroids: np.ndarray, query_list: np.ndarray,
                       max_ratio: float, seed: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Split every list whose base count exceeds `max_ratio` x the mean into ~count/mean sub-lists
    (k-means on its base vectors); its queries move to the nearest sub-centroid."""
    import faiss

    base_list = query_list[base_rows]
    counts = np.bincount(base_list, minlength=len(centroids))
    mean = max(1.0, counts.mean())
    centroids, query_list = centroids.copy(), query_list.copy()
    big = np.flatnonzero(counts > max_ratio * mean)
    if len(big) == 0:
        return centroids, query_list
    base_order = np.argsort(base_list, kind="stable")
    bounds = np.searchsorted(base_list[base_order], np.arange(len(counts) + 1))
    query_order = np.argsort(query_list, kind="stable")
    qbounds = np.searchsorted(query_list[query_order], np.arange(len(counts) + 1))
    added = []
    next_id = len(centroids)
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # many small k-means: OpenMP only stalls them when the cores are shared
    try:
        for lst in big:
            parts = int(np.ceil(counts[lst] / mean))
            members = base_rows[base_order[bounds[lst]:bounds[lst + 1]]]
            km = faiss.Kmeans(queries.shape[1], parts, niter=8, seed=seed, spherical=True,
                              min_points_per_centroid=1, max_points_per_centroid=64)
            km.train(np.ascontiguousarray(queries[members]))
            rows = query_order[qbounds[lst]:qbounds[lst + 1]]
            sub = faiss.knn(np.ascontiguousarray(queries[rows]), km.centroids, 1,
                            metric=faiss.METRIC_INNER_PRODUCT)[1][:, 0]
            query_list[rows] = np.where(sub == 0, lst, next_id + sub - 1)
            centroids[lst] = km.centroids[0]
            added.append(km.centroids[1:])
            next_id += parts - 1
    finally:
        faiss.omp_set_num_threads(previous)
    return np.ascontiguousarray(np.concatenate([centroids, *added])), query_list


def knn_label_distribution(embeddings: np.ndarray, label_proba: np.ndarray, pool: np.ndarray, k: int = 10,
                           eps: float = 1e-6, index_kind: str = "auto", exact_max: int = EXACT_INDEX_MAX,
                           nprobe: int = 8, use_gpu: bool = True, chunk_size: int = 65536,
                           seed: int = 0, balance: bool = False) -> np.ndarray:
    """(N, K) distance-weighted label distribution of each item's k nearest neighbours in `pool`.

    embeddings: (N, D) L2-normalized. label_proba: (N, K) labels of the items (one-hot or soft).
    pool: (N,) bool, the items allowed as neighbours (e.g. judged clean). An item is never its own
    neighbour. Weights are 1 / (L2 distance + eps). Items with no neighbour get a uniform row.
    balance: divide each class's vote by its (add-one smoothed) frequency in the pool before
    normalizing, so a class the noisy labels over-use does not win every mixed neighbourhood.
    Queries run in chunks of `chunk_size` rows, so memory stays O(chunk_size * k * K) beyond the index.
    """
    n, n_classes = label_proba.shape
    if embeddings.shape[0] != n or pool.shape[0] != n:
        raise ValueError(f"embeddings ({embeddings.shape[0]}), label_proba ({n}) and pool ({pool.shape[0]}) "
                         "must have the same number of rows")
    pool_idx = np.flatnonzero(pool)
    out = np.full((n, n_classes), 1.0 / n_classes)
    if len(pool_idx) == 0:
        return out
    kk = min(k + 1, len(pool_idx))
    kind = choose_index_kind(len(pool_idx), index_kind, exact_max, gpu=use_gpu and _gpu_available())
    if kind == "ivf-join":
        joined = ivf_join_search(embeddings, pool_idx, kk, nprobe=nprobe, seed=seed)
    else:
        index = build_index(embeddings[pool_idx], exact_max=exact_max, seed=seed, kind=kind, nprobe=nprobe,
                            use_gpu=use_gpu)
    pool_labels = np.asarray(label_proba, dtype=np.float32)[pool_idx]
    class_scale = np.ones(n_classes, np.float32)
    if balance:
        class_scale = ((len(pool_idx) + n_classes) / (pool_labels.sum(axis=0) + 1.0)).astype(np.float32)
    for start in range(0, n, chunk_size):
        rows = np.arange(start, min(n, start + chunk_size))
        if kind == "ivf-join":
            sims, nbrs = joined[0][rows], joined[1][rows]
        else:
            sims, nbrs = index.search(np.ascontiguousarray(embeddings[rows], dtype=np.float32), kk)
        valid = nbrs >= 0
        global_nbrs = np.where(valid, pool_idx[np.maximum(nbrs, 0)], -1)
        valid &= global_nbrs != rows[:, None]  # never its own neighbour
        valid &= np.cumsum(valid, axis=1) <= k  # the first k valid neighbours of each row
        dist = np.sqrt(np.maximum(2.0 - 2.0 * sims, 0.0))
        weights = np.divide(1.0, dist + eps, out=np.zeros_like(dist), where=valid)
        dist_labels = np.einsum("nk,nkc->nc", weights, pool_labels[np.maximum(nbrs, 0)]) * class_scale
        total = dist_labels.sum(axis=1, keepdims=True)
        out[rows] = np.where(total > 0, dist_labels / np.maximum(total, 1e-12), out[rows])
    return out


@dataclass
class CandidateSets:
    """SiDyP candidate sets. weights: (N, K) prior over candidates (zero = not a candidate)."""

    weights: np.ndarray
    certain: np.ndarray  # (N,) bool: a single candidate
    kind: np.ndarray  # (N,) "certain" | "dominant" | "uncertain"


def candidate_sets(knn_proba: np.ndarray, certain_threshold: float = 0.9,
                   dominant_threshold: float = 0.8, labels: np.ndarray | None = None,
                   clean: np.ndarray | None = None) -> CandidateSets:
    """Certain (top class >= certain_threshold: one-hot), dominant pair (top two sum >=
    dominant_threshold: those two, renormalized), or uncertain (every class with nonzero weight).

    With `labels` (N,) int (-1 = none) and `clean` (N,) bool, as in SiDyP the items judged clean keep
    their own label as their single (certain) candidate, kind "clean"; the kNN prior is for the rest.
    """
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
    if labels is not None and clean is not None:
        keep = np.asarray(clean, dtype=bool) & (np.asarray(labels) >= 0)
        weights[keep] = np.eye(n_classes)[np.asarray(labels)[keep]]
        certain = certain | keep
        kind = np.where(keep, "clean", kind)
    return CandidateSets(weights, certain, kind)


def clean_by_confidence(confidence: np.ndarray, eligible: np.ndarray, fraction: float) -> np.ndarray:
    """(N,) bool: the `fraction` of eligible items with the highest label-model confidence."""
    idx = np.flatnonzero(eligible)
    keep = max(1, int(round(fraction * len(idx)))) if len(idx) else 0
    chosen = idx[np.argsort(-confidence[idx], kind="stable")[:keep]]
    mask = np.zeros(len(confidence), dtype=bool)
    mask[chosen] = True
    return mask


@dataclass
class TrainingDynamics:
    """What small classifier heads fit on the noisy labels did, epoch by epoch. M heads, E epochs.

    proba: (M, E, N, K) softmax of each head after each epoch (eval mode).
    distance: (M, E, N) L2 distance of each item's hidden vector to the centroid of its noisy class
    (centroids from the fitted items' noisy labels only); NaN for items without a label.
    """

    proba: np.ndarray
    distance: np.ndarray

    def features(self) -> np.ndarray:
        """(N, E*K) the head-averaged per-epoch class probabilities: the dynamics feature W."""
        mean = self.proba.mean(axis=0)  # (E, N, K)
        return np.transpose(mean, (1, 0, 2)).reshape(mean.shape[1], -1).astype(np.float32)

    def final_proba(self) -> np.ndarray:
        """(N, K) the head-averaged probabilities after the last epoch."""
        return self.proba[:, -1].mean(axis=0)


@contextmanager
def torch_threads(n: int | None):
    """Run a block with `n` torch CPU threads (None: unchanged); small matrices run fastest on one."""
    import torch

    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def training_dynamics(embeddings: np.ndarray, labels: np.ndarray, fit: np.ndarray, n_classes: int,
                      n_heads: int = 3, epochs: int = 10, hidden: int = 256, lr: float = 1e-3,
                      weight_decay: float = 1e-4, batch_size: int = 64, seed: int = 0,
                      threads: int | None = 1) -> TrainingDynamics:
    """Fit `n_heads` small MLP heads (D -> hidden -> K, dropout 0.1 / 0.2 / 0.3 ...) on the frozen
    embeddings (N, D) with the noisy `labels` (N,) int (-1 = none) of the items in `fit` (N,) bool,
    and record every item's probabilities and centroid distance after each epoch. CPU, seconds."""
    with torch_threads(threads):
        return _training_dynamics(embeddings, labels, fit, n_classes, n_heads, epochs, hidden, lr, weight_decay,
                                  batch_size, seed)


def _training_dynamics(embeddings, labels, fit, n_classes, n_heads, epochs, hidden, lr, weight_decay, batch_size,
                       seed) -> TrainingDynamics:
    import torch

    labels = np.asarray(labels)
    fit = np.asarray(fit, dtype=bool) & (labels >= 0)
    if not fit.any():
        raise ValueError("training_dynamics: no labelled item to fit the heads on")
    x_all = torch.as_tensor(np.ascontiguousarray(embeddings, dtype=np.float32))
    y_all = torch.as_tensor(np.array(labels, dtype=np.int64))
    fit_idx = torch.as_tensor(np.flatnonzero(fit))
    n = len(labels)
    proba = np.zeros((n_heads, epochs, n, n_classes), dtype=np.float32)
    distance = np.full((n_heads, epochs, n), np.nan, dtype=np.float32)
    labelled = torch.as_tensor(labels >= 0)
    for m in range(n_heads):
        torch.manual_seed(seed * 1000 + m)
        body = torch.nn.Sequential(torch.nn.Dropout(0.1 * (m + 1)), torch.nn.Linear(x_all.shape[1], hidden),
                                   torch.nn.ReLU())
        head = torch.nn.Linear(hidden, n_classes)
        params = [*body.parameters(), *head.parameters()]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed * 1000 + m)
        for epoch in range(epochs):
            body.train()
            order = fit_idx[torch.randperm(len(fit_idx), generator=gen)]
            for start in range(0, len(order), batch_size):
                b = order[start:start + batch_size]
                loss = torch.nn.functional.cross_entropy(head(body(x_all[b])), y_all[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
            body.eval()
            with torch.no_grad():
                h = torch.cat([body(x_all[i:i + 65536]) for i in range(0, n, 65536)])
                proba[m, epoch] = torch.softmax(head(h), dim=-1).numpy()
                onehot = torch.nn.functional.one_hot(y_all[fit_idx], n_classes).float()  # (F, K)
                counts = onehot.sum(0)
                centroids = (onehot.T @ h[fit_idx]) / counts.clamp_min(1)[:, None]  # (K, H)
                lab = torch.where(labelled, y_all, 0)
                d = (h - centroids[lab]).norm(dim=1)
                d[~labelled | (counts[lab] == 0)] = float("nan")
                distance[m, epoch] = d.numpy()
    return TrainingDynamics(proba, distance)


def clean_by_dynamics(dynamics: TrainingDynamics, eligible: np.ndarray, fraction: float) -> np.ndarray:
    """(N,) bool: the `fraction` of eligible items whose hidden vectors stay closest to their noisy
    class centroid over training (score = mean over heads of mean_e(d) + std_e(d), lowest = clean)."""
    d = dynamics.distance  # (M, E, N)
    known = ~np.isnan(d).any(axis=(0, 1))
    score = np.full(d.shape[2], np.inf)
    dk = d[:, :, known]
    score[known] = (dk.mean(axis=1) + dk.std(axis=1, ddof=1 if d.shape[1] > 1 else 0)).mean(axis=0)
    return clean_by_confidence(-score, np.asarray(eligible, dtype=bool) & np.isfinite(score), fraction)
