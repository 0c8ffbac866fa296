"""Declarative labeling functions from YAML: keyword and regex rules, applied to a whole column at once.

    labeling_functions:
      - name: kw_subscribe
        type: keyword              # any of the keywords
        class: SPAM
        keywords: [subscribe, "sub to my"]
        whole_word: true           # default true: not inside a longer word ("sub" misses "subway")
        case_sensitive: false      # default false
      - name: re_check_out
        type: regex                # Python `re` syntax, searched anywhere in the text
        class: SPAM
        pattern: 'check\\s+(it\\s+)?out'
        field: text                # which items column (default text)

The file is read with `yaml.safe_load` (no Python tags, nothing is executed) and validated with a
strict schema: unknown keys, invalid regexes and unknown classes are errors naming the file and the
labeling function.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError

RULE_SUFFIXES = (".yaml", ".yml")


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, coerce_numbers_to_str=True)

    name: str = Field(min_length=1)
    label: str = Field(alias="class", min_length=1)
    field: str = Field("text", min_length=1)
    case_sensitive: bool = False


class KeywordRule(_Rule):
    """Votes `class` when any keyword occurs in the field."""

    type: Literal["keyword"]
    keywords: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    whole_word: bool = True

    def pattern(self) -> str:
        parts = []
        for word in sorted(set(self.keywords), key=lambda w: (-len(w), w)):
            body = re.escape(word)
            if self.whole_word:  # a word-character edge must not touch another word character
                body = (r"\b" if re.match(r"\w", word[0]) else "") + body + (r"\b" if re.match(r"\w", word[-1]) else "")
            parts.append(body)
        return "|".join(parts)


class RegexRule(_Rule):
    """Votes `class` when the regex matches anywhere in the field (`re.search`)."""

    type: Literal["regex"]
    pattern_: str = Field(alias="pattern", min_length=1)

    def pattern(self) -> str:
        return self.pattern_


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labeling_functions: list[Annotated[KeywordRule | RegexRule, Field(discriminator="type")]] = Field(min_length=1)


@dataclass(frozen=True)
class RuleLF:
    """A compiled keyword/regex labeling function. `apply` labels a whole table; `__call__` one item."""

    name: str
    label: str
    field: str
    regex: re.Pattern
    kind: str = "regex"
    source: str = "<rules>"

    def __call__(self, x) -> str | None:
        """The class name when the rule fires on item `x` (a row with attribute access), else None."""
        value = getattr(x, self.field, None)
        if value is None or (isinstance(value, float) and value != value):
            return None
        return self.label if self.regex.search(str(value)) else None

    def check(self, classes: list[str], columns=None) -> None:
        """Raise a ValueError naming this function when its class or field does not exist."""
        if self.label not in classes:
            raise ValueError(f"{self.source}: labeling function '{self.name}': class '{self.label}' is not in "
                             f"the class list {classes}")
        if columns is not None and self.field not in columns:
            raise ValueError(f"{self.source}: labeling function '{self.name}': field '{self.field}' is not a "
                             f"column of the items; columns are: {', '.join(map(str, columns))}")

    def apply(self, items: pd.DataFrame, classes: list[str]) -> np.ndarray:
        """Votes (N,) int: the class index where the rule fires, -1 elsewhere (and on missing values).

        One `Series.str.contains` over the column (pyarrow's RE2 where it gives the same answer as
        Python's `re`, Python's `re` otherwise), no Python loop per item.
        """
        self.check(classes, items.columns)
        column = items[self.field]
        present = column.notna().to_numpy()
        hits = np.zeros(len(items), dtype=bool)
        if present.any():
            with warnings.catch_warnings():  # "has match groups": we only ask whether it matches
                warnings.filterwarnings("ignore", message="This pattern is interpreted as a regular expression")
                found = column[present].astype(str).str.contains(self.regex, regex=True)
            hits[present] = found.to_numpy(dtype=bool)
        return np.where(hits, classes.index(self.label), -1).astype(np.int64)


def _where(raw: dict, loc: tuple) -> str:
    """'labeling_functions[2] (kw_x).keywords' for a pydantic error location."""
    if len(loc) >= 2 and loc[0] == "labeling_functions" and isinstance(loc[1], int):
        entries = raw.get("labeling_functions") or []
        entry = entries[loc[1]] if loc[1] < len(entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        head = f"labeling function {loc[1] + 1}" + (f" '{name}'" if name else "")
        rest = [str(p) for p in loc[3 if len(loc) > 2 and loc[2] in ("keyword", "regex") else 2:]]
        return head + (f", key '{'.'.join(rest)}'" if rest else "")
    return ".".join(str(p) for p in loc) or "(top level)"


def _allowed(raw: dict, loc: tuple) -> str:
    if len(loc) >= 3 and loc[0] == "labeling_functions" and loc[2] in ("keyword", "regex"):
        model = KeywordRule if loc[2] == "keyword" else RegexRule
        return ", ".join(sorted(f.alias or n for n, f in model.model_fields.items()))
    if len(loc) == 1:
        return ", ".join(RuleFile.model_fields)
    return "name, class, type, keywords/pattern, field, case_sensitive, whole_word"


def _format(err: ValidationError, raw: dict, source: str) -> str:
    lines = [f"invalid labeling-function file {source}:"]
    for e in err.errors():
        where = _where(raw, e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key; allowed keys: {_allowed(raw, e['loc'])}")
        elif e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            lines.append(f"  {where}: 'type' must be 'keyword' or 'regex'")
        else:
            lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


def parse_rules(raw, source: str = "<rules>", classes: list[str] | None = None) -> list[RuleLF]:
    """Validate a parsed YAML document and compile its rules. Raises ConfigError naming `source` and the LF."""
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid labeling-function file {source}: expected a mapping with a "
                          "'labeling_functions' list at the top level")
    try:
        spec = RuleFile.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format(err, raw, source)) from None
    lfs, seen = [], set()
    for rule in spec.labeling_functions:
        where = f"{source}: labeling function '{rule.name}'"
        if rule.name in seen:
            raise ConfigError(f"{where}: the name is used twice")
        seen.add(rule.name)
        if classes is not None and rule.label not in classes:
            raise ConfigError(f"{where}: class '{rule.label}' is not in the class list {classes}")
        try:
            regex = re.compile(rule.pattern(), 0 if rule.case_sensitive else re.IGNORECASE)
        except re.error as err:
            raise ConfigError(f"{where}: invalid regex {rule.pattern()!r}: {err}") from None
        lfs.append(RuleLF(rule.name, rule.label, rule.field, regex, kind=rule.type, source=source))
    return lfs


def load_rules(path: str | Path, classes: list[str] | None = None) -> list[RuleLF]:
    """Keyword/regex labeling functions from a YAML file (safe_load: no tags, no code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labeling-function file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"labeling-function file {path} is not valid YAML or uses a tag that is not allowed "
                          f"(only plain YAML is read, no Python objects): {err}") from None
    return parse_rules(raw, source=str(path), classes=classes)
