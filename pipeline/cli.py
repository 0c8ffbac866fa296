"""The `labelpipe` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from .errors import LabelpipeError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="labelpipe: LLM-label calibration and weak supervision.")
console = Console(stderr=True)

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "demo" / "config.yaml"


@app.callback()
def _root() -> None:
    """labelpipe: LLM-label calibration and weak supervision."""


def fail(err: Exception) -> None:
    console.print(f"[bold red]error:[/] {err}", highlight=False)
    raise typer.Exit(2)


@app.command()
def run(config: Path = typer.Argument(None, help="Run config (YAML). Without it, runs the embedded demo."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
        until: str = typer.Option(None, help="Stop after this stage.")) -> None:
    """Run the pipeline: label -> aggregate -> neighbors -> denoise -> train -> evaluate."""
    from .config import load_config
    from .runner import run_pipeline

    if config is None:
        if not DEMO_CONFIG.exists():
            fail(LabelpipeError(f"the embedded demo is not available ({DEMO_CONFIG} not found); give a CONFIG"))
        config = DEMO_CONFIG
    try:
        cfg = load_config(config)
        run_dir = run_pipeline(cfg, progress=not no_progress and sys.stderr.isatty(), until=until)
    except (LabelpipeError, ValueError, FileNotFoundError) as err:
        fail(err)
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        test = metrics.get("test", {})
        agg = metrics["stages"]["aggregate"]
        if test:
            console.print(f"test accuracy {test['accuracy']:.3f}  macro-F1 {test['macro_f1']:.3f}  "
                          f"ECE {test['ece']:.3f}   (label model on test: {agg.get('test_accuracy')})")
    console.print(f"results: {run_dir}/  (metrics.json, predictions.parquet, model/, run.log)")
    typer.echo(str(run_dir))


@app.command()
def predict(model: Path = typer.Argument(..., help="A run folder (runs/NAME) or its model/ folder."),
            input: Path = typer.Option(..., "--input", "-i", help="Texts to classify: .csv, .jsonl or .parquet."),
            output: Path = typer.Option(..., "--output", "-o", help="Where to write the predictions (same formats)."),
            text_column: str = typer.Option("text", help="The column holding the texts."),
            batch_size: int = typer.Option(64, min=1, help="Texts per batch."),
            no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar.")) -> None:
    """Calibrated class probabilities for new texts: adds pred, confidence and p_<class> columns."""
    from .predict import predict_file

    try:
        out = predict_file(model, input, output, text_column=text_column, batch_size=batch_size,
                           progress=not no_progress and sys.stderr.isatty())
    except (LabelpipeError, ValueError, FileNotFoundError, OSError) as err:
        fail(err)
    console.print(f"wrote {len(out)} predictions to {output}")


if __name__ == "__main__":
    app()
