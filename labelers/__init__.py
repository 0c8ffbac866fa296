"""Label sources: labeling functions (Python and YAML rules), imported annotation columns, and LLM labelers."""

from .lf import (
           ABSTAIN,
           LabelingFunction,
           apply_labeling_functions,
           labeling_function,
           load_labeling_functions,
)
from .rules import RuleLF, load_rules, parse_rules

__all__ = ["ABSTAIN", "LabelingFunction", "RuleLF", "apply_labeling_functions", "labeling_function",
           "load_labeling_functions", "load_rules", "parse_rules"]
