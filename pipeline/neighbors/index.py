"""A FAISS index chosen by size, and kNN label distributions over it."""

from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger(__name__)

EXACT_INDEX_MAX = 50_000  # above this many vectors an approximate index is used
INDEX_KINDS = ("auto", "flat", "ivf", "ivf-join", "hnsw")

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
