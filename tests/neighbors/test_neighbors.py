"""FAISS index choice, chunked kNN distributions, training dynamics and clean selection, on generated data."""

import numpy as np
import pytest

from pipeline.neighbors.dynamics import candidate_sets, clean_by_dynamics, training_dynamics
from pipeline.neighbors.embed import embed_texts
from pipeline.neighbors.index import build_index, choose_index_kind, ivf_join_search, knn_label_distribution


def clustered(n=600, dim=16, n_classes=3, noise=0.3, spread=0.6, seed=0):
    """Unit vectors around one centre per class; labels flipped uniformly at rate `noise`."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim))
    gold = rng.integers(0, n_classes, n)
    x = centres[gold] + spread * rng.standard_normal((n, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    flip = rng.random(n) < noise
    noisy = np.where(flip, (gold + rng.integers(1, n_classes, n)) % n_classes, gold)
    return x, gold, noisy


def test_index_kind_by_size_and_bad_kind():
    assert choose_index_kind(1000, "auto", exact_max=5000) == "flat"
    assert choose_index_kind(10_000, "auto", exact_max=5000) == "ivf-join"
    assert choose_index_kind(10_000, "auto", exact_max=5000, gpu=True) == "ivf"
    assert choose_index_kind(10, "hnsw") == "hnsw"
    with pytest.raises(ValueError, match="unknown index kind 'annoy'"):
        choose_index_kind(10, "annoy")


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_find_the_exact_neighbours(kind):
    x, _, _ = clustered(n=3000, dim=32, n_classes=8, spread=0.5)
    exact = build_index(x, kind="flat").search(x[:200], 10)[1]
    approx = build_index(x, kind=kind, nprobe=16).search(x[:200], 10)[1]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall > 0.8


def test_knn_distribution_ivf_close_to_exact_and_chunks_agree():
    x, _, noisy = clustered(n=2000, dim=16, n_classes=4)
    labels = np.eye(4)[noisy]
    pool = np.ones(len(x), bool)
    exact = knn_label_distribution(x, labels, pool, k=10, index_kind="flat")
    chunked = knn_label_distribution(x, labels, pool, k=10, index_kind="flat", chunk_size=333)
    np.testing.assert_allclose(chunked, exact, atol=1e-6)
    approx = knn_label_distribution(x, labels, pool, k=10, index_kind="ivf", nprobe=16)
    assert np.mean(approx.argmax(1) == exact.argmax(1)) > 0.95
    np.testing.assert_allclose(approx.sum(1), 1.0, atol=1e-6)


def test_ivf_join_finds_the_exact_neighbours_and_serves_the_distribution():
    x, _, noisy = clustered(n=3000, dim=32, n_classes=8, spread=0.5)
    base = np.arange(0, 3000, 2)  # the pool: every other item
    exact = build_index(x[base], kind="flat").search(x, 10)[1]
    sims, nbrs = ivf_join_search(x, base, 10, nprobe=8, threads=2)
    assert sims.shape == nbrs.shape == (3000, 10) and (nbrs >= 0).all()
    assert (np.diff(sims, axis=1) <= 1e-6).all()  # best first
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(nbrs, exact)])
    assert recall > 0.8
    # lists above 1.5x the mean size are split by a second k-means: still the right neighbours
    _, split = ivf_join_search(x, base, 10, nprobe=8, max_ratio=1.5, threads=2)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(split, exact)]) > 0.7
    with pytest.raises(ValueError, match="max_ratio must be > 1"):
        ivf_join_search(x, base, 10, max_ratio=1.0)
    labels = np.eye(8)[noisy]
    pool = np.zeros(3000, bool)
    pool[base] = True
    flat = knn_label_distribution(x, labels, pool, k=10, index_kind="flat")
    joined = knn_label_distribution(x, labels, pool, k=10, index_kind="ivf-join")
    assert np.mean(joined.argmax(1) == flat.argmax(1)) > 0.95
    with pytest.raises(ValueError, match="not an index"):
        build_index(x, kind="ivf-join")


def test_balanced_distribution_and_clean_items_keep_their_label():
    # two clusters; the pool over-uses class 0 (it labels most of cluster 1 as 0 too)
    x, gold, _ = clustered(n=400, dim=8, n_classes=2, spread=0.8, seed=3)
    noisy = np.where((gold == 1) & (np.arange(400) % 3 != 0), 0, gold)
    labels = np.eye(2)[noisy]
    pool = np.ones(400, bool)
    plain = knn_label_distribution(x, labels, pool, k=10, index_kind="flat")
    balanced = knn_label_distribution(x, labels, pool, k=10, index_kind="flat", balance=True)
    np.testing.assert_allclose(balanced.sum(1), 1.0, atol=1e-6)
    ones = gold == 1
    assert balanced[ones, 1].mean() > plain[ones, 1].mean() + 0.1
    assert np.mean(balanced.argmax(1) == gold) > np.mean(plain.argmax(1) == gold)
    clean = np.arange(400) < 100
    cands = candidate_sets(balanced, labels=noisy, clean=clean)
    np.testing.assert_array_equal(cands.weights[clean], np.eye(2)[noisy[clean]])
    assert cands.certain[clean].all() and (cands.kind[clean] == "clean").all()
    assert (cands.kind[~clean] != "clean").all()


def test_knn_distribution_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="same number of rows"):
        knn_label_distribution(np.zeros((5, 4), np.float32), np.eye(3)[[0, 1, 2, 0]], np.ones(5, bool))


def test_training_dynamics_shapes_seed_and_unlabelled_items():
    x, _, noisy = clustered(n=300)
    labels = noisy.copy()
    labels[:10] = -1
    fit = np.arange(300) < 250
    a = training_dynamics(x, labels, fit, 3, n_heads=2, epochs=4, hidden=32, seed=1)
    b = training_dynamics(x, labels, fit, 3, n_heads=2, epochs=4, hidden=32, seed=1)
    assert a.proba.shape == (2, 4, 300, 3) and a.distance.shape == (2, 4, 300)
    np.testing.assert_array_equal(a.proba, b.proba)
    assert np.isnan(a.distance[:, :, :10]).all() and not np.isnan(a.distance[:, :, 10:]).any()
    np.testing.assert_allclose(a.proba.sum(-1), 1.0, atol=1e-5)
    assert a.features().shape == (300, 12)


def test_training_dynamics_needs_a_label():
    x, _, _ = clustered(n=20)
    with pytest.raises(ValueError, match="no labelled item"):
        training_dynamics(x, -np.ones(20, int), np.ones(20, bool), 3)


def test_clean_by_dynamics_prefers_correct_labels():
    x, gold, noisy = clustered(n=600, noise=0.3)
    dyn = training_dynamics(x, noisy, np.ones(600, bool), 3, epochs=6, seed=0)
    clean = clean_by_dynamics(dyn, np.ones(600, bool), 0.5)
    assert clean.sum() == 300
    base = np.mean(noisy == gold)
    assert np.mean(noisy[clean] == gold[clean]) > base + 0.15
    # and the kNN over the clean pool is a better labeller than the noisy labels
    knn = knn_label_distribution(x, np.eye(3)[noisy], clean, k=10)
    assert np.mean(knn.argmax(1) == gold) > base
    cands = candidate_sets(knn)
    assert np.mean(knn.argmax(1)[cands.certain] == gold[cands.certain]) > 0.9


def test_embed_texts_cache_resumes(tmp_path):
    texts = ["the cat sat on the mat", "stocks fell sharply today", "rain is expected tomorrow"]
    first = embed_texts(texts, "default", cache_dir=tmp_path, chunk_size=2, progress=False)
    files = sorted(tmp_path.glob("chunk-*.npy"))
    assert first.shape == (3, 384) and len(files) == 2
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = embed_texts(texts, "default", cache_dir=tmp_path, chunk_size=2, progress=False)
    np.testing.assert_array_equal(first, again)
    assert [f.stat().st_mtime_ns for f in files] == mtimes
