"""report.html rendered in headless Chromium: the tables and plots are laid out, not just written."""

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from pipeline.audit import load_annotations, run_audit, write_audit

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "",
                             shutil.which("chromium-browser") or "") if p and shutil.os.path.exists(p)), None)


def render(html_path, tmp_path) -> str:
    """The DOM after Chromium loaded the page and ran its scripts."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,3000",
           "--virtual-time-budget=5000", "--dump-dom", html_path.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian: apt-get install -y chromium); "
                                             "the report rendering test needs it")
def test_report_renders_tables_and_plots(tmp_path):
    rng = np.random.default_rng(0)
    n = 150
    y = rng.integers(0, 3, n)
    votes = {f"judge{j}/v/{o}": np.where(rng.random(n) < a, y, rng.integers(0, 3, n))
             for j, a in enumerate((0.9, 0.7)) for o in ("ab", "ba")}
    votes["crowd"] = np.where(rng.random(n) < 0.6, y, rng.integers(0, 3, n))
    classes = np.array(["A", "B", "C"])
    frame = pd.DataFrame({"id": range(n), "gold": np.where(np.arange(n) < 40, classes[y], ""),
                          **{name: classes[v] for name, v in votes.items()}})
    frame.to_csv(tmp_path / "ann.csv", index=False)
    data = load_annotations(tmp_path / "ann.csv", annotator_cols=list(votes))
    out = write_audit(run_audit(data, neighbors=False), tmp_path / "audit")
    html = (out / "report.html").read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained
    dom = render(out / "report.html", tmp_path)
    found = re.search(r'data-rendered="([^"]*)"', dom)
    assert found, "the page's load script did not run in Chromium"
    rendered = json.loads(found.group(1).replace("&quot;", '"'))
    assert {"annotators-table", "prevalence-table", "position-table", "flagged-table", "agreement-table"} <= set(
        rendered["tables"])
    assert rendered["svg"].count("confusion") == 10  # 5 annotators: estimated and on gold
    assert "kappa" in rendered["svg"] and "reliability" in rendered["svg"]
    assert rendered["cells"] >= 10 * 9 + 25  # heatmap cells actually laid out
    assert "judge0/v" in dom  # the position-bias row of the paired judge
