"""Label sources: labeling functions, imported annotation columns, and LLM labelers."""

from .lf import (
           ABSTAIN,
           LabelingFunction,
           apply_labeling_functions,
           labeling_function,
           load_labeling_functions,
)

__all__ = ["ABSTAIN", "LabelingFunction", "apply_labeling_functions", "labeling_function",
           "load_labeling_functions"]
