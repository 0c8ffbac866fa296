"""Run the configured LLM labelers over an items table (the label stage's LLM part)."""

from __future__ import annotations

import json

import pandas as pd

from pipeline.data import read_table, to_class_index

from . import make_backend
from .cache import LLMCache
from .labeler import LabelerResult, LLMLabeler


def read_examples(path: str, classes: list[str]) -> list[dict]:
    """Few-shot pool from a csv / jsonl / parquet file with columns text, label (class name or index)."""
    frame = read_table(path)
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise ValueError(f"examples_file {path}: missing column(s) {', '.join(sorted(missing))}")
    out = []
    for i, row in enumerate(frame.itertuples(index=False)):
        k = to_class_index(row.label, classes)
        if k is None or k < 0:
            raise ValueError(f"examples_file {path}, row {i + 1}, field label: '{row.label}' is not one of "
                             f"{', '.join(classes)}")
        out.append({"text": str(row.text), "label": classes[k]})
    return out


def build_labelers(entries, classes: list[str], cache: LLMCache | None) -> list[LLMLabeler]:
    """LLMLabeler objects for config entries (LLMLabelerConfig); entries with the same backend,
    model and parameters share one backend object (one model in memory)."""
    backends: dict[str, object] = {}
    labelers = []
    for e in entries:
        params = dict(e.params)
        if e.model is not None:
            params["model"] = e.model
        key = json.dumps([e.backend, params], sort_keys=True, default=str)
        if key not in backends:
            backends[key] = make_backend(e.backend, **params)
        examples = [ex.model_dump() for ex in e.examples]
        if e.examples_file:
            examples += read_examples(e.examples_file, classes)
        try:
            labelers.append(LLMLabeler(e.name, backends[key], classes, template=e.template, task=e.task,
                                       verbalizers=e.verbalizers, examples=examples, shots=e.shots,
                                       select=e.select, encoder=e.encoder, max_chars=e.max_chars,
                                       abstain_below=e.abstain_below, chunk_size=e.chunk_size, cache=cache,
                                       calibrate=e.calibrate))
        except ValueError as err:
            msg = str(err)
            raise ValueError(msg if msg.startswith("labeler") else f"labeler '{e.name}': {msg}") from None
    return labelers


def run_labelers(labelers: list[LLMLabeler], items: pd.DataFrame,
                 progress: bool = False) -> list[LabelerResult]:
    results = []
    try:
        for lab in labelers:
            results.append(lab.label(items, progress=progress))
    finally:
        for b in {id(lab.backend): lab.backend for lab in labelers}.values():
            b.close()
    return results


def answers_frame(ids, labelers: list[LLMLabeler], results: list[LabelerResult]) -> pd.DataFrame:
    """Long table for inspection: id, labeler, vote, abstain, raw answer, p_0..p_{K-1}."""
    frames = []
    for lab, res in zip(labelers, results):
        f = pd.DataFrame({"id": ids, "labeler": lab.name, "vote": res.votes, "abstain": res.abstain,
                          "raw": res.raw})
        for k in range(res.proba.shape[1]):
            f[f"p_{k}"] = res.proba[:, k]
        frames.append(f)
    return pd.concat(frames, ignore_index=True)
