"""LLM labelers: prompt templates + a backend that turns each prompt into a distribution over the classes."""

from .backend import Backend, LLMOutput

__all__ = ["Backend", "LLMOutput"]
