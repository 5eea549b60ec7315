"""LoRASwitch's adapter format in PyTorch: LoRA and MoE-LoRA (token and layer routing) on Hugging Face llama, mistral
and qwen2 models, with `loraswitch`'s exact math, its training loss, and byte-compatible adapter folders."""

from .adapter import Adapter, load_adapter, new_adapter
from .config import PROJECTIONS, AdapterConfig, lora_scale, module_path
from .errors import AdapterError
from .kpass import gated_k_pass
from .loss import LossParts, StepTotals, TrainerLoss, step_totals, training_loss
from .peft_export import export_peft
from .routing import Decision, expert_mixture, route

__all__ = ["Adapter", "AdapterConfig", "AdapterError", "Decision", "LossParts", "PROJECTIONS", "StepTotals",
           "TrainerLoss", "expert_mixture", "export_peft", "gated_k_pass", "load_adapter", "lora_scale", "module_path",
           "new_adapter", "route", "step_totals", "training_loss"]
