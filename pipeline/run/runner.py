"""The runner: executes the stages in order, writes their artifacts, and skips a stage whose inputs
and config are unchanged (content fingerprints), so a killed run resumes where it stopped.

Each stage's state file (`.state/<stage>.json`) is written last, after its artifacts are in place, so
a stage killed half-way simply runs again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .. import __version__
from ..artifacts import file_digest, fingerprint, write_json, write_parquet
from ..config import RunConfig
from ..data import LoadedItems, load_items

log = logging.getLogger("labelpipe")


@dataclass
class Stage:
    name: str
    deps: tuple[str, ...]
    outputs: tuple[str, ...]
    config: Callable[[RunConfig], object]
    fn: Callable[[Run], dict | None]


class Run:
    """One run folder: the config, the artifacts and the per-stage state."""

    def __init__(self, cfg: RunConfig, progress: bool = True):
        self.cfg = cfg
        self.dir = cfg.run_dir
        self.state_dir = self.dir / ".state"
        self.progress = progress
        self.fingerprints: dict[str, str] = {}
        self.summaries: dict[str, dict] = {}
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []

    def path(self, name: str) -> Path:
        return self.dir / name

    def read_parquet(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.path(name))

    def read_json(self, name: str):
        return json.loads(self.path(name).read_text())

    @property
    def classes(self) -> list[str]:
        return self.read_json("classes.json")["classes"]

    def state(self, stage: str) -> dict | None:
        path = self.state_dir / f"{stage}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def execute(self, stage: Stage) -> None:
        fp = fingerprint(stage.name, __version__, stage.config(self.cfg), [self.fingerprints[d] for d in stage.deps])
        old = self.state(stage.name)
        if old and old.get("fingerprint") == fp and all(self.path(o).exists() for o in stage.outputs):
            log.info("stage %-9s skipped (inputs and config unchanged)", stage.name)
            self.fingerprints[stage.name] = fp
            self.summaries[stage.name] = old.get("summary") or {}
            self.timings[stage.name] = old.get("seconds", 0.0)
            self.skipped.append(stage.name)
            return
        log.info("stage %-9s running", stage.name)
        start = time.perf_counter()
        summary = stage.fn(self) or {}
        seconds = time.perf_counter() - start
        self.fingerprints[stage.name] = fp
        self.summaries[stage.name] = summary
        self.timings[stage.name] = seconds
        write_json({"fingerprint": fp, "seconds": seconds, "summary": summary}, self.state_dir / f"{stage.name}.json")
        log.info("stage %-9s done in %.1fs %s", stage.name, seconds, _short(summary))


def _short(summary: dict) -> str:
    flat = {k: v for k, v in summary.items() if isinstance(v, (int, float, str))}
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in flat.items())


def _setup_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    from rich.console import Console
    from rich.logging import RichHandler

    if not any(isinstance(h, RichHandler) for h in log.handlers):  # one console handler per process
        # on stderr: stdout carries the results (the run folder, the lf-analysis table)
        log.addHandler(RichHandler(console=Console(stderr=True), show_path=False, show_time=False))
    return handler


def write_items(run: Run, loaded: LoadedItems) -> str:
    """Write items.parquet when the loaded items changed. Returns the items' fingerprint."""
    for err in loaded.skipped[:20]:
        log.warning("skipped bad row: %s", err)
    if loaded.skipped:
        log.warning("skipped %d bad rows of %s (data.on_error: skip)", len(loaded.skipped), loaded.source)
    fp = fingerprint(loaded.frame, loaded.classes, loaded.annotation_columns)
    old = run.state("items")
    if not (old and old.get("fingerprint") == fp and run.path("items.parquet").exists()):
        write_parquet(loaded.frame, run.path("items.parquet"))
        write_json({"classes": loaded.classes, "annotation_columns": loaded.annotation_columns},
                   run.path("classes.json"))
        write_json({"fingerprint": fp, "summary": {"n_items": len(loaded.frame)}}, run.state_dir / "items.json")
    counts = loaded.frame["split"].value_counts().to_dict()
    log.info("items: %d (%s), %d classes, %d skipped rows", len(loaded.frame),
             ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), len(loaded.classes), len(loaded.skipped))
    return fp


def run_stages(cfg: RunConfig, stages: list[Stage], progress: bool = True, until: str | None = None) -> Path:
    """Load the items, run `stages` in order (or up to and including `until`) and return the run folder."""
    start = time.perf_counter()
    loaded = load_items(cfg.data, seed=cfg.seed)  # bad input stops here, before anything is written
    check_rule_files(cfg.label.labeling_functions, loaded.classes)
    run = Run(cfg, progress=progress)
    run.dir.mkdir(parents=True, exist_ok=True)
    run.state_dir.mkdir(exist_ok=True)
    handler = _setup_logging(run.dir)
    try:
        log.info("run %s -> %s", cfg.name, run.dir)
        (run.dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        run.fingerprints["items"] = write_items(run, loaded)
        run.timings["items"] = time.perf_counter() - start
        for stage in stages:
            run.execute(stage)
            if stage.name == until:
                break
        return run.dir
    finally:
        log.removeHandler(handler)
        handler.close()


def check_rule_files(sources: list[str], classes: list[str]) -> None:
    """Validate the YAML rule files (schema, regexes, classes) before anything is written."""
    from labelers.rules import RULE_SUFFIXES, load_rules

    for source in sources:
        if Path(source).suffix.lower() in RULE_SUFFIXES:
            load_rules(source, classes=classes)


def lf_sources_digest(paths: list[str]) -> list[str]:
    """Digests of labeling-function files, so editing an LF re-runs the label stage."""
    return [file_digest(Path(p)) if Path(p).is_file() else p for p in paths]


def proba_columns(frame: pd.DataFrame, prefix: str) -> np.ndarray:
    cols = [c for c in frame.columns if c.startswith(prefix)]
    return frame[sorted(cols, key=lambda c: int(c[len(prefix):]))].to_numpy(dtype=float)
