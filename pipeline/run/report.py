"""The run report: one self-contained HTML page (metrics tables, reliability diagram as inline SVG)."""

from __future__ import annotations

import html
from pathlib import Path

from ..artifacts import write_text
from ..calibration import reliability_svg

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>labelpipe run {name}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
th{{background:#f4f4f4}}td:first-child,th:first-child{{text-align:left}}</style></head>
<body><h1>labelpipe run <code>{name}</code></h1>
{body}
</body></html>
"""


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _table(rows: list[tuple], header: tuple) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_report(name: str, metrics: dict, curves: dict, train: dict | None = None) -> str:
    """HTML text of the report. metrics: the metrics.json dict; curves: {label: reliability_bins(...)}."""
    parts = []
    test = metrics.get("test") or {}
    if test:
        keys = ("accuracy", "macro_f1", "ece", "brier")
        rows = []
        if "uncalibrated" in test:
            rows.append(("before calibration (T = 1)", *[test["uncalibrated"].get(k) for k in keys]))
            how = ("vector scaling" if test.get("calibration") == "vector" else f"T = {_fmt(test.get('temperature'))}")
            rows.append((f"after calibration ({how})", *[test.get(k) for k in keys]))
        else:
            rows.append(("classifier", *[test.get(k) for k in keys]))
        parts.append(f"<h2>Test set ({test.get('n')} items with gold labels)</h2>")
        parts.append(_table(rows, ("", "accuracy", "macro-F1", "ECE", "Brier")))
    else:
        parts.append("<p>No gold labels on the test split: no test metrics.</p>")
    if curves:
        parts.append("<h2>Reliability diagram (test)</h2>")
        parts.append(reliability_svg(curves, size=360))
    stages = metrics.get("stages") or {}
    if stages:
        rows = [(stage, *[v for k, v in values.items() if k == "label_accuracy"][:1]) for stage, values in stages.items()]
        parts.append("<h2>Label accuracy of the stages (train split, against gold)</h2>")
        parts.append(_table(rows, ("stage", "label accuracy")))
    if train:
        keys = ("mode", "loss", "loss_params", "valid_labels", "select_by", "epochs", "best_epoch", "seconds_per_epoch",
                "search_seconds", "temperature", "calibration")
        parts.append("<h2>Training</h2>")
        parts.append(_table([(k, train.get(k)) for k in keys], ("", "value")))
    timings = metrics.get("timings") or {}
    if timings:
        parts.append("<h2>Timings (seconds)</h2>")
        parts.append(_table(list(timings.items()), ("stage", "seconds")))
    return _PAGE.format(name=html.escape(name), body="\n".join(parts))


def write_report(path: Path, name: str, metrics: dict, curves: dict, train: dict | None = None) -> None:
    write_text(render_report(name, metrics, curves, train), Path(path))
