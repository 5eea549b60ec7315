"""A static LoRA as the folder PEFT writes and reads (`PeftModel.from_pretrained`): PEFT's tensor names, and an
adapter_config.json with LoraConfig's keys. Per-module ranks and alphas go into rank_pattern / alpha_pattern."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from .adapter import Adapter
from .config import PROJECTIONS
from .errors import AdapterError
from .safetensors_file import write_safetensors


def export_peft(adapter: Adapter, folder: str | os.PathLike, base_model_name_or_path: str | None = None) -> None:
    config = adapter.config
    if config.moe:
        raise AdapterError(None, "export_peft", f"a {config.kind} MoE-LoRA routes per token and has no static PEFT "
                           "form", "save it with adapter.save() for loraswitch and this package")
    sites = {path: (m.lora_A.shape[0], config.alpha_for(path)) for path, m in adapter.modules.items()}
    rank = Counter(r for r, _ in sites.values()).most_common(1)[0][0]
    alpha = Counter(a for _, a in sites.values()).most_common(1)[0][0]
    layers = sorted({int(p.split(".")[2]) for p in sites})
    modules = sorted({p.rsplit(".", 1)[1] for p in sites}, key=PROJECTIONS.index)
    product = len(sites) == len(layers) * len(modules)
    all_layers = layers == list(range(adapter.model.config.num_hidden_layers))
    raw = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model_name_or_path if base_model_name_or_path is not None
        else config.base_model_name_or_path,
        "r": rank, "lora_alpha": alpha, "use_rslora": config.use_rslora,
        # PEFT matches a name to a module path when it equals the path or ends it after a dot
        "target_modules": modules if product else sorted(sites),
        "layers_to_transform": layers if product and not all_layers else None,
        "rank_pattern": {p: r for p, (r, _) in sites.items() if r != rank},
        "alpha_pattern": {p: a for p, (_, a) in sites.items() if a != alpha},
        "bias": "none", "fan_in_fan_out": False, "lora_dropout": 0.0, "use_dora": False, "modules_to_save": None,
        "inference_mode": True, "init_lora_weights": True,
    }
    tensors = {name.replace(".default.", "."): t for name, t in adapter.tensors().items()}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / "adapter_model.safetensors", tensors, {"format": "pt"})
    (folder / "adapter_config.json").write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
