"""Prompt templates (Jinja2) shipped with the package: zero-shot, few-shot and pairwise-judge.

Templates put the instructions and the examples first and the item last, so every prompt of a run
shares one prefix that a backend computes once. Item text is data: every value that comes from an
item or an example is escaped before rendering (`escape_data`): whitespace runs (newlines included)
become one space and `<` / `>` become look-alikes, so a text can neither close its `<text>` fence,
nor start a fake "Answer:" line, nor inject Jinja (values are never parsed as templates).

    tpl = PromptTemplate("few_shot")
    tpl.render(text="great video", task="Is this comment spam?", answers=["ham", "spam"],
               examples=[{"text": "subscribe to me", "answer": "spam"}])
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import jinja2
from jinja2 import meta

BUILTIN = ("zero_shot", "few_shot", "judge")
ALLOWED_VARIABLES = frozenset({"text", "item", "task", "answers", "examples", "classes"})
ITEM_VARIABLES = frozenset({"text", "item"})
_WS = re.compile(r"\s+")


class TemplateError(ValueError):
    """A template that cannot be loaded or rendered."""


def escape_data(value, max_chars: int | None = None) -> str:
    """Item-derived value -> one line of text that cannot leave its `<text>` fence."""
    s = "" if value is None else str(value)
    s = _WS.sub(" ", s).strip().replace("<", "‹").replace(">", "›")
    s = "".join(ch for ch in s if ch.isprintable())
    if max_chars is not None and len(s) > max_chars:
        s = s[:max_chars].rstrip() + " …"
    return s


def builtin_template_source(name: str) -> str:
    return files("prompts").joinpath(f"{name}.j2").read_text()


class PromptTemplate:
    """A Jinja2 prompt template: a built-in name (zero_shot, few_shot, judge) or a path to a .j2 file.

    max_chars: item and example texts are cut to this many characters (None = no limit).
    """

    def __init__(self, source: str = "zero_shot", max_chars: int | None = 1000):
        self.source = source
        self.max_chars = max_chars
        if source in BUILTIN:
            text = builtin_template_source(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise TemplateError(f"prompt template '{source}' not found: give one of {', '.join(BUILTIN)} "
                                    "or the path to a .j2 file")
            text = path.read_text()
        self.text = text
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                                 autoescape=False)
        try:
            ast = env.parse(text)
        except jinja2.TemplateSyntaxError as err:
            raise TemplateError(f"prompt template '{source}' line {err.lineno}: {err.message}") from None
        used = meta.find_undeclared_variables(ast)
        unknown = sorted(used - ALLOWED_VARIABLES)
        if unknown:
            raise TemplateError(f"prompt template '{source}' uses unknown variable(s) {', '.join(unknown)}; "
                                f"available: {', '.join(sorted(ALLOWED_VARIABLES))} (item columns as item.NAME)")
        if not used & ITEM_VARIABLES:
            raise TemplateError(f"prompt template '{source}' never uses the item: put {{{{ text }}}} "
                                "(or item.COLUMN) last in it")
        self.variables = frozenset(used)
        self._template = env.from_string(text)

    @property
    def uses_examples(self) -> bool:
        return "examples" in self.variables

    def render(self, text=None, item: dict | None = None, task: str = "", answers=(), classes=(),
               examples=()) -> str:
        """One prompt. `text`, `item` values and example texts are escaped; task and answers are not."""
        esc = self._escape
        ctx = {
            "text": esc(text),
            "item": {k: esc(v) for k, v in (item or {}).items()},
            "task": task,
            "answers": list(answers),
            "classes": list(classes),
            "examples": [{"text": esc(ex["text"]), "answer": ex["answer"]} for ex in examples],
        }
        try:
            return self._template.render(**ctx).strip()
        except jinja2.UndefinedError as err:
            raise TemplateError(f"prompt template '{self.source}': {err.message} "
                                f"(item fields available: {', '.join(sorted(ctx['item'])) or 'none'})") from None

    def _escape(self, value) -> str:
        return escape_data(value, self.max_chars)


__all__ = ["BUILTIN", "PromptTemplate", "TemplateError", "escape_data"]
