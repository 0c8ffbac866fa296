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
    console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def run(config: Path = typer.Argument(None, help="Run config (YAML). Without it, runs the embedded demo."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
        until: str = typer.Option(None, help="Stop after this stage.")) -> None:
    """Run the pipeline: label -> aggregate -> neighbors -> denoise -> train -> evaluate."""
    from .config import load_config
    from .run import run_pipeline

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
            line = f"test accuracy {test['accuracy']:.3f}  macro-F1 {test['macro_f1']:.3f}  ECE {test['ece']:.3f}"
            if agg.get("test_accuracy") is not None:
                line += f"   (label model on test: {agg['test_accuracy']:.3f})"
            console.print(line)
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
    from .train.predict import predict_file

    try:
        out = predict_file(model, input, output, text_column=text_column, batch_size=batch_size,
                           progress=not no_progress and sys.stderr.isatty())
    except (LabelpipeError, ValueError, FileNotFoundError, OSError) as err:
        fail(err)
    console.print(f"wrote {len(out)} predictions to {output}")


@app.command()
def audit(file: Path = typer.Argument(..., help="Annotations: CSV / TSV / JSONL / Parquet, long (item, annotator, "
                                                "label) or wide (one column per annotator)."),
          out: Path = typer.Option(None, "--out", "-o", help="Audit folder (default: runs/audit-<file name>)."),
          gold: Path = typer.Option(None, help="Separate gold file (item, gold) for some items."),
          layout: str = typer.Option("auto", help="auto, long or wide."),
          annotators: str = typer.Option(None, help="Wide layout: comma-separated annotator columns."),
          item_col: str = typer.Option(None, help="Item id column."),
          annotator_col: str = typer.Option(None, help="Long layout: annotator column."),
          label_col: str = typer.Option(None, help="Long layout: label column."),
          gold_col: str = typer.Option(None, help="Gold column (empty = unknown)."),
          text_col: str = typer.Option(None, help="Item text column (enables neighbour evidence)."),
          classes: str = typer.Option(None, help="Comma-separated class list (order = class index)."),
          method: str = typer.Option(None, help="Label model (default: dawid_skene when available, else majority)."),
          neighbors: bool = typer.Option(True, help="Use kNN neighbour labels as evidence when text is given."),
          encoder: str = typer.Option("default", help="Sentence encoder for the neighbours."),
          orders: str = typer.Option("ab,ba", help="Suffixes of a pairwise judge's two presentation orders."),
          top: int = typer.Option(100, help="How many flagged items to write."),
          stack: bool = typer.Option(True, help="With 20+ gold items, learn the posterior from them (logistic "
                                                "regression over the votes and the label model)."),
          seed: int = typer.Option(0, help="Seed (cross-fitting folds, label model).")) -> None:
    """Audit annotations (LLM judges, LLM annotators): reliability, flagged items, corrected estimates."""
    from .audit import attach_gold, load_annotations, run_audit, write_audit
    from .labelmodels.dependence import MAX_DEPENDENCE

    try:
        data = load_annotations(file, item_col=item_col, annotator_col=annotator_col, label_col=label_col,
                                gold_col=gold_col, text_col=text_col, layout=layout,
                                annotator_cols=annotators.split(",") if annotators else None,
                                classes=classes.split(",") if classes else None)
        if gold is not None:
            data = attach_gold(data, gold)
        order_pair = tuple(orders.split(","))
        if len(order_pair) != 2:
            raise LabelpipeError(f"--orders needs two comma-separated suffixes, got '{orders}'")
        result = run_audit(data, method=method, seed=seed, top=top, neighbors=neighbors, encoder=encoder,
                           orders=order_pair, stack=stack, progress=sys.stderr.isatty())
        folder = write_audit(result, out or Path("runs") / f"audit-{file.stem}")
    except (LabelpipeError, ValueError, FileNotFoundError) as err:
        fail(err)
    s = result.summary
    console.print(f"{s['items']} items, {s['annotators']} annotators, {s['gold_items']} gold, label model "
                  f"{s['method']}; Fleiss kappa {s['agreement']['fleiss_kappa']:.3f}, Krippendorff alpha "
                  f"{s['agreement']['krippendorff_alpha']:.3f}", highlight=False, soft_wrap=True)
    dependence = s["agreement"]["conditional_dependence"]
    if s["method"] == "dawid_skene" and dependence >= MAX_DEPENDENCE:
        console.print(f"annotators share errors (conditional dependence {dependence:.3f} >= {MAX_DEPENDENCE}): "
                      "dawid_skene's gold-free estimates over-trust annotators that agree; --method snorkel_mc "
                      "holds up better there (BENCHMARKS.md), gold labels best", highlight=False, soft_wrap=True)
    table = result.annotators.sort_values("corrected_accuracy" if s["gold_items"] >= 3 else "estimated_accuracy",
                                          ascending=False)
    for _, row in table.head(10).iterrows():
        extra = (f"  gold {row['gold_accuracy']:.3f} (n={row['gold_items']})  corrected {row['corrected_accuracy']:.3f} "
                 f"[{row['corrected_accuracy_low']:.3f}, {row['corrected_accuracy_high']:.3f}]"
                 if row["gold_items"] else "")
        console.print(f"  {row['annotator']:<32} est. accuracy {row['estimated_accuracy']:.3f}  abstain "
                      f"{row['abstain_rate']:.2f}{extra}", highlight=False, soft_wrap=True)
    if len(table) > 10:
        console.print(f"  ... {len(table) - 10} more in annotators.csv", highlight=False, soft_wrap=True)
    if len(result.position_bias):
        pb = result.position_bias
        console.print(f"position bias: {len(pb)} judges seen in both orders, mean flip rate "
                      f"{pb['flip_rate'].mean():.3f}", highlight=False, soft_wrap=True)
    for _, row in result.prevalence[result.prevalence["source"].str.startswith("label model")].iterrows():
        text = f"prevalence of {row['class']}: naive {row['naive']:.3f}"
        if "corrected" in row and row["corrected"] == row["corrected"]:
            text += f", corrected {row['corrected']:.3f} [{row['corrected_low']:.3f}, {row['corrected_high']:.3f}]"
        console.print(text, highlight=False, soft_wrap=True)
    console.print(f"{s['flagged']} flagged items; results: {folder}/  (report.html, annotators.csv, flagged.csv, "
                  "prevalence.csv)", highlight=False, soft_wrap=True)
    typer.echo(str(folder))


@app.command("lf-analysis")
def lf_analysis(target: Path = typer.Argument(..., help="A run config (YAML: runs or reuses the items and label "
                                                        "stages) or a run folder with votes.parquet + items.parquet."),
                json_out: Path = typer.Option(None, "--json", help="Also write the analysis as JSON to this file."),
                split: str = typer.Option("all", help="Analyse all items, or only train, valid or test."),
                no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars.")) -> None:
    """Per labeler: coverage, overlap, conflict, polarity and empirical accuracy on gold (Snorkel's definitions)."""
    from rich.console import Console as _Console
    from rich.measure import Measurement

    from .run.lfanalysis import analyze_run_folder, render_table

    try:
        if target.is_dir():
            folder = target
        elif target.is_file():
            from .config import load_config
            from .run import run_pipeline

            folder = run_pipeline(load_config(target), progress=not no_progress and sys.stderr.isatty(),
                                  until="label")
        else:
            raise LabelpipeError(f"{target}: no such run config or run folder")
        report = analyze_run_folder(folder, split=split)
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(report, indent=2) + "\n")
    except (LabelpipeError, ValueError, FileNotFoundError) as err:
        fail(err)
    out = _Console(soft_wrap=False)
    table = render_table(report)
    need = Measurement.get(out, out.options.update(max_width=10_000), table)
    # piped or redirected: as wide as the table needs, not a guessed 80 columns; a narrow terminal: never
    # drop a column (rich would), let the lines wrap instead
    out.width = max(out.width, need.minimum if out.is_terminal else need.maximum)
    out.print(table)
    test_gold = report["summary"].get("gold_items_by_split", {}).get("test", 0)
    if split == "all" and test_gold:
        console.print(f"note: the accuracies include {test_gold} gold items of the test split; use --split valid "
                      "(or train) to keep the test split out of labeling-function development",
                      highlight=False, soft_wrap=True)
    if json_out is not None:
        console.print(f"wrote {json_out}", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    app()
