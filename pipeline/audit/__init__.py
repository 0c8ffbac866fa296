"""Audit existing annotations (LLM judges, LLM annotators, crowds): who to trust, which labels are wrong,
and corrected estimates with valid confidence intervals. Entry point: `run_audit` + `write_audit`."""

from __future__ import annotations

from .core import AuditResult, default_method, run_audit
from .load import AuditData, attach_gold, load_annotations
from .report import render_html, write_audit

__all__ = ["AuditData", "AuditResult", "attach_gold", "default_method", "load_annotations", "render_html",
           "run_audit", "write_audit"]
