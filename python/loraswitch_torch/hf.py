"""Loading a Hugging Face model folder the way the package's tools and tests use it."""

from __future__ import annotations

import os

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from .adapter import SUPPORTED_MODEL_TYPES
from .errors import AdapterError


def load_model(path: str | os.PathLike, dtype: torch.dtype = torch.float32, attn_implementation: str = "eager"):
    """A llama / mistral / qwen2 folder (config.json + safetensors) as a CausalLM in `dtype`, eval mode; a folder
    without tokenizer files is fine. Other model types are refused before any weight is read."""
    path = str(path)
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise AdapterError(path, "config.json", "is missing", "--model takes a Hugging Face model folder")
    model_type = AutoConfig.from_pretrained(path).model_type
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise AdapterError(os.path.join(path, "config.json"), "model_type", f"'{model_type}' is not supported",
                           f"{', '.join(SUPPORTED_MODEL_TYPES)} are")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation)
    return model.eval()


@torch.no_grad()
def logits_of(model, tokens: list[int]) -> torch.Tensor:
    """float32 logits [T, vocab] of one causal pass over `tokens` (batch 1, no cache)."""
    ids = torch.tensor([tokens], device=model.device)
    return model(input_ids=ids, use_cache=False).logits[0].float()
