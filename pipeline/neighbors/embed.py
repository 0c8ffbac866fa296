"""Sentence embeddings with sentence-transformers, cached per chunk so a killed run resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..artifacts import write_npy


def embed_texts(texts: list[str], model: str, batch_size: int = 64, cache_dir: Path | None = None,
                chunk_size: int = 2048, progress: bool = True) -> np.ndarray:
    """(N, D) float32 L2-normalized sentence embeddings.

    With `cache_dir`, finished chunks are saved as they complete, so a killed run resumes where it
    stopped; chunk files are keyed by model and chunk content.
    """
    import hashlib

    from sentence_transformers import SentenceTransformer

    from ..encoders import resolve_encoder, torch_device

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
            write_npy(vecs, path)
        parts.append(vecs)
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
