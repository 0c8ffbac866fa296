"""LLM labelers: prompt templates + a backend that turns each prompt into a distribution over the classes."""

from __future__ import annotations

import importlib

from .backend import Backend, LLMOutput

# backend name -> "module:Class"; imported on use so optional dependencies (vllm, httpx) stay optional
BACKENDS = {
    "transformers": "labelers.llm.transformers_backend:TransformersBackend",
    "vllm": "labelers.llm.vllm_backend:VLLMBackend",
    "openai": "labelers.llm.openai_backend:OpenAIBackend",
}


def backend_class(name: str) -> type[Backend]:
    """The Backend class for a name in BACKENDS or a "package.module:Class" path."""
    target = BACKENDS.get(name, name)
    if ":" not in target:
        raise ValueError(f"unknown LLM backend '{name}'; use one of {', '.join(BACKENDS)} "
                         "or 'package.module:Class'")
    module_name, cls_name = target.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            raise ValueError(f"LLM backend '{name}' is not available in this installation "
                             f"(module {module_name} not found)") from None
        raise
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ValueError(f"LLM backend '{name}': {target} is not a labelers.llm.Backend subclass")
    return cls


def make_backend(name: str, **params) -> Backend:
    """Instantiate a backend by name with its parameters; bad parameters give an error naming the backend."""
    cls = backend_class(name)
    try:
        return cls(**params)
    except TypeError as err:
        raise ValueError(f"LLM backend '{name}': {err}") from None


__all__ = ["BACKENDS", "Backend", "LLMOutput", "backend_class", "make_backend"]
