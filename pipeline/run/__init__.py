"""Running a pipeline: the runner (resumable stages, fingerprints), the stages themselves, the artifacts
between them, the run report and the labeling-function analysis of a run."""

from __future__ import annotations

from pathlib import Path

from ..config import RunConfig
from .runner import Run, Stage, proba_columns, run_stages
from .stages import STAGES


def run_pipeline(cfg: RunConfig, progress: bool = True, until: str | None = None) -> Path:
    """Run the standard stages (`STAGES`) of `cfg`, or up to and including `until`; return the run folder."""
    return run_stages(cfg, STAGES, progress=progress, until=until)


__all__ = ["STAGES", "Run", "Stage", "proba_columns", "run_pipeline", "run_stages"]
