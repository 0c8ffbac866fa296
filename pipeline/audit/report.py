"""Write an audit folder: CSV tables, summary.json and a self-contained report.html (inline SVG, no JS)."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment

from .core import AuditResult


def _color(value: float, vmin: float = 0.0, vmax: float = 1.0) -> str:
    """White -> dark blue; grey for NaN."""
    if value is None or not math.isfinite(value):
        return "#dddddd"
    t = min(1.0, max(0.0, (value - vmin) / (vmax - vmin if vmax > vmin else 1.0)))
    r, g, b = (int(255 + (c - 255) * t) for c in (8, 48, 107))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap_svg(matrix: np.ndarray, row_labels: list[str], col_labels: list[str], title: str,
                vmin: float = 0.0, vmax: float = 1.0, cell: int = 28, annotate: bool = True,
                css_class: str = "heatmap") -> str:
    """An SVG heatmap of a (R, C) matrix with labels; values printed in cells when `annotate`."""
    rows, cols = matrix.shape
    font = 10 if cell >= 20 else 8
    rotate = max((len(s) for s in col_labels), default=1) * 6 > cell
    left = 8 + int(0.62 * font * max((len(s) for s in row_labels), default=1))
    top = 24 + (int(0.62 * font * max((len(s) for s in col_labels), default=1)) if rotate else 14)
    width = max(left + cols * cell + 10, 12 + 7 * len(title))
    height = top + rows * cell + 10
    parts = [f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img"><title>{html.escape(title)}</title>',
             f'<text x="4" y="14" font-size="12" font-weight="bold">{html.escape(title)}</text>']
    for c, lab in enumerate(col_labels):
        x = left + c * cell + cell / 2
        if not rotate:
            parts.append(f'<text x="{x}" y="{top - 4}" font-size="{font}" text-anchor="middle">{html.escape(lab)}</text>')
        else:
            parts.append(f'<text transform="translate({x + 3},{top - 4}) rotate(-90)" font-size="{font}">'
                         f'{html.escape(lab)}</text>')
    for r, lab in enumerate(row_labels):
        y = top + r * cell + cell / 2 + 3
        parts.append(f'<text x="{left - 4}" y="{y}" font-size="{font}" text-anchor="end">'
                     f'{html.escape(lab)}</text>')
        for c in range(cols):
            v = float(matrix[r, c])
            parts.append(f'<rect x="{left + c * cell}" y="{top + r * cell}" width="{cell}" height="{cell}" '
                         f'fill="{_color(v, vmin, vmax)}"><title>{html.escape(lab)} / '
                         f'{html.escape(col_labels[c])}: {v:.3f}</title></rect>')
            if annotate and math.isfinite(v):
                t = (v - vmin) / (vmax - vmin if vmax > vmin else 1)
                parts.append(f'<text x="{left + c * cell + cell / 2}" y="{y}" font-size="{font}" text-anchor="middle" '
                             f'fill="{"white" if t > 0.55 else "black"}">{v:.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def reliability_svg(table: pd.DataFrame, title: str = "Reliability of the label model on gold items") -> str:
    """An SVG reliability diagram: mean confidence vs accuracy per bin, with the diagonal."""
    size, pad = 260, 40
    lo = float(table["bin_low"].min()) if len(table) else 0.5
    def sx(v: float) -> float:
        return pad + (v - lo) / (1 - lo) * size
    def sy(v: float) -> float:
        return pad + size - v * size
    parts = [f'<svg class="reliability" xmlns="http://www.w3.org/2000/svg" width="{size + 2 * pad}" '
             f'height="{size + 2 * pad}" role="img"><title>{html.escape(title)}</title>',
             f'<text x="4" y="14" font-size="12" font-weight="bold">{html.escape(title)}</text>',
             f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#888"/>',
             f'<line x1="{sx(lo)}" y1="{sy(lo)}" x2="{sx(1)}" y2="{sy(1)}" stroke="#999" stroke-dasharray="4"/>',
             f'<text x="{pad + size / 2}" y="{pad + size + 30}" font-size="11" text-anchor="middle">confidence</text>',
             f'<text transform="translate(12,{pad + size / 2}) rotate(-90)" font-size="11" '
             f'text-anchor="middle">accuracy</text>',
             f'<text x="{pad}" y="{pad + size + 14}" font-size="9">{lo:.2f}</text>',
             f'<text x="{pad + size}" y="{pad + size + 14}" font-size="9" text-anchor="end">1.00</text>']
    bar = size / max(len(table), 1)
    for _, row in table.iterrows():
        if row["n"] == 0:
            continue
        x0 = sx(row["bin_low"])
        parts.append(f'<rect class="bin" x="{x0 + 1}" y="{sy(row["accuracy"])}" width="{bar - 2}" '
                     f'height="{size - (sy(row["accuracy"]) - pad)}" fill="#4a7ebb" opacity="0.8">'
                     f'<title>confidence {row["confidence"]:.2f}, accuracy {row["accuracy"]:.2f}, '
                     f'n={int(row["n"])}</title></rect>')
        parts.append(f'<circle cx="{sx(row["confidence"])}" cy="{sy(row["accuracy"])}" r="3" fill="#c0392b"/>')
    parts.append("</svg>")
    return "".join(parts)


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>labelpipe audit: {{ s.source }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.note{color:#555;font-size:13px}
#flagged-table td:last-child{text-align:left;min-width:30em;font-size:12px}
</style></head><body>
<h1>Annotation audit</h1>
<p class="note">{{ s.source }} — {{ s["items"] }} items, {{ s.annotators }} annotators, classes
{{ s.classes|join(", ") }}, {{ s.gold_items }} gold items, label model <b>{{ s.method }}</b>.</p>

<h2 id="agreement">Agreement</h2>
<table id="agreement-table"><tr><th class="l">measure</th><th>value</th></tr>
{% for k, v in s.agreement.items() %}<tr><td class="l">{{ k }}</td><td>{{ fmt(v) }}</td></tr>{% endfor %}
{% if s.posterior_accuracy_on_gold_cross_fitted is not none %}<tr><td class="l">posterior accuracy on gold
(cross-fitted: {{ s.posterior }})</td><td>{{ fmt(s.posterior_accuracy_on_gold_cross_fitted) }}</td></tr>{% endif %}
</table>

<h2 id="annotators">Annotators</h2>
<p class="note">estimated accuracy: from the label model, without gold. gold accuracy: measured on the gold
items. corrected: the gold subset combined with the label model (prediction-powered, 95% interval).</p>
{{ annotators }}

<h2 id="prevalence">Corrected prevalence / win rate</h2>
<p class="note">naive: the share of the labels as if they were true. corrected: prediction-powered estimate
from all annotations plus the gold subset, with a 95% interval that stays valid under biased annotators.</p>
{{ prevalence }}

{% if position %}<h2 id="position-bias">Position bias</h2>
<p class="note">flip rate: how often the verdict changes when the two outputs are swapped; prefers_first:
share of flips where the judge chose whichever output was shown first.</p>
{{ position }}{% endif %}

<h2 id="reliability">Reliability diagram</h2>
<p class="note">posterior: {{ s.posterior }}; gold items, each predicted by a model that did not see its gold label.</p>
{% if reliability %}{{ reliability }}{% else %}<p class="note">No gold items: a reliability diagram needs some.</p>{% endif %}

<h2 id="confusion">Confusion matrices</h2>
<p class="note">rows: true class, columns: the annotator's label, P(label | true); estimated by the label
model without gold, and measured on the gold items when there are some.</p>
<div class="grid">{% for svg in confusions %}{{ svg }}{% endfor %}</div>

<h2 id="kappa">Pairwise Cohen's kappa</h2>
{{ kappa }}

<h2 id="flagged">Items most likely mislabeled</h2>
{{ flagged }}
<script>
// records what the browser actually laid out (used by the rendering test; harmless otherwise)
window.addEventListener("load", () => {
  const shown = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const svgs = [...document.querySelectorAll("svg")].filter((s) => shown(s) && s.getBBox().width > 0);
  const tables = [...document.querySelectorAll("table")].filter((t) => shown(t) && t.rows.length > 1);
  document.body.setAttribute("data-rendered", JSON.stringify({
    svg: svgs.map((s) => s.getAttribute("class")), tables: tables.map((t) => t.id),
    cells: [...document.querySelectorAll("svg rect")].filter(shown).length}));
});
</script>
</body></html>
"""


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        return "" if not math.isfinite(v) else f"{v:.3f}"
    return str(v)


def _table(frame: pd.DataFrame, table_id: str, max_rows: int | None = None) -> str:
    frame = frame if max_rows is None else frame.head(max_rows)
    head = "".join(f'<th class="l">{html.escape(str(c))}</th>' for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = "".join(f'<td class="{"l" if isinstance(v, str) else ""}">{html.escape(_fmt(v))}</td>'
                        for v in row.tolist())
        body.append(f"<tr>{cells}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def render_html(result: AuditResult, max_flagged: int = 50) -> str:
    """The report as one self-contained HTML string."""
    d = result.data
    confusions = []
    for j, name in enumerate(d.annotators):
        confusions.append(heatmap_svg(result.confusion_model[j], d.classes, d.classes, f"{name} (estimated)",
                                      css_class="confusion"))
        if result.summary["gold_items"]:
            confusions.append(heatmap_svg(result.confusion_gold[j], d.classes, d.classes, f"{name} (on gold)",
                                          css_class="confusion"))
    m = len(d.annotators)
    kappa = heatmap_svg(result.kappa, d.annotators, d.annotators, "Cohen's kappa", vmin=-0.2, vmax=1.0,
                        cell=28 if m <= 15 else max(6, 420 // m), annotate=m <= 15, css_class="kappa")
    env = Environment(autoescape=False)
    return env.from_string(TEMPLATE).render(
        s=result.summary, fmt=_fmt,
        annotators=_table(result.annotators, "annotators-table"),
        prevalence=_table(result.prevalence, "prevalence-table"),
        position=_table(result.position_bias, "position-table") if len(result.position_bias) else "",
        reliability=reliability_svg(result.reliability) if result.reliability["n"].sum() else "",
        confusions=confusions, kappa=kappa,
        flagged=_table(result.flagged, "flagged-table", max_flagged))


def write_audit(result: AuditResult, out_dir: str | Path) -> Path:
    """Write the audit folder: annotators.csv, flagged.csv, prevalence.csv, position_bias.csv, kappa.csv,
    confusion.json, items.csv, summary.json, report.html. Returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    d = result.data
    result.annotators.to_csv(out / "annotators.csv", index=False)
    result.flagged.to_csv(out / "flagged.csv", index=False)
    result.prevalence.to_csv(out / "prevalence.csv", index=False)
    result.position_bias.to_csv(out / "position_bias.csv", index=False)
    pd.DataFrame(result.kappa, index=d.annotators, columns=d.annotators).to_csv(out / "kappa.csv")
    items = pd.DataFrame({"item": d.items, "gold": [d.classes[g] if g >= 0 else "" for g in d.gold],
                          "model_label": np.array(d.classes, dtype=object)[result.proba.argmax(axis=1)]})
    for k, c in enumerate(d.classes):
        items[f"p_{c}"] = result.proba[:, k]
    items.to_csv(out / "items.csv", index=False)
    (out / "confusion.json").write_text(json.dumps({
        "classes": d.classes,
        "estimated": {a: result.confusion_model[j].tolist() for j, a in enumerate(d.annotators)},
        "gold": {a: result.confusion_gold[j].tolist() for j, a in enumerate(d.annotators)}},
        allow_nan=True))
    (out / "summary.json").write_text(json.dumps(result.summary, indent=2, default=float))
    (out / "report.html").write_text(render_html(result), encoding="utf-8")
    return out
