"""Loaders for every input format, and every bad-input case: a clear error naming file, row and field."""

import json

import pandas as pd
import pytest
from conftest import require_shared

from pipeline.config import DataConfig
from pipeline.data import load_items
from pipeline.errors import InputError

CLASSES = ["pos", "neg"]
ROWS = [["id", "text", "label", "split", "ann"],
        ["a", "great movie", "pos", "train", "pos"],
        ["b", "awful film", "neg", "train", ""],
        ["c", "loved it", "pos", "valid", "neg"],
        ["d", "hated it", "1", "test", "?"]]


def cfg(path, **kw):
    return DataConfig(path=str(path), classes=CLASSES, annotation_columns=["ann"], **kw)


def check_items(loaded):
    f = loaded.frame
    assert list(f.columns[:5]) == ["id", "text", "split", "gold", "ann"]
    assert f["id"].tolist() == ["a", "b", "c", "d"]
    assert f["gold"].tolist() == [0, 1, 0, 1]  # "1" is a class index
    assert f["ann"].tolist() == [0, -1, 1, -1]  # empty and "?" abstain
    assert f["split"].tolist() == ["train", "train", "valid", "test"]


def test_csv(write_csv):
    check_items(load_items(cfg(write_csv(ROWS))))


def test_jsonl(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(dict(zip(ROWS[0], r))) for r in ROWS[1:]) + "\n")
    check_items(load_items(cfg(path)))


def test_parquet(tmp_path):
    path = tmp_path / "items.parquet"
    pd.DataFrame(ROWS[1:], columns=ROWS[0]).to_parquet(path)
    check_items(load_items(cfg(path)))


def test_hf_dataset_on_disk(tmp_path):
    import datasets

    ds = datasets.Dataset.from_pandas(pd.DataFrame(ROWS[1:], columns=ROWS[0]))
    ds.save_to_disk(str(tmp_path / "ds"))
    check_items(load_items(cfg(tmp_path / "ds")))


def test_hf_dataset_dict_takes_split_names_and_class_label(tmp_path):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["bad", "good"], "label": [0, 1]}, features=features),
        "test": datasets.Dataset.from_dict({"text": ["meh"], "label": [0]}, features=features)})
    dd.save_to_disk(str(tmp_path / "dd"))
    loaded = load_items(DataConfig(path=str(tmp_path / "dd"), id_column=None))
    assert loaded.classes == ["neg", "pos"]
    assert loaded.frame["split"].tolist() == ["train", "train", "test"]
    assert loaded.frame["gold"].tolist() == [0, 1, 0]


def write_wrench(folder, split, examples):
    folder.mkdir(exist_ok=True)
    (folder / "label.json").write_text(json.dumps({"0": "ham", "1": "spam"}))
    (folder / f"{split}.json").write_text(json.dumps(
        {str(i): {"label": y, "weak_labels": wl, "data": {"text": t}} for i, (t, y, wl) in enumerate(examples)}))


def test_wrench_generated(tmp_path):
    write_wrench(tmp_path / "w", "train", [("buy now", 1, [1, -1]), ("hi mom", 0, [-1, 0])])
    write_wrench(tmp_path / "w", "test", [("free money", 1, [1, 1])])
    loaded = load_items(DataConfig(path=str(tmp_path / "w")))
    assert loaded.classes == ["ham", "spam"]
    assert loaded.annotation_columns == ["lf_0", "lf_1"]
    f = loaded.frame
    assert f["split"].tolist() == ["train", "train", "test"]
    assert f["lf_0"].tolist() == [1, -1, 1] and f["lf_1"].tolist() == [-1, 0, 1]
    assert f["gold"].tolist() == [1, 0, 1]


def test_wrench_relation_examples_get_entity_markers(tmp_path):
    folder = tmp_path / "rel"
    folder.mkdir()
    (folder / "label.json").write_text(json.dumps({"0": "no", "1": "spouse"}))
    text = "Ann married Bob in Rome"
    examples = {"0": {"label": 1, "weak_labels": [1], "data": {"text": text, "span1": [0, 3], "span2": [12, 15]}},
                "1": {"label": 0, "weak_labels": [0], "data": {"text": text, "span1": [19, 23], "span2": [0, 3]}},
                "2": {"label": 0, "weak_labels": [0], "data": {"text": text, "span1": [0, 5], "span2": [2, 4]}},
                "3": {"label": 0, "weak_labels": [0], "data": {"text": text, "span1": [0, 3], "span2": [20, 99]}}}
    (folder / "train.json").write_text(json.dumps(examples))
    loaded = load_items(DataConfig(path=str(folder), on_error="skip"))
    assert loaded.frame["text"].tolist() == ["<e1>Ann</e1> married <e2>Bob</e2> in Rome",
                                             "<e2>Ann</e2> married Bob in <e1>Rome</e1>"]
    assert [e.row for e in loaded.skipped] == [3, 4] and "overlap" in str(loaded.skipped[0])
    assert "outside the text" in str(loaded.skipped[1])
    with pytest.raises(InputError, match="row 3.*bad entity spans"):
        load_items(DataConfig(path=str(folder)))
    plain = load_items(DataConfig(path=str(folder), entity_markers=False))
    assert plain.frame["text"].tolist() == [text] * 4


def test_wrench_real_semeval_marks_the_named_entities():
    path = require_shared("wrench", "semeval")
    frame = load_items(DataConfig(path=str(path))).frame
    raw = json.loads((path / "train.json").read_text())
    first = next(iter(raw.values()))["data"]
    marked = frame["text"].iloc[0]
    assert f"<e1>{first['entity1']}</e1>" in marked and f"<e2>{first['entity2']}</e2>" in marked
    assert frame["text"].str.contains("<e1>").all() and frame["text"].str.contains("</e2>").all()


def test_wrench_real_youtube():
    path = require_shared("wrench", "youtube")
    loaded = load_items(DataConfig(path=str(path)))
    assert len(loaded.frame) == 1686 + 120 + 250
    assert len(loaded.annotation_columns) == 10
    assert set(loaded.frame["gold"]) == {0, 1}


def test_no_split_column_gets_seeded_random_splits(write_csv):
    rows = [["text", "label"]] + [[f"text {i}", "pos" if i % 2 else "neg"] for i in range(50)]
    a = load_items(DataConfig(path=str(write_csv(rows)), classes=CLASSES, id_column=None), seed=1)
    b = load_items(DataConfig(path=str(write_csv(rows)), classes=CLASSES, id_column=None), seed=1)
    assert a.frame["split"].tolist() == b.frame["split"].tolist()
    assert a.frame["split"].value_counts().to_dict() == {"train": 30, "valid": 10, "test": 10}


# ---- bad input -------------------------------------------------------------------------------------

def error_of(path, **kw) -> InputError:
    with pytest.raises(InputError) as info:
        load_items(cfg(path, **kw))
    return info.value


def test_missing_file(tmp_path):
    err = error_of(tmp_path / "nope.csv")
    assert "nope.csv" in str(err) and "not found" in str(err)


def test_empty_file(write_csv, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert "empty" in str(error_of(path))


def test_empty_dataset_header_only(write_csv):
    err = error_of(write_csv([ROWS[0]]))
    assert "empty" in str(err)


def test_missing_text_column(write_csv):
    err = error_of(write_csv([["id", "body", "label", "split", "ann"], ["a", "x", "pos", "train", ""]]))
    assert err.field == "text" and "columns are: ann, body, id, label, split" in str(err)


@pytest.mark.parametrize("bad_row, field, needle", [
    (["e", "   ", "pos", "train", ""], "text", "empty text"),
    (["e", "fine", "maybe", "train", ""], "label", "'maybe' is not in the class list"),
    (["e", "fine", "pos", "train", "unsure"], "ann", "'unsure' is not in the class list"),
    (["a", "fine", "pos", "train", ""], "id", "duplicate id 'a' (first seen in row 1)"),
    (["e", "fine", "pos", "holdout", ""], "split", "unknown split"),
])
def test_bad_row_stop_names_file_row_field(write_csv, bad_row, field, needle):
    path = write_csv(ROWS + [bad_row])
    err = error_of(path)
    assert (err.row, err.field) == (5, field)
    assert needle in str(err) and str(path) in str(err) and "row 5" in str(err)


def test_malformed_csv_row(write_csv):
    path = write_csv(ROWS[:3] + [["x", "too", "many", "fields", "here", "!"]] + ROWS[3:])
    err = error_of(path)
    assert err.row == 3 and "malformed row" in str(err)


def test_malformed_jsonl_row(tmp_path):
    path = tmp_path / "items.jsonl"
    lines = [json.dumps(dict(zip(ROWS[0], r))) for r in ROWS[1:]]
    lines.insert(2, '{"id": "broken", "text": ')
    path.write_text("\n".join(lines))
    err = error_of(path)
    assert err.row == 3 and "malformed JSON" in str(err)


def test_skip_policy_keeps_good_rows_and_counts_bad(write_csv):
    path = write_csv(ROWS + [["e", "", "pos", "train", ""], ["f", "ok", "nope", "test", ""],
                             ["a", "dup", "pos", "test", ""]])
    with pytest.raises(InputError, match=r"2 more bad rows"):
        load_items(cfg(path))
    loaded = load_items(cfg(path, on_error="skip"))
    assert loaded.frame["id"].tolist() == ["a", "b", "c", "d"]
    assert [e.row for e in loaded.skipped] == [5, 6, 7]


def test_all_rows_bad_is_an_empty_dataset(write_csv):
    path = write_csv([ROWS[0], ["a", "", "pos", "train", ""]])
    with pytest.raises(InputError, match="empty"):
        load_items(cfg(path, on_error="skip"))
