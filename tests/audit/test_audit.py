"""The audit: agreement math against references, PPI coverage, loaders, bad input, run + CLI on generated data."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from pipeline.audit import attach_gold, load_annotations, run_audit, stats, write_audit
from pipeline.cli import app
from pipeline.errors import InputError


def simulate(n=400, accuracies=(0.9, 0.8, 0.7, 0.6, 0.55), prior=0.3, abstain=0.1, seed=0):
    """Binary items (class 1 with prob `prior`) and annotators right with the given accuracies."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prior).astype(int)
    votes = np.stack([np.where(rng.random(n) < a, y, 1 - y) for a in accuracies], axis=1)
    votes[rng.random(votes.shape) < abstain] = -1
    return y, votes


def long_frame(votes, y, gold_mask=None):
    rows = []
    for i in range(votes.shape[0]):
        g = str(y[i]) if gold_mask is not None and gold_mask[i] else ""
        for j in range(votes.shape[1]):
            if votes[i, j] >= 0:
                rows.append({"item": f"it{i}", "annotator": f"a{j}", "label": ["neg", "pos"][votes[i, j]],
                             "gold": ["neg", "pos"][int(g)] if g else ""})
    return pd.DataFrame(rows)


# --- the math -------------------------------------------------------------------------------------

def test_cohen_kappa_matches_sklearn():
    _, votes = simulate(n=200, abstain=0.2)
    kappa, shared = stats.cohen_kappa_matrix(votes, 2)
    for a, b in [(0, 1), (2, 4), (1, 3)]:
        both = (votes[:, a] >= 0) & (votes[:, b] >= 0)
        assert shared[a, b] == both.sum()
        assert kappa[a, b] == pytest.approx(cohen_kappa_score(votes[both, a], votes[both, b]))
    assert np.allclose(np.diag(kappa), 1.0)


def test_fleiss_kappa_textbook_example():
    # Fleiss (1971) style check against a hand computation: 4 items, 3 raters, 2 classes
    votes = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 1], [1, 1, 0]])
    p_i = np.array([1, 1, 1 / 3, 1 / 3])
    p_e = 0.5**2 + 0.5**2
    assert stats.fleiss_kappa(votes, 2) == pytest.approx((p_i.mean() - p_e) / (1 - p_e))


def test_krippendorff_alpha_perfect_and_missing():
    votes = np.array([[0, 0, -1], [1, 1, 1], [2, 2, 2], [0, 0, 0]])
    assert stats.krippendorff_alpha(votes) == pytest.approx(1.0)
    _, noisy = simulate(n=300)
    assert 0.0 < stats.krippendorff_alpha(noisy) < 0.6


def test_ppi_interval_covers_under_biased_predictions():
    """A predictor that calls a quarter of the negatives positive: the naive share misses, PPI covers ~95%."""
    rng = np.random.default_rng(1)
    n_total, n_gold, hits, naive_hits = 2000, 60, 0, 0
    for _ in range(300):
        y = (rng.random(n_total) < 0.3).astype(float)
        fooled = rng.random(n_total) < 0.25
        f = np.clip(np.where(y == 1, 0.9, np.where(fooled, 0.8, 0.1)) + rng.normal(0, 0.05, n_total), 0, 1)
        labeled = np.zeros(n_total, bool)
        labeled[rng.choice(n_total, n_gold, replace=False)] = True
        iv = stats.ppi_mean(f, labeled, y)
        hits += iv.low <= y.mean() <= iv.high
        naive = stats.naive_proportion(f > 0.5)
        naive_hits += naive.low <= y.mean() <= naive.high
        classical = stats.classical_mean(labeled, y)
    assert 0.91 <= hits / 300 <= 0.99
    assert naive_hits / 300 < 0.5
    assert iv.width < classical.width  # the predictions make the interval narrower than gold alone


def test_ppi_all_gold_is_exact_and_needs_enough_gold():
    y = np.array([0, 1, 1, 0, 1], float)
    iv = stats.ppi_mean(np.full(5, 0.9), np.ones(5, bool), y)
    assert iv.estimate == pytest.approx(0.6) and iv.width == pytest.approx(0.0)
    with pytest.raises(ValueError, match="at least 3 labeled"):
        stats.ppi_mean(np.zeros(5), np.array([1, 1, 0, 0, 0], bool), y)


def test_shrinkage_pulls_noisy_corrections_toward_their_mean():
    rng = np.random.default_rng(0)
    truth = 0.05 + rng.normal(0, 0.01, 40)  # corrections that share most of their value
    var = np.full(40, 0.03**2)
    noisy = truth + rng.normal(0, 0.03, 40)
    shrunk = stats.shrink_toward_mean(noisy, var)
    assert np.abs(shrunk - truth).mean() < 0.6 * np.abs(noisy - truth).mean()
    exact = stats.shrink_toward_mean(noisy, np.zeros(40))  # no sampling noise: nothing to shrink
    assert np.allclose(exact, noisy)


def test_sharpening_temperature_undoes_underconfidence_only():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, 3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-2 * z))).astype(int)  # true logit 2z
    soft = np.stack([1 / (1 + np.exp(z)), 1 / (1 + np.exp(-z))], axis=1)  # predicted logit z: underconfident
    t = stats.sharpening_temperature(soft, y)
    assert t == pytest.approx(2.0, abs=0.25)
    sharp = stats.apply_temperature(soft, t)
    assert np.allclose(sharp.sum(axis=1), 1) and np.allclose(np.log(sharp[:, 1] / sharp[:, 0]), t * z)
    over = stats.apply_temperature(soft, 4.0)  # overconfident predictions are left alone (sharpen-only)
    assert stats.sharpening_temperature(over, y) == 1.0
    assert np.allclose(stats.apply_temperature(soft, 1.0), soft)
    assert stats.sharpening_temperature(soft[:1], y[:1]) == 1.0


def test_corrected_accuracy_counts_gold_items_exactly():
    """A useless posterior (0.5 everywhere) and gold on 90 of 100 items: only 10 items are estimated."""
    from pipeline.audit.core import corrected_accuracy

    y, votes = simulate(n=100, abstain=0.0, seed=4)
    gold = y.copy()
    gold[90:] = -1
    proba = np.full((100, 2), 0.5)
    oof = np.where((gold >= 0)[:, None], proba, np.nan)
    est = corrected_accuracy(votes, proba, oof, gold)
    truth = (votes == y[:, None]).mean(axis=0)
    for j, iv in enumerate(est):  # exact on the 90 gold items, so at most 10% of the items can be off
        assert iv.low <= iv.estimate <= iv.high
        assert abs(iv.estimate - truth[j]) <= 0.1 + 1e-9
    # the corrections are shrunk toward their mean, which alone would pull the best annotator (0.9) far down
    assert abs(est[0].estimate - truth[0]) < 0.05


def test_position_bias_counts_flips_and_first_position():
    first = np.array([0, 0, 1, 1, 0, -1])
    swapped = np.array([0, 1, 1, 0, 1, 1])
    pb = stats.position_bias(first, swapped, 2)
    assert pb["n"] == 5 and pb["flip_rate"] == pytest.approx(3 / 5)
    assert pb["prefers_first"] == pytest.approx(2 / 3)  # (0, 1) twice: picked what was shown first
    pairs = stats.order_pairs(["gpt4/x/ab", "gpt4/x/ba", "solo/ab", "m_ab", "m_ba"])
    assert sorted(pairs) == [("gpt4/x", 0, 1), ("m", 3, 4)]


# --- loading and bad input -------------------------------------------------------------------------

def test_long_and_wide_layouts_load_the_same_votes(tmp_path):
    y, votes = simulate(n=30)
    long = long_frame(votes, y)
    long.to_csv(tmp_path / "long.csv", index=False)
    wide = pd.DataFrame({f"a{j}_label": [["neg", "pos"][v] if v >= 0 else "?" for v in votes[:, j]]
                         for j in range(votes.shape[1])})
    wide.insert(0, "id", [f"it{i}" for i in range(30)])
    wide.to_csv(tmp_path / "wide.csv", index=False)
    a = load_annotations(tmp_path / "long.csv")
    b = load_annotations(tmp_path / "wide.csv")
    assert a.classes == b.classes == ["neg", "pos"]
    order = [a.items.index(it) for it in b.items if it in a.items]
    assert np.array_equal(a.votes[order], b.votes[[b.items.index(a.items[i]) for i in order]])
    # a JSONL column of {annotator: label} dicts (LLMBar style)
    with (tmp_path / "judges.jsonl").open("w") as fh:
        for i in range(30):
            fh.write(json.dumps({"id": f"it{i}", "gold": "pos" if y[i] else "neg",
                                 "judges": {f"a{j}": ["neg", "pos"][v] for j, v in enumerate(votes[i]) if v >= 0}}) + "\n")
    c = load_annotations(tmp_path / "judges.jsonl")
    assert c.votes.shape == (30, 5) and (c.gold >= 0).all()


def test_empty_file_is_a_clear_error(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        load_annotations(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("item,annotator,label\n")
    with pytest.raises(InputError, match="no rows"):
        load_annotations(tmp_path / "header.csv")


def test_missing_columns_are_named(write_csv):
    with pytest.raises(InputError, match="'label' column"):
        load_annotations(write_csv([["item", "annotator", "verdikt"], ["1", "a", "x"]]))
    with pytest.raises(InputError, match="no annotator columns"):
        load_annotations(write_csv([["id", "text"], ["1", "hello"]]))
    with pytest.raises(InputError, match="annotator column\\(s\\) not found: zz"):
        load_annotations(write_csv([["id", "a", "b"], ["1", "x", "y"]]), annotator_cols=["a", "zz"])


def test_single_annotator_is_refused(write_csv):
    with pytest.raises(InputError, match="at least 2 annotators, found 1"):
        load_annotations(write_csv([["item", "annotator", "label"], ["1", "a", "x"], ["2", "a", "y"]]))


def test_label_not_in_classes_names_row_and_field(write_csv):
    path = write_csv([["id", "a_label", "b_label"], ["1", "pos", "neg"], ["2", "pos", "meh"]])
    with pytest.raises(InputError, match=r"row 2, field 'b_label'.*'meh' is not one of"):
        load_annotations(path, classes=["neg", "pos"])


def test_conflicting_labels_in_long_layout(write_csv):
    path = write_csv([["item", "annotator", "label"], ["1", "a", "x"], ["1", "a", "y"], ["1", "b", "x"]])
    with pytest.raises(InputError, match="row 2.*two labels"):
        load_annotations(path)


def test_gold_for_unknown_items_is_refused(write_csv, tmp_path):
    data = load_annotations(write_csv([["id", "a_label", "b_label"], ["1", "pos", "neg"], ["2", "pos", "pos"]]))
    (tmp_path / "gold.csv").write_text("item,gold\n1,pos\n7,neg\n")
    with pytest.raises(InputError, match="row 2.*unknown item '7'"):
        attach_gold(data, tmp_path / "gold.csv")
    (tmp_path / "gold2.csv").write_text("item,gold\n1,maybe\n")
    with pytest.raises(InputError, match="'maybe' is not one of"):
        attach_gold(data, tmp_path / "gold2.csv")
    (tmp_path / "gold3.csv").write_text("item,gold\n2,neg\n")
    assert list(attach_gold(data, tmp_path / "gold3.csv").gold) == [-1, 0]


# --- a whole audit ---------------------------------------------------------------------------------

def test_run_audit_estimates_accuracy_and_corrects_prevalence(tmp_path):
    y, votes = simulate(n=600, seed=3)
    gold_mask = np.zeros(600, bool)
    gold_mask[np.random.default_rng(0).choice(600, 80, replace=False)] = True
    long_frame(votes, y, gold_mask).to_csv(tmp_path / "ann.csv", index=False)
    data = load_annotations(tmp_path / "ann.csv")
    result = run_audit(data, seed=0)
    ann = result.annotators.set_index("annotator")
    true_acc = {f"a{j}": (votes[votes[:, j] >= 0, j] == y[votes[:, j] >= 0]).mean() for j in range(5)}
    # the best annotator is recognised without gold, and the corrected accuracies bracket the truth
    assert ann["estimated_accuracy"].idxmax() == "a0"
    inside = [ann.loc[a, "corrected_accuracy_low"] <= t <= ann.loc[a, "corrected_accuracy_high"]
              for a, t in true_acc.items()]
    assert sum(inside) >= 4
    prev = result.prevalence[(result.prevalence["source"].str.startswith("label model"))
                             & (result.prevalence["class"] == "pos")].iloc[0]
    assert prev["corrected_low"] <= y.mean() <= prev["corrected_high"]
    # flagged items: ranked, majority label, evidence; gold-contradicted items come first
    flagged = result.flagged
    assert list(flagged["rank"][:3]) == [1, 2, 3] and flagged["score"].is_monotonic_decreasing
    idx = [data.items.index(it) for it in flagged["item"]]
    maj = stats.majority_labels(data.votes, 2, result.proba)
    y_loaded = np.array([y[int(it[2:])] for it in data.items])
    top_wrong = (maj[idx[:20]] != y_loaded[idx[:20]]).mean()
    assert top_wrong > (maj != y_loaded).mean()  # flagging beats picking items at random
    out = write_audit(result, tmp_path / "audit")
    for name in ["annotators.csv", "flagged.csv", "prevalence.csv", "kappa.csv", "summary.json", "report.html"]:
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gold_items"] == 80 and summary["annotators"] == 5


def test_neighbour_evidence_with_text(tmp_path):
    texts = ([f"the match ended with a late goal number {i}" for i in range(12)]
             + [f"the new laptop has a faster chip model {i}" for i in range(12)])
    y = np.array([0] * 12 + [1] * 12)
    rng = np.random.default_rng(0)
    votes = np.stack([np.where(rng.random(24) < a, y, 1 - y) for a in (0.9, 0.7, 0.6)], axis=1)
    frame = pd.DataFrame({"id": range(24), "text": texts,
                          **{f"m{j}_label": np.array(["sports", "tech"])[votes[:, j]] for j in range(3)}})
    frame.to_csv(tmp_path / "w.csv", index=False)
    result = run_audit(load_annotations(tmp_path / "w.csv"), top=24)
    assert {"neighbour_label", "neighbour_share_of_majority", "text"} <= set(result.flagged.columns)
    assert result.flagged["neighbour_share_of_majority"].between(0, 1).all()


def test_cli_audit_writes_folder_and_errors_cleanly(tmp_path):
    y, votes = simulate(n=120, seed=5)
    gold_mask = np.zeros(120, bool)
    gold_mask[:30] = True
    long_frame(votes, y, gold_mask).to_csv(tmp_path / "ann.csv", index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["audit", str(tmp_path / "ann.csv"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "Fleiss kappa" in result.output and "corrected" in result.output
    assert (tmp_path / "out" / "report.html").exists()
    (tmp_path / "one.csv").write_text("item,annotator,label\n1,a,x\n2,a,y\n")
    bad = runner.invoke(app, ["audit", str(tmp_path / "one.csv"), "-o", str(tmp_path / "out2")])
    assert bad.exit_code == 2 and "at least 2 annotators" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "out2").exists()


def test_audit_measures_whether_annotators_share_errors(tmp_path):
    """Independent annotators: conditional dependence near 0, no warning. A family of judges that copy one
    misled judge: above the threshold, and the CLI warns that Dawid-Skene over-trusts them."""
    from pipeline.labelmodels.dependence import MAX_DEPENDENCE

    y, votes = simulate(n=600, seed=3)
    long_frame(votes, y).to_csv(tmp_path / "ind.csv", index=False)
    agreement = run_audit(load_annotations(tmp_path / "ind.csv"), neighbors=False).agreement
    assert agreement["vote_density"] == pytest.approx((votes >= 0).mean())
    assert agreement["conditional_dependence"] < MAX_DEPENDENCE
    rng = np.random.default_rng(4)
    misled = np.where(rng.random(600) < 0.6, y, 1 - y)
    copies = [np.where(rng.random(600) < 0.9, misled, np.where(rng.random(600) < 0.6, y, 1 - y)) for _ in range(3)]
    shared = np.stack(copies + [np.where(rng.random(600) < a, y, 1 - y) for a in (0.85, 0.8)], axis=1)
    long_frame(shared, y).to_csv(tmp_path / "shared.csv", index=False)
    runner = CliRunner()
    warned = runner.invoke(app, ["audit", str(tmp_path / "shared.csv"), "-o", str(tmp_path / "o1"), "--no-neighbors"])
    assert warned.exit_code == 0, warned.output
    assert "annotators share errors" in warned.output
    plain = runner.invoke(app, ["audit", str(tmp_path / "ind.csv"), "-o", str(tmp_path / "o2"), "--no-neighbors"])
    assert plain.exit_code == 0 and "share errors" not in plain.output


def test_stacker_learns_whom_to_trust_from_gold():
    """Three copies of a misled judge outvote one good judge; 40 gold items teach the stacker otherwise."""
    from pipeline.audit.core import _fit, stacked_proba

    rng = np.random.default_rng(2)
    n = 400
    y = rng.integers(0, 2, n)
    misled = np.where(rng.random(n) < 0.55, y, 1 - y)
    good = np.where(rng.random(n) < 0.9, y, 1 - y)
    votes = np.stack([misled, misled, misled, good], axis=1)
    gold = np.full(n, -1)
    idx = rng.choice(n, 40, replace=False)
    gold[idx] = y[idx]
    base = _fit("majority", votes, 2, None, 0)
    full, oof, t = stacked_proba(votes, base, gold)
    assert np.allclose(full.sum(axis=1), 1) and np.isnan(oof[gold < 0]).all() and not np.isnan(oof[idx]).any()
    rest = gold < 0
    assert (full[rest].argmax(axis=1) == y[rest]).mean() > 0.85 > (base[rest].argmax(axis=1) == y[rest]).mean()
    assert t >= 1.0


def test_temperature_sharpens_an_underconfident_stacker():
    """20 correlated judges fooled on 40% of the items, 6 good ones: with 50 gold items the L2 stacker hedges;
    the sharpen-only temperature, fitted on its cross-fitted rows, halves its Brier score on the other items."""
    from pipeline.audit.core import _fit, stacked_proba

    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 2, n)
    trap = rng.random(n) < 0.4
    crowd = [np.where(rng.random(n) < 0.85, np.where(trap, 1 - y, y), np.where(trap, y, 1 - y)) for _ in range(20)]
    good = [np.where(rng.random(n) < 0.85, y, 1 - y) for _ in range(6)]
    votes = np.stack(crowd + good, axis=1)
    gold = np.full(n, -1)
    idx = rng.choice(n, 50, replace=False)
    gold[idx] = y[idx]
    base = _fit("majority", votes, 2, None, 0)
    sharp, sharp_oof, t = stacked_proba(votes, base, gold)
    plain, plain_oof, t1 = stacked_proba(votes, base, gold, sharpen=False)
    assert t1 == 1.0 and t > 2.0
    assert np.allclose(sharp, stats.apply_temperature(plain, t))
    assert np.isnan(sharp_oof[gold < 0]).all() and np.allclose(sharp_oof[idx].sum(axis=1), 1)
    rest = gold < 0
    assert np.array_equal(sharp[rest].argmax(axis=1), plain[rest].argmax(axis=1))  # same labels, sharper
    brier = {k: ((p[rest, 1] - y[rest]) ** 2).mean() for k, p in (("sharp", sharp), ("plain", plain))}
    assert brier["sharp"] < 0.75 * brier["plain"]
