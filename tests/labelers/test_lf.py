"""The labeling-function API: decorator, loading from a file, application, and its errors."""

import pandas as pd
import pytest

from labelers import apply_labeling_functions, labeling_function, load_labeling_functions

ITEMS = pd.DataFrame({"id": ["a", "b", "c"], "text": ["I love it", "I hate it", "meh"], "stars": [5, 1, 3]})


@labeling_function()
def lf_love(x):
    return "pos" if "love" in x.text else None


@labeling_function(name="stars")
def lf_stars(x):
    return "pos" if x.stars >= 4 else "neg" if x.stars <= 2 else None


def test_apply_gives_class_indices_and_abstains():
    votes = apply_labeling_functions([lf_love, lf_stars], ITEMS, ["neg", "pos"], progress=False)
    assert votes.tolist() == [[1, 1], [-1, 0], [-1, -1]]
    assert lf_stars.name == "stars" and lf_love.name == "lf_love"


def test_unknown_class_names_the_function_and_item():
    @labeling_function()
    def lf_bad(x):
        return "positive"

    with pytest.raises(ValueError, match=r"'lf_bad' returned 'positive' for item 'a'.*class list"):
        apply_labeling_functions([lf_bad], ITEMS, ["neg", "pos"], progress=False)


def test_load_from_file(tmp_path):
    path = tmp_path / "my_lfs.py"
    path.write_text("from labelers import labeling_function\n\n@labeling_function()\n"
                    "def lf_x(x):\n    return None\n\nhelper = 3\n")
    assert [lf.name for lf in load_labeling_functions(str(path))] == ["lf_x"]
    empty = tmp_path / "none.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ValueError, match="no labeling functions"):
        load_labeling_functions(str(empty))
    with pytest.raises(FileNotFoundError, match="not found"):
        load_labeling_functions(str(tmp_path / "missing.py"))
